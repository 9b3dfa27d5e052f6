// SPDX-License-Identifier: Apache-2.0
// The fast path of session-record.ts: a raw event → its session record, the same record as
// sessionRecord() builds (test/unit/session-record-fast.equivalence.test.ts holds them together),
// but from interned names and text caches (text-caches.ts), with the event's addresses and time
// read in place, and the common shape built as one object literal. Also the enrichment the
// pipeline's other records share: names per generation, interface names, wall-clock times. Pure:
// owns its caches; the context (interfaces, installed policies) is read, never written.
import { Action, EventKind, Reason } from '../abi/generated.js';
import { type RawEvent } from '../abi/records.js';
import { BatchEvent } from '../abi/records-fast.js';
import { type EnrichContext, type SessionRecord, setFlowDetails } from './session-record.js';
import { GenerationNames, intern, PROTOCOLS, reasonName, TextCaches } from './text-caches.js';

/** Generations whose names are kept (the context holds the installed and the retiring ones). */
const MAX_GENERATIONS = 16;

export class Enricher {
  readonly text = new TextCaches();
  private readonly enforcer: string;
  // names, by generation; memo of the last lookups within one batch
  private readonly generations = new Map<number, GenerationNames>();
  private memoGeneration = -1;
  private memoNames: GenerationNames | undefined;
  private memoIfindex = -1;
  private memoIfname = '';

  constructor(
    private readonly ctx: EnrichContext,
    /** Wall-clock ms minus CLOCK_MONOTONIC ms. */
    private readonly wallOffsetMs: number,
  ) {
    this.enforcer = intern(ctx.enforcer);
  }

  /** Forget the memo of the last generation and interface (the context may have changed). */
  newBatch(): void {
    this.memoGeneration = -1;
    this.memoIfindex = -1;
  }

  names(generation: number): GenerationNames {
    if (generation === this.memoGeneration) return this.memoNames!;
    const ruleNames = this.ctx.policies.get(generation);
    let names = this.generations.get(generation);
    if (!names || names.ruleNames !== ruleNames) {
      if (this.generations.size >= MAX_GENERATIONS) this.generations.clear();
      names = new GenerationNames(ruleNames);
      this.generations.set(generation, names);
    }
    this.memoGeneration = generation;
    this.memoNames = names;
    return names;
  }

  ifname(ifindex: number): string {
    if (ifindex === this.memoIfindex) return this.memoIfname;
    this.memoIfindex = ifindex;
    this.memoIfname = intern(this.ctx.interfaces.get(ifindex) ?? `if${ifindex}`);
    return this.memoIfname;
  }

  /** Wall-clock RFC 3339 text of a CLOCK_MONOTONIC time. */
  wallTime(ns: bigint): string {
    return this.text.time(Math.floor(Number(ns) / 1e6 + this.wallOffsetMs));
  }

  /** The same record as session-record.ts's sessionRecord(), built from caches; fields in the documented order. */
  session(e: RawEvent): SessionRecord {
    const names = this.names(e.generation);
    const reason = reasonName(e.reason);
    let rule = reason;
    let policy: string | undefined;
    if (e.reason === Reason.POLICY && names.ruleNames) {
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
}
