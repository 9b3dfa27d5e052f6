// SPDX-License-Identifier: Apache-2.0
// AuditPipeline: raw ring-buffer events → session records → every sink, one write per delivered
// batch. Owns the exact accounting of lost events (per-CPU sequence gaps, reconciled with the
// kernel's counters for losses no later event reveals), the periodic per-session summaries read
// from the session cache, the set of sinks (live observers come and go), and the enrichment
// caches that keep the per-event cost well under a microsecond. Touches no kernel object: the
// engine's counters and sessions come in as values and functions. docs/audit.md has the fields.
import { Action, EventKind, Reason } from '../abi/generated.js';
import { BatchEvent, type RawEvent, reasonLabel, type SessionKey, type SessionValue } from '../abi/records.js';
import { formatAddress } from '../policy/ir/cidr.js';
import type { PolicyIr } from '../policy/ir/ir.js';
import { protocolLabel } from '../policy/ir/protocols.js';
import { FloodAccounting, type FloodReading } from './flood-accounting.js';
import { estimateDistinct, topSources } from './flood-sources.js';
import type { AuditRecord, AuditSink, FloodRecord, LostRecord, SummaryRecord } from './records.js';
import { type DirtyRecord, epochTraffic, type EpochTraffic, type SummarySource } from './summary-source.js';
import { type EnrichContext, ruleName, type SessionRecord, setFlowDetails } from './session-record.js';

/** What the pipeline reads from the engine's counters (Engine.stats() fits). */
export interface KernelEventStats {
  /** Last event sequence number used, per CPU (index = CPU). */
  eventSeq: readonly number[];
  counters: { EVENTS_LOST: number };
}

export type { SessionEntry, SummarySource } from './summary-source.js';

/** A sink that drops records when it cannot keep up and counts them (monotonically). */
export interface DroppingSink extends AuditSink {
  readonly dropped: number;
}

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
   * .takeRetiredRuleStats): read on every summary tick, and at close, for `flood` records.
   */
  floods?: () => FloodReading;
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

/**
 * The same string, flat and internalized: V8 keeps concatenations as trees ("cons strings") that
 * every later character read has to walk; a property key is always a flat, hashed string. For
 * names that end up in every record (rules, policies, interfaces), read character by character
 * by the JSON-lines encoder.
 */
const intern = (s: string): string => Object.keys({ [s]: 0 })[0] ?? s;
const REASON_NAMES = Array.from({ length: Reason.COUNT }, (_, r) => intern(reasonLabel(r)));
const reasonName = (r: number): string => REASON_NAMES[r] ?? String(r);
const PROTOCOLS = Array.from({ length: 256 }, (_, p) => intern(protocolLabel(p)));
const OCTET_CODES = Array.from({ length: 256 }, (_, i) => Array.from(String(i), (c) => c.charCodeAt(0)));
const fromCodes = String.fromCharCode;
const codes = new Uint8Array(16);

/** Dotted-quad text as one flat string (one allocation; a concatenation would make a tree of five). */
function dottedQuad(a: number, b: number, c: number, d: number): string {
  let n = 0;
  for (const v of [a, b, c, d]) {
    if (n > 0) codes[n++] = 0x2e;
    const digits = OCTET_CODES[v]!;
    for (let i = 0; i < digits.length; i++) codes[n++] = digits[i]!;
  }
  const k = codes;
  switch (n) {
    case 7: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!);
    case 8: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!);
    case 9: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!);
    case 10: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!);
    case 11: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!);
    case 12: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!);
    case 13: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!);
    case 14: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!, k[13]!);
    default: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!, k[13]!, k[14]!);
  }
}

/** Session-start times from the coarse clock may trail the precise one by a tick. */
const COARSE_CLOCK_SLACK_NS = 10_000_000n;
const MAX_GENERATIONS = 16;

/** Names for one policy generation, built lazily and kept while its IR is in the context. */
class GenerationNames {
  private readonly rules: (string | undefined)[] = [];
  private readonly policies: (string | undefined)[] = [];
  readonly version: string | undefined;
  private readonly joined: string | undefined;

  constructor(readonly ir: PolicyIr | undefined) {
    this.version = ir ? intern(ir.version) : undefined;
    this.joined = ir ? intern(ir.policies.join('+')) : undefined;
  }

  rule(index: number): string {
    return (this.rules[index] ??= intern(ruleName(this.ir, index)));
  }

  policy(index: number): string | undefined {
    if (this.policies[index] === undefined) {
      const p = this.ir?.rules[index - 1]?.policy;
      this.policies[index] = p === undefined ? this.joined : intern(p);
    }
    return this.policies[index];
  }
}

/** Direct-mapped caches for text that repeats: addresses and millisecond timestamps. */
class TextCaches {
  private readonly v4Keys = new Int32Array(4096);
  private readonly v4Vals: (string | undefined)[] = new Array(4096).fill(undefined);
  private readonly v6Keys = new Int32Array(1024 * 4);
  private readonly v6Vals: (string | undefined)[] = new Array(1024).fill(undefined);
  private readonly msKeys = new Float64Array(64).fill(-1);
  private readonly msVals: string[] = new Array(64).fill('');

  /** The text of the 16-byte address (IPv4 mapped) at `at` in `a`. */
  address(family: number, a: Uint8Array, at = 0): string {
    if (family === 4) {
      const v = (a[at + 12]! << 24) | (a[at + 13]! << 16) | (a[at + 14]! << 8) | a[at + 15]!;
      const i = Math.imul(v, 0x9e3779b1) >>> 20;
      const hit = this.v4Vals[i];
      if (hit !== undefined && this.v4Keys[i] === v) return hit;
      const text = dottedQuad(a[at + 12]!, a[at + 13]!, a[at + 14]!, a[at + 15]!);
      this.v4Keys[i] = v;
      this.v4Vals[i] = text;
      return text;
    }
    const w0 = (a[at]! << 24) | (a[at + 1]! << 16) | (a[at + 2]! << 8) | a[at + 3]!;
    const w1 = (a[at + 4]! << 24) | (a[at + 5]! << 16) | (a[at + 6]! << 8) | a[at + 7]!;
    const w2 = (a[at + 8]! << 24) | (a[at + 9]! << 16) | (a[at + 10]! << 8) | a[at + 11]!;
    const w3 = (a[at + 12]! << 24) | (a[at + 13]! << 16) | (a[at + 14]! << 8) | a[at + 15]!;
    const i = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b) ^ Math.imul(w2, 0xc2b2ae35) ^ Math.imul(w3, 0x27d4eb2f), 0x9e3779b1) >>> 22;
    const k = this.v6Keys;
    const hit = this.v6Vals[i];
    if (hit !== undefined && k[i * 4] === w0 && k[i * 4 + 1] === w1 && k[i * 4 + 2] === w2 && k[i * 4 + 3] === w3) return hit;
    const text = formatAddress(6, at === 0 && a.length === 16 ? a : a.subarray(at, at + 16));
    k[i * 4] = w0;
    k[i * 4 + 1] = w1;
    k[i * 4 + 2] = w2;
    k[i * 4 + 3] = w3;
    this.v6Vals[i] = text;
    return text;
  }

  /** RFC 3339 UTC with milliseconds, for a wall-clock time in ms. */
  time(ms: number): string {
    const i = ms & 63;
    if (this.msKeys[i] === ms) return this.msVals[i]!;
    const text = new Date(ms).toISOString();
    this.msKeys[i] = ms;
    this.msVals[i] = text;
    return text;
  }
}

/** Marked sessions drained, and looked up, per slice of a summary: a few ms of work. */
const SUMMARY_SLICE = 1024;
/** Records drained per summary at most (a ring's worth): the drain ends even under a storm of marks. */
const SUMMARY_DRAIN_MAX = 1 << 20;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class AuditPipeline {
  private readonly ctx: EnrichContext;
  private readonly enforcer: string;
  private sinks: AuditSink[];
  private readonly now: () => Date;
  private readonly summaries: SummarySource | undefined;
  private readonly onError: ((err: unknown) => void) | undefined;
  private readonly text = new TextCaches();
  /** Wall-clock ms minus CLOCK_MONOTONIC ms. */
  private readonly wallOffsetMs: number;
  private readonly startNs: bigint;
  private summaryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  // names, by generation; memo of the last lookups within one batch
  private readonly generations = new Map<number, GenerationNames>();
  private memoGeneration = -1;
  private memoNames: GenerationNames | undefined;
  private memoIfindex = -1;
  private memoIfname = '';

  // lost accounting, per CPU (index = CPU; -1 = not known yet)
  /** Highest sequence number accounted for: read, or reported lost. */
  private lastSeq = new Float64Array(0);
  /** The kernel's eventSeq when the reconciliation started; -1 until then. */
  private kernelBase = new Float64Array(0);
  private kernelLostBase = -1;
  /** Ring-buffer losses reported with a sequence number above kernelBase (what the kernel's delta counts). */
  private lostAboveBase = 0;

  // sinks that drop: what has been reported so far
  private readonly reportedDrops = new Map<AuditSink, number>();
  private lastDropCheck = 0;

  // summaries: no per-session state survives a summary but the records of sessions marked in the
  // current epoch that a drain took early (`carry`)
  /** The first epoch of this pipeline: marks of earlier epochs belong to an earlier agent. */
  private firstEpoch = 0;
  private marksLost = 0;
  private carry: DirtyRecord[] = [];
  private summarizing: Promise<void> | undefined;
  private stopping = false;

  private readonly counts = { eventsRead: 0, eventsLost: 0, sinkDropped: 0, recordsWritten: 0, summaries: 0, floods: 0, lostRecords: 0, lateEvents: 0, summaryScans: 0, summaryLookups: 0 };
  private readonly floods: (() => FloodReading) | undefined;
  /** stopReading() in progress or done. */
  private readingStopped: Promise<void> | undefined;
  /** The last flood records are written: the engine is not read again. */
  private floodsRead = false;
  private readonly floodAccounting = new FloodAccounting();
  private floodsReadAt = '';

  constructor(options: AuditPipelineOptions) {
    this.ctx = options.context;
    this.enforcer = intern(options.context.enforcer);
    this.sinks = [...options.sinks];
    this.now = options.now ?? (() => new Date());
    this.summaries = options.summaries;
    this.floods = options.floods;
    this.onError = options.onError;
    const mono = process.hrtime.bigint();
    this.startNs = mono;
    this.wallOffsetMs = this.now().getTime() - Number(mono) / 1e6;
    if (options.kernelStats) this.startReconciliation(options.kernelStats());
    this.reportFloods(); // the baseline: an adopted engine's past floods are not ours
    if (this.summaries) {
      // our first epoch: what was marked before belongs to an earlier agent
      this.marksLost = this.summaries.lost();
      this.firstEpoch = this.summaries.advance().current;
    }
    const interval = options.summaryIntervalMs ?? 10_000;
    if (interval > 0 && (this.summaries || this.floods)) {
      this.summaryTimer = setInterval(() => {
        this.summarize().catch((err: unknown) => this.onError?.(err));
        try {
          this.reportFloods();
        } catch (err) {
          this.onError?.(err);
        }
      }, interval);
      this.summaryTimer.unref();
    }
  }

  // ---- sinks ----

  addSink(sink: AuditSink): void {
    if (!this.sinks.includes(sink)) this.sinks = [...this.sinks, sink];
  }

  /** Detach a sink (it is not closed: whoever added it owns it). */
  removeSink(sink: AuditSink): void {
    this.sinks = this.sinks.filter((s) => s !== sink);
    this.reportedDrops.delete(sink);
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

  // ---- events ----

  /** Enrich one delivered batch into records and write them to every sink in one batch. */
  handleEvents(events: readonly RawEvent[]): void {
    const n = events.length;
    if (n === 0) return;
    this.counts.eventsRead += n;
    this.memoGeneration = -1;
    this.memoIfindex = -1;
    const records: AuditRecord[] = new Array(n);
    let extra: AuditRecord[] | undefined;
    for (let i = 0; i < n; i++) {
      const e = events[i]!;
      const gap = this.sequence(e.cpu, e.seq);
      if (gap !== undefined) (extra ??= []).push(gap);
      records[i] = this.sessionRecord(e);
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

  /** Account one sequence number; a lost record when it reveals a gap. */
  private sequence(cpu: number, seq: number): LostRecord | undefined {
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
      enforcer: this.ctx.enforcer,
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
  private startReconciliation(stats: KernelEventStats): void {
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
   * a record is never reported lost and then delivered. Also reports what sinks dropped.
   * Call it periodically (the agent: every second) and before close.
   */
  checkKernelLost(stats: KernelEventStats): void {
    this.reportSinkDrops();
    const wentBack = stats.counters.EVENTS_LOST < this.kernelLostBase || stats.eventSeq.some((seq, cpu) => seq < this.kernelBase[cpu]!);
    if (this.kernelLostBase < 0 || wentBack) {
      this.startReconciliation(stats);
      return;
    }
    if (stats.eventSeq.length > this.lastSeq.length) this.growCpus(stats.eventSeq.length);
    const unreported = stats.counters.EVENTS_LOST - this.kernelLostBase - this.lostAboveBase;
    if (unreported <= 0) return;
    let candidates = 0;
    for (let cpu = 0; cpu < stats.eventSeq.length; cpu++) {
      const from = Math.max(this.lastSeq[cpu]!, this.kernelBase[cpu]!);
      const to = stats.eventSeq[cpu] ?? 0;
      if (to > from) candidates += to - from;
    }
    if (candidates !== unreported) return; // some are still queued: the next check will tell
    const lost: LostRecord[] = [];
    for (let cpu = 0; cpu < stats.eventSeq.length; cpu++) {
      const from = Math.max(this.lastSeq[cpu]!, this.kernelBase[cpu]!);
      const to = stats.eventSeq[cpu] ?? 0;
      if (to <= from) continue;
      this.lastSeq[cpu] = to;
      lost.push(this.lostRange(cpu, from + 1, to));
    }
    this.write(lost);
  }

  /**
   * Close one sink now and take it out (the agent's stop closes the NATS sinks first): what it
   * dropped, at its close included, is reported to the sinks that stay, as a `lost` record.
   */
  async closeSink(sink: AuditSink): Promise<void> {
    if (!this.sinks.includes(sink)) return;
    this.sinks = this.sinks.filter((s) => s !== sink);
    await sink.close();
    this.reportSinkDrops([sink]);
    this.reportedDrops.delete(sink);
  }

  private reportSinkDrops(sinks: readonly AuditSink[] = this.sinks): void {
    const lost: LostRecord[] = [];
    for (const sink of sinks) {
      const dropped = (sink as Partial<DroppingSink>).dropped;
      if (typeof dropped !== 'number') continue;
      const before = this.reportedDrops.get(sink) ?? 0;
      if (dropped <= before) continue;
      this.reportedDrops.set(sink, dropped);
      this.counts.sinkDropped += dropped - before;
      this.counts.lostRecords++;
      lost.push({ time: this.now().toISOString(), type: 'lost', enforcer: this.ctx.enforcer, interface: '*', cause: 'sink', ...(sink.name && { sink: sink.name }), count: dropped - before });
    }
    this.write(lost);
  }

  // ---- enrichment ----

  private names(generation: number): GenerationNames {
    if (generation === this.memoGeneration) return this.memoNames!;
    const ir = this.ctx.policies.get(generation);
    let names = this.generations.get(generation);
    if (!names || names.ir !== ir) {
      if (this.generations.size >= MAX_GENERATIONS) this.generations.clear();
      names = new GenerationNames(ir);
      this.generations.set(generation, names);
    }
    this.memoGeneration = generation;
    this.memoNames = names;
    return names;
  }

  private ifname(ifindex: number): string {
    if (ifindex === this.memoIfindex) return this.memoIfname;
    this.memoIfindex = ifindex;
    this.memoIfname = intern(this.ctx.interfaces.get(ifindex) ?? `if${ifindex}`);
    return this.memoIfname;
  }

  /** Wall-clock RFC 3339 text of a CLOCK_MONOTONIC time. */
  private wallTime(ns: bigint): string {
    return this.text.time(Math.floor(Number(ns) / 1e6 + this.wallOffsetMs));
  }

  /** The same record as session-record.ts's sessionRecord(), built from caches; fields in the documented order. */
  private sessionRecord(e: RawEvent): SessionRecord {
    const names = this.names(e.generation);
    const reason = reasonName(e.reason);
    let rule = reason;
    let policy: string | undefined;
    if (e.reason === Reason.POLICY && names.ir) {
      rule = names.rule(e.rule);
      policy = names.policy(e.rule);
    }
    const proto = e.proto;
    const ported = proto === 6 || proto === 17 || proto === 132;
    let time: string;
    let src: string;
    let dst: string;
    if (e instanceof BatchEvent) {
      // read in place: no views, no bigint
      const bytes = e.bytes;
      time = this.text.time(Math.floor(e.monoNs / 1e6 + this.wallOffsetMs));
      src = this.text.address(e.family, bytes, e.srcOffset);
      dst = this.text.address(e.family, bytes, e.dstOffset);
    } else {
      time = this.wallTime(e.timeNs);
      src = this.text.address(e.family, e.src);
      dst = this.text.address(e.family, e.dst);
    }
    const event = e.kind === EventKind.CHANGED ? 'changed' : 'new';
    const verdict = e.action === Action.ALLOW ? 'allow' : 'deny';
    const version = names.version;
    if (ported && e.vlanOuter === 0 && policy !== undefined && version !== undefined) {
      // the common shape, in one literal: one hidden class for every such record
      return {
        time,
        type: 'session',
        event,
        enforcer: this.enforcer,
        interface: this.ifname(e.ifindex),
        verdict,
        reason,
        protocol: PROTOCOLS[proto]!,
        src,
        dst,
        sport: e.sport,
        dport: e.dport,
        rule,
        policy,
        policyVersion: version,
        generation: e.generation,
        cpu: e.cpu,
        seq: e.seq,
      };
    }
    const r: SessionRecord = {
      time,
      type: 'session',
      event,
      enforcer: this.enforcer,
      interface: this.ifname(e.ifindex),
      verdict,
      reason,
      protocol: PROTOCOLS[proto]!,
      src,
      dst,
      rule,
      generation: e.generation,
      cpu: e.cpu,
      seq: e.seq,
    };
    setFlowDetails(r, e);
    if (policy !== undefined) r.policy = policy;
    if (version !== undefined) r.policyVersion = version;
    return r;
  }

  // ---- summaries ----

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
    this.summarizing ??= this.runSummary(this.summaries).finally(() => {
      this.summarizing = undefined;
    });
    return this.summarizing;
  }

  private async runSummary(src: SummarySource): Promise<void> {
    const lost = src.lost();
    const overflowed = lost !== this.marksLost;
    this.marksLost = lost;
    const { finished, current } = src.advance();
    const time = this.now().toISOString();
    const done = new Map<number, Set<string>>(); // per epoch: the sessions summarized
    const carried = this.carry;
    this.carry = [];
    let drained = 0;
    let batch = carried;
    for (;;) {
      const todo: DirtyRecord[] = [];
      for (const r of batch) {
        if (r.epoch === current) {
          this.carry.push(r); // marked after this summary began: the next one's
          continue;
        }
        // marks from before this pipeline, and (after a loss) the finished epoch, which the walk below covers
        if (r.epoch < this.firstEpoch || r.epoch > current || (overflowed && r.epoch === finished)) continue;
        let seen = done.get(r.epoch);
        if (!seen) done.set(r.epoch, (seen = new Set()));
        if (seen.has(r.id)) continue; // a session evicted and marked again in the same epoch
        seen.add(r.id);
        todo.push(r);
      }
      if (todo.length > 0) {
        this.counts.summaryLookups += todo.length;
        const values = src.lookup(todo);
        const out: SummaryRecord[] = [];
        for (let i = 0; i < todo.length; i++) {
          const v = values[i];
          if (v) this.summaryOf(out, time, todo[i]!.key, v, todo[i]!.epoch);
        }
        if (this.stopping) return;
        this.writeSummaries(out);
        await this.sinksReady();
      }
      if (drained >= SUMMARY_DRAIN_MAX) break;
      batch = src.drain(SUMMARY_SLICE);
      drained += batch.length;
      if (batch.length === 0) break;
      await yieldToEventLoop();
    }
    if (overflowed && finished >= this.firstEpoch) {
      this.counts.summaryScans++;
      for await (const slice of src.scan()) {
        if (this.stopping) return;
        const out: SummaryRecord[] = [];
        for (const { key, value } of slice) this.summaryOf(out, time, key, value, finished);
        this.writeSummaries(out);
        await this.sinksReady();
      }
    }
    this.reportSinkDrops();
  }

  /** Push the summary of session (key, v) for `epoch`, if it had traffic there that needs one. */
  private summaryOf(out: SummaryRecord[], time: string, key: SessionKey, v: SessionValue, epoch: number): void {
    const t = epochTraffic(v, epoch);
    if (!t || t.packets <= 0 || t.totalPackets <= 1) return;
    // never summarized, and older than this pipeline: counts from its next epoch on
    if (t.fromFirstPacket && v.firstSeenNs + COARSE_CLOCK_SLACK_NS < this.startNs) return;
    out.push(this.summaryRecord(time, key, v, t));
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

  private summaryRecord(time: string, key: SessionKey, value: SessionValue, t: EpochTraffic): SummaryRecord {
    const names = this.names(value.generation);
    let rule = reasonName(value.reason);
    let policy: string | undefined;
    if (value.reason === Reason.POLICY && names.ir) {
      rule = names.rule(value.rule);
      policy = names.policy(value.rule);
    }
    const r: SummaryRecord = {
      time,
      type: 'summary',
      enforcer: this.ctx.enforcer,
      interface: this.ifname(key.ifindex),
      verdict: value.action === Action.ALLOW ? 'allow' : 'deny',
      protocol: PROTOCOLS[key.proto]!,
      src: this.text.address(key.family, key.src),
      dst: this.text.address(key.family, key.dst),
      rule,
      generation: value.generation,
      packets: t.packets,
      bytes: t.bytes,
      totalPackets: t.totalPackets,
      totalBytes: t.totalBytes,
      firstSeen: this.wallTime(value.firstSeenNs),
      lastSeen: this.wallTime(value.lastSeenNs),
    };
    setFlowDetails(r, key);
    if (policy !== undefined) r.policy = policy;
    if (names.version !== undefined) r.policyVersion = names.version;
    return r;
  }

  /**
   * One `flood` record per rule whose denied sessions the datapath's event budget held back since
   * the previous reading (and one for denies no counted rule decided), with the rule's packets and
   * bytes over the interval: with the rule's session records, an exact count of its denied sessions.
   */
  reportFloods(): void {
    if (!this.floods || this.closed || this.floodsRead) return;
    const reading = this.floods();
    const to = this.now().toISOString();
    const from = this.floodsReadAt || to;
    this.floodsReadAt = to;
    const out: FloodRecord[] = [];
    for (const d of this.floodAccounting.update(reading)) {
      const names = this.names(d.generation);
      const r: FloodRecord = {
        time: to,
        type: 'flood',
        enforcer: this.ctx.enforcer,
        interface: '*',
        rule: d.rule === null ? 'no-rule' : names.rule(d.rule),
        generation: d.generation,
        from,
        to,
        heldBack: d.held,
        packets: d.packets,
        bytes: d.bytes,
      };
      if (d.sketch) r.distinctSources = Math.min(d.held, Math.round(estimateDistinct(d.sketch)));
      const sources = topSources(reading.samples ?? [], d.generation, d.rule, d.held);
      if (sources.sampled > 0) {
        r.sampled = sources.sampled;
        r.topSources = sources.topSources;
        r.topPrefixes = sources.topPrefixes.map((p) => ({ prefix: p.source, sessions: p.sessions }));
      }
      const policy = d.rule === null ? undefined : names.policy(d.rule);
      if (policy !== undefined) r.policy = policy;
      if (names.version !== undefined) r.policyVersion = names.version;
      out.push(r);
    }
    this.memoGeneration = -1;
    this.counts.floods += out.length;
    this.write(out);
  }

  // ---- life ----

  stats(): AuditPipelineStats {
    return { ...this.counts, trackedSessions: this.carry.length };
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
      try {
        this.reportFloods();
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
