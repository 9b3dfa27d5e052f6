// SPDX-License-Identifier: Apache-2.0
// Regenerates src/abi/generated.ts from the BTF of bpf/build/abi_btf.o (built by `make -C bpf`).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { btfToTypeScript, parseBtfJson } from '../src/abi/btf-to-ts.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export function readAbiBtf(object = `${repoRoot}/bpf/build/abi_btf.o`): { types: never[] } {
  return parseBtfJson(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8' })) as { types: never[] };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = `${repoRoot}/src/abi/generated.ts`;
  writeFileSync(target, btfToTypeScript(readAbiBtf()));
  console.log(`wrote ${target}`);
}
