// SPDX-License-Identifier: Apache-2.0
// SysctlFiles: the kernel's settings by /proc/sys path, behind an interface with the real files
// (those of this process's network namespace: /proc/sys/net follows the namespace of the process
// that opens it) and an in-memory twin for tests without root. The agent's hardening and a
// placement's forwarding both reach sysctls through it.
import { readFileSync, writeFileSync } from 'node:fs';

/** Kernel settings by /proc/sys path. */
export interface SysctlFiles {
  /** The value, trimmed; undefined when there is no such key. */
  read(path: string): string | undefined;
  /** Throws when the key cannot be written (ENOENT when there is no such key). */
  write(path: string, value: string): void;
}

/** The error of a key that does not exist. */
export const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** The real settings of this process's network namespace. */
export const procSysctls: SysctlFiles = {
  read(path) {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  },
  write(path, value) {
    writeFileSync(path, value);
  },
};

/** The same semantics in memory: a key that was never given does not exist. */
export class MemorySysctls implements SysctlFiles {
  readonly values: Map<string, string>;

  constructor(values: Record<string, string> = {}) {
    this.values = new Map(Object.entries(values));
  }

  read(path: string): string | undefined {
    return this.values.get(path);
  }

  write(path: string, value: string): void {
    if (!this.values.has(path)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    this.values.set(path, value.trim());
  }
}
