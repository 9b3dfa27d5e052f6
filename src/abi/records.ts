// SPDX-License-Identifier: Apache-2.0
// The datapath's records as TypeScript values: session keys and values, events, per-CPU
// statistics. Built on codec.ts; addresses are 16 bytes (IPv4 mapped) as in abi.h.
import { arrayField, encodeStruct, readBigField, readBytes, readElement, readField, sizeOf } from './codec.js';
import { Counter, Reason } from './generated.js';

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

export interface Stat {
  packets: number;
  bytes: number;
}

export interface CpuStats {
  counters: Record<CounterName, number>;
  /** Last event sequence number used, per CPU (index = CPU). */
  eventSeq: number[];
  byReason: Record<ReasonName, { pass: Stat; drop: Stat }>;
}

/** Sum the per-CPU ds_stats value (one CPU_STATS_SIZE record per possible CPU, 8-byte aligned). */
export function decodeCpuStats(buf: Buffer, cpus: number): CpuStats {
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

  for (let cpu = 0; cpu < cpus; cpu++) {
    const at = cpu * stride;
    for (const name of Object.keys(counters) as CounterName[]) {
      counters[name] += readElement(n, buf, at, 'counters', Counter[name]);
    }
    eventSeq.push(readField(n, buf, at, 'event_seq'));
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
  return { counters, eventSeq, byReason };
}
