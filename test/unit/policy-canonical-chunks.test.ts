// SPDX-License-Identifier: Apache-2.0
// The canonical JSON of an IR too large for one chunk (src/policy/ir/canonical.ts writes it in
// chunks): still exactly the compact JSON of the rules, and the version is its SHA-256.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { compileIr } from '../../src/policy/compile.js';
import { canonicalJson, irToJson, policyVersion } from '../../src/policy/ir/canonical.js';

test('a policy of many rules and prefixes serializes across chunks exactly', () => {
  const rules = Array.from({ length: 800 }, (_, i) => ({
    name: `r-${i}`,
    action: i % 3 === 0 ? 'deny' : 'allow',
    from: Array.from({ length: 8 }, (_, j) => `10.${i % 250}.${j}.${(i * 7) % 256}`),
    to: [`192.0.${i % 256}.0/24`],
    protocol: 'tcp',
    ports: [1000 + i],
  }));
  const text = JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'big' }, spec: { defaultAction: 'deny', rules } });
  const { ir } = compileIr([{ file: 'big.json', text }]);
  const json = canonicalJson(ir);
  assert.ok(json.length > 200_000, 'large enough for several chunks');

  const expected = irToJson(ir);
  const parsed = JSON.parse(json) as Record<string, unknown>;
  assert.equal(json, JSON.stringify(parsed), 'compact JSON');
  assert.deepEqual(parsed.rules, expected.rules.map(({ source: _source, ...rule }) => rule));
  assert.equal(policyVersion(ir), `sha256:${createHash('sha256').update(json).digest('hex')}`);
  assert.equal(ir.version, policyVersion(ir));
});
