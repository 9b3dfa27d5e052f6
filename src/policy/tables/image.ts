// SPDX-License-Identifier: Apache-2.0
// Class tables → map images: the exact key and value bytes of every per-policy map, ready for
// the engine to write into fresh inner maps. Pure; every offset comes from the generated ABI,
// looked up once per module (images hold millions of records).
import { offsetOf, sizeOf } from '../../abi/codec.js';
import { Action, Limits, MapName, RowKind, type SlotTable } from '../../abi/generated.js';
import type { ClassTables, PolicyIr, PrefixClass } from '../ir/ir.js';
import { SVC_ENTRIES } from '../ir/ir.js';

/** Keys and values of one map, `count` records each, packed back to back. */
export interface TableImage {
  count: number;
  /** Entries the map must hold when more than `count` (an array whose unwritten entries stay zero). */
  capacity?: number;
  keySize: number;
  valueSize: number;
  keys: Buffer;
  values: Buffer;
}

/** A per-policy table an image fills; the contract lists them, in fill order, as SLOT_TABLES (bpf/include/contract.h). */
export type TableName = SlotTable;

export interface PolicyImage {
  version: string;
  /** Rules 1..ruleCount; index 0 is the default action. */
  ruleCount: number;
  defaultAction: number;
  defaultLog: boolean;
  /** log2 of the slot counts of ds_src4_long and ds_dst4_long (for the meta). */
  v4Bits: { src: number; dst: number };
  tables: Record<TableName, TableImage>;
}

const CLASS = {
  size: sizeOf('ds_addr_class'),
  cls: offsetOf('ds_addr_class', 'cls'),
  rowTarget: offsetOf('ds_addr_class', 'row_target'),
  rowVerdict: offsetOf('ds_addr_class', 'row_verdict'),
  row: offsetOf('ds_addr_class', 'row'),
};
const VERDICT = {
  size: sizeOf('ds_verdict_value'),
  rule: offsetOf('ds_verdict_value', 'rule'),
  action: offsetOf('ds_verdict_value', 'action'),
  log: offsetOf('ds_verdict_value', 'log'),
};
const TOP = { size: sizeOf('ds_v4_top'), c: offsetOf('ds_v4_top', 'c'), lengths: offsetOf('ds_v4_top', 'lengths') };
const SLOT = {
  size: sizeOf('ds_v4_slot'),
  prefix: offsetOf('ds_v4_slot', 'prefix'),
  len: offsetOf('ds_v4_slot', 'len'),
  c: offsetOf('ds_v4_slot', 'c'),
};
const LPM6 = { size: sizeOf('ds_lpm6_key'), len: offsetOf('ds_lpm6_key', 'prefixlen'), addr: offsetOf('ds_lpm6_key', 'addr') };
const TOP_BITS = 16;

/** A view of u32s as map bytes (host order, as the ABI specifies). */
function u32Values(values: Uint32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

let countingKeys = new Uint32Array(0);

/** Keys 0..n-1 of an array map, as map bytes; shared, grown on demand (never written after). */
function counting(n: number): Buffer {
  if (countingKeys.length < n) {
    countingKeys = new Uint32Array(2 ** Math.ceil(Math.log2(Math.max(n, 1))));
    for (let i = 0; i < countingKeys.length; i++) countingKeys[i] = i;
  }
  return u32Values(countingKeys.subarray(0, n));
}

/** What each rule does, by rule index, for writing struct ds_verdict_value. */
class Verdicts {
  private readonly action: Uint8Array;
  private readonly log: Uint8Array;

  constructor(ir: PolicyIr) {
    this.action = new Uint8Array(ir.rules.length + 1);
    this.log = new Uint8Array(ir.rules.length + 1);
    for (const r of ir.rules) {
      this.action[r.index] = r.action === 'allow' ? Action.ALLOW : Action.DENY;
      this.log[r.index] = r.log ? 1 : 0;
    }
  }

  write(buf: Buffer, at: number, rule: number): void {
    if (rule < 1 || rule >= this.action.length) throw new Error(`class tables name rule ${rule}, which the IR does not have`);
    buf.writeUInt32LE(rule, at + VERDICT.rule);
    buf[at + VERDICT.action] = this.action[rule]!;
    buf[at + VERDICT.log] = this.log[rule]!;
  }
}

/**
 * Each source class's own verdict row (entries with src ≠ 0), summarised for its address entries:
 * a row of one entry travels inline, so only longer rows (and the wildcard row 0) stay in the
 * verdict table.
 */
class Rows {
  readonly kind: Uint8Array;
  readonly target: Uint32Array;
  readonly rule: Uint32Array;
  readonly inTable: ClassTables['verdict'] = [];

  constructor(classes: number, verdicts: ClassTables['verdict']) {
    const count = new Uint32Array(classes + 1);
    for (const v of verdicts) if (v.src !== 0) count[v.src] = count[v.src]! + 1;
    this.kind = new Uint8Array(classes + 1);
    this.target = new Uint32Array(classes + 1);
    this.rule = new Uint32Array(classes + 1);
    for (const v of verdicts) {
      if (v.src !== 0 && count[v.src] === 1) {
        this.kind[v.src] = RowKind.ONE;
        this.target[v.src] = v.target;
        this.rule[v.src] = v.rule;
      } else {
        if (v.src !== 0) this.kind[v.src] = RowKind.MANY;
        this.inTable.push(v);
      }
    }
  }

  static none(): Rows {
    return new Rows(0, []);
  }
}

/** Writes struct ds_addr_class for `cls` at `at` (4-byte aligned); `words` views `buf` as u32s. */
function writeClass(buf: Buffer, words: Uint32Array, at: number, cls: number, rows: Rows, verdicts: Verdicts): void {
  words[(at + CLASS.cls) >> 2] = cls;
  const kind = rows.kind[cls] ?? RowKind.NONE;
  buf[at + CLASS.row] = kind;
  if (kind === RowKind.ONE) {
    words[(at + CLASS.rowTarget) >> 2] = rows.target[cls]!;
    verdicts.write(buf, at + CLASS.rowVerdict, rows.rule[cls]!);
  }
}

/** A zeroed buffer and a u32 view of it (host order, as the ABI specifies). */
function alignedBuffer(bytes: number): { buf: Buffer; words: Uint32Array } {
  const words = new Uint32Array(Math.ceil(bytes / 4));
  return { buf: Buffer.from(words.buffer, 0, bytes), words };
}

function lpm6Image(entries: PrefixClass[], rows: Rows, verdicts: Verdicts): TableImage {
  const keys = Buffer.alloc(entries.length * LPM6.size);
  const values = alignedBuffer(entries.length * CLASS.size);
  entries.forEach((e, i) => {
    keys.writeUInt32LE(e.cidr.len, i * LPM6.size + LPM6.len);
    keys.set(e.cidr.addr, i * LPM6.size + LPM6.addr);
    writeClass(values.buf, values.words, i * CLASS.size, e.cls, rows, verdicts);
  });
  return { count: entries.length, keySize: LPM6.size, valueSize: CLASS.size, keys, values: values.buf };
}

/** ds_v4_slot_hash() of abi.h: the home slot of (prefix, len) in a table of 1 << bits slots. */
export function v4SlotHash(prefix: number, len: number, bits: number): number {
  const h = Math.imul((prefix ^ Math.imul(len, Limits.V4_HASH_MUL1)) >>> 0, Limits.V4_HASH_MUL2) >>> 0;
  return bits ? h >>> (32 - bits) : 0;
}

/** Long IPv4 prefixes as columns: read from the prefix objects once, then only from here. */
interface LongPrefixes {
  count: number;
  prefix: Uint32Array; // host order, host bits zero
  len: Uint8Array;
  cls: Uint32Array;
}

/**
 * Slot of each long prefix in the open-addressing table (see struct ds_v4_slot): linear probing
 * from the home slot, at least twice as many slots as prefixes (a million prefixes at load
 * 0.38: mean displacement 0.3, maximum 21), doubled in the rare case a prefix lands
 * DS_V4_MAX_PROBES or more slots from its home.
 */
function placeLong(long: LongPrefixes): { bits: number; slotOf: Uint32Array } {
  let bits = long.count ? Math.ceil(Math.log2(long.count * 2)) : 0;
  for (;;) {
    const size = 2 ** bits;
    const used = new Uint8Array(size);
    const slotOf = new Uint32Array(long.count);
    let fits = true;
    for (let i = 0; i < long.count && fits; i++) {
      const home = v4SlotHash(long.prefix[i]!, long.len[i]!, bits);
      let p = 0;
      while (p < Limits.V4_MAX_PROBES && used[(home + p) & (size - 1)]) p++;
      if (p === Limits.V4_MAX_PROBES) fits = false;
      else {
        const at = (home + p) & (size - 1);
        used[at] = 1;
        slotOf[i] = at;
      }
    }
    if (fits) return { bits, slotOf };
    bits++;
  }
}

/**
 * IPv4 prefixes → the two tables the datapath reads (see docs/datapath.md): a direct-indexed
 * array per /16 holding the class of the longest prefix of length <= 16 covering it plus a
 * bitmask of the longer lengths present inside it, and an open-addressing table of
 * (prefix, length > 16) → class.
 */
function v4Images(entries: PrefixClass[], rows: Rows, verdicts: Verdicts): { top: TableImage; long: TableImage; bits: number } {
  const topCls = new Uint32Array(Limits.V4_TOP_ENTRIES);
  const topLen = new Uint8Array(Limits.V4_TOP_ENTRIES); // length of the prefix that set topCls
  const lengths = new Uint32Array(Limits.V4_TOP_ENTRIES);
  const long: LongPrefixes = {
    count: 0,
    prefix: new Uint32Array(entries.length),
    len: new Uint8Array(entries.length),
    cls: new Uint32Array(entries.length),
  };
  for (const e of entries) {
    const a = e.cidr.addr;
    const prefix = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
    const hi = prefix >>> 16;
    const len = e.cidr.len;
    if (len <= TOP_BITS) {
      // expand into every /16 it covers; a longer (more specific) short prefix wins
      for (let i = hi; i < hi + (1 << (TOP_BITS - len)); i++) {
        if (topCls[i] === 0 || topLen[i]! <= len) {
          topCls[i] = e.cls;
          topLen[i] = len;
        }
      }
    } else {
      lengths[hi] = lengths[hi]! | (1 << (len - Limits.V4_LONG_MIN));
      long.prefix[long.count] = prefix;
      long.len[long.count] = len;
      long.cls[long.count] = e.cls;
      long.count++;
    }
  }
  const top = alignedBuffer(Limits.V4_TOP_ENTRIES * TOP.size);
  for (let i = 0; i < Limits.V4_TOP_ENTRIES; i++) {
    writeClass(top.buf, top.words, i * TOP.size + TOP.c, topCls[i]!, rows, verdicts);
    top.words[(i * TOP.size + TOP.lengths) >> 2] = lengths[i]!;
  }
  // only occupied slots are written: a new array map is all zeroes, and len 0 marks an empty slot
  const { bits, slotOf } = placeLong(long);
  const values = alignedBuffer(long.count * SLOT.size);
  for (let i = 0; i < long.count; i++) {
    const at = i * SLOT.size;
    values.words[(at + SLOT.prefix) >> 2] = long.prefix[i]!;
    values.words[(at + SLOT.len) >> 2] = long.len[i]!;
    writeClass(values.buf, values.words, at + SLOT.c, long.cls[i]!, rows, verdicts);
  }
  return {
    top: { count: Limits.V4_TOP_ENTRIES, keySize: 4, valueSize: TOP.size, keys: counting(Limits.V4_TOP_ENTRIES), values: top.buf },
    long: { count: long.count, capacity: 2 ** bits, keySize: 4, valueSize: SLOT.size, keys: u32Values(slotOf), values: values.buf },
    bits,
  };
}

type TwoU32s = 'ds_target_key' | 'ds_tenant_target_key' | 'ds_verdict_key';

/** Records of two u32s (keys such as ds_target_key), at the offsets the ABI gives. */
function twoU32s<N extends TwoU32s>(
  name: N,
  fields: [Parameters<typeof offsetOf<N>>[1], Parameters<typeof offsetOf<N>>[1]],
  rows: { length: number },
  a: (i: number) => number,
  b: (i: number) => number,
): Buffer {
  const size = sizeOf(name);
  const [atA, atB] = [offsetOf(name, fields[0]), offsetOf(name, fields[1])];
  const out = Buffer.alloc(rows.length * size);
  for (let i = 0; i < rows.length; i++) {
    out.writeUInt32LE(a(i), i * size + atA);
    out.writeUInt32LE(b(i), i * size + atB);
  }
  return out;
}

/** A hash map image of u32 values. */
function u32ValueImage(keys: Buffer, keySize: number, values: Uint32Array): TableImage {
  return { count: values.length, keySize, valueSize: 4, keys, values: u32Values(values) };
}

const TARGET = {
  size: sizeOf('ds_target_value'),
  target: offsetOf('ds_target_value', 'target'),
  scoped: offsetOf('ds_target_value', 'scoped'),
  any: offsetOf('ds_target_value', 'any'),
  sourceFree: offsetOf('ds_target_value', 'source_free'),
};

/**
 * ds_target: (dst class, svc class) → the target class, its tenant refinement, and for a target
 * no source class has an entry of its own under (and no tenant refines), `source_free` with the
 * wildcard row's decision for it inline: every source meets that decision, so a new session
 * skips the source and verdict lookups.
 */
function targetImage(t: ClassTables['target'], verdict: ClassTables['verdict'], verdicts: Verdicts): TableImage {
  const keys = twoU32s('ds_target_key', ['dst_class', 'svc_class'], t, (i) => t[i]!.dst, (i) => t[i]!.svc);
  const ownRows = new Set<number>();
  const wildcard = new Map<number, number>();
  for (const v of verdict) {
    if (v.src === 0) wildcard.set(v.target, v.rule);
    else ownRows.add(v.target);
  }
  const values = Buffer.alloc(t.length * TARGET.size);
  t.forEach((e, i) => {
    const at = i * TARGET.size;
    values.writeUInt32LE(e.target, at + TARGET.target);
    values.writeUInt32LE(e.scoped, at + TARGET.scoped);
    if (e.scoped !== 0 || ownRows.has(e.target)) return;
    values.writeUInt8(1, at + TARGET.sourceFree);
    const rule = wildcard.get(e.target) ?? 0;
    if (rule !== 0) verdicts.write(values, at + TARGET.any, rule);
  });
  return { count: t.length, keySize: sizeOf('ds_target_key'), valueSize: TARGET.size, keys, values };
}

/** ds_tenant: tenant id → tenant class. */
function tenantImage(t: ClassTables['tenants']): TableImage {
  return u32ValueImage(u32Values(Uint32Array.from(t, (e) => e.id)), 4, Uint32Array.from(t, (e) => e.cls));
}

function tenantTargetImage(t: ClassTables['tenantTarget']): TableImage {
  const keys = twoU32s('ds_tenant_target_key', ['scoped', 'tenant_class'], t, (i) => t[i]!.scoped, (i) => t[i]!.tenant);
  return u32ValueImage(keys, sizeOf('ds_tenant_target_key'), Uint32Array.from(t, (e) => e.target));
}

function verdictImage(v: ClassTables['verdict'], verdicts: Verdicts): TableImage {
  const keys = twoU32s('ds_verdict_key', ['src_class', 'target_class'], v, (i) => v[i]!.src, (i) => v[i]!.target);
  const values = Buffer.alloc(v.length * VERDICT.size);
  v.forEach((e, i) => verdicts.write(values, i * VERDICT.size, e.rule));
  return { count: v.length, keySize: sizeOf('ds_verdict_key'), valueSize: VERDICT.size, keys, values };
}

function svcImage(runs: ClassTables['svc']): TableImage {
  const classes = new Uint32Array(SVC_ENTRIES);
  for (const r of runs) classes.fill(r.cls, r.lo, r.hi + 1);
  return { count: SVC_ENTRIES, keySize: 4, valueSize: 4, keys: counting(SVC_ENTRIES), values: u32Values(classes) };
}

export function buildImage(ir: PolicyIr, tables: ClassTables): PolicyImage {
  const verdicts = new Verdicts(ir);
  const rows = new Rows(tables.stats.srcClasses, tables.verdict);
  const noRows = Rows.none();
  const src4 = v4Images(tables.src4, rows, verdicts);
  const dst4 = v4Images(tables.dst4, noRows, verdicts);
  return {
    version: ir.version,
    ruleCount: ir.rules.length,
    defaultAction: ir.defaultAction === 'allow' ? Action.ALLOW : Action.DENY,
    defaultLog: ir.defaultLog,
    v4Bits: { src: src4.bits, dst: dst4.bits },
    tables: {
      [MapName.SRC4_TOP]: src4.top,
      [MapName.SRC4_LONG]: src4.long,
      [MapName.DST4_TOP]: dst4.top,
      [MapName.DST4_LONG]: dst4.long,
      [MapName.SRC6]: lpm6Image(tables.src6, rows, verdicts),
      [MapName.DST6]: lpm6Image(tables.dst6, noRows, verdicts),
      [MapName.SVC]: svcImage(tables.svc),
      [MapName.TARGET]: targetImage(tables.target, tables.verdict, verdicts),
      [MapName.TENANT]: tenantImage(tables.tenants),
      [MapName.TENANT_TGT]: tenantTargetImage(tables.tenantTarget),
      [MapName.VERDICT]: verdictImage(rows.inTable, verdicts),
    },
  };
}
