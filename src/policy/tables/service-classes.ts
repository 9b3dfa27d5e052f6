// SPDX-License-Identifier: Apache-2.0
// The service dimension of the class tables: a sweep line over every rule's service-index ranges
// yields runs covering [0, SVC_ENTRIES), each with the class of rules active there; adjacent runs
// of the same class are merged.

import { SVC_ENTRIES, type IrRule } from '../ir/ir.js';
import { ruleServiceRanges } from './service-index.js';
import type { RuleSetInterner } from './rule-sets.js';

export interface ServiceRun {
  lo: number;
  hi: number;
  cls: number;
}

// Event = position * 2^33 + rule * 2 + (1 = range starts, 0 = range ended): one numeric sort orders them.
const POSITION = 2 ** 33;

export function classifyServices(rules: readonly IrRule[], interner: RuleSetInterner, ruleCount: number): ServiceRun[] {
  const events: number[] = [];
  for (const rule of rules) {
    for (const [lo, hi] of ruleServiceRanges(rule)) {
      events.push(lo * POSITION + rule.index * 2 + 1);
      if (hi + 1 < SVC_ENTRIES) events.push((hi + 1) * POSITION + rule.index * 2);
    }
  }
  const sorted = Float64Array.from(events).sort();

  const runs: ServiceRun[] = [];
  const emit = (lo: number, hi: number, cls: number) => {
    const last = runs[runs.length - 1];
    if (last && last.cls === cls && last.hi + 1 === lo) last.hi = hi;
    else runs.push({ lo, hi, cls });
  };
  const activeCount = new Int32Array(ruleCount + 1);
  const isActive = new Uint8Array(ruleCount + 1);
  let active: Int32Array = new Int32Array(0);
  let cls = 0;
  let runStart = 0;
  for (let i = 0; i < sorted.length; ) {
    const position = Math.floor(sorted[i]! / POSITION);
    if (position > runStart) emit(runStart, position - 1, cls);
    runStart = position;
    const touched: number[] = [];
    for (; i < sorted.length && Math.floor(sorted[i]! / POSITION) === position; i++) {
      const code = sorted[i]! % POSITION;
      const rule = Math.floor(code / 2);
      activeCount[rule] = activeCount[rule]! + (code % 2 === 1 ? 1 : -1);
      touched.push(rule);
    }
    // touched is ascending (events at one position sort by rule), so added is too.
    const added: number[] = [];
    let removed = false;
    for (const rule of touched) {
      const now = activeCount[rule]! > 0 ? 1 : 0;
      if (now === isActive[rule]) continue;
      isActive[rule] = now;
      if (now) added.push(rule);
      else removed = true;
    }
    if (!removed && added.length === 0) continue;
    const kept = removed ? active.filter((r) => isActive[r] === 1) : active;
    active = added.length > 0 ? mergeSorted(kept, added) : kept;
    cls = interner.intern(active);
  }
  emit(runStart, SVC_ENTRIES - 1, cls);
  return runs;
}

function mergeSorted(a: Int32Array, b: number[]): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out[k++] = a[i++]!;
    else out[k++] = b[j++]!;
  }
  return out;
}
