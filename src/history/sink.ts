// SPDX-License-Identifier: Apache-2.0
// The audit sink that feeds the flow history: records are aggregated in memory (rows.ts) and
// flushed to the store every few seconds, retention applied once a minute. A history that cannot
// be opened, or that fails (disk full), degrades to "no history": the sink drops what it is given
// and counts it (the pipeline reports `lost` records with sink `history`), says so once through
// `onError`, and the agent keeps enforcing and writing its JSON trail. Its loss is exact in
// records: a record is counted as stored once the flush holding it succeeded.
import type { AuditRecord } from '../audit/records.js';
import type { DroppingSink } from '../audit/pipeline.js';
import { DoorstepError } from '../errors.js';
import { RowAggregator } from './rows.js';
import { HistoryStore, type HistoryLimits } from './store.js';

export interface HistorySinkOptions {
  /** The DuckDB file. */
  path: string;
  limits?: Partial<HistoryLimits>;
  /** How often pending rows go to the store (ms, default 5,000). */
  flushMs?: number;
  /** Rows held in memory before records are dropped (default 200,000). */
  maxPendingRows?: number;
  /** Called once when the history becomes unavailable (it stays so until the agent restarts). */
  onError?: (err: DoorstepError) => void;
}

const RETAIN_EVERY_MS = 60_000;

export class HistorySink implements DroppingSink {
  readonly name = 'history';
  dropped = 0;
  /** Records whose rows the store holds. */
  stored = 0;
  private readonly rows = new RowAggregator();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private lastRetain = 0;
  private failed: DoorstepError | undefined;

  private constructor(
    private store: HistoryStore | undefined,
    private readonly o: HistorySinkOptions,
  ) {
    this.timer = setInterval(() => void this.flush(), o.flushMs ?? 5_000);
    this.timer.unref();
  }

  /** Open the history; when it cannot be, the sink runs without one (`available` false) after telling `onError`. */
  static async open(o: HistorySinkOptions): Promise<HistorySink> {
    try {
      return new HistorySink(await HistoryStore.open(o.path, o.limits), o);
    } catch (err) {
      const sink = new HistorySink(undefined, o);
      sink.fail(err);
      return sink;
    }
  }

  /** Is there a history (opened, and not failed)? */
  get available(): boolean {
    return this.store !== undefined && this.failed === undefined;
  }

  /** The store for queries, or a DS_E_HISTORY error saying why there is none. */
  history(): HistoryStore {
    if (this.store && !this.failed) return this.store;
    throw this.failed ?? new DoorstepError('DS_E_HISTORY', 'this agent keeps no flow history', { hint: 'start it with --history FILE' });
  }

  /** Why there is no history (undefined while there is one). */
  get failure(): DoorstepError | undefined {
    return this.failed;
  }

  /** Records waiting for the next flush. */
  get buffered(): number {
    return this.rows.records;
  }

  write(records: readonly AuditRecord[]): void {
    const limit = this.o.maxPendingRows ?? 200_000;
    for (const r of records) {
      if (r.type === 'agent' || r.type === 'lost') continue;
      if (!this.available || this.rows.size >= limit) this.dropped++;
      else this.rows.add(r);
    }
  }

  /** Hand the pending rows to the store (one flush at a time). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.rows.records === 0 || !this.available) return;
      const records = this.rows.records;
      const rows = this.rows.take();
      try {
        await this.store!.append(rows);
        this.stored += records;
        if (Date.now() - this.lastRetain >= RETAIN_EVERY_MS) {
          this.lastRetain = Date.now();
          await this.store!.retain();
        }
      } catch (err) {
        this.dropped += records;
        this.fail(err);
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    this.store?.close();
    this.store = undefined;
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = err instanceof DoorstepError ? err : new DoorstepError('DS_E_HISTORY', String(err));
    const pending = this.rows.records; // nothing pending survives a failure
    this.rows.take();
    this.dropped += pending;
    this.o.onError?.(this.failed);
  }
}
