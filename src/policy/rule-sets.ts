// SPDX-License-Identifier: Apache-2.0
// Interning of rule sets: each distinct set of rule indexes (kept as a sorted Int32Array) gets a
// dense class id from 1; id 0 is the empty set. One interner per table dimension.

const EMPTY = new Int32Array(0);

export class RuleSetInterner {
  /** sets[id] = the sorted rule indexes of class `id`; sets[0] is empty. */
  readonly sets: Int32Array[] = [EMPTY];
  private readonly byKey = new Map<string, number>();
  /** Class id of the single-rule set {r}, by r; 0 = not interned yet. */
  private readonly singletons: Int32Array;

  constructor(ruleCount: number) {
    this.singletons = new Int32Array(ruleCount + 1);
  }

  /** Number of non-empty classes. */
  get count(): number {
    return this.sets.length - 1;
  }

  /** The class id of a sorted, duplicate-free list of rule indexes (copied if new). */
  intern(rules: ArrayLike<number>): number {
    const n = rules.length;
    if (n === 0) return 0;
    if (n === 1) return this.internOne(rules[0]!);
    const key = Array.prototype.join.call(rules, ',');
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.add(Int32Array.from(rules));
      this.byKey.set(key, id);
    }
    return id;
  }

  /** The class id of {rule}. */
  internOne(rule: number): number {
    let id = this.singletons[rule]!;
    if (id === 0) {
      id = this.add(Int32Array.of(rule));
      this.singletons[rule] = id;
    }
    return id;
  }

  private add(set: Int32Array): number {
    this.sets.push(set);
    return this.sets.length - 1;
  }
}

/** The sorted union of two sorted, duplicate-free lists. */
export function unionSorted(a: ArrayLike<number>, b: ArrayLike<number>): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x < y) {
      out[k++] = x;
      i++;
    } else if (y < x) {
      out[k++] = y;
      j++;
    } else {
      out[k++] = x;
      i++;
      j++;
    }
  }
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return k === out.length ? out : out.subarray(0, k);
}
