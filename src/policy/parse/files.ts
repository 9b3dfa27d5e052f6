// SPDX-License-Identifier: Apache-2.0
// Reading policy sources from disk: the only I/O of src/policy. A path may be a file or a folder;
// a folder contributes its *.yaml, *.yml and *.json files (not subfolders), sorted by name. The
// files as bytes (readPolicyFiles, for the folder source, which compares reads before it decodes
// one), or as text (readPolicySources: the same files, decoded as UTF-8).

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PolicySource } from './documents.js';

const POLICY_FILE = /\.(ya?ml|json)$/i;

/** A policy file as read: its path and its bytes, not yet decoded. */
export interface PolicyFile {
  file: string;
  bytes: Buffer;
}

export async function readPolicySources(paths: readonly string[]): Promise<PolicySource[]> {
  return decodePolicyFiles(await readPolicyFiles(paths));
}

/** The files readPolicySources reads, in its order, as bytes. */
export async function readPolicyFiles(paths: readonly string[]): Promise<PolicyFile[]> {
  const files: string[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      const entries = await readdir(path, { withFileTypes: true });
      const names: string[] = [];
      for (const e of entries) {
        if (!POLICY_FILE.test(e.name)) continue;
        // follow symlinks: a Kubernetes ConfigMap volume is a folder of links
        if (e.isFile() || (e.isSymbolicLink() && (await stat(join(path, e.name)).catch(() => null))?.isFile())) names.push(e.name);
      }
      files.push(...names.sort(byCodePoint).map((name) => join(path, name)));
    } else {
      files.push(path);
    }
  }
  return Promise.all(files.map(async (file) => ({ file, bytes: await readFile(file) })));
}

/** The files as text (UTF-8, as readFile decodes it). */
export function decodePolicyFiles(files: readonly PolicyFile[]): PolicySource[] {
  return files.map(({ file, bytes }) => ({ file, text: bytes.toString('utf8') }));
}

/** Locale-independent order, so every machine sees the same document order. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
