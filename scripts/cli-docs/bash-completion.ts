// SPDX-License-Identifier: Apache-2.0
// The bash completion of doorstep, from the help tree (./help-tree.ts): subcommands where a
// command groups others, its options after a `-`, and file names otherwise (policy paths).
import { commandName, type HelpNode, optionFlags } from './help-tree.js';

const quote = (words: string[]) => `"${words.join(' ')}"`;

export function bashCompletion(tree: HelpNode[]): string {
  // keyed by the command path from `doorstep` on (bash refuses an empty key)
  const key = (n: HelpNode) => quote(['doorstep', ...n.path]);
  const commands = tree.filter((n) => n.commands.length > 0).map((n) => `  [${key(n)}]=${quote(n.commands.map(commandName).filter((c) => c !== 'help'))}`);
  const options = tree.map((n) => `  [${key(n)}]=${quote(n.options.flatMap(optionFlags))}`);
  return `# bash completion for doorstep. Generated from \`doorstep --help\` by scripts/gen-cli-docs.ts: do not edit.
declare -A _doorstep_commands=(
${commands.join('\n')}
)
declare -A _doorstep_options=(
${options.join('\n')}
)

_doorstep() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path=doorstep word
  # the command path so far: the words that name a subcommand of the path before them
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    [[ " \${_doorstep_commands[$path]} " == *" $word "* ]] && path="$path $word"
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${_doorstep_options[$path]}" -- "$cur"))
  elif [[ -n \${_doorstep_commands[$path]+set} ]]; then
    COMPREPLY=($(compgen -W "\${_doorstep_commands[$path]}" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _doorstep doorstep
`;
}
