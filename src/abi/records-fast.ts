// SPDX-License-Identifier: Apache-2.0
// The fast paths of records.ts's decoders, for the hot paths: session keys and values for the
// summaries (readSessionKey, readSessionValue), and the ring-buffer reader's batches of events
// (decodeEventBatch, BatchEvent), with offsets resolved once from the generated layouts and
// fields read in place. Each gives the same values as its specification in records.ts
// (decodeSessionKey, decodeSessionValue, decodeEvent); test/unit/records-fast.equivalence.test.ts
// holds every pair equal on random bytes.
import { Layouts } from './generated.js';
import { EVENT_SIZE, type RawEvent, type SessionKey, type SessionValue } from './records.js';

// ---- session keys and values ----
// Offsets resolved once from the generated layouts; the summaries decode a few hundred thousand
// of these per tick.
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
