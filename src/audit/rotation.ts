// SPDX-License-Identifier: Apache-2.0
// Size-based rotation of an audit file: where a chunk of whole lines must be cut so the file stays
// within its size, and moving file → file.1 → … → file.N (the oldest deleted). Used by the
// JSON-lines writer thread (json-lines-writer.ts); touches only the files of the path it is given.
import { renameSync, unlinkSync } from 'node:fs';

const NEWLINE = 0x0a;

/** Make room for a new `path`: it becomes path.1, path.1 becomes path.2, …, up to path.keep (keep 0: deleted). */
export function shiftRotated(path: string, keep: number): void {
  if (keep === 0) {
    unlinkSync(path);
    return;
  }
  for (let i = keep - 1; i >= 0; i--) {
    try {
      renameSync(i === 0 ? path : `${path}.${i}`, `${path}.${i + 1}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/**
 * Where the piece of `chunk` from `off` that fits in `space` bytes ends, between lines; `off` when
 * no whole line fits. A file that is still empty (`fresh`) takes a line longer than the space whole:
 * it gets a file of its own.
 */
export function pieceEnd(chunk: Uint8Array, off: number, space: number, fresh: boolean): number {
  if (chunk.length - off <= space) return chunk.length;
  let end = space > 0 ? chunk.lastIndexOf(NEWLINE, off + space - 1) + 1 : 0;
  if (end <= off && fresh) {
    const nl = chunk.indexOf(NEWLINE, off);
    end = nl < 0 ? chunk.length : nl + 1;
  }
  return Math.max(end, off);
}
