// SPDX-License-Identifier: Apache-2.0
// Merging of prefix lists at sizes the short-list tests do not reach (src/policy/ir/cidr-set.ts):
// lists sorted natively rather than in place, and lists mixing both families.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, parseCidr } from '../../src/policy/ir/cidr.js';
import { mergeCidrs } from '../../src/policy/ir/cidr-set.js';
import type { Cidr } from '../../src/policy/ir/ir.js';
import { prng, Random, randomCidr } from '../lib/random-policy.js';

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed;
}

const texts = (list: Cidr[]) => list.map((c) => c.text);

/** A few addresses in and around every input prefix, of its family. */
function probes(inputs: Cidr[]): [4 | 6, Uint8Array][] {
  const out: [4 | 6, Uint8Array][] = [];
  for (const c of inputs) {
    for (const delta of [-1, 0, 1, 255]) {
      const addr = Uint8Array.from(c.addr);
      const last = addr.length - 1;
      addr[last] = (addr[last]! + delta) & 255;
      const bit = Math.min(last, c.len >>> 3); // the first host bit, or the last address bit
      if (delta === 255) addr[bit] = addr[bit]! ^ (0x80 >>> (c.len & 7));
      out.push([c.family, addr]);
    }
  }
  return out;
}

test('long and mixed-family lists merge to sorted, minimal lists covering the same addresses', () => {
  const r = new Random(prng(17));
  for (let round = 0; round < 60; round++) {
    const inputs = Array.from({ length: r.pick([17, 40, 300]) }, () => cidr(randomCidr(r).text));
    const merged = mergeCidrs(inputs);
    for (const [family, addr] of probes(inputs)) {
      assert.equal(
        merged.some((c) => cidrContains(c, family, addr)),
        inputs.some((c) => cidrContains(c, family, addr)),
      );
    }
    for (let i = 1; i < merged.length; i++) assert.ok(merged[i - 1]!.family <= merged[i]!.family, 'IPv4 first');
    assert.deepEqual(texts(mergeCidrs(merged)), texts(merged), 'merging is idempotent');
    assert.deepEqual(texts(mergeCidrs([...inputs].reverse())), texts(merged), 'the input order does not matter');
  }
});
