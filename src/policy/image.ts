// SPDX-License-Identifier: Apache-2.0
// Class tables → map images: the exact key and value bytes of every per-policy map, ready for
// the engine to write into fresh inner maps. Pure; layouts come from the generated ABI.
import { encodeStruct, offsetOf, sizeOf } from '../abi/codec.js';
import { Action } from '../abi/generated.js';
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

export const TABLE_NAMES = ['ds_src4', 'ds_dst4', 'ds_src6', 'ds_dst6', 'ds_svc', 'ds_pair', 'ds_verdict', 'ds_rules'] as const;
export type TableName = (typeof TABLE_NAMES)[number];

export interface PolicyImage {
  version: string;
  /** Rules 1..ruleCount; index 0 is the default action. */
  ruleCount: number;
  tables: Record<TableName, TableImage>;
}

/** A view of u32s as map bytes (host order, as the ABI specifies). */
function u32Values(values: Uint32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function prefixImage(entries: PrefixClass[], family: 4 | 6): TableImage {
  const name = family === 4 ? 'ds_lpm4_key' : 'ds_lpm6_key';
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

function pairImage(rows: { a: number; b: number; v: number }[], name: 'ds_pair_key' | 'ds_verdict_key'): TableImage {
  const keySize = sizeOf(name);
  const keys = Buffer.alloc(rows.length * keySize);
  const values = new Uint32Array(rows.length);
  rows.forEach((r, i) => {
    keys.writeUInt32LE(r.a, i * keySize);
    keys.writeUInt32LE(r.b, i * keySize + 4);
    values[i] = r.v;
  });
  return { count: rows.length, keySize, valueSize: 4, keys, values: u32Values(values) };
}

function svcImage(runs: ClassTables['svc']): TableImage {
  const classes = new Uint32Array(SVC_ENTRIES);
  for (const r of runs) classes.fill(r.cls, r.lo, r.hi + 1);
  const keys = new Uint32Array(SVC_ENTRIES);
  for (let i = 0; i < SVC_ENTRIES; i++) keys[i] = i;
  return { count: SVC_ENTRIES, keySize: 4, valueSize: 4, keys: u32Values(keys), values: u32Values(classes) };
}

function rulesImage(ir: PolicyIr): TableImage {
  const valueSize = sizeOf('ds_rule_value');
  const count = ir.rules.length + 1;
  const values = Buffer.alloc(count * valueSize);
  const code = (a: 'allow' | 'deny') => (a === 'allow' ? Action.ALLOW : Action.DENY);
  values.set(encodeStruct('ds_rule_value', { action: code(ir.defaultAction), log: ir.defaultLog ? 1 : 0 }), 0);
  for (const r of ir.rules) {
    values.set(encodeStruct('ds_rule_value', { action: code(r.action), log: r.log ? 1 : 0 }), r.index * valueSize);
  }
  const keys = new Uint32Array(count);
  for (let i = 0; i < count; i++) keys[i] = i;
  return { count, keySize: 4, valueSize, keys: u32Values(keys), values };
}

export function buildImage(ir: PolicyIr, tables: ClassTables): PolicyImage {
  // The pair and verdict keys are two u32s each; check the ABI agrees before packing them so.
  for (const [name, a, b] of [
    ['ds_pair_key', 'src_class', 'dst_class'],
    ['ds_verdict_key', 'pair_class', 'svc_class'],
  ] as const) {
    const at = [offsetOf(name, a as never), offsetOf(name, b as never)];
    if (at[0] !== 0 || at[1] !== 4 || sizeOf(name) !== 8) throw new Error(`ABI: ${name} is no longer two u32s`);
  }
  return {
    version: ir.version,
    ruleCount: ir.rules.length,
    tables: {
      ds_src4: prefixImage(tables.src4, 4),
      ds_dst4: prefixImage(tables.dst4, 4),
      ds_src6: prefixImage(tables.src6, 6),
      ds_dst6: prefixImage(tables.dst6, 6),
      ds_svc: svcImage(tables.svc),
      ds_pair: pairImage(tables.pair.map((p) => ({ a: p.src, b: p.dst, v: p.pair })), 'ds_pair_key'),
      ds_verdict: pairImage(tables.verdict.map((v) => ({ a: v.pair, b: v.svc, v: v.rule })), 'ds_verdict_key'),
      ds_rules: rulesImage(ir),
    },
  };
}
