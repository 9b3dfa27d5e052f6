// SPDX-License-Identifier: Apache-2.0
// IR → class tables (the datapath's lookup structures, see ClassTables in ir/ir.ts). Each dimension
// maps a packet field to a class = a distinct set of rules. The target table intersects
// destination and service classes (usually few: what is being reached); the verdict table
// intersects source classes (usually many: feeds, ranges) with targets and keeps the first rule,
// so a new session pays for one large lookup, not two. Rules whose source is "any" sit in every
// source class; they live in one wildcard row instead of being multiplied across all of them.
// Rules scoped to tenants refine the target: a (dst, svc) entry's target holds only its rules for
// every tenant, and where scoped rules are among them too, a tenant-target entry per tenant class
// (the tenants named by the same scoped rules) adds that tenant's. A policy without scoped rules
// has neither, and its tables are what they were before tenants existed.
// The tables are enumerated output-sensitively through inverted indexes (rule → classes holding
// it), so the work is proportional to the entries produced, never |S| × |T|. Budgets bound each
// table; exceeding one throws DS_E_TABLE_BUDGET before the memory is spent.

import { DoorstepError } from '../../errors.js';
import type { ClassTables, IrRule, PolicyIr, PrefixClass } from '../ir/ir.js';
import { assignClasses, sortPrefixes, type Side } from './address-classes.js';
import { classifyServices } from './service-classes.js';
import { RuleSetInterner } from './rule-sets.js';

export interface TableBudget {
  /** Entries of the (dst class, svc class) → target table. */
  maxTargets: number;
  /** Entries of the (src class, target class) → rule table. */
  maxVerdicts: number;
  /** Entries of each address table (src4, src6, dst4, dst6). */
  maxPrefixes: number;
  /** Entries of the (scoped target, tenant class) → target table. */
  maxTenantTargets: number;
}

export const DEFAULT_TABLE_BUDGET: Readonly<TableBudget> = Object.freeze({
  maxTargets: 4_000_000,
  maxVerdicts: 4_000_000,
  maxPrefixes: 4_000_000,
  maxTenantTargets: 4_000_000,
});

/** What a table's DS_E_TABLE_BUDGET message says it holds and how to shrink it. */
interface TableInfo {
  name: string;
  what: string;
  advice: string;
}

const TARGET_TABLE: TableInfo = {
  name: 'target',
  what: '(destination class, service class) entries',
  advice: 'use fewer rules whose "to" is "any" or a large group crossed with many distinct port sets, or split the policy',
};
const TENANT_TARGET_TABLE: TableInfo = {
  name: 'tenant target',
  what: '(target, tenant class) entries',
  advice: 'scope fewer rules to tenants one by one (a policy per tenant set shares entries), or split the policy',
};

export function buildTables(ir: PolicyIr, budget: Partial<TableBudget> = {}): ClassTables {
  return buildClassTables(ir, budget).tables;
}

/** The tables and the rule sets behind their source and target classes: what `lint` reasons on. */
export interface ClassAnalysis {
  tables: ClassTables;
  /** srcSets[c] = the sorted rules of source class c (0: none). */
  srcSets: readonly Int32Array[];
  /** targetSets[t] = the sorted rules of target class t, as the verdict table sees them. */
  targetSets: readonly Int32Array[];
  /** 1 at the index of each rule whose source is "any" in both families (the verdict table's wildcard row). */
  anySource: Uint8Array;
}

export function buildClassTables(ir: PolicyIr, budget: Partial<TableBudget> = {}): ClassAnalysis {
  const limits = { ...DEFAULT_TABLE_BUDGET, ...budget };
  const ruleCount = ir.rules.length;

  const srcSets = new RuleSetInterner(ruleCount);
  const dstSets = new RuleSetInterner(ruleCount);
  const svcSets = new RuleSetInterner(ruleCount);
  const addresses = (side: Side, family: 4 | 6): PrefixClass[] => {
    const prefixes = sortPrefixes(ir.rules, side, family);
    const size = prefixes.cidrs.length;
    if (size > limits.maxPrefixes) {
      throw overBudget(`${side}${family}`, count(size), limits.maxPrefixes, 'distinct prefixes', 'merge or split the largest address groups');
    }
    return assignClasses(prefixes, side === 'src' ? srcSets : dstSets, ruleCount);
  };
  const src4 = addresses('src', 4);
  const src6 = addresses('src', 6);
  const dst4 = addresses('dst', 4);
  const dst6 = addresses('dst', 6);
  const svc = classifyServices(ir.rules, svcSets, ruleCount);

  // (dst, svc) → the rules matching both, for every tenant and scoped alike
  const pairSets = new RuleSetInterner(ruleCount);
  const pairs = intersectionTable(dstSets, svcSets, ruleCount, limits.maxTargets, TARGET_TABLE, (rules, from, to) =>
    to - from === 1 ? pairSets.internOne(rules[from]!) : pairSets.intern(rules.subarray(from, to)),
  );
  const scoped = scopedRules(ir.rules);
  const tenantSets = new RuleSetInterner(ruleCount);
  let targetSets = pairSets;
  let target: ClassTables['target'];
  let tenants: ClassTables['tenants'] = [];
  let tenantTarget: ClassTables['tenantTarget'] = [];
  if (!scoped) {
    target = pairs.map((e) => ({ dst: e.a, svc: e.b, target: e.cls, scoped: 0 }));
  } else {
    targetSets = new RuleSetInterner(ruleCount);
    // each pair's target for every tenant: its unscoped rules; the pair itself names the scoped part
    const forAll = new Int32Array(pairSets.sets.length);
    const hasScoped = new Uint8Array(pairSets.sets.length);
    for (let p = 1; p < pairSets.sets.length; p++) {
      const rules = pairSets.sets[p]!;
      const unscoped = rules.filter((r) => scoped[r] === 0);
      forAll[p] = targetSets.intern(unscoped);
      hasScoped[p] = unscoped.length < rules.length ? 1 : 0;
    }
    target = pairs.map((e) => ({ dst: e.a, svc: e.b, target: forAll[e.cls]!, scoped: hasScoped[e.cls] ? e.cls : 0 }));
    tenants = tenantClasses(ir.rules, tenantSets);
    tenantTarget = intersectionTable(pairSets, tenantSets, ruleCount, limits.maxTenantTargets, TENANT_TARGET_TABLE, (rules, from, to, p) =>
      targetSets.internUnion(forAll[p]!, rules.subarray(from, to)),
    ).map((e) => ({ scoped: e.a, tenant: e.b, target: e.cls }));
  }
  const anySource = anySourceRules(ir);
  const verdict = verdictTable(srcSets, targetSets, anySource, ruleCount, limits.maxVerdicts);

  const tables: ClassTables = {
    src4,
    src6,
    dst4,
    dst6,
    svc,
    target,
    tenants,
    tenantTarget,
    verdict,
    stats: {
      srcClasses: srcSets.count,
      dstClasses: dstSets.count,
      svcClasses: svcSets.count,
      targetClasses: targetSets.count,
      tenantClasses: tenantSets.count,
    },
  };
  return { tables, srcSets: srcSets.sets, targetSets: targetSets.sets, anySource };
}

/** 1 for each rule scoped to tenants, by rule index; null when no rule is. */
function scopedRules(rules: readonly IrRule[]): Uint8Array | null {
  if (!rules.some((r) => r.tenants !== null)) return null;
  const scoped = new Uint8Array(rules.length + 1);
  for (const r of rules) if (r.tenants !== null) scoped[r.index] = 1;
  return scoped;
}

/** Each tenant some rule names → the class of the scoped rules naming it; sorted by name. */
function tenantClasses(rules: readonly IrRule[], tenantSets: RuleSetInterner): ClassTables['tenants'] {
  const named = new Map<string, { id: number; rules: number[] }>();
  for (const r of rules) {
    for (const t of r.tenants ?? []) {
      const entry = named.get(t.name);
      if (entry) entry.rules.push(r.index);
      else named.set(t.name, { id: t.id, rules: [r.index] });
    }
  }
  return [...named]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, { id, rules: own }]) => ({ id, name, cls: tenantSets.intern(own) }));
}

/** Rule → the classes of one interner that contain it: list[start[r] .. start[r + 1]), ascending. */
export interface InvertedIndex {
  start: Int32Array;
  list: Int32Array;
}

export function invert(sets: readonly Int32Array[], ruleCount: number): InvertedIndex {
  const start = new Int32Array(ruleCount + 2);
  for (let c = 1; c < sets.length; c++) for (const r of sets[c]!) start[r + 1] = start[r + 1]! + 1;
  for (let r = 1; r < start.length; r++) start[r] = start[r]! + start[r - 1]!;
  const next = start.slice();
  const list = new Int32Array(start[ruleCount + 1]!);
  // Classes in ascending id order, so each rule's list is ascending too.
  for (let c = 1; c < sets.length; c++) for (const r of sets[c]!) list[next[r]!++] = c;
  return { start, list };
}

/**
 * (class A of `aSets`, class B of `bSets`) → class made of A ∩ B (by `make`, given the sorted
 * rules of A ∩ B as rules[from..to), valid only during the call, and A and B), for every non-empty
 * intersection. For
 * each A, walking its rules through the rule → B-class index visits exactly the (B, r) with
 * r ∈ A ∩ B.
 */
function intersectionTable(
  aSets: RuleSetInterner,
  bSets: RuleSetInterner,
  ruleCount: number,
  maxEntries: number,
  table: TableInfo,
  make: (rules: Int32Array, from: number, to: number, a: number, b: number) => number,
): { a: number; b: number; cls: number }[] {
  const bOf = invert(bSets.sets, ruleCount);
  const bCount = bSets.sets.length;
  const seenFor = new Int32Array(bCount); // last A class that touched each B class
  const size = new Int32Array(bCount); // |A ∩ B| so far, then the fill cursor
  const offset = new Int32Array(bCount);
  const touched = new Int32Array(bCount);
  let scratch = new Int32Array(1024);
  const out: { a: number; b: number; cls: number }[] = [];
  for (let ac = 1; ac < aSets.sets.length; ac++) {
    const rules = aSets.sets[ac]!;
    let touchedCount = 0;
    let total = 0;
    for (const r of rules) {
      for (let k = bOf.start[r]!; k < bOf.start[r + 1]!; k++) {
        const bc = bOf.list[k]!;
        if (seenFor[bc] !== ac) {
          seenFor[bc] = ac;
          size[bc] = 0;
          touched[touchedCount++] = bc;
        }
        size[bc] = size[bc]! + 1;
        total++;
      }
    }
    if (touchedCount === 0) continue;
    if (out.length + touchedCount > maxEntries) {
      throw overBudget(table.name, `at least ${count(out.length + touchedCount)}`, maxEntries, table.what, table.advice);
    }
    if (scratch.length < total) scratch = new Int32Array(Math.max(total, scratch.length * 2));
    const order = touched.subarray(0, touchedCount).sort();
    let at = 0;
    for (const bc of order) {
      offset[bc] = at;
      at += size[bc]!;
      size[bc] = offset[bc]!;
    }
    for (const r of rules) {
      for (let k = bOf.start[r]!; k < bOf.start[r + 1]!; k++) {
        const bc = bOf.list[k]!;
        scratch[size[bc]!] = r;
        size[bc] = size[bc]! + 1;
      }
    }
    for (const bc of order) {
      const from = offset[bc]!;
      const to = size[bc]!;
      out.push({ a: ac, b: bc, cls: make(scratch, from, to, ac, bc) });
    }
  }
  return out;
}

/** Rules whose source is "any" in both families (0.0.0.0/0 and ::/0): every source class holds them. */
function anySourceRules(ir: PolicyIr): Uint8Array {
  const any = new Uint8Array(ir.rules.length + 1);
  for (const r of ir.rules) {
    if (r.src.some((c) => c.family === 4 && c.len === 0) && r.src.some((c) => c.family === 6 && c.len === 0)) any[r.index] = 1;
  }
  return any;
}

/**
 * (src class S, target class T) → the first (lowest-index) rule of S ∩ T. Row 0 holds, per T, the
 * first any-source rule in T; it applies to every S. A row S entry is stored only where S's own
 * (not any-source) rules decide earlier, so "any" rules never multiply across source classes.
 */
function verdictTable(
  srcSets: RuleSetInterner,
  targetSets: RuleSetInterner,
  anySource: Uint8Array,
  ruleCount: number,
  maxVerdicts: number,
): ClassTables['verdict'] {
  const verdict: ClassTables['verdict'] = [];
  const push = (src: number, target: number, rule: number) => {
    if (verdict.length >= maxVerdicts) {
      throw overBudget('verdict', `more than ${count(maxVerdicts)}`, maxVerdicts, '(source class, target class) entries', 'give rules fewer distinct destination and port sets per source group, or split the policy');
    }
    verdict.push({ src, target, rule });
  };
  const wildcard = new Int32Array(targetSets.sets.length); // 0 = no any-source rule in T
  for (let t = 1; t < targetSets.sets.length; t++) {
    for (const r of targetSets.sets[t]!) {
      if (anySource[r]) {
        wildcard[t] = r;
        push(0, t, r);
        break;
      }
    }
  }
  const targetOf = invert(targetSets.sets, ruleCount);
  const seenFor = new Int32Array(targetSets.sets.length);
  for (let s = 1; s < srcSets.sets.length; s++) {
    // Rules ascend, so the first own rule to reach a target is the lowest index in (S \ any) ∩ T.
    for (const r of srcSets.sets[s]!) {
      if (anySource[r]) continue;
      for (let k = targetOf.start[r]!; k < targetOf.start[r + 1]!; k++) {
        const t = targetOf.list[k]!;
        if (seenFor[t] === s) continue;
        seenFor[t] = s;
        const w = wildcard[t]!;
        if (w === 0 || r < w) push(s, t, r);
      }
    }
  }
  return verdict;
}

function overBudget(table: string, size: string, limit: number, what: string, advice: string): DoorstepError {
  return new DoorstepError(
    'DS_E_TABLE_BUDGET',
    `the ${table} table would hold ${size} ${what}, over its budget of ${count(limit)}`,
    { hint: `${advice}; or raise the budget if the datapath maps are sized for it` },
  );
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
