// SPDX-License-Identifier: Apache-2.0
// isName, the written-out NAME_PATTERN (src/policy/parse/schema.ts): the same answer on every string.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isName, NAME_PATTERN } from '../../src/policy/parse/schema.js';
import { prng, Random } from '../lib/random-policy.js';

test('isName agrees with NAME_PATTERN', () => {
  const fixed = ['', 'a', '-', 'a-', '-a', 'a-b', 'web-1', 'Web', 'a_b', 'a.b', '10.0.0.0/8', 'any', 'é', 'a\n', '\na', 'a b'];
  fixed.push('a'.repeat(63), 'a'.repeat(64), `${'a'.repeat(62)}-`);
  const r = new Random(prng(23));
  const alphabet = ['a', 'z', '0', '9', '-', 'A', '_', '.', '/', ':', ' ', '\n', '\u2028', 'é'];
  for (let i = 0; i < 20000; i++) {
    const length = r.pick([0, 1, 2, 3, 8, 62, 63, 64, 65]);
    fixed.push(Array.from({ length }, () => (r.chance(0.9) ? r.pick(['a', 'k', 'z', '0', '5', '-']) : r.pick(alphabet))).join(''));
  }
  for (const text of fixed) assert.equal(isName(text), NAME_PATTERN.test(text), JSON.stringify(text));
});
