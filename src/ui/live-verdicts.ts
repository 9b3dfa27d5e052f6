// SPDX-License-Identifier: Apache-2.0
// Verdicts over time from the live audit trail: an audit sink that counts new sessions per
// interval (allowed, denied; a flood record's held-back denies count as denied) in a bounded
// ring, since the agent started. No history: the UI says so (views.ts, HistoryNote).
import type { AuditRecord, AuditSink } from '../audit/records.js';
import type { HistoryNote, VerdictBucket, VerdictsOverTime } from './views.js';

export class LiveVerdicts implements AuditSink, VerdictsOverTime {
  private readonly buckets = new Map<number, { allowed: number; denied: number }>();
  private readonly since = new Date().toISOString();

  constructor(
    readonly intervalMs = 10_000,
    /** Intervals kept (the oldest fall out): 360 × 10 s = the last hour. */
    readonly keep = 360,
  ) {}

  write(records: readonly AuditRecord[]): void {
    for (const r of records) {
      if (r.type === 'session' && r.event === 'new') this.add(r.time, r.verdict === 'allow' ? 1 : 0, r.verdict === 'deny' ? 1 : 0);
      else if (r.type === 'flood') this.add(r.to, 0, r.heldBack);
    }
  }

  private add(time: string, allowed: number, denied: number): void {
    const start = Math.floor(Date.parse(time) / this.intervalMs) * this.intervalMs;
    const b = this.buckets.get(start) ?? { allowed: 0, denied: 0 };
    b.allowed += allowed;
    b.denied += denied;
    this.buckets.set(start, b);
    if (this.buckets.size > this.keep) {
      const oldest = Math.min(...this.buckets.keys());
      this.buckets.delete(oldest);
    }
  }

  /** Every interval from the oldest kept to the one holding `now`, the quiet ones as zeros (a chart's time axis stays true). */
  read(now = Date.now()): { intervalMs: number; buckets: VerdictBucket[]; history: HistoryNote } {
    const buckets: VerdictBucket[] = [];
    if (this.buckets.size > 0) {
      const last = Math.max(Math.floor(now / this.intervalMs) * this.intervalMs, ...this.buckets.keys());
      const first = Math.max(Math.min(...this.buckets.keys()), last - (this.keep - 1) * this.intervalMs);
      for (let at = first; at <= last; at += this.intervalMs) buckets.push({ at: new Date(at).toISOString(), ...(this.buckets.get(at) ?? { allowed: 0, denied: 0 }) });
    }
    return { intervalMs: this.intervalMs, buckets, history: liveNote(this.since) };
  }

  async close(): Promise<void> {}
}

/** The note a live view carries: counted since `since`, no flow history configured. */
export function liveNote(since: string): HistoryNote {
  return { kind: 'live', since, message: `no flow history configured: counted live since the agent started (${since})` };
}
