// SPDX-License-Identifier: Apache-2.0
// Class tables → map images: the exact key and value bytes of every per-policy map, ready for
// the engine to write into fresh inner maps. Pure; layouts come from the generated ABI.
import { offsetOf, sizeOf } from '../abi/codec.js';
import { Action, Limits } from '../abi/generated.js';
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

function lpm6Image(entries: PrefixClass[]): TableImage {
  const name = 'ds_lpm6_key';
  const keySize = sizeOf(name);
  const lenAt = offsetOf(name, 'prefixlen');
  const addrAt = offsetOf(name, 'addr');
  const keys = Buffer.alloc(entries.length * keySize);
  const classes = new Uint32Array(entries.length);
  entries.forEach((e, i) => {
    keys.writeUInt32LE(e.cidr.len, i * keySize + lenAt);
    keys.set(e.cidr.addr, i * keySize + addrAt);
    classes[i] = e.cls;
  });
  return { count: entries.length, keySize, valueSize: 4, keys, values: u32Values(classes) };
}

const TOP_BITS = 16;

/**
 * IPv4 prefixes → the two tables the datapath reads (see docs/datapath.md): a direct-indexed
 * array per /16 holding the class of the longest prefix of length <= 16 covering it plus a
 * bitmask of the longer lengths present inside it, and a hash of (prefix, length > 16) → class.
 */
function v4Images(entries: PrefixClass[]): { top: TableImage; long: TableImage } {
  const topSize = sizeOf('ds_v4_top');
  const clsAt = offsetOf('ds_v4_top', 'cls');
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
    topValues.writeUInt32LE(topCls[i] ?? 0, i * topSize + clsAt);
    topValues.writeUInt32LE(lengths[i] ?? 0, i * topSize + lengthsAt);
  }
  const keySize = sizeOf('ds_v4_long_key');
  const addrAt = offsetOf('ds_v4_long_key', 'addr');
  const lenAt = offsetOf('ds_v4_long_key', 'len');
  const keys = Buffer.alloc(long.length * keySize);
  const classes = new Uint32Array(long.length);
  long.forEach((e, i) => {
    keys.set(e.cidr.addr, i * keySize + addrAt);
    keys.writeUInt32LE(e.cidr.len, i * keySize + lenAt);
    classes[i] = e.cls;
  });
  return {
    top: { count: Limits.V4_TOP_ENTRIES, keySize: 4, valueSize: topSize, keys: u32Values(topKeys), values: topValues },
    long: { count: long.length, keySize, valueSize: 4, keys, values: u32Values(classes) },
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

function verdictImage(ir: PolicyIr, verdicts: ClassTables['verdict']): TableImage {
  const keys = twoU32Keys(verdicts.map((v) => ({ a: v.src, b: v.target })), 'ds_verdict_key', ['src_class', 'target_class']);
  const valueSize = sizeOf('ds_verdict_value');
  const ruleAt = offsetOf('ds_verdict_value', 'rule');
  const actionAt = offsetOf('ds_verdict_value', 'action');
  const logAt = offsetOf('ds_verdict_value', 'log');
  const values = Buffer.alloc(verdicts.length * valueSize);
  verdicts.forEach((v, i) => {
    const rule = ir.rules[v.rule - 1];
    if (!rule || rule.index !== v.rule) throw new Error(`verdict table names rule ${v.rule}, which the IR does not have`);
    values.writeUInt32LE(v.rule, i * valueSize + ruleAt);
    values.writeUInt8(actionCode(rule.action), i * valueSize + actionAt);
    values.writeUInt8(rule.log ? 1 : 0, i * valueSize + logAt);
  });
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
  const src4 = v4Images(tables.src4);
  const dst4 = v4Images(tables.dst4);
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
      ds_src6: lpm6Image(tables.src6),
      ds_dst6: lpm6Image(tables.dst6),
      ds_svc: svcImage(tables.svc),
      ds_target: targetImage(tables.target),
      ds_verdict: verdictImage(ir, tables.verdict),
    },
  };
}
