// SPDX-License-Identifier: Apache-2.0
// The CLI's command tree as its own `--help` prints it (commander's layout), walked command by
// command: the one source the man page and the bash completion are generated from, so neither
// can drift from the program. Owns the parse of commander's help text; runs nothing itself.

export interface HelpEntry {
  /** e.g. `-i, --interface <name>`, `<paths...>`, `agent [options]` */
  term: string;
  description: string;
}

export interface HelpNode {
  /** The words after `doorstep`: [] for the program, ['fleet', 'status'] for a subcommand. */
  path: string[];
  usage: string;
  description: string;
  arguments: HelpEntry[];
  options: HelpEntry[];
  commands: HelpEntry[];
}

/**
 * Parse one help text. Commander prints `Usage: …`, a description, then sections (`Arguments:`,
 * `Options:`, `Commands:`) of entries: a term two spaces in, two or more spaces, a description,
 * and wrapped description lines indented further.
 */
export function parseHelp(path: string[], text: string): HelpNode {
  const node: HelpNode = { path, usage: '', description: '', arguments: [], options: [], commands: [] };
  const sections: Record<string, HelpEntry[]> = { 'Arguments:': node.arguments, 'Options:': node.options, 'Commands:': node.commands };
  let section: HelpEntry[] | undefined;
  const description: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('Usage: ')) {
      node.usage = line.slice('Usage: '.length).trim();
      continue;
    }
    if (line in sections) {
      section = sections[line];
      continue;
    }
    if (!section) {
      if (line.trim()) description.push(line.trim());
      continue;
    }
    const entry = /^ {2}(\S(?:.*?\S)?)(?: {2,}(.*))?$/.exec(line);
    if (entry) {
      section.push({ term: entry[1]!, description: (entry[2] ?? '').trim() });
    } else if (line.trim()) {
      const last = section[section.length - 1];
      if (last) last.description = `${last.description} ${line.trim()}`.trim();
    }
  }
  node.description = description.join(' ');
  return node;
}

/** A subcommand's name: the first word of its term (`agent [options]` → `agent`). */
export const commandName = (entry: HelpEntry): string => entry.term.split(' ')[0]!;

/** The long flag of an option term (`-i, --interface <name>` → `--interface`), or its short one. */
export const optionFlags = (entry: HelpEntry): string[] => entry.term.split(/[ ,]+/).filter((w) => w.startsWith('-'));

/** Every command from the root down, depth first; `help` (commander's own) is left out. */
export function walkHelp(help: (path: string[]) => string, path: string[] = []): HelpNode[] {
  const node = parseHelp(path, help(path));
  const children = node.commands.map(commandName).filter((name) => name !== 'help');
  return [node, ...children.flatMap((name) => walkHelp(help, [...path, name]))];
}
