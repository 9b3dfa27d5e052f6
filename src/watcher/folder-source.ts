// SPDX-License-Identifier: Apache-2.0
// The folder policy source: watches policy files and folders (the embedded default source) and
// delivers the whole set as a candidate once its content has settled. Owns its fs.watch handles
// and timers; touches nothing but the file system (reads through src/policy/parse/files.ts).
//
// How a change becomes a candidate:
//  1. any fs event for a watched path (re)arms a debounce timer;
//  2. when it fires, read the set, wait the debounce again, read again; deliver only when both
//     reads are identical (a half-written file changes between them), else repeat, bounded;
//  3. deliver only when the set's content hash differs from the last delivered one.
// Reads are compared as bytes (hashed as read, with no decoding); only a set that is delivered is
// decoded to text: a 10,000-rule policy is a megabyte, and the event loop runs all of this.
// A folder is watched directly. A single file is watched through its parent folder, filtered by
// name, so editors and tools that replace it by rename keep being seen. A path that is missing,
// or a folder that was replaced, is re-watched on the next pass; while something is missing or
// unwatchable the source reports it through onError and polls at a bounded interval.

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { DoorstepError } from '../errors.js';
import { decodePolicyFiles, type PolicyFile, readPolicyFiles } from '../policy/parse/files.js';
import type { PolicyCandidate, PolicySourceHandle, PolicyText } from './source.js';

export interface FolderSourceOptions {
  /** Quiet time after the last change, and the stability window between two reads. Default 250. */
  debounceMs?: number;
  /** Poll interval while a path is missing or cannot be watched. Default max(1000, debounceMs). */
  retryMs?: number;
  /** Read/compare rounds before a still-changing set is given up until the next change. Default 10. */
  maxSettleRounds?: number;
  /** Problems reading or watching (DS_E_POLICY_SOURCE); the same message is not repeated until
   *  a pass succeeds. Default: process.emitWarning. */
  onError?: (err: Error) => void;
  /** Called after every settle pass (diagnostics and tests): whether it delivered a candidate. */
  onSettled?: (pass: SettlePass) => void;
}

export interface SettlePass {
  outcome: 'delivered' | 'unchanged' | 'unstable' | 'failed';
  /** sha256 of the set read (absent when the read failed). */
  hash?: string;
}

/** What one configured path needs watched right now. */
interface WatchPlan {
  dir: string;
  /** inode of `dir`, so a folder replaced by another is noticed and re-watched */
  ino: number;
  /** null: every event in `dir` counts */
  only: string | null;
}

interface Target {
  path: string;
  plan?: WatchPlan;
  watcher?: FSWatcher;
}

interface ReadSet {
  files: PolicyFile[];
  hash: string;
}

export class FolderSource implements PolicySourceHandle {
  readonly origin: string;
  private readonly paths: string[];
  private readonly targets: Target[];
  private readonly debounceMs: number;
  private readonly retryMs: number;
  private readonly maxRounds: number;
  private readonly onError: (err: Error) => void;
  private readonly onSettled: ((pass: SettlePass) => void) | undefined;

  private deliver: ((candidate: PolicyCandidate) => void) | undefined;
  private lastHash: string | undefined;
  private revision = 0;
  private lastReported: string | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private wake: { timer: NodeJS.Timeout; resolve: () => void } | undefined;

  constructor(paths: string | readonly string[], options: FolderSourceOptions = {}) {
    const list = typeof paths === 'string' ? [paths] : [...paths];
    if (list.length === 0) throw new DoorstepError('DS_E_USAGE', 'a folder policy source needs at least one path');
    this.paths = list.map((p) => resolve(p));
    this.targets = this.paths.map((path) => ({ path }));
    this.origin = `file:${this.paths.join(',')}`;
    this.debounceMs = Math.max(0, options.debounceMs ?? 250);
    this.retryMs = Math.max(1, options.retryMs ?? Math.max(1000, this.debounceMs));
    this.maxRounds = Math.max(1, options.maxSettleRounds ?? 10);
    this.onError = options.onError ?? ((err) => process.emitWarning(err));
    this.onSettled = options.onSettled;
  }

  /** Watches, then delivers the current set once it is stable; resolves after that first pass
   *  (a missing path is reported through onError and retried, not thrown). */
  async start(deliver: (candidate: PolicyCandidate) => void): Promise<void> {
    if (this.deliver) throw new DoorstepError('DS_E_USAGE', 'FolderSource.start() was called twice');
    this.deliver = deliver;
    await this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.wake) {
      clearTimeout(this.wake.timer);
      this.wake.resolve();
    }
    for (const t of this.targets) this.unwatch(t);
    await this.running;
    // a pass that was in flight may have re-armed a watcher before it saw `closed`
    for (const t of this.targets) this.unwatch(t);
    clearTimeout(this.timer);
  }

  /** (Re)arm the single timer: the debounce after an event, or the retry poll. */
  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, ms);
  }

  /** One settle pass at a time; a request during a pass runs another one after it. */
  private async run(): Promise<void> {
    if (this.closed || !this.deliver) return;
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
    });
    await this.running;
    if (this.rerun && !this.closed) {
      this.rerun = false;
      this.schedule(this.debounceMs);
    }
  }

  private async pass(): Promise<void> {
    let outcome: SettlePass;
    try {
      outcome = await this.settle();
    } catch (err) {
      if (this.closed) return;
      this.report(err);
      outcome = { outcome: 'failed' };
    }
    if (this.closed) return;
    if (outcome.outcome === 'failed' || outcome.outcome === 'unstable' || this.targets.some((t) => !t.watcher)) {
      this.schedule(this.retryMs);
    }
    this.onSettled?.(outcome);
  }

  private async settle(): Promise<SettlePass> {
    for (let round = 0; round < this.maxRounds; round++) {
      // watch before reading: whatever changes after the watch is set up raises an event
      await this.ensureWatches();
      const first = await this.read();
      await this.sleep(this.debounceMs);
      if (this.closed) return { outcome: 'unchanged' };
      const second = await this.read();
      if (this.closed) return { outcome: 'unchanged' };
      if (first.hash !== second.hash) continue;

      this.lastReported = undefined;
      if (second.hash === this.lastHash) return { outcome: 'unchanged', hash: second.hash };
      this.lastHash = second.hash;
      this.revision += 1;
      try {
        const sources: PolicyText[] = decodePolicyFiles(second.files);
        this.deliver?.({ origin: this.origin, sources, revision: this.revision });
      } catch (err) {
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
      return { outcome: 'delivered', hash: second.hash };
    }
    this.report(
      new Error(
        `the policy files kept changing over ${this.maxRounds} reads ${this.debounceMs} ms apart; ` +
          'nothing was delivered, retrying',
      ),
    );
    return { outcome: 'unstable' };
  }

  private async read(): Promise<ReadSet> {
    const files = await readPolicyFiles(this.paths);
    const h = createHash('sha256');
    for (const { file, bytes } of files) {
      // length-prefixed, so no two different sets hash alike by shifting bytes between fields
      const name = Buffer.from(file);
      h.update(`${name.length}:`).update(name).update(`${bytes.length}:`).update(bytes);
    }
    return { files, hash: h.digest('hex') };
  }

  /** Bring every path's watcher in line with what is on disk now. */
  private async ensureWatches(): Promise<void> {
    for (const t of this.targets) {
      if (this.closed) return;
      let plan: WatchPlan | undefined;
      try {
        plan = await planFor(t.path);
      } catch (err) {
        this.report(err);
      }
      if (this.closed) return;
      if (!plan) {
        this.unwatch(t);
        continue;
      }
      const same = t.watcher && t.plan && t.plan.dir === plan.dir && t.plan.ino === plan.ino && t.plan.only === plan.only;
      if (same) continue;
      this.unwatch(t);
      this.watchTarget(t, plan);
    }
  }

  private watchTarget(t: Target, plan: WatchPlan): void {
    let w: FSWatcher;
    try {
      w = watch(plan.dir, { persistent: true });
    } catch (err) {
      this.report(err);
      return;
    }
    w.on('change', (_type, name) => {
      if (plan.only !== null && name !== null && name.toString() !== plan.only) return;
      if (!this.running) this.schedule(this.debounceMs);
      else this.rerun = true;
    });
    w.on('error', (err) => {
      // the folder went away under the watcher (or inotify gave up): re-plan on the next pass
      if (t.watcher === w) this.unwatch(t);
      if (!this.closed) {
        this.report(err);
        this.schedule(this.debounceMs);
      }
    });
    t.watcher = w;
    t.plan = plan;
  }

  private unwatch(t: Target): void {
    t.watcher?.close();
    t.watcher = undefined;
    t.plan = undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        done();
      }, ms);
      this.wake = { timer, resolve: done };
    });
  }

  /** Report once per distinct problem until a pass succeeds. */
  private report(err: unknown): void {
    const cause = err instanceof Error ? err : new Error(String(err));
    const message = `policy source ${this.origin}: ${cause.message}`;
    if (message === this.lastReported) return;
    this.lastReported = message;
    this.onError(
      new DoorstepError('DS_E_POLICY_SOURCE', message, {
        hint: `the policy in force stays in force; doorstep retries every ${this.retryMs} ms and on every change`,
        cause,
      }),
    );
  }
}

/**
 * What to watch for `path`: a folder is watched itself; a file (or a path that does not exist
 * yet) through its parent, filtered by name. A file that is a symlink gets every event of its
 * parent, because symlink-swapping writers (Kubernetes ConfigMap volumes) rename a sibling
 * (`..data`), not the file. Returns undefined when neither the path nor its parent exists.
 */
async function planFor(path: string): Promise<WatchPlan | undefined> {
  const st = await stat(path).catch(ignoreMissing);
  if (st?.isDirectory()) return { dir: path, ino: st.ino, only: null };
  const parent = dirname(path);
  const pst = await stat(parent).catch(ignoreMissing);
  if (!pst?.isDirectory()) return undefined;
  const link = st ? (await lstat(path).catch(ignoreMissing))?.isSymbolicLink() === true : false;
  return { dir: parent, ino: pst.ino, only: link ? null : basename(path) };
}

function ignoreMissing(err: unknown): undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
  throw err;
}
