// SPDX-License-Identifier: Apache-2.0
// Writes doorstep(1) and the bash completion from the built CLI's own `--help` (package.sh runs
// it at build time): `node dist/scripts/gen-cli-docs.js MAN_FILE COMPLETION_FILE [MAIN_JS]`.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bashCompletion } from './cli-docs/bash-completion.js';
import { walkHelp } from './cli-docs/help-tree.js';
import { manPage } from './cli-docs/man-page.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [man, completion, mainJs = `${repoRoot}/dist/src/cli/main.js`] = process.argv.slice(2);
  if (!man || !completion) {
    console.error('usage: gen-cli-docs.js MAN_FILE COMPLETION_FILE [MAIN_JS]');
    process.exit(2);
  }
  const help = (path: string[]) => execFileSync(process.execPath, [mainJs, ...path, '--help'], { encoding: 'utf8' });
  const tree = walkHelp(help);
  const { version } = JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string };
  writeFileSync(man, manPage(tree, version));
  writeFileSync(completion, bashCompletion(tree));
  console.log(`wrote ${man} and ${completion}: ${tree.length - 1} commands`);
}
