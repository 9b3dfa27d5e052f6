// SPDX-License-Identifier: Apache-2.0
// Interning of rule sets (src/policy/tables/rule-sets.ts): equal sets get one id, different sets
// different ids, also when their hashes collide.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuleSetInterner } from '../../src/policy/tables/rule-sets.js';
import { mix32 } from '../../src/policy/tables/hash32.js';

test('equal sets share an id, different sets do not; ids count from 1, 0 is the empty set', () => {
  const sets = new RuleSetInterner(10);
  assert.equal(sets.intern([]), 0);
  const a = sets.intern([1, 2, 3]);
  const b = sets.intern(Int32Array.of(1, 2));
  const c = sets.internOne(7);
  assert.deepEqual([a, b, c], [1, 2, 3]);
  assert.equal(sets.intern(Int32Array.of(1, 2, 3)), a);
  assert.equal(sets.intern([1, 2]), b);
  assert.equal(sets.intern([7]), c);
  assert.equal(sets.count, 3);
  assert.deepEqual([...sets.sets[a]!], [1, 2, 3]);
});

test('sets whose hashes collide still get their own ids', () => {
  // Two-rule sets with the hash interning uses (the length, then each rule), until two collide.
  const seen = new Map<number, [number, number]>();
  let pair: [[number, number], [number, number]] | undefined;
  for (let a = 1; !pair; a++) {
    for (let b = a + 1; b < a + 64 && !pair; b++) {
      const h = mix32(mix32(2, a), b);
      const earlier = seen.get(h);
      if (earlier) pair = [earlier, [a, b]];
      else seen.set(h, [a, b]);
    }
  }
  const [x, y] = pair;
  const sets = new RuleSetInterner(Math.max(...x, ...y));
  const ix = sets.intern(x);
  const iy = sets.intern(y);
  assert.notEqual(ix, iy);
  assert.equal(sets.intern(y), iy);
  assert.equal(sets.intern(x), ix);
  assert.deepEqual([...sets.sets[iy]!], y);
});

test('internUnion interns the union of a class and a list', () => {
  const sets = new RuleSetInterner(20);
  const a = sets.intern([2, 5, 9]);
  assert.equal(sets.internUnion(a, [1, 5, 12]), sets.intern([1, 2, 5, 9, 12]));
  assert.equal(sets.internUnion(a, [5]), a);
  assert.equal(sets.internUnion(0, [7]), sets.internOne(7));
  const big = sets.intern(Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(sets.internUnion(sets.internOne(3), Array.from({ length: 20 }, (_, i) => i + 1)), big);
});
