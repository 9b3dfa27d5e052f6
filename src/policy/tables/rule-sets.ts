// SPDX-License-Identifier: Apache-2.0
// Interning of rule sets: each distinct set of rule indexes (kept as a sorted Int32Array) gets a
// dense class id from 1; id 0 is the empty set. One interner per table dimension.

import { mix32 } from './hash32.js';

const EMPTY = new Int32Array(0);
/** Rule indexes per slab of set storage (see RuleSetInterner.alloc). */
const SLAB = 1 << 16;

export class RuleSetInterner {
  /** sets[id] = the sorted rule indexes of class `id`; sets[0] is empty. */
  readonly sets: Int32Array[] = [EMPTY];
  /** Ids of the sets of two or more rules, by hashRules of their contents (a collision shares the list). */
  private readonly byHash = new Map<number, number[]>();
  /** Class id of the single-rule set {r}, by r; 0 = not interned yet. */
  private readonly singletons: Int32Array;
  private slab = EMPTY;
  private slabUsed = 0;
  /** Where internUnion builds a union before interning it (copied only if new). */
  private scratch = EMPTY;

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
    const hash = hashRules(rules);
    const ids = this.byHash.get(hash);
    if (ids) for (const id of ids) if (sameRules(this.sets[id]!, rules)) return id;
    const set = this.alloc(n);
    set.set(rules);
    const id = this.add(set);
    if (ids) ids.push(id);
    else this.byHash.set(hash, [id]);
    return id;
  }

  /** The class id of the union of class `cls` and a sorted, duplicate-free list of rule indexes. */
  internUnion(cls: number, rules: ArrayLike<number>): number {
    const set = this.sets[cls]!;
    if (this.scratch.length < set.length + rules.length) this.scratch = new Int32Array(2 * (set.length + rules.length));
    return this.intern(this.scratch.subarray(0, unionInto(set, rules, this.scratch)));
  }

  /** The class id of {rule}. */
  internOne(rule: number): number {
    let id = this.singletons[rule]!;
    if (id === 0) {
      const set = this.alloc(1);
      set[0] = rule;
      id = this.add(set);
      this.singletons[rule] = id;
    }
    return id;
  }

  /**
   * Room for a set of `n` rules: a view into a shared slab. A typed array of its own costs about a
   * microsecond to allocate, ten times a view, and a large policy interns 100,000 sets or more.
   * Sets are never modified once interned.
   */
  private alloc(n: number): Int32Array {
    if (this.slabUsed + n > this.slab.length) {
      this.slab = new Int32Array(Math.max(SLAB, n));
      this.slabUsed = 0;
    }
    const set = new Int32Array(this.slab.buffer, this.slabUsed * 4, n);
    this.slabUsed += n;
    return set;
  }

  private add(set: Int32Array): number {
    this.sets.push(set);
    return this.sets.length - 1;
  }
}

/** The hash `byHash` files a set under: its length, then each rule. */
function hashRules(rules: ArrayLike<number>): number {
  let h = rules.length;
  for (let i = 0; i < rules.length; i++) h = mix32(h, rules[i]!);
  return h;
}

function sameRules(a: Int32Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Writes the sorted union of two sorted, duplicate-free lists to `out`; returns its length. */
function unionInto(a: ArrayLike<number>, b: ArrayLike<number>, out: Int32Array): number {
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
  return k;
}
