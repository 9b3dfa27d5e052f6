// SPDX-License-Identifier: Apache-2.0
// Files → documents with positions (src/policy/parse/documents.ts); its JSON fast path is held to
// it by documents-fast.equivalence.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatField, parseSource } from '../../src/policy/parse/documents.js';

const YAML_TEXT = `# leading comment
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - name: a
      ports: [443, "8000-8080"]
---
---
kind: AddressGroup
spec:
  cidrs:
    - 10.0.0.0/8
`;

test('YAML: every non-empty document, with positions for any field path', () => {
  const { documents, problems } = parseSource({ file: 'p.yaml', text: YAML_TEXT });
  assert.deepEqual(problems, []);
  assert.equal(documents.length, 2, 'the empty document between two --- is skipped');
  const [policy, group] = documents;
  assert.equal(policy!.file, 'p.yaml');
  assert.deepEqual((policy!.value as { spec: { rules: unknown[] } }).spec.rules, [{ name: 'a', ports: [443, '8000-8080'] }]);
  assert.deepEqual(policy!.locate(['spec', 'rules', 0, 'ports', 1]), { line: 9, column: 20 });
  assert.deepEqual(policy!.locate(['spec', 'rules', 0]), { line: 8, column: 7 });
  assert.deepEqual(policy!.locate(['spec', 'defaultAction']), { line: 6, column: 18 });
  assert.deepEqual(policy!.locate(['spec', 'defaultAction'], 'key'), { line: 6, column: 3 });
  assert.deepEqual(policy!.locate(['spec', 'rules']), { line: 7, column: 3 }, 'a collection points at its key');
  assert.deepEqual(policy!.locate(['spec', 'missing', 3]), { line: 5, column: 1 }, 'falls back to the deepest part found');
  assert.deepEqual(policy!.locate([]), { line: 2, column: 1 });
  assert.deepEqual(group!.locate(['spec', 'cidrs', 0]), { line: 15, column: 7 });
});

test('syntax errors become DS_E_POLICY_PARSE problems; the file’s other documents still parse', () => {
  const { documents, problems } = parseSource({ file: 'p.yaml', text: 'a: 1\n---\nb: [1, 2\n---\nc: 3\n' });
  assert.deepEqual(documents.map((d) => d.value), [{ a: 1 }, { c: 3 }]);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.code, 'DS_E_POLICY_PARSE');
  assert.equal(problems[0]!.file, 'p.yaml');
  assert.ok(problems[0]!.line >= 3 && problems[0]!.line <= 4);
  assert.ok(!problems[0]!.message.includes('\n'), 'one line');
});

test('formatField writes paths as the operator reads them', () => {
  assert.equal(formatField(['spec', 'rules', 2, 'ports', 0]), 'spec.rules[2].ports[0]');
  assert.equal(formatField(['kind']), 'kind');
  assert.equal(formatField([]), '');
});
