// SPDX-License-Identifier: Apache-2.0
// AuditPipeline: raw ring-buffer events → records → every sink, one write per delivered batch.
// Owns the set of sinks (live observers come and go) and the fan-out to them, the timers, and
// the order of things: a gap's `lost` record before the batch that revealed it, summaries and
// flood records on each tick, the last flood records before the engine closes. The work itself
// is in its parts: session-record-fast.ts (events → session records), lost-accounting.ts (lost
// records), summaries.ts, flood-records.ts. Touches no kernel object: the engine's counters and
// sessions come in as values and functions. docs/audit.md has the fields.
import type { RawEvent } from '../abi/records.js';
import type { FloodReading } from './flood-accounting.js';
import { FloodRecords } from './flood-records.js';
import { type KernelEventStats, LostEvents, SinkDrops } from './lost-accounting.js';
import type { AuditRecord, AuditSink, LostRecord, SummaryRecord } from './records.js';
import type { EnrichContext, SessionRecord } from './session-record.js';
import { Enricher } from './session-record-fast.js';
import { Summaries } from './summaries.js';
import type { SummarySource } from './summary-source.js';

export type { DroppingSink, KernelEventStats } from './lost-accounting.js';
export type { SessionEntry, SummarySource } from './summary-source.js';

export interface AuditPipelineOptions {
  context: EnrichContext;
  sinks: AuditSink[];
  /** Per-session summaries every this many ms (default 10,000); 0 = off (summarize() still works). Needs `summaries`. */
  summaryIntervalMs?: number;
  /**
   * The sessions the datapath marked as having traffic (EngineSummaryMarks; MemorySessionCache in
   * tests). The pipeline starts a summary epoch when it is created and at every summary.
   */
  summaries?: SummarySource;
  /**
   * The engine's counters (Engine.stats), read once now: the baseline of the lost accounting, so
   * an agent adopting a running engine reports exactly the events lost from now on. Without it the
   * first event on each CPU is the baseline, and the first checkKernelLost() call starts the
   * reconciliation with the kernel's counter.
   */
  kernelStats?: () => KernelEventStats;
  /**
   * The engine's per-rule counters and held-back denied sessions (Engine.ruleStats, .stats and
   * .takeRetiredRuleStats): read on every summary tick, and at close, for `flood` records. A
   * reading that settles later (the counters read off the event loop) is joined by a tick that
   * comes meanwhile, not repeated.
   */
  floods?: () => FloodReading | Promise<FloodReading>;
  /** Wall clock for record times and the monotonic → wall offset (tests). */
  now?: () => Date;
  /** A periodic task failed (reading the session cache for summaries); the pipeline goes on. */
  onError?: (err: unknown) => void;
}

export interface AuditPipelineStats {
  /** Events received from the ring buffer. */
  eventsRead: number;
  /** Events the kernel could not queue, as reported in `lost` records (cause ring-buffer). */
  eventsLost: number;
  /** Records sinks dropped, as reported in `lost` records (cause sink). */
  sinkDropped: number;
  /** Records handed to the sinks (each record counted once, whatever the number of sinks). */
  recordsWritten: number;
  /** Summary records written. */
  summaries: number;
  /** Flood records written. */
  floods: number;
  /** Lost records written (both causes). */
  lostRecords: number;
  /** Events that arrived after their sequence number had been accounted as lost (should stay 0). */
  lateEvents: number;
  /** Records of sessions marked in the current epoch, drained early and kept for the next summary. */
  trackedSessions: number;
  /** Summaries that scanned the caches because marks were lost (the ring was full). */
  summaryScans: number;
  /** Sessions looked up by summaries (one per marked session and epoch). */
  summaryLookups: number;
}

export class AuditPipeline {
  private readonly ctx: EnrichContext;
  private sinks: AuditSink[];
  private readonly now: () => Date;
  private readonly onError: ((err: unknown) => void) | undefined;
  private readonly enrich: Enricher;
  private readonly lost: LostEvents;
  private readonly drops: SinkDrops;
  private readonly summaries: Summaries | undefined;
  private readonly floodRecords: FloodRecords;
  private summaryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastDropCheck = 0;
  private summarizing: Promise<void> | undefined;
  private stopping = false;

  private readonly counts = { eventsRead: 0, eventsLost: 0, sinkDropped: 0, recordsWritten: 0, summaries: 0, floods: 0, lostRecords: 0, lateEvents: 0, summaryScans: 0, summaryLookups: 0 };
  private readonly floods: (() => FloodReading | Promise<FloodReading>) | undefined;
  /** A reading of the flood counters in flight (reportFloods). */
  private floodReading: Promise<void> | undefined;
  /** stopReading() in progress or done. */
  private readingStopped: Promise<void> | undefined;
  /** The last flood records are written: the engine is not read again. */
  private floodsRead = false;

  constructor(options: AuditPipelineOptions) {
    this.ctx = options.context;
    this.sinks = [...options.sinks];
    this.now = options.now ?? (() => new Date());
    this.floods = options.floods;
    this.onError = options.onError;
    const mono = process.hrtime.bigint();
    // wall-clock ms minus CLOCK_MONOTONIC ms
    this.enrich = new Enricher(options.context, this.now().getTime() - Number(mono) / 1e6);
    const enforcer = options.context.enforcer;
    this.lost = new LostEvents(enforcer, this.now, this.counts);
    this.drops = new SinkDrops(enforcer, this.now, this.counts);
    this.floodRecords = new FloodRecords(this.enrich, enforcer, this.now);
    if (options.kernelStats) this.lost.startReconciliation(options.kernelStats());
    this.reportFloods().catch((err: unknown) => this.onError?.(err)); // the baseline: an adopted engine's past floods are not ours
    if (options.summaries) {
      this.summaries = new Summaries(options.summaries, this.enrich, enforcer, this.now, mono, {
        write: (out) => this.writeSummaries(out),
        ready: () => this.sinksReady(),
        stopping: () => this.stopping,
      }, this.counts);
    }
    const interval = options.summaryIntervalMs ?? 10_000;
    if (interval > 0 && (this.summaries || this.floods)) {
      this.summaryTimer = setInterval(() => {
        this.summarize().catch((err: unknown) => this.onError?.(err));
        try {
          this.reportFloods().catch((err: unknown) => this.onError?.(err));
        } catch (err) {
          this.onError?.(err);
        }
      }, interval);
      this.summaryTimer.unref();
    }
  }

  // ---- sinks ----

  // ---- sinks ----

  addSink(sink: AuditSink): void {
    if (!this.sinks.includes(sink)) this.sinks = [...this.sinks, sink];
  }

  /** Detach a sink (it is not closed: whoever added it owns it). */
  removeSink(sink: AuditSink): void {
    this.sinks = this.sinks.filter((s) => s !== sink);
    this.drops.forget(sink);
  }

  private write(records: readonly AuditRecord[]): void {
    if (records.length === 0) return;
    this.counts.recordsWritten += records.length;
    for (const sink of this.sinks) {
      try {
        sink.write(records);
      } catch {
        // a failing sink must not stop the others; a sink that loses records counts them itself
      }
    }
  }

  /** Write one record (policy and agent records from the controller). */
  emit(record: AuditRecord): void {
    this.write([record]);
  }

  /**
   * Close one sink now and take it out (the agent's stop closes the NATS sinks first): what it
   * dropped, at its close included, is reported to the sinks that stay, as a `lost` record.
   */
  async closeSink(sink: AuditSink): Promise<void> {
    if (!this.sinks.includes(sink)) return;
    this.sinks = this.sinks.filter((s) => s !== sink);
    await sink.close();
    this.write(this.drops.check([sink]));
    this.drops.forget(sink);
  }

  private reportSinkDrops(): void {
    this.write(this.drops.check(this.sinks));
  }

  // ---- events ----

  /** Enrich one delivered batch into records and write them to every sink in one batch. */
  handleEvents(events: readonly RawEvent[]): void {
    const n = events.length;
    if (n === 0) return;
    this.counts.eventsRead += n;
    this.enrich.newBatch();
    const records: AuditRecord[] = new Array(n);
    let extra: LostRecord[] | undefined;
    for (let i = 0; i < n; i++) {
      const e = events[i]!;
      const gap = this.lost.sequence(e.cpu, e.seq);
      if (gap !== undefined) (extra ??= []).push(gap);
      records[i] = this.enrich.session(e);
    }
    const annotate = this.ctx.annotate;
    if (annotate) for (const r of records) annotate(r as SessionRecord);
    // a gap's lost record comes before the batch that revealed it
    this.write(extra ? [...extra, ...records] : records);
    const t = performance.now();
    if (t - this.lastDropCheck >= 1000) {
      this.lastDropCheck = t;
      this.reportSinkDrops();
    }
  }

  /**
   * Reconcile with the kernel's counters (Engine.stats()): report the losses that no later event
   * revealed (lost-accounting.ts says when they are proven lost), and what sinks dropped. Call it
   * periodically (the agent: every second) and before close.
   */
  checkKernelLost(stats: KernelEventStats): void {
    this.reportSinkDrops();
    this.write(this.lost.check(stats));
  }

  // ---- summaries and floods ----

  /**
   * One `summary` record per session with traffic since the previous summary: its deltas and
   * totals. The datapath marks a session on its first packet in a summary epoch and queues its key
   * (ds_dirty); this starts a new epoch, then looks up the sessions marked in the one that ended,
   * a slice at a time (yielding to the event loop between slices), so a summary costs in
   * proportion to the sessions with traffic, not to the cache. A session's first summary counts
   * from its first packet; a session with one packet is never marked, so needs none (its session
   * record said it all). Sessions that were in the cache before this pipeline started and were
   * never summarized count from their first epoch after that. When marks were lost (the ring was
   * full), the epoch's summaries come from one walk of the caches instead, in slices. Resolves
   * when the summary is written; a summary in progress is joined, not repeated.
   */
  summarize(): Promise<void> {
    if (!this.summaries || this.closed || this.stopping) return Promise.resolve();
    this.summarizing ??= this.summaries.run().then((done) => {
      if (done) this.reportSinkDrops();
    }).finally(() => {
      this.summarizing = undefined;
    });
    return this.summarizing;
  }

  private writeSummaries(out: SummaryRecord[]): void {
    if (out.length === 0) return;
    this.counts.summaries += out.length;
    this.write(out);
  }

  /** Wait, between slices of a summary, until every sink that says so has room again. */
  private async sinksReady(): Promise<void> {
    for (const sink of this.sinks) {
      const wait = sink.ready?.();
      if (wait) await wait.catch(() => undefined);
    }
  }

  /**
   * One `flood` record per rule whose denied sessions the datapath's event budget held back since
   * the previous reading (flood-records.ts). Resolves when they are written (at once, for a
   * reading that is not a promise); a reading in flight is joined, not repeated.
   */
  reportFloods(): Promise<void> {
    if (!this.floods || this.closed || this.floodsRead) return Promise.resolve();
    if (this.floodReading) return this.floodReading; // joined, not repeated
    const reading = this.floods();
    if (!(reading instanceof Promise)) {
      this.writeFloods(reading);
      return Promise.resolve();
    }
    const read = reading.then((r) => this.writeFloods(r));
    this.floodReading = read.finally(() => {
      this.floodReading = undefined;
    });
    return this.floodReading;
  }

  private writeFloods(reading: FloodReading): void {
    const out = this.floodRecords.records(reading);
    this.counts.floods += out.length;
    this.write(out);
  }

  // ---- life ----

  stats(): AuditPipelineStats {
    return { ...this.counts, trackedSessions: this.summaries?.tracked ?? 0 };
  }

  /**
   * Stop reading the engine: the timers stop, a summary in progress ends at its next slice, and
   * the last flood records are written (what the budget held back since the last tick). Records
   * emitted after this still reach the sinks; call it before the engine closes. Idempotent.
   */
  stopReading(): Promise<void> {
    this.readingStopped ??= (async () => {
      if (this.summaryTimer) clearInterval(this.summaryTimer);
      this.summaryTimer = undefined;
      this.stopping = true;
      await this.summarizing?.catch(() => undefined);
      await this.floodReading?.catch(() => undefined); // then one more: what was held back until now
      try {
        await this.reportFloods();
      } catch (err) {
        this.onError?.(err);
      }
      this.floodsRead = true;
    })();
    return this.readingStopped;
  }

  /** Stop reading the engine (if not yet), report what sinks dropped, and close every sink. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopReading();
    if (this.closed) return;
    this.reportSinkDrops();
    this.closed = true;
    const sinks = this.sinks;
    this.sinks = [];
    await Promise.allSettled(sinks.map((s) => s.close()));
  }
}

