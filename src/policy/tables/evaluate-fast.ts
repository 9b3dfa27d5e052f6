// SPDX-License-Identifier: Apache-2.0
// Classifies a packet with the class tables exactly as the datapath does, in plain TypeScript:
// longest-prefix match for the source and destination classes (a map per prefix length, longest
// first), the svc run holding the service index, the target table (refined by the tenant's class
// where its entry has scoped rules), then the verdict table's row for the source class, falling
// back to its wildcard row 0; a miss anywhere means rule 0, the policy default. The fast path of
// evaluate.ts (test/unit/evaluate-fast.equivalence.test.ts holds them together); the datapath
// mirrors its semantics. Indexes are built once per ClassTables object and cached.

import type { ClassTables, Decision, FlowTuple, PolicyIr, PrefixClass } from '../ir/ir.js';
import { maskAddress } from '../ir/cidr.js';
import { flowServiceIndex } from './service-index.js';

/** Prefix length → (masked address as hex → class), lengths longest first. */
type PrefixMaps = { len: number; classes: Map<string, number> }[];

interface LookupIndex {
  src4: PrefixMaps;
  src6: PrefixMaps;
  dst4: PrefixMaps;
  dst6: PrefixMaps;
  svcStarts: number[];
  svcClasses: number[];
  target: Map<string, { target: number; scoped: number }>;
  tenant: Map<number, number>;
  tenantTarget: Map<string, number>;
  verdict: Map<string, number>;
}

const indexes = new WeakMap<ClassTables, LookupIndex>();

/** The deciding rule index for a packet (0 = the policy default). */
export function lookupRule(tables: ClassTables, t: FlowTuple): number {
  const index = indexFor(tables);
  const src = longestPrefixClass(t.family === 4 ? index.src4 : index.src6, t.src);
  const dst = longestPrefixClass(t.family === 4 ? index.dst4 : index.dst6, t.dst);
  const svc = serviceClass(index, flowServiceIndex(t));
  const entry = index.target.get(`${dst},${svc}`);
  if (entry === undefined) return 0;
  let target = entry.target;
  if (entry.scoped !== 0 && t.tenant) {
    const tenantClass = index.tenant.get(t.tenant);
    if (tenantClass !== undefined) target = index.tenantTarget.get(`${entry.scoped},${tenantClass}`) ?? target;
  }
  if (target === 0) return 0;
  return index.verdict.get(`${src},${target}`) ?? index.verdict.get(`0,${target}`) ?? 0;
}

/** The decision for a packet: the rule from the tables, its action from the IR's rule list. */
export function lookupTables(ir: PolicyIr, tables: ClassTables, t: FlowTuple): Decision {
  const rule = lookupRule(tables, t);
  if (rule === 0) return { action: ir.defaultAction, rule: 0 };
  const action = ir.rules[rule - 1]?.action;
  if (action === undefined) throw new Error(`class tables name rule ${rule}, which the IR does not have`);
  return { action, rule };
}

function indexFor(tables: ClassTables): LookupIndex {
  let index = indexes.get(tables);
  if (!index) {
    index = {
      src4: prefixMaps(tables.src4),
      src6: prefixMaps(tables.src6),
      dst4: prefixMaps(tables.dst4),
      dst6: prefixMaps(tables.dst6),
      svcStarts: tables.svc.map((r) => r.lo),
      svcClasses: tables.svc.map((r) => r.cls),
      target: new Map(tables.target.map((e) => [`${e.dst},${e.svc}`, { target: e.target, scoped: e.scoped }])),
      tenant: new Map(tables.tenants.map((e) => [e.id, e.cls])),
      tenantTarget: new Map(tables.tenantTarget.map((e) => [`${e.scoped},${e.tenant}`, e.target])),
      verdict: new Map(tables.verdict.map((e) => [`${e.src},${e.target}`, e.rule])),
    };
    indexes.set(tables, index);
  }
  return index;
}

function prefixMaps(entries: PrefixClass[]): PrefixMaps {
  const byLength = new Map<number, Map<string, number>>();
  for (const { cidr, cls } of entries) {
    let classes = byLength.get(cidr.len);
    if (!classes) byLength.set(cidr.len, (classes = new Map()));
    classes.set(hex(cidr.addr), cls);
  }
  return [...byLength].map(([len, classes]) => ({ len, classes })).sort((a, b) => b.len - a.len);
}

function longestPrefixClass(maps: PrefixMaps, addr: Uint8Array): number {
  for (const { len, classes } of maps) {
    const cls = classes.get(hex(maskAddress(addr, len)));
    if (cls !== undefined) return cls;
  }
  return 0;
}

/** The class of the svc run containing `at` (runs cover the whole space, sorted by start). */
function serviceClass(index: LookupIndex, at: number): number {
  let lo = 0;
  let hi = index.svcStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (index.svcStarts[mid]! <= at) lo = mid;
    else hi = mid - 1;
  }
  return index.svcClasses[lo] ?? 0;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
