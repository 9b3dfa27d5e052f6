// SPDX-License-Identifier: Apache-2.0
// doorstep(1) in roff, from the help tree (./help-tree.ts): NAME, SYNOPSIS, one subsection per
// command with its arguments and options, then the files and signals an operator looks up.
import type { HelpEntry, HelpNode } from './help-tree.js';

/** Text safe in roff: backslashes and hyphens escaped, no line starting with a control character. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

const entries = (title: string, list: HelpEntry[]) =>
  list.length === 0 ? [] : [`.PP`, `\\fB${title}\\fR`, ...list.flatMap((e) => ['.TP', `.B ${roff(e.term)}`, roff(e.description)])];

function commandSection(node: HelpNode): string[] {
  return [
    `.SS "${roff(['doorstep', ...node.path].join(' '))}"`,
    roff(node.description),
    '.PP',
    `Usage: \\fB${roff(node.usage)}\\fR`,
    ...entries('Arguments', node.arguments),
    ...entries('Options', node.options.filter((o) => o.term !== '-h, --help')),
  ];
}

export function manPage(tree: HelpNode[], version: string): string {
  const [root, ...commands] = tree;
  if (!root) throw new Error('man page: an empty help tree');
  // a command group (`fleet`) has only subcommands: its own section says what it groups
  const lines = [
    `.\\" Generated from \`doorstep --help\` by scripts/gen-cli-docs.ts at build time: do not edit.`,
    `.TH DOORSTEP 1 "" "doorstep ${roff(version)}" "User Commands"`,
    '.SH NAME',
    `doorstep \\- ${roff(root.description)}`,
    '.SH SYNOPSIS',
    '.B doorstep',
    '\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]',
    '.SH DESCRIPTION',
    'doorstep enforces network policy at the XDP hook of the interfaces facing a source network.',
    'The agent (\\fBdoorstep agent\\fR, run by \\fBdoorstep.service\\fR) attaches in default deny before',
    'the network comes up, installs and watches the policy, and writes the audit trail; the other',
    'commands check policy offline or talk to the agent over its local socket.',
    '.SH COMMANDS',
    ...commands.flatMap(commandSection),
    '.SH FILES',
    '.TP', '.B /etc/doorstep/agent.yaml', 'the agent\'s settings (\\fB\\-\\-config\\fR), read again on SIGHUP',
    '.TP', '.B /etc/doorstep/policy/', 'the policy folder the packaged configuration watches',
    '.TP', '.B /var/lib/doorstep/', 'the state dir: the last installed policy, WireGuard keys, sequence marks',
    '.TP', '.B /var/log/doorstep/', 'the audit trail of the packaged configuration',
    '.TP', '.B /run/doorstep/agent.sock', 'the local API the client commands use',
    '.TP', '.B /sys/fs/bpf/doorstep/', 'the pinned engine, which a restarted agent adopts',
    '.SH EXIT STATUS',
    '0 success, 1 unexpected, 2 usage or configuration, 3 policy, 4 the host refused (capabilities, BPF, interface),',
    '5 the agent is unreachable or refused, 6 fleet (NATS).',
    '.SH SEE ALSO',
    '\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); /usr/share/doc/doorstep/ (operations, policy language, audit fields)',
    '',
  ];
  return lines.join('\n');
}
