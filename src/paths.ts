// SPDX-License-Identifier: Apache-2.0
// Where the package's built artefacts live, found from this module's own location so that the
// same code works from src/ (tsx) and dist/ (compiled).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'doorstep') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('doorstep: package root not found');
    dir = parent;
  }
}

export const packageRoot = findPackageRoot();
export const engineObjectPath = join(packageRoot, 'bpf/build/engine.bpf.o');
export const floorObjectPath = join(packageRoot, 'bpf/build/floor.bpf.o');
export const abiObjectPath = join(packageRoot, 'bpf/build/abi_btf.o');
export const addonPath = join(packageRoot, 'build/Release/doorstep.node');
export const examplesDir = join(packageRoot, 'examples');
