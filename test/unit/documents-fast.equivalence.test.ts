// SPDX-License-Identifier: Apache-2.0
// documents-fast.ts (files of JSON documents through JSON.parse) against its specification,
// documents.ts's YAML parser: the same values and positions; anything YAML-only takes the YAML path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { parseSource } from '../../src/policy/parse/documents.js';

const JSON_TEXT = `{
  "apiVersion": "doorstep/v1",
  "kind": "NetworkPolicy",
  "metadata": {"name": "we\\"b"},
  "spec": {
    "defaultAction": "deny",
    "rules": [
      {"name": "a,[{", "ports": [443, "8000-8080"]},
      {"name": "b", "ports": null}
    ]
  }
}
---
{"kind": "AddressGroup", "spec": {"cidrs": ["10.0.0.0/8"]}}
`;

test('JSON: same values as the YAML parser, and positions for any field path', () => {
  const { documents, problems } = parseSource({ file: 'p.json', text: JSON_TEXT });
  assert.deepEqual(problems, []);
  const viaYaml = parseAllDocuments(JSON_TEXT).map((d) => d.toJS());
  assert.deepEqual(
    documents.map((d) => d.value),
    viaYaml,
  );
  const [policy, group] = documents;
  const lines = JSON_TEXT.split('\n');
  const column = (line: number, needle: string) => lines[line - 1]!.indexOf(needle) + 1;
  assert.deepEqual(policy!.locate(['spec', 'rules', 0, 'ports', 1]), { line: 8, column: column(8, '"8000-8080"') });
  assert.deepEqual(policy!.locate(['spec', 'rules', 1]), { line: 9, column: 7 });
  assert.deepEqual(policy!.locate(['spec', 'rules', 1, 'ports']), { line: 9, column: column(9, '"ports"') }, 'null points at its key');
  assert.deepEqual(policy!.locate(['metadata', 'name']), { line: 4, column: column(4, '"we') });
  assert.deepEqual(policy!.locate(['spec', 'defaultAction'], 'key'), { line: 6, column: 5 });
  assert.deepEqual(policy!.locate(['spec', 'rules', 7, 'name']), { line: 7, column: 5 }, 'falls back to the deepest part found');
  assert.deepEqual(group!.locate(['spec', 'cidrs', 0]), { line: 14, column: column(14, '"10.0') });
});

test('JSON with anything YAML-only (comments, duplicate keys) takes the YAML path', () => {
  const commented = parseSource({ file: 'p.json', text: '# note\n{"kind": "AddressGroup"}\n' });
  assert.deepEqual(commented.problems, []);
  assert.deepEqual(commented.documents.map((d) => d.value), [{ kind: 'AddressGroup' }]);
  const duplicated = parseSource({ file: 'p.json', text: '{"kind": "a", "kind": "b"}' });
  assert.equal(duplicated.documents.length, 0);
  assert.equal(duplicated.problems[0]!.code, 'DS_E_POLICY_PARSE');
  const colonsInStrings = parseSource({ file: 'p.json', text: '{"cidrs": ["2001:db8::/32", "a\\":b"]}' });
  assert.deepEqual(colonsInStrings.documents[0]!.value, { cidrs: ['2001:db8::/32', 'a":b'] }, 'colons inside strings are not keys');
});
