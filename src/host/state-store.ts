// SPDX-License-Identifier: Apache-2.0
// The agent's state directory: the last installed policy set (its documents as text, its
// version and the generation the engine gave it), so a restarted agent whose source is broken
// or unreachable enforces the last good policy instead of deny-all. Writes are atomic
// (temporary file, fsync, rename): a crash leaves the old state or the new, never half of one.
import { closeSync, constants, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DoorstepError } from '../errors.js';

const STATE_FILE = 'policy.json';

const stateSchema = z.object({
  format: z.literal(1),
  version: z.string(),
  generation: z.number().int().nonnegative(),
  origin: z.string(),
  installedAt: z.string(),
  sources: z.array(z.object({ file: z.string(), text: z.string() })),
});

export type InstalledState = z.infer<typeof stateSchema>;

export class StateStore {
  constructor(readonly dir: string) {}

  /** Create the folder (root-only) and prove it is writable; a clear error otherwise. */
  prepare(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const probe = join(this.dir, '.probe');
      writeAtomic(probe, 'ok');
      rmSync(probe, { force: true });
    } catch (cause) {
      throw new DoorstepError('DS_E_STATE_DIR', `cannot write the state dir ${this.dir}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
        hint: 'give --state-dir a writable folder (the agent keeps the last installed policy there)',
        cause,
      });
    }
  }

  /** The last installed policy, or null when there is none or it cannot be read (reported, not fatal). */
  load(onProblem: (message: string) => void = () => {}): InstalledState | null {
    return readJsonFile(join(this.dir, STATE_FILE), stateSchema, onProblem);
  }

  /** Keep `state` as the last installed policy. The writes and fsync run off the event loop (a
   *  10,000-rule set is a megabyte); callers serialize their saves. `encoded.sources`, when given,
   *  is JSON.stringify(state.sources) as UTF-8, encoded elsewhere (the policy thread): written as
   *  it is: the file holds the same bytes as without it when `state` lists its fields in
   *  InstalledState's order (the controller's does). */
  save(state: Omit<InstalledState, 'format'>, encoded?: { sources: Uint8Array }): Promise<void> {
    const path = join(this.dir, STATE_FILE);
    if (!encoded) return writeAtomicAsync(path, JSON.stringify({ format: 1, ...state }));
    const { version, generation, origin, installedAt } = state;
    const head = JSON.stringify({ format: 1, version, generation, origin, installedAt });
    return writeAtomicAsync(path, [Buffer.from(`${head.slice(0, -1)},"sources":`), encoded.sources, Buffer.from('}')]);
  }
}

/**
 * The state file at `path`, checked against `schema`; null when there is none, or when it cannot
 * be read or is damaged (said through `onProblem`, with `consequence` after it when given).
 */
export function readJsonFile<T>(path: string, schema: z.ZodType<T>, onProblem: (message: string) => void, consequence = ''): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onProblem(`cannot read ${path}: ${String(err)}${consequence}`);
    return null;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch (err) {
    onProblem(`${path} is damaged and ignored: ${(err as Error).message.split('\n')[0]}${consequence}`);
    return null;
  }
}

/** Write `text` to `path` atomically (temporary file, fsync, rename). */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** writeAtomic with the writes and fsync off the event loop; `text` may come in parts, written in order. */
export async function writeAtomicAsync(path: string, text: string | readonly Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const file = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    if (typeof text === 'string') await file.writeFile(text);
    else for (const part of text) for (let at = 0; at < part.byteLength; ) at += (await file.write(part, at)).bytesWritten;
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
}
