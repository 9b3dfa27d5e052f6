// SPDX-License-Identifier: Apache-2.0
// The datapath's records as TypeScript values: session keys and values, events, per-CPU
// statistics. Built on codec.ts; addresses are 16 bytes (IPv4 mapped) as in abi.h.
import { arrayField, encodeStruct, readBigField, readBytes, readElement, readField, sizeOf } from './codec.js';
import { Counter, Layouts, Limits, Reason } from './generated.js';

export interface SessionKey {
  family: 4 | 6;
  /** 16 bytes; IPv4 as ::ffff:a.b.c.d */
  src: Uint8Array;
  dst: Uint8Array;
  ifindex: number;
  vlanOuter: number;
  vlanInner: number;
  proto: number;
  sport: number;
  dport: number;
}

export interface SessionValue {
  firstSeenNs: bigint;
  lastSeenNs: bigint;
  packets: number;
  bytes: number;
  rule: number;
  generation: number;
  action: number;
  reason: number;
  flags: number;
  /** Summary marks (abi.h, struct ds_session_value): the epoch of the last mark (0: never) … */
  mark?: number;
  /** … the counters before its first packet in that epoch … */
  basePackets?: number;
  baseBytes?: number;
  /** … and the base of the mark before, when that mark was in epoch mark - 1 (markFlags & MarkFlag.ADJACENT). */
  markFlags?: number;
  prevPackets?: number;
  prevBytes?: number;
}

export interface RawEvent extends SessionKey {
  timeNs: bigint;
  seq: number;
  rule: number;
  generation: number;
  cpu: number;
  len: number;
  action: number;
  reason: number;
  kind: number;
}

export const SESSION_KEY_SIZE = sizeOf('ds_session_key');
export const SESSION_VALUE_SIZE = sizeOf('ds_session_value');
export const EVENT_SIZE = sizeOf('ds_event');
export const CPU_STATS_SIZE = sizeOf('ds_cpu_stats');

export function encodeSessionKey(k: SessionKey): Buffer {
  return encodeStruct('ds_session_key', {
    src: k.src,
    dst: k.dst,
    ifindex: k.ifindex,
    vlan_outer: k.vlanOuter,
    vlan_inner: k.vlanInner,
    sport: k.sport,
    dport: k.dport,
    proto: k.proto,
    family: k.family,
  });
}

/** The flow fields that ds_session_key and ds_event share, from either. */
function decodeFlow(n: 'ds_session_key' | 'ds_event', buf: Buffer, at: number): SessionKey {
  return {
    family: readField(n, buf, at, 'family') as 4 | 6,
    src: readBytes(n, buf, at, 'src'),
    dst: readBytes(n, buf, at, 'dst'),
    ifindex: readField(n, buf, at, 'ifindex'),
    vlanOuter: readField(n, buf, at, 'vlan_outer'),
    vlanInner: readField(n, buf, at, 'vlan_inner'),
    proto: readField(n, buf, at, 'proto'),
    sport: readField(n, buf, at, 'sport'),
    dport: readField(n, buf, at, 'dport'),
  };
}

export function decodeSessionKey(buf: Buffer, at = 0): SessionKey {
  return decodeFlow('ds_session_key', buf, at);
}

export function decodeSessionValue(buf: Buffer, at = 0): SessionValue {
  const n = 'ds_session_value';
  return {
    firstSeenNs: readBigField(n, buf, at, 'first_seen'),
    lastSeenNs: readBigField(n, buf, at, 'last_seen'),
    packets: readField(n, buf, at, 'packets'),
    bytes: readField(n, buf, at, 'bytes'),
    rule: readField(n, buf, at, 'rule'),
    generation: readField(n, buf, at, 'generation'),
    action: readField(n, buf, at, 'action'),
    reason: readField(n, buf, at, 'reason'),
    flags: readField(n, buf, at, 'flags'),
    mark: readField(n, buf, at, 'mark'),
    basePackets: readField(n, buf, at, 'base_packets'),
    baseBytes: readField(n, buf, at, 'base_bytes'),
    markFlags: readField(n, buf, at, 'mark_flags'),
    prevPackets: readField(n, buf, at, 'prev_packets'),
    prevBytes: readField(n, buf, at, 'prev_bytes'),
  };
}

// ---- fast paths of decodeSessionKey / decodeSessionValue (the specification above) ----
// Offsets resolved once from the generated layouts; the summaries decode a few hundred thousand
// of these per tick. test/unit/abi.test.ts holds each pair equal on random bytes.
const KF = Layouts.ds_session_key.fields;
const VF = Layouts.ds_session_value.fields;
/** A little-endian u64 counter at `at` as a number (exact below 2^53): no BigInt on hot paths. */
export const readU64 = (buf: Buffer, at: number): number => buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32;

/** decodeSessionKey, fast: the same value; `src` and `dst` are views into `buf`, not copies. */
export function readSessionKey(buf: Buffer, at = 0): SessionKey {
  return {
    family: buf[at + KF.family.offset] as 4 | 6,
    src: buf.subarray(at + KF.src.offset, at + KF.src.offset + 16),
    dst: buf.subarray(at + KF.dst.offset, at + KF.dst.offset + 16),
    ifindex: buf.readUInt32LE(at + KF.ifindex.offset),
    vlanOuter: buf.readUInt16LE(at + KF.vlan_outer.offset),
    vlanInner: buf.readUInt16LE(at + KF.vlan_inner.offset),
    proto: buf[at + KF.proto.offset]!,
    sport: buf.readUInt16LE(at + KF.sport.offset),
    dport: buf.readUInt16LE(at + KF.dport.offset),
  };
}

/** decodeSessionValue, fast: the same value. */
export function readSessionValue(buf: Buffer, at = 0): SessionValue {
  return {
    firstSeenNs: buf.readBigUInt64LE(at + VF.first_seen.offset),
    lastSeenNs: buf.readBigUInt64LE(at + VF.last_seen.offset),
    packets: readU64(buf, at + VF.packets.offset),
    bytes: readU64(buf, at + VF.bytes.offset),
    rule: buf.readUInt32LE(at + VF.rule.offset),
    generation: buf.readUInt32LE(at + VF.generation.offset),
    action: buf[at + VF.action.offset]!,
    reason: buf[at + VF.reason.offset]!,
    flags: buf[at + VF.flags.offset]!,
    mark: buf.readUInt32LE(at + VF.mark.offset),
    basePackets: readU64(buf, at + VF.base_packets.offset),
    baseBytes: readU64(buf, at + VF.base_bytes.offset),
    markFlags: buf[at + VF.mark_flags.offset]!,
    prevPackets: readU64(buf, at + VF.prev_packets.offset),
    prevBytes: readU64(buf, at + VF.prev_bytes.offset),
  };
}

export function decodeEvent(buf: Buffer, at = 0): RawEvent {
  const n = 'ds_event';
  return {
    ...decodeFlow(n, buf, at),
    timeNs: readBigField(n, buf, at, 'time_ns'),
    seq: readField(n, buf, at, 'seq'),
    rule: readField(n, buf, at, 'rule'),
    generation: readField(n, buf, at, 'generation'),
    cpu: readField(n, buf, at, 'cpu'),
    len: readField(n, buf, at, 'len'),
    action: readField(n, buf, at, 'action'),
    reason: readField(n, buf, at, 'reason'),
    kind: readField(n, buf, at, 'kind'),
  };
}

export type CounterName = Exclude<keyof typeof Counter, 'COUNT'>;
export type ReasonName = Exclude<keyof typeof Reason, 'COUNT'>;

const REASON_LABELS: string[] = [];
for (const [name, code] of Object.entries(Reason)) if (name !== 'COUNT') REASON_LABELS[code] = name.toLowerCase().replaceAll('_', '-');

/** A reason code as records, metrics and the CLI show it: NO_POLICY → `no-policy`. */
export function reasonLabel(code: number): string {
  return REASON_LABELS[code] ?? String(code);
}

export interface Stat {
  packets: number;
  bytes: number;
}

/**
 * One rule's counters: packets and bytes, its logged denied sessions held back past the admission
 * budget, and the registers of its sketch of their sources in the current flood interval (merged
 * over CPUs; null when no CPU wrote one in it).
 */
export interface RuleStat extends Stat {
  held: number;
  sketch: Uint8Array | null;
}

/** The source of one held-back denied session, as the datapath sampled it (ds_flood_sample). */
export interface FloodSample {
  family: number;
  src: Uint8Array;
  generation: number;
  /** The deciding rule, or null for denies no counted rule decided. */
  rule: number | null;
}

/**
 * Merge the ds_sketch at `at` in `buf` into `into` (register-wise maximum) when it belongs to flood
 * interval `epoch`; returns the merged registers (a new array the first time), or `into`.
 */
export function mergeSketch(into: Uint8Array | null, buf: Buffer, at: number, epoch: number): Uint8Array | null {
  if (readField('ds_sketch', buf, at, 'epoch') !== epoch) return into;
  const regs = readBytes('ds_sketch', buf, at, 'regs');
  if (regs.every((r) => r === 0)) return into;
  const out = into ?? new Uint8Array(Limits.SKETCH_REGISTERS);
  for (let i = 0; i < out.length; i++) if (regs[i]! > out[i]!) out[i] = regs[i]!;
  return out;
}

export interface CpuStats {
  counters: Record<CounterName, number>;
  /** Denied sessions whose event the budget held back, of denies no counted rule decided (ds_cpu_stats.deny_budget.held). */
  heldWithoutRule: number;
  /** Their sources' sketch in flood interval `epoch` given to decodeCpuStats (null: none, or no epoch given). */
  sketchWithoutRule: Uint8Array | null;
  /** Last event sequence number used, per CPU (index = CPU). */
  eventSeq: number[];
  byReason: Record<ReasonName, { pass: Stat; drop: Stat }>;
}

/** Sum the per-CPU ds_stats value (one CPU_STATS_SIZE record per possible CPU, 8-byte aligned). */
export function decodeCpuStats(buf: Buffer, cpus: number, epoch?: number): CpuStats {
  const n = 'ds_cpu_stats';
  const stride = Math.ceil(CPU_STATS_SIZE / 8) * 8;
  const counters = Object.fromEntries(
    Object.keys(Counter)
      .filter((k) => k !== 'COUNT')
      .map((k) => [k, 0]),
  ) as Record<CounterName, number>;
  const byReason = Object.fromEntries(
    Object.keys(Reason)
      .filter((k) => k !== 'COUNT')
      .map((k) => [k, { pass: { packets: 0, bytes: 0 }, drop: { packets: 0, bytes: 0 } }]),
  ) as CpuStats['byReason'];
  const eventSeq: number[] = [];
  const reasons = arrayField(n, 'by_reason');
  const budget = Layouts.ds_cpu_stats.fields.deny_budget.offset;
  const sketch = Layouts.ds_cpu_stats.fields.deny_sketch.offset;
  let heldWithoutRule = 0;
  let sketchWithoutRule: Uint8Array | null = null;

  for (let cpu = 0; cpu < cpus; cpu++) {
    const at = cpu * stride;
    for (const name of Object.keys(counters) as CounterName[]) {
      counters[name] += readElement(n, buf, at, 'counters', Counter[name]);
    }
    eventSeq.push(readField(n, buf, at, 'event_seq'));
    heldWithoutRule += readField('ds_budget', buf, at + budget, 'held');
    if (epoch !== undefined) sketchWithoutRule = mergeSketch(sketchWithoutRule, buf, at + sketch, epoch);
    for (const name of Object.keys(byReason) as ReasonName[]) {
      for (const [action, slot] of [
        [0, 'drop'],
        [1, 'pass'],
      ] as const) {
        const base = at + reasons.offset + (Reason[name] * 2 + action) * reasons.stride;
        byReason[name][slot].packets += readField('ds_stat', buf, base, 'packets');
        byReason[name][slot].bytes += readField('ds_stat', buf, base, 'bytes');
      }
    }
  }
  return { counters, heldWithoutRule, sketchWithoutRule, eventSeq, byReason };
}

// ---- the event reader's hot path ----

const EV = Layouts.ds_event.fields;
// The batch decoder reads each field with a fixed width: fail at load, not silently, if abi.h
// ever changes one of them.
const WIDTHS: Record<string, number> = {
  time_ns: 8, seq: 8, src: 1, dst: 1, ifindex: 4, rule: 4, generation: 4, cpu: 4, len: 4,
  vlan_outer: 2, vlan_inner: 2, sport: 2, dport: 2, proto: 1, family: 1, action: 1, reason: 1, kind: 1,
};
for (const [field, width] of Object.entries(WIDTHS)) {
  if ((EV as Record<string, { elem: number }>)[field]?.elem !== width) throw new Error(`ABI: ds_event.${field} is not ${width} bytes wide`);
}
if (EV.src.size !== 16 || EV.dst.size !== 16) throw new Error('ABI: ds_event addresses are not 16 bytes');
const O_TIME = EV.time_ns.offset;
const O_SEQ = EV.seq.offset;
const O_SRC = EV.src.offset;
const O_DST = EV.dst.offset;
const O_IFINDEX = EV.ifindex.offset;
const O_RULE = EV.rule.offset;
const O_GENERATION = EV.generation.offset;
const O_CPU = EV.cpu.offset;
const O_LEN = EV.len.offset;
const O_VLAN_OUTER = EV.vlan_outer.offset;
const O_VLAN_INNER = EV.vlan_inner.offset;
const O_SPORT = EV.sport.offset;
const O_DPORT = EV.dport.offset;
const O_PROTO = EV.proto.offset;
const O_FAMILY = EV.family.offset;
const O_ACTION = EV.action.offset;
const O_REASON = EV.reason.offset;
const O_KIND = EV.kind.offset;

/**
 * One event read in place from a reader batch. The scalar fields are plain properties, decoded
 * up front; `src`, `dst` and `timeNs` are read from the batch only when asked for (a view or a
 * bigint per event would cost more than everything else the audit pipeline does with it). `src`
 * and `dst` are views into the batch: treat them as read-only. For readers that format addresses
 * themselves, `bytes` with `srcOffset`/`dstOffset` give the 16-byte addresses without a view, and
 * `monoNs` the time as a Number.
 */
export class BatchEvent implements RawEvent {
  family: 4 | 6;
  ifindex: number;
  vlanOuter: number;
  vlanInner: number;
  proto: number;
  sport: number;
  dport: number;
  seq: number;
  rule: number;
  generation: number;
  cpu: number;
  len: number;
  action: number;
  reason: number;
  kind: number;
  readonly #bytes: Uint8Array;
  readonly #at: number;

  constructor(view: DataView, bytes: Uint8Array, at: number) {
    this.family = view.getUint8(at + O_FAMILY) as 4 | 6;
    this.ifindex = view.getUint32(at + O_IFINDEX, true);
    this.vlanOuter = view.getUint16(at + O_VLAN_OUTER, true);
    this.vlanInner = view.getUint16(at + O_VLAN_INNER, true);
    this.proto = view.getUint8(at + O_PROTO);
    this.sport = view.getUint16(at + O_SPORT, true);
    this.dport = view.getUint16(at + O_DPORT, true);
    this.seq = view.getUint32(at + O_SEQ + 4, true) * 4294967296 + view.getUint32(at + O_SEQ, true);
    this.rule = view.getUint32(at + O_RULE, true);
    this.generation = view.getUint32(at + O_GENERATION, true);
    this.cpu = view.getUint32(at + O_CPU, true);
    this.len = view.getUint32(at + O_LEN, true);
    this.action = view.getUint8(at + O_ACTION);
    this.reason = view.getUint8(at + O_REASON);
    this.kind = view.getUint8(at + O_KIND);
    this.#bytes = bytes;
    this.#at = at;
  }

  get src(): Uint8Array {
    return this.#bytes.subarray(this.#at + O_SRC, this.#at + O_SRC + 16);
  }

  get dst(): Uint8Array {
    return this.#bytes.subarray(this.#at + O_DST, this.#at + O_DST + 16);
  }

  /** CLOCK_MONOTONIC nanoseconds, exactly. */
  get timeNs(): bigint {
    const hi = this.u32(O_TIME + 4);
    const lo = this.u32(O_TIME);
    return hi < 0x200000 ? BigInt(hi * 4294967296 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** CLOCK_MONOTONIC nanoseconds as a Number: exact below 2^53 (104 days of uptime), within a few ns after. */
  get monoNs(): number {
    return this.u32(O_TIME + 4) * 4294967296 + this.u32(O_TIME);
  }

  /** The batch the event lives in; its addresses are the 16 bytes at srcOffset and dstOffset. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  get srcOffset(): number {
    return this.#at + O_SRC;
  }

  get dstOffset(): number {
    return this.#at + O_DST;
  }

  private u32(offset: number): number {
    const b = this.#bytes;
    const i = this.#at + offset;
    return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  }
}

/**
 * Decode one batch from the native ring-buffer reader: `count` items of [u32 length][ds_event],
 * back to back. The same values as decodeEvent, at a fraction of the cost: offsets resolved once
 * from the generated layout, one DataView, and the fields a reader may not need read lazily
 * (BatchEvent). Items shorter than a ds_event are skipped.
 */
export function decodeEventBatch(batch: Buffer, count: number): BatchEvent[] {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const end = batch.byteLength;
  const out = new Array<BatchEvent>(count);
  let n = 0;
  let at = 0;
  for (let i = 0; i < count && at + 4 <= end; i++) {
    const len = view.getUint32(at, true);
    const p = at + 4;
    at = p + len;
    if (len < EVENT_SIZE || at > end) continue;
    out[n++] = new BatchEvent(view, batch, p);
  }
  out.length = n;
  return out;
}
