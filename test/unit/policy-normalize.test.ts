// SPDX-License-Identifier: Apache-2.0
// Model → IR: group resolution, set merging, rule order, "any", deduplication, default action
// (src/policy/normalize.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIr } from '../../src/policy/compile.js';
import { DEFAULT_PRIORITY, type IrRule } from '../../src/policy/ir/ir.js';

const GROUPS = `---
apiVersion: doorstep/v1
kind: AddressGroup
metadata: { name: corp }
spec: { cidrs: [10.0.0.0/8, "2001:db8::/32", 172.16.0.0/12] }
---
apiVersion: doorstep/v1
kind: AddressGroup
metadata: { name: lab }
spec: { cidrs: [10.9.0.0/16, 192.168.0.0/24, 192.168.1.0/24] }
`;

function policy(name: string, spec: string): string {
  return `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

function compile(...texts: string[]) {
  return compileIr(texts.map((text, i) => ({ file: `f${i + 1}.yaml`, text })));
}

function only(rules: string): IrRule {
  const { ir } = compile(policy('p', `  defaultAction: deny\n  rules:\n${rules}`) + GROUPS);
  assert.equal(ir.rules.length, 1);
  return ir.rules[0]!;
}

const texts = (rule: IrRule, side: 'src' | 'dst') => rule[side].map((c) => c.text);

test('groups resolve to their CIDRs; overlapping and sibling prefixes merge; v4 sorts before v6', () => {
  const rule = only('    - name: a\n      action: allow\n      from: [lab, corp, 10.1.0.0/16, "2001:db8:1::/48"]\n');
  assert.deepEqual(texts(rule, 'src'), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/23', '2001:db8::/32']);
});

test('"any" and an omitted address list both mean 0.0.0.0/0 and ::/0', () => {
  const rule = only('    - name: a\n      action: allow\n      from: [any, 10.0.0.0/8]\n');
  assert.deepEqual(texts(rule, 'src'), ['0.0.0.0/0', '::/0']);
  assert.deepEqual(texts(rule, 'dst'), ['0.0.0.0/0', '::/0']);
});

test('bare addresses become host prefixes', () => {
  const rule = only('    - name: a\n      action: allow\n      to: [192.0.2.7, "2001:db8::7"]\n');
  assert.deepEqual(texts(rule, 'dst'), ['192.0.2.7/32', '2001:db8::7/128']);
});

test('ports merge into sorted, non-overlapping, non-adjacent ranges', () => {
  const rule = only('    - name: a\n      action: allow\n      protocol: tcp\n      ports: [8080, "440-445", 443, "82-90", 81, 80]\n');
  assert.equal(rule.protocol, 6);
  assert.deepEqual(rule.ports, [
    { lo: 80, hi: 90 },
    { lo: 440, hi: 445 },
    { lo: 8080, hi: 8080 },
  ]);
});

test('icmp entries become (type << 8 | code) ranges; a type alone covers all its codes', () => {
  const rule = only('    - name: a\n      action: allow\n      protocol: icmp\n      icmp: [{type: 8}, {type: 3, code: 4}, {type: 3, code: 3}]\n');
  assert.equal(rule.protocol, 1);
  assert.deepEqual(rule.ports, [
    { lo: (3 << 8) | 3, hi: (3 << 8) | 4 },
    { lo: 8 << 8, hi: (8 << 8) | 255 },
  ]);
});

test('protocol names and numbers; no protocol means any and no ports', () => {
  assert.equal(only('    - { name: a, action: allow, protocol: gre }\n').protocol, 47);
  assert.equal(only('    - { name: a, action: allow, protocol: 253 }\n').protocol, 253);
  const any = only('    - { name: a, action: allow }\n');
  assert.equal(any.protocol, 'any');
  assert.equal(any.ports, null);
  assert.equal(only('    - { name: a, action: allow, protocol: udp }\n').ports, null);
});

test('rules order by priority, then document order across files, then rule order; numbered from 1', () => {
  const first = policy('one', '  defaultAction: allow\n  rules:\n    - { name: a, action: allow, to: [10.0.0.1] }\n    - { name: b, action: allow, to: [10.0.0.2], priority: 5 }\n');
  const second = policy('two', '  defaultAction: allow\n  rules:\n    - { name: c, action: deny, to: [10.0.0.3] }\n    - { name: d, action: deny, to: [10.0.0.4], priority: 5 }\n    - { name: e, action: deny, to: [10.0.0.5], priority: 2000 }\n');
  const third = `${policy('three', '  defaultAction: allow\n  rules:\n    - { name: f, action: deny, to: [10.0.0.6], priority: 0 }\n')}`;
  const { ir } = compile(first, `${second}---\n${third}`);
  assert.deepEqual(
    ir.rules.map((r) => [r.index, r.id, r.priority]),
    [
      [1, 'three/f', 0],
      [2, 'one/b', 5],
      [3, 'two/d', 5],
      [4, 'one/a', DEFAULT_PRIORITY],
      [5, 'two/c', DEFAULT_PRIORITY],
      [6, 'two/e', 2000],
    ],
  );
  assert.deepEqual(ir.policies, ['one', 'two', 'three']);
  assert.deepEqual(ir.rules[3]!.source, { file: 'f1.yaml', line: 7 });
  assert.deepEqual(ir.rules[0]!.source, { file: 'f2.yaml', line: 17 });
});

test('a rule whose match repeats an earlier one is dropped with a warning naming both', () => {
  const { ir, warnings } = compile(
    policy(
      'p',
      '  defaultAction: deny\n  rules:\n' +
        '    - { name: a, action: allow, from: [corp], protocol: tcp, ports: [443] }\n' +
        '    - { name: b, action: allow, from: [corp], protocol: tcp, ports: [80] }\n' +
        '    - { name: c, action: deny, from: [10.0.0.0/8, "2001:db8::/32", 172.16.0.0/12], protocol: 6, ports: [443] }\n',
    ) + GROUPS,
  );
  assert.deepEqual(
    ir.rules.map((r) => [r.index, r.id]),
    [
      [1, 'p/a'],
      [2, 'p/b'],
    ],
  );
  assert.deepEqual(warnings, [
    'f1.yaml:9: rule p/c is dropped: rule p/a (f1.yaml:7) matches exactly the same traffic and comes first',
  ]);
});

test("tenants: a rule's own replace its policy's; [any] means every tenant; the same match for other tenants is no repeat", () => {
  const { ir, warnings } = compile(
    policy(
      'p',
      '  defaultAction: deny\n  tenants: [vpc-b, vpc-a, vpc-b]\n  rules:\n' +
        '    - { name: a, action: allow, protocol: tcp, ports: [80] }\n' +
        '    - { name: b, action: allow, protocol: tcp, ports: [80], tenants: [vpc-c] }\n' +
        '    - { name: c, action: allow, protocol: tcp, ports: [80], tenants: [any, vpc-c] }\n' +
        '    - { name: d, action: deny, protocol: tcp, ports: [80], tenants: [vpc-a, vpc-b] }\n',
    ),
    policy('q', '  defaultAction: deny\n  rules:\n    - { name: e, action: allow, protocol: udp }\n'),
  );
  assert.deepEqual(
    ir.rules.map((r) => [r.id, r.tenants?.map((t) => t.name) ?? null]),
    [
      ['p/a', ['vpc-a', 'vpc-b']],
      ['p/b', ['vpc-c']],
      ['p/c', null],
      ['q/e', null],
    ],
  );
  assert.deepEqual(warnings, ['f1.yaml:11: rule p/d is dropped: rule p/a (f1.yaml:8) matches exactly the same traffic and comes first']);
  assert.ok(ir.rules[0]!.tenants!.every((t) => Number.isInteger(t.id) && t.id > 0));
});

test('a rule that cannot match (from and to of different families) is kept, with a warning', () => {
  const { ir, warnings } = compile(policy('p', '  defaultAction: deny\n  rules:\n    - { name: a, action: allow, from: [10.0.0.0/8], to: ["2001:db8::/32"] }\n'));
  assert.equal(ir.rules.length, 1);
  assert.match(warnings[0]!, /^f1\.yaml:7: rule p\/a can never match/);
});

test('default action: deny if any policy says deny (fail-closed), else allow', () => {
  const allow = (name: string) => policy(name, '  defaultAction: allow\n');
  const deny = (name: string) => policy(name, '  defaultAction: deny\n');
  assert.equal(compile(allow('a'), allow('b')).ir.defaultAction, 'allow');
  assert.equal(compile(allow('a'), deny('b')).ir.defaultAction, 'deny');
  assert.equal(compile(deny('a')).ir.defaultLog, true);
});

test('log: the rule decides, else its policy, else true', () => {
  const { ir } = compile(
    policy('quiet', '  defaultAction: deny\n  log: false\n  rules:\n    - { name: a, action: allow, to: [10.0.0.1] }\n    - { name: b, action: allow, to: [10.0.0.2], log: true }\n'),
    policy('loud', '  defaultAction: deny\n  rules:\n    - { name: c, action: allow, to: [10.0.0.3] }\n    - { name: d, action: allow, to: [10.0.0.4], log: false }\n'),
  );
  assert.deepEqual(
    ir.rules.map((r) => [r.id, r.log]),
    [
      ['quiet/a', false],
      ['quiet/b', true],
      ['loud/c', true],
      ['loud/d', false],
    ],
  );
});

test('a policy without rules compiles to its default', () => {
  const { ir } = compile(policy('p', '  defaultAction: deny\n  rules: []\n'));
  assert.deepEqual(ir.rules, []);
  assert.match(ir.version, /^sha256:[0-9a-f]{64}$/);
});
