// SPDX-License-Identifier: Apache-2.0
// Lost records, with exact counts: ring-buffer losses from the gaps in each CPU's event sequence
// numbers, reconciled with the kernel's lost counter for the losses no later event reveals
// (LostEvents), and what sinks dropped (SinkDrops). Makes `lost` records; the pipeline writes
// them. Pure: the engine's counters come in as values. docs/audit.md ("Lost events").
import type { AuditSink, LostRecord } from './records.js';

/** What the pipeline reads from the engine's counters (Engine.stats() fits). */
export interface KernelEventStats {
  /** Last event sequence number used, per CPU (index = CPU). */
  eventSeq: readonly number[];
  counters: { EVENTS_LOST: number };
}

/** A sink that drops records when it cannot keep up and counts them (monotonically). */
export interface DroppingSink extends AuditSink {
  readonly dropped: number;
}

/** The pipeline's counts these add to. */
export interface LostCounts {
  eventsLost: number;
  sinkDropped: number;
  lostRecords: number;
  lateEvents: number;
}

/** Ring-buffer losses, per CPU. */
export class LostEvents {
  /** Highest sequence number accounted for, per CPU: read, or reported lost (-1: not known yet). */
  private lastSeq = new Float64Array(0);
  /** The kernel's eventSeq when the reconciliation started; -1 until then. */
  private kernelBase = new Float64Array(0);
  private kernelLostBase = -1;
  /** Ring-buffer losses reported with a sequence number above kernelBase (what the kernel's delta counts). */
  private lostAboveBase = 0;

  constructor(
    private readonly enforcer: string,
    private readonly now: () => Date,
    private readonly counts: LostCounts,
  ) {}

  /** Account one sequence number; a lost record when it reveals a gap. */
  sequence(cpu: number, seq: number): LostRecord | undefined {
    if (cpu >= this.lastSeq.length) this.growCpus(cpu + 1);
    const last = this.lastSeq[cpu]!;
    if (last < 0) {
      // first event on this CPU and no kernel baseline: it is the baseline
      this.lastSeq[cpu] = seq;
      return undefined;
    }
    if (seq === last + 1) {
      this.lastSeq[cpu] = seq;
      return undefined;
    }
    if (seq <= last) {
      // queued before the baseline (no gap to see), or after its number was reported lost
      if (seq > this.kernelBase[cpu]! && this.kernelBase[cpu]! >= 0) this.counts.lateEvents++;
      return undefined;
    }
    this.lastSeq[cpu] = seq;
    return this.lostRange(cpu, last + 1, seq - 1);
  }

  private lostRange(cpu: number, first: number, last: number): LostRecord {
    const count = last - first + 1;
    this.counts.eventsLost += count;
    this.counts.lostRecords++;
    const base = this.kernelBase[cpu]!;
    if (base >= 0) this.lostAboveBase += Math.max(0, last - Math.max(first - 1, base));
    return {
      time: this.now().toISOString(),
      type: 'lost',
      enforcer: this.enforcer,
      interface: '*',
      cause: 'ring-buffer',
      count,
      cpu,
      firstSeq: first,
      lastSeq: last,
    };
  }

  private growCpus(n: number): void {
    const grow = (a: Float64Array, fill: number) => {
      const b = new Float64Array(n).fill(fill);
      b.set(a);
      return b;
    };
    // once the reconciliation runs, a CPU that was not in its baseline counts from number 1
    const start = this.kernelLostBase >= 0 ? 0 : -1;
    this.lastSeq = grow(this.lastSeq, start);
    this.kernelBase = grow(this.kernelBase, start);
  }

  /** Start (or, when the engine's counters went back because its maps were recreated, restart)
   *  the reconciliation with the kernel's counters from their current values. */
  startReconciliation(stats: KernelEventStats): void {
    if (stats.eventSeq.length > this.lastSeq.length) this.growCpus(stats.eventSeq.length);
    for (let cpu = 0; cpu < stats.eventSeq.length; cpu++) {
      const seq = stats.eventSeq[cpu] ?? 0;
      this.kernelBase[cpu] = seq;
      // a CPU with no event yet starts here, and so does one whose numbers went back (a new
      // engine); one with events keeps its own baseline
      if (this.lastSeq[cpu]! < 0 || this.lastSeq[cpu]! > seq) this.lastSeq[cpu] = seq;
    }
    this.kernelLostBase = stats.counters.EVENTS_LOST;
    this.lostAboveBase = 0;
  }

  /**
   * Reconcile with the kernel's counters (Engine.stats()): report the losses that no later event
   * revealed, i.e. sequence numbers after the last event read on a CPU, up to the CPU's last
   * number used. Those numbers are lost or still queued; they are reported only when the
   * kernel's lost counter proves every one of them lost (unreported losses = the candidates), so
   * a record is never reported lost and then delivered. The lost records, to be written.
   */
  check(stats: KernelEventStats): LostRecord[] {
    const wentBack = stats.counters.EVENTS_LOST < this.kernelLostBase || stats.eventSeq.some((seq, cpu) => seq < this.kernelBase[cpu]!);
    if (this.kernelLostBase < 0 || wentBack) {
      this.startReconciliation(stats);
      return [];
    }
    if (stats.eventSeq.length > this.lastSeq.length) this.growCpus(stats.eventSeq.length);
    const unreported = stats.counters.EVENTS_LOST - this.kernelLostBase - this.lostAboveBase;
    if (unreported <= 0) return [];
    let candidates = 0;
    for (let cpu = 0; cpu < stats.eventSeq.length; cpu++) {
      const from = Math.max(this.lastSeq[cpu]!, this.kernelBase[cpu]!);
      const to = stats.eventSeq[cpu] ?? 0;
      if (to > from) candidates += to - from;
    }
    if (candidates !== unreported) return []; // some are still queued: the next check will tell
    const lost: LostRecord[] = [];
    for (let cpu = 0; cpu < stats.eventSeq.length; cpu++) {
      const from = Math.max(this.lastSeq[cpu]!, this.kernelBase[cpu]!);
      const to = stats.eventSeq[cpu] ?? 0;
      if (to <= from) continue;
      this.lastSeq[cpu] = to;
      lost.push(this.lostRange(cpu, from + 1, to));
    }
    return lost;
  }
}

/** What each sink dropped, reported once: increases of its `dropped` count. */
export class SinkDrops {
  private readonly reported = new Map<AuditSink, number>();

  constructor(
    private readonly enforcer: string,
    private readonly now: () => Date,
    private readonly counts: LostCounts,
  ) {}

  /** One `lost` record (cause sink) per sink whose count went up since the last call. */
  check(sinks: readonly AuditSink[]): LostRecord[] {
    const lost: LostRecord[] = [];
    for (const sink of sinks) {
      const dropped = (sink as Partial<DroppingSink>).dropped;
      if (typeof dropped !== 'number') continue;
      const before = this.reported.get(sink) ?? 0;
      if (dropped <= before) continue;
      this.reported.set(sink, dropped);
      this.counts.sinkDropped += dropped - before;
      this.counts.lostRecords++;
      lost.push({ time: this.now().toISOString(), type: 'lost', enforcer: this.enforcer, interface: '*', cause: 'sink', ...(sink.name && { sink: sink.name }), count: dropped - before });
    }
    return lost;
  }

  forget(sink: AuditSink): void {
    this.reported.delete(sink);
  }
}
