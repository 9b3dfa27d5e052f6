// SPDX-License-Identifier: Apache-2.0
// Summary records: at each tick, one `summary` per session with traffic since the previous one,
// from the sessions the datapath marked (a SummarySource: the engine's marks, or a cache in tests),
// a slice at a time, or from one walk of the caches when marks were lost. Owns the records of
// sessions marked in the current epoch that a drain took early (`carry`) and nothing per session
// from one tick to the next. Writes through its host (the pipeline). docs/audit.md ("summary").
import { Action, Reason } from '../abi/generated.js';
import type { SessionKey, SessionValue } from '../abi/records.js';
import type { SummaryRecord } from './records.js';
import { setFlowDetails } from './session-record.js';
import type { Enricher } from './session-record-fast.js';
import { type DirtyRecord, epochTraffic, type EpochTraffic, type SummarySource } from './summary-source.js';
import { PROTOCOLS, reasonName } from './text-caches.js';

/** Session-start times from the coarse clock may trail the precise one by a tick. */
const COARSE_CLOCK_SLACK_NS = 10_000_000n;
/** Marked sessions drained, and looked up, per slice of a summary: a few ms of work. */
const SUMMARY_SLICE = 1024;
/** Records drained per summary at most (a ring's worth): the drain ends even under a storm of marks. */
const SUMMARY_DRAIN_MAX = 1 << 20;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Where summaries go, and when to stop. */
export interface SummaryHost {
  write(records: SummaryRecord[]): void;
  /** Resolves when every sink has room again. */
  ready(): Promise<void>;
  /** The pipeline stops reading the engine: end at the next slice. */
  stopping(): boolean;
}

export class Summaries {
  /** The first epoch of this pipeline: marks of earlier epochs belong to an earlier agent. */
  private readonly firstEpoch: number;
  private marksLost: number;
  private carry: DirtyRecord[] = [];

  constructor(
    private readonly src: SummarySource,
    private readonly enrich: Enricher,
    private readonly enforcer: string,
    private readonly now: () => Date,
    /** CLOCK_MONOTONIC when the pipeline started. */
    private readonly startNs: bigint,
    private readonly host: SummaryHost,
    private readonly counts: { summaryScans: number; summaryLookups: number },
  ) {
    // our first epoch: what was marked before belongs to an earlier agent
    this.marksLost = src.lost();
    this.firstEpoch = src.advance().current;
  }

  /** Records of sessions marked in the current epoch, kept for the next tick. */
  get tracked(): number {
    return this.carry.length;
  }

  /** One summary tick (see AuditPipeline.summarize); false when it stopped early (the pipeline stops). */
  async run(): Promise<boolean> {
    const src = this.src;
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
        if (this.host.stopping()) return false;
        this.host.write(out);
        await this.host.ready();
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
        if (this.host.stopping()) return false;
        const out: SummaryRecord[] = [];
        for (const { key, value } of slice) this.summaryOf(out, time, key, value, finished);
        this.host.write(out);
        await this.host.ready();
      }
    }
    return true;
  }

  /** Push the summary of session (key, v) for `epoch`, if it had traffic there that needs one. */
  private summaryOf(out: SummaryRecord[], time: string, key: SessionKey, v: SessionValue, epoch: number): void {
    const t = epochTraffic(v, epoch);
    if (!t || t.packets <= 0 || t.totalPackets <= 1) return;
    // never summarized, and older than this pipeline: counts from its next epoch on
    if (t.fromFirstPacket && v.firstSeenNs + COARSE_CLOCK_SLACK_NS < this.startNs) return;
    out.push(this.summaryRecord(time, key, v, t));
  }

  private summaryRecord(time: string, key: SessionKey, value: SessionValue, t: EpochTraffic): SummaryRecord {
    const names = this.enrich.names(value.generation);
    let rule = reasonName(value.reason);
    let policy: string | undefined;
    if (value.reason === Reason.POLICY && names.ruleNames) {
      rule = names.rule(value.rule);
      policy = names.policy(value.rule);
    }
    const r: SummaryRecord = {
      time,
      type: 'summary',
      enforcer: this.enforcer,
      interface: this.enrich.ifname(key.ifindex),
      verdict: value.action === Action.ALLOW ? 'allow' : 'deny',
      protocol: PROTOCOLS[key.proto]!,
      src: this.enrich.text.address(key.family, key.src),
      dst: this.enrich.text.address(key.family, key.dst),
      rule,
      generation: value.generation,
      packets: t.packets,
      bytes: t.bytes,
      totalPackets: t.totalPackets,
      totalBytes: t.totalBytes,
      firstSeen: this.enrich.wallTime(value.firstSeenNs),
      lastSeen: this.enrich.wallTime(value.lastSeenNs),
    };
    setFlowDetails(r, key);
    if (policy !== undefined) r.policy = policy;
    if (names.version !== undefined) r.policyVersion = names.version;
    return r;
  }

}
