// SPDX-License-Identifier: Apache-2.0
// Class tables → map images: the exact key and value bytes of every per-policy map, ready for
// the engine to write into fresh inner maps. Pure; layouts come from the generated ABI.
import { offsetOf, sizeOf } from '../abi/codec.js';
import { Action, Limits, RowKind } from '../abi/generated.js';
import type { ClassTables, PolicyIr, PrefixClass } from './ir.js';
import { SVC_ENTRIES } from './ir.js';

/** Keys and values of one map, `count` records each, packed back to back. */
export interface TableImage {
  count: number;
  keySize: number;
  valueSize: number;
  keys: Buffer;
  values: Buffer;
}

export const TABLE_NAMES = [
  'ds_src4_top',
  'ds_src4_long',
  'ds_dst4_top',
  'ds_dst4_long',
  'ds_src6',
  'ds_dst6',
  'ds_svc',
  'ds_target',
  'ds_verdict',
] as const;
export type TableName = (typeof TABLE_NAMES)[number];

export interface PolicyImage {
  version: string;
  /** Rules 1..ruleCount; index 0 is the default action. */
  ruleCount: number;
  defaultAction: number;
  defaultLog: boolean;
  tables: Record<TableName, TableImage>;
}

/** A view of u32s as map bytes (host order, as the ABI specifies). */
function u32Values(values: Uint32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** What a source class's address entries carry of its verdict row (see ds_addr_class). */
type RowSummary = { kind: 'none' } | { kind: 'one'; target: number; rule: number } | { kind: 'many' };
type Rows = (cls: number) => RowSummary;
const NO_ROWS: Rows = () => ({ kind: 'none' });

const CLASS_SIZE = sizeOf('ds_addr_class');

/** Writes struct ds_addr_class for `cls` at `at` of `buf`. */
function writeAddrClass(buf: Buffer, at: number, cls: number, rows: Rows, verdict: VerdictWriter): void {
  buf.writeUInt32LE(cls, at + offsetOf('ds_addr_class', 'cls'));
  const row = cls ? rows(cls) : ({ kind: 'none' } as const);
  const kind = row.kind === 'one' ? RowKind.ONE : row.kind === 'many' ? RowKind.MANY : RowKind.NONE;
  buf.writeUInt8(kind, at + offsetOf('ds_addr_class', 'row'));
  if (row.kind === 'one') {
    buf.writeUInt32LE(row.target, at + offsetOf('ds_addr_class', 'row_target'));
    verdict(buf, at + offsetOf('ds_addr_class', 'row_verdict'), row.rule);
  }
}

function lpm6Image(entries: PrefixClass[], rows: Rows, verdict: VerdictWriter): TableImage {
  const name = 'ds_lpm6_key';
  const keySize = sizeOf(name);
  const lenAt = offsetOf(name, 'prefixlen');
  const addrAt = offsetOf(name, 'addr');
  const keys = Buffer.alloc(entries.length * keySize);
  const values = Buffer.alloc(entries.length * CLASS_SIZE);
  entries.forEach((e, i) => {
    keys.writeUInt32LE(e.cidr.len, i * keySize + lenAt);
    keys.set(e.cidr.addr, i * keySize + addrAt);
    writeAddrClass(values, i * CLASS_SIZE, e.cls, rows, verdict);
  });
  return { count: entries.length, keySize, valueSize: CLASS_SIZE, keys, values };
}

const TOP_BITS = 16;

/**
 * IPv4 prefixes → the two tables the datapath reads (see docs/datapath.md): a direct-indexed
 * array per /16 holding the class of the longest prefix of length <= 16 covering it plus a
 * bitmask of the longer lengths present inside it, and a hash of (prefix, length > 16) → class.
 */
function v4Images(entries: PrefixClass[], rows: Rows, verdict: VerdictWriter): { top: TableImage; long: TableImage } {
  const topSize = sizeOf('ds_v4_top');
  const classAt = offsetOf('ds_v4_top', 'c');
  const lengthsAt = offsetOf('ds_v4_top', 'lengths');
  const topCls = new Uint32Array(Limits.V4_TOP_ENTRIES);
  const topLen = new Uint8Array(Limits.V4_TOP_ENTRIES); // length of the prefix that set topCls
  const lengths = new Uint32Array(Limits.V4_TOP_ENTRIES);
  const long: PrefixClass[] = [];
  for (const e of entries) {
    const a = e.cidr.addr;
    const hi = ((a[0] ?? 0) << 8) | (a[1] ?? 0);
    if (e.cidr.len <= TOP_BITS) {
      const span = 1 << (TOP_BITS - e.cidr.len);
      for (let i = hi; i < hi + span; i++) {
        // a longer (more specific) short prefix wins; the same slot is never written twice at one length
        if (topCls[i] === 0 || (topLen[i] ?? 0) <= e.cidr.len) {
          topCls[i] = e.cls;
          topLen[i] = e.cidr.len;
        }
      }
    } else {
      lengths[hi] = (lengths[hi] ?? 0) | (1 << (e.cidr.len - Limits.V4_LONG_MIN));
      long.push(e);
    }
  }
  const topValues = Buffer.alloc(Limits.V4_TOP_ENTRIES * topSize);
  const topKeys = new Uint32Array(Limits.V4_TOP_ENTRIES);
  for (let i = 0; i < Limits.V4_TOP_ENTRIES; i++) {
    topKeys[i] = i;
    writeAddrClass(topValues, i * topSize + classAt, topCls[i] ?? 0, rows, verdict);
    topValues.writeUInt32LE(lengths[i] ?? 0, i * topSize + lengthsAt);
  }
  const keySize = sizeOf('ds_v4_long_key');
  const addrAt = offsetOf('ds_v4_long_key', 'addr');
  const lenAt = offsetOf('ds_v4_long_key', 'len');
  const keys = Buffer.alloc(long.length * keySize);
  const values = Buffer.alloc(long.length * CLASS_SIZE);
  long.forEach((e, i) => {
    keys.set(e.cidr.addr, i * keySize + addrAt);
    keys.writeUInt32LE(e.cidr.len, i * keySize + lenAt);
    writeAddrClass(values, i * CLASS_SIZE, e.cls, rows, verdict);
  });
  return {
    top: { count: Limits.V4_TOP_ENTRIES, keySize: 4, valueSize: topSize, keys: u32Values(topKeys), values: topValues },
    long: { count: long.length, keySize, valueSize: CLASS_SIZE, keys, values },
  };
}

/** Keys of two u32s (ds_target_key, ds_verdict_key), at the offsets the ABI gives. */
function twoU32Keys(rows: { a: number; b: number }[], name: 'ds_target_key' | 'ds_verdict_key', fields: [string, string]): Buffer {
  const keySize = sizeOf(name);
  const at = [offsetOf(name, fields[0] as never), offsetOf(name, fields[1] as never)] as const;
  const keys = Buffer.alloc(rows.length * keySize);
  rows.forEach((r, i) => {
    keys.writeUInt32LE(r.a, i * keySize + at[0]);
    keys.writeUInt32LE(r.b, i * keySize + at[1]);
  });
  return keys;
}

function targetImage(targets: ClassTables['target']): TableImage {
  const keys = twoU32Keys(targets.map((t) => ({ a: t.dst, b: t.svc })), 'ds_target_key', ['dst_class', 'svc_class']);
  const values = new Uint32Array(targets.map((t) => t.target));
  return { count: targets.length, keySize: sizeOf('ds_target_key'), valueSize: 4, keys, values: u32Values(values) };
}

/** Writes struct ds_verdict_value for a rule index at `at` of `buf`. */
type VerdictWriter = (buf: Buffer, at: number, rule: number) => void;

function verdictWriter(ir: PolicyIr): VerdictWriter {
  const ruleAt = offsetOf('ds_verdict_value', 'rule');
  const actionAt = offsetOf('ds_verdict_value', 'action');
  const logAt = offsetOf('ds_verdict_value', 'log');
  return (buf, at, index) => {
    const rule = ir.rules[index - 1];
    if (!rule || rule.index !== index) throw new Error(`verdict table names rule ${index}, which the IR does not have`);
    buf.writeUInt32LE(index, at + ruleAt);
    buf.writeUInt8(actionCode(rule.action), at + actionAt);
    buf.writeUInt8(rule.log ? 1 : 0, at + logAt);
  };
}

/**
 * Summarise each source class's own verdict row: the address entries carry a one-entry row
 * inline, so only rows of several entries (and the wildcard row 0) need the verdict table.
 */
function summariseRows(verdicts: ClassTables['verdict']): { rows: Rows; inTable: ClassTables['verdict'] } {
  const count = new Map<number, number>();
  for (const v of verdicts) if (v.src !== 0) count.set(v.src, (count.get(v.src) ?? 0) + 1);
  const one = new Map<number, { target: number; rule: number }>();
  const inTable: ClassTables['verdict'] = [];
  for (const v of verdicts) {
    if (v.src !== 0 && count.get(v.src) === 1) one.set(v.src, { target: v.target, rule: v.rule });
    else inTable.push(v);
  }
  const rows: Rows = (cls) => {
    const single = one.get(cls);
    if (single) return { kind: 'one', ...single };
    return count.has(cls) ? { kind: 'many' } : { kind: 'none' };
  };
  return { rows, inTable };
}

function verdictImage(verdicts: ClassTables['verdict'], write: VerdictWriter): TableImage {
  const keys = twoU32Keys(verdicts.map((v) => ({ a: v.src, b: v.target })), 'ds_verdict_key', ['src_class', 'target_class']);
  const valueSize = sizeOf('ds_verdict_value');
  const values = Buffer.alloc(verdicts.length * valueSize);
  verdicts.forEach((v, i) => write(values, i * valueSize, v.rule));
  return { count: verdicts.length, keySize: sizeOf('ds_verdict_key'), valueSize, keys, values };
}

function svcImage(runs: ClassTables['svc']): TableImage {
  const classes = new Uint32Array(SVC_ENTRIES);
  for (const r of runs) classes.fill(r.cls, r.lo, r.hi + 1);
  const keys = new Uint32Array(SVC_ENTRIES);
  for (let i = 0; i < SVC_ENTRIES; i++) keys[i] = i;
  return { count: SVC_ENTRIES, keySize: 4, valueSize: 4, keys: u32Values(keys), values: u32Values(classes) };
}

const actionCode = (a: 'allow' | 'deny') => (a === 'allow' ? Action.ALLOW : Action.DENY);

export function buildImage(ir: PolicyIr, tables: ClassTables): PolicyImage {
  const write = verdictWriter(ir);
  const { rows, inTable } = summariseRows(tables.verdict);
  const src4 = v4Images(tables.src4, rows, write);
  const dst4 = v4Images(tables.dst4, NO_ROWS, write);
  return {
    version: ir.version,
    ruleCount: ir.rules.length,
    defaultAction: actionCode(ir.defaultAction),
    defaultLog: ir.defaultLog,
    tables: {
      ds_src4_top: src4.top,
      ds_src4_long: src4.long,
      ds_dst4_top: dst4.top,
      ds_dst4_long: dst4.long,
      ds_src6: lpm6Image(tables.src6, rows, write),
      ds_dst6: lpm6Image(tables.dst6, NO_ROWS, write),
      ds_svc: svcImage(tables.svc),
      ds_target: targetImage(tables.target),
      ds_verdict: verdictImage(inTable, write),
    },
  };
}
