// SPDX-License-Identifier: Apache-2.0
// The fast path of record-json.ts: audit records straight into an output buffer as bytes
// (JsonLineEncoder), session records from cached fragments, every other record through
// record-json.ts's serializer. Whatever it writes is byte for byte what recordJson() writes
// (test/unit/record-json-fast.equivalence.test.ts, on random records, escapes and Unicode
// included). Pure: owns its caches, touches nothing else.
import { NEEDS_ESCAPE, num, recordJson, str } from './record-json.js';
import type { AuditRecord } from './records.js';
import type { SessionRecord } from './session-record.js';

const NEWLINE = 0x0a;

const tailHash = (s: string): number => {
  const n = s.length;
  if (n < 3) return n === 0 ? 0 : Math.imul(s.charCodeAt(n - 1), 31) ^ n;
  return Math.imul(n, 0x9e3779b1) ^ Math.imul(s.charCodeAt(n - 1), 31) ^ Math.imul(s.charCodeAt(n - 2), 961) ^ Math.imul(s.charCodeAt(n - 3), 29791);
};

/** Write `s` at `o` when every character is printable ASCII needing no escape; -1 otherwise. */
function putPlain(out: Uint8Array, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
    out[o + i] = c;
  }
  return o + s.length;
}

const DIGIT_PAIRS = new Uint8Array(200);
for (let i = 0; i < 100; i++) {
  DIGIT_PAIRS[2 * i] = 0x30 + ((i / 10) | 0);
  DIGIT_PAIRS[2 * i + 1] = 0x30 + (i % 10);
}

/** Write a JSON number at `o`, as JSON.stringify writes it: non-negative int32s digit by digit
 *  (two at a time), anything else through V8's number-to-text. */
function putNumber(out: Uint8Array, o: number, n: number): number {
  if (n >= 0 && n <= 0x7fffffff && (n | 0) === n) {
    const len = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
    let e = o + len;
    let t = n | 0;
    while (t >= 100) {
      const q = (t / 100) | 0;
      const r = (t - q * 100) << 1;
      out[--e] = DIGIT_PAIRS[r + 1]!;
      out[--e] = DIGIT_PAIRS[r]!;
      t = q;
    }
    if (t >= 10) {
      out[--e] = DIGIT_PAIRS[(t << 1) + 1]!;
      out[--e] = DIGIT_PAIRS[t << 1]!;
    } else out[--e] = 0x30 + t;
    return o + len;
  }
  const text = num(n);
  for (let i = 0; i < text.length; i++) out[o + i] = text.charCodeAt(i);
  return o + text.length;
}

/** Copy a short constant (cheaper than a TypedArray#set call for a few bytes). */
function putConst(out: Uint8Array, o: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) out[o + i] = bytes[i]!;
  return o + bytes.length;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');
/** Sets of the rule-fragment cache (two entries each): room for thousands of rules without evictions. */
const TAIL_SETS = 8192;
/** Slots of the head cache (two per set). */
const HEAD_SLOTS = 256;
const DST = ascii('","dst":"');
const SPORT = ascii(',"sport":');
const DPORT = ascii(',"dport":');
const ICMP_TYPE = ascii(',"icmpType":');
const ICMP_CODE = ascii(',"icmpCode":');
const VLAN = ascii(',"vlan":[');
/** The longest fixed text of the fast path (keys, quotes, digits of five numbers, vlan). */
const FIXED_MAX = 9 + 1 + DST.length + 1 + SPORT.length + DPORT.length + ICMP_TYPE.length + ICMP_CODE.length + VLAN.length + 8 * 22 + 4;

/**
 * Audit records as JSON lines written straight into a byte buffer. Session records, the hot path,
 * are assembled from cached byte fragments: the time text (one per millisecond), the fields fixed
 * for an interface and verdict (`head`) and for a rule (`tail`), with the addresses copied and
 * checked in one pass and the numbers written digit by digit. The caches are direct-mapped and
 * keyed by string identity (the pipeline hands out the same string objects again and again), so a
 * hit costs a few pointer compares; a miss, or any text that needs escaping, takes the string
 * serializers above. Every other record is serialized as a string. Output is ASCII.
 */
export class JsonLineEncoder {
  private lastTime: string | undefined;
  private lastTimeBytes: Buffer | undefined;
  /** Bumped whenever the time text changes: prefixes built for an older time are stale. */
  private stamp = 0;
  private readonly headKeys: (string | undefined)[] = new Array(HEAD_SLOTS * 6).fill(undefined);
  private readonly heads: Buffer[] = new Array(HEAD_SLOTS);
  /** Time + head, per head slot, for the current time text. */
  private readonly prefixStamp = new Int32Array(HEAD_SLOTS).fill(-1);
  private readonly prefixes: Buffer[] = new Array(HEAD_SLOTS);
  private readonly tailKeys: (string | undefined)[] = new Array(TAIL_SETS * 2 * 3).fill(undefined);
  private readonly tailGen = new Float64Array(TAIL_SETS * 2).fill(-1);
  private readonly tailCpu = new Float64Array(TAIL_SETS * 2).fill(-1);
  private readonly tails: Buffer[] = new Array(TAIL_SETS * 2);

  /** Append one record and its newline to `out` at `o`: the new offset, or -1 when `out` is too short. */
  encode(r: AuditRecord, out: Buffer, o: number): number {
    if (r.type === 'session') {
      const next = this.session(r, out, o);
      if (next !== -2) return next;
    }
    const text = recordJson(r) + '\n';
    if (out.length - o < text.length) return -1;
    out.write(text, o, text.length, 'latin1');
    return o + text.length;
  }

  /** The fast path; -2 when the record needs the string serializer (escapes, a cache that cannot hold it). */
  private session(r: SessionRecord, out: Buffer, o: number): number {
    if (!this.time(r.time) || r.tenant !== undefined || r.path !== undefined) return -2;
    const prefix = this.prefix(this.head(r));
    const tail = this.tail(r);
    if (out.length - o < FIXED_MAX + prefix.length + tail.length + r.src.length + r.dst.length + (r.vlan ? r.vlan.length * 22 : 0)) return -1;
    out.set(prefix, o);
    o = putPlain(out, o + prefix.length, r.src);
    if (o < 0) return -2;
    o = putPlain(out, putConst(out, o, DST), r.dst);
    if (o < 0) return -2;
    out[o++] = 0x22; // "
    if (r.sport !== undefined) o = putNumber(out, putConst(out, o, SPORT), r.sport);
    if (r.dport !== undefined) o = putNumber(out, putConst(out, o, DPORT), r.dport);
    if (r.icmpType !== undefined) o = putNumber(out, putConst(out, o, ICMP_TYPE), r.icmpType);
    if (r.icmpCode !== undefined) o = putNumber(out, putConst(out, o, ICMP_CODE), r.icmpCode);
    if (r.vlan !== undefined) {
      o = putConst(out, o, VLAN);
      for (let i = 0; i < r.vlan.length; i++) {
        if (i > 0) out[o++] = 0x2c; // ,
        o = putNumber(out, o, r.vlan[i]!);
      }
      out[o++] = 0x5d; // ]
    }
    out.set(tail, o);
    o = putNumber(out, o + tail.length, r.seq);
    out[o++] = 0x7d; // }
    out[o++] = NEWLINE;
    return o;
  }

  /** Make `t` the current time text ('{"time":"<t>"'); false when it needs escaping. */
  private time(t: string): boolean {
    if (t === this.lastTime) return true;
    if (NEEDS_ESCAPE.test(t)) return false;
    this.lastTime = t;
    this.lastTimeBytes = ascii('{"time":"' + t + '"');
    this.stamp++;
    return true;
  }

  /** '{"time":…' + the head in `slot`, built once per time text. */
  private prefix(slot: number): Buffer {
    if (this.prefixStamp[slot] === this.stamp) return this.prefixes[slot]!;
    const bytes = Buffer.concat([this.lastTimeBytes!, this.heads[slot]!]);
    this.prefixStamp[slot] = this.stamp;
    this.prefixes[slot] = bytes;
    return bytes;
  }

  /** The slot of ',"type":"session","event":…,"protocol":…,"src":"' (two-way set associative). */
  private head(r: SessionRecord): number {
    // few distinct heads: lengths and a character or two tell them apart well enough
    const p = r.protocol;
    const set = (Math.imul(r.interface.length, 31) ^ Math.imul(r.reason.charCodeAt(0), 7) ^ Math.imul(p.charCodeAt(0) + p.length, 13) ^ (r.verdict.length << 1) ^ r.event.length) & (HEAD_SLOTS / 2 - 1);
    const k = this.headKeys;
    for (let way = 0; way < 2; way++) {
      const slot = set * 2 + way;
      const at = slot * 6;
      if (k[at] === r.event && k[at + 1] === r.enforcer && k[at + 2] === r.interface && k[at + 3] === r.verdict && k[at + 4] === r.reason && k[at + 5] === r.protocol) return slot;
    }
    const head = ascii(
      ',"type":"session","event":' + str(r.event) +
      ',"enforcer":' + str(r.enforcer) +
      ',"interface":' + str(r.interface) +
      ',"verdict":' + str(r.verdict) +
      ',"reason":' + str(r.reason) +
      ',"protocol":' + str(r.protocol) +
      ',"src":"',
    );
    // the new entry takes way 0; the one there moves to way 1 (with its prefix)
    const slot = set * 2;
    for (let f = 0; f < 6; f++) k[(slot + 1) * 6 + f] = k[slot * 6 + f];
    this.heads[slot + 1] = this.heads[slot]!;
    this.prefixes[slot + 1] = this.prefixes[slot]!;
    this.prefixStamp[slot + 1] = this.prefixStamp[slot]!;
    k[slot * 6] = r.event;
    k[slot * 6 + 1] = r.enforcer;
    k[slot * 6 + 2] = r.interface;
    k[slot * 6 + 3] = r.verdict;
    k[slot * 6 + 4] = r.reason;
    k[slot * 6 + 5] = r.protocol;
    this.heads[slot] = head;
    this.prefixStamp[slot] = -1;
    return slot;
  }

  /** ',"rule":…,"policy":…,"policyVersion":…,"generation":N,"cpu":N,"seq":'; two-way set associative. */
  private tail(r: SessionRecord): Buffer {
    const set = (tailHash(r.rule) ^ Math.imul(r.generation, 0x85ebca6b) ^ Math.imul(r.cpu, 0x27d4eb2f)) & (TAIL_SETS - 1);
    const k = this.tailKeys;
    for (let way = 0; way < 2; way++) {
      const i = set * 2 + way;
      if (k[i * 3] === r.rule && k[i * 3 + 1] === r.policy && k[i * 3 + 2] === r.policyVersion && this.tailGen[i] === r.generation && this.tailCpu[i] === r.cpu) return this.tails[i]!;
    }
    let tail = ',"rule":' + str(r.rule);
    if (r.policy !== undefined) tail += ',"policy":' + str(r.policy);
    if (r.policyVersion !== undefined) tail += ',"policyVersion":' + str(r.policyVersion);
    tail += ',"generation":' + num(r.generation) + ',"cpu":' + num(r.cpu) + ',"seq":';
    const bytes = ascii(tail);
    // the new entry takes way 0; the one there moves to way 1
    const i = set * 2;
    for (let f = 0; f < 3; f++) k[(i + 1) * 3 + f] = k[i * 3 + f];
    this.tailGen[i + 1] = this.tailGen[i]!;
    this.tailCpu[i + 1] = this.tailCpu[i]!;
    this.tails[i + 1] = this.tails[i]!;
    k[i * 3] = r.rule;
    k[i * 3 + 1] = r.policy;
    k[i * 3 + 2] = r.policyVersion;
    this.tailGen[i] = r.generation;
    this.tailCpu[i] = r.cpu;
    this.tails[i] = bytes;
    return bytes;
  }
}

/** Records as JSON-lines bytes, as the sink writes them (tests, tools). */
export function encodeRecords(records: readonly AuditRecord[]): Buffer {
  const encoder = new JsonLineEncoder();
  let out = Buffer.alloc(64 * 1024);
  let o = 0;
  for (const r of records) {
    let next = encoder.encode(r, out, o);
    while (next < 0) {
      const bigger = Buffer.alloc(out.length * 2);
      out.copy(bigger, 0, 0, o);
      out = bigger;
      next = encoder.encode(r, out, o);
    }
    o = next;
  }
  return out.subarray(0, o);
}
