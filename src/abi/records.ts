// SPDX-License-Identifier: Apache-2.0
// The datapath's records as TypeScript values: session keys and values, events, per-CPU
// statistics. Built on codec.ts; addresses are 16 bytes (IPv4 mapped) as in abi.h. The
// specification of the decoders whose fast paths are in records-fast.ts.
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
