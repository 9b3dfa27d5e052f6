// SPDX-License-Identifier: Apache-2.0
// IR → class tables (the datapath's lookup structures, see ClassTables in ir.ts). Each dimension
// maps a packet field to a class = a distinct set of rules; the pair table intersects source and
// destination classes, the verdict table intersects pair and service classes and keeps the first
// rule. Both are enumerated output-sensitively through inverted indexes (rule → classes holding
// it), so the work is proportional to the entries produced, never |S| × |D|. Budgets bound each
// table; exceeding one throws DS_E_TABLE_BUDGET before the memory is spent.

import { DoorstepError } from '../errors.js';
import type { ClassTables, PolicyIr, PrefixClass } from './ir.js';
import { assignClasses, sortPrefixes, type Side } from './address-classes.js';
import { classifyServices } from './service-classes.js';
import { RuleSetInterner } from './rule-sets.js';

export interface TableBudget {
  /** Entries of the (src class, dst class) → pair table. */
  maxPairs: number;
  /** Entries of the (pair class, svc class) → rule table. */
  maxVerdicts: number;
  /** Entries of each address table (src4, src6, dst4, dst6). */
  maxPrefixes: number;
}

export const DEFAULT_TABLE_BUDGET: Readonly<TableBudget> = Object.freeze({
  maxPairs: 4_000_000,
  maxVerdicts: 4_000_000,
  maxPrefixes: 4_000_000,
});

export function buildTables(ir: PolicyIr, budget: Partial<TableBudget> = {}): ClassTables {
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

  const pairSets = new RuleSetInterner(ruleCount);
  const pair = pairTable(srcSets, dstSets, pairSets, ruleCount, limits.maxPairs);
  const verdict = verdictTable(pairSets, svcSets, ruleCount, limits.maxVerdicts);

  return {
    src4,
    src6,
    dst4,
    dst6,
    svc,
    pair,
    verdict,
    stats: { srcClasses: srcSets.count, dstClasses: dstSets.count, svcClasses: svcSets.count, pairClasses: pairSets.count },
  };
}

/** Rule → the classes of one interner that contain it: list[start[r] .. start[r + 1]), ascending. */
interface InvertedIndex {
  start: Int32Array;
  list: Int32Array;
}

function invert(sets: RuleSetInterner, ruleCount: number): InvertedIndex {
  const start = new Int32Array(ruleCount + 2);
  for (let c = 1; c < sets.sets.length; c++) for (const r of sets.sets[c]!) start[r + 1] = start[r + 1]! + 1;
  for (let r = 1; r < start.length; r++) start[r] = start[r]! + start[r - 1]!;
  const next = start.slice();
  const list = new Int32Array(start[ruleCount + 1]!);
  // Classes in ascending id order, so each rule's list is ascending too.
  for (let c = 1; c < sets.sets.length; c++) for (const r of sets.sets[c]!) list[next[r]!++] = c;
  return { start, list };
}

/**
 * (src class S, dst class D) → pair class of S ∩ D, for every non-empty intersection. For each S,
 * walking its rules through the rule → dst-class index visits exactly the (D, r) with r ∈ S ∩ D.
 */
function pairTable(
  srcSets: RuleSetInterner,
  dstSets: RuleSetInterner,
  pairSets: RuleSetInterner,
  ruleCount: number,
  maxPairs: number,
): ClassTables['pair'] {
  const dstOf = invert(dstSets, ruleCount);
  const dstCount = dstSets.sets.length;
  const seenFor = new Int32Array(dstCount); // last src class that touched each dst class
  const size = new Int32Array(dstCount); // |S ∩ D| so far, then the fill cursor
  const offset = new Int32Array(dstCount);
  const touched = new Int32Array(dstCount);
  let scratch = new Int32Array(1024);
  const pair: ClassTables['pair'] = [];
  for (let s = 1; s < srcSets.sets.length; s++) {
    const rules = srcSets.sets[s]!;
    let touchedCount = 0;
    let total = 0;
    for (const r of rules) {
      for (let k = dstOf.start[r]!; k < dstOf.start[r + 1]!; k++) {
        const d = dstOf.list[k]!;
        if (seenFor[d] !== s) {
          seenFor[d] = s;
          size[d] = 0;
          touched[touchedCount++] = d;
        }
        size[d] = size[d]! + 1;
        total++;
      }
    }
    if (touchedCount === 0) continue;
    if (pair.length + touchedCount > maxPairs) {
      throw overBudget('pair', `at least ${count(pair.length + touchedCount)}`, maxPairs, '(source class, destination class) entries', 'use fewer rules whose from or to is "any" or a large group crossed with many others, or split the policy');
    }
    if (scratch.length < total) scratch = new Int32Array(Math.max(total, scratch.length * 2));
    const order = touched.subarray(0, touchedCount).sort();
    let at = 0;
    for (const d of order) {
      offset[d] = at;
      at += size[d]!;
      size[d] = offset[d]!;
    }
    for (const r of rules) {
      for (let k = dstOf.start[r]!; k < dstOf.start[r + 1]!; k++) {
        const d = dstOf.list[k]!;
        scratch[size[d]!] = r;
        size[d] = size[d]! + 1;
      }
    }
    for (const d of order) {
      const from = offset[d]!;
      const to = size[d]!;
      const id = to - from === 1 ? pairSets.internOne(scratch[from]!) : pairSets.intern(scratch.subarray(from, to));
      pair.push({ src: s, dst: d, pair: id });
    }
  }
  return pair;
}

/** (pair class P, svc class V) → the first (lowest-index) rule of P ∩ V, for every non-empty intersection. */
function verdictTable(
  pairSets: RuleSetInterner,
  svcSets: RuleSetInterner,
  ruleCount: number,
  maxVerdicts: number,
): ClassTables['verdict'] {
  const svcOf = invert(svcSets, ruleCount);
  const seenFor = new Int32Array(svcSets.sets.length);
  const verdict: ClassTables['verdict'] = [];
  for (let p = 1; p < pairSets.sets.length; p++) {
    // Rules ascend, so the first rule to reach a svc class is the lowest index in P ∩ V.
    for (const r of pairSets.sets[p]!) {
      for (let k = svcOf.start[r]!; k < svcOf.start[r + 1]!; k++) {
        const v = svcOf.list[k]!;
        if (seenFor[v] === p) continue;
        seenFor[v] = p;
        if (verdict.length >= maxVerdicts) {
          throw overBudget('verdict', `more than ${count(maxVerdicts)}`, maxVerdicts, '(pair class, service class) entries', 'give rules fewer distinct port sets, or use fewer crossed "any" rules');
        }
        verdict.push({ pair: p, svc: v, rule: r });
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
