// SPDX-License-Identifier: Apache-2.0
// Validation: every problem names its code, file, line, column and field (src/policy/parse/validate.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSources, validateSources } from '../../src/policy/compile.js';
import { PolicyError, formatProblem, type PolicyProblem } from '../../src/errors.js';

const HEAD = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\n';
const CORP = '---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: corp }\nspec: { cidrs: [10.0.0.0/8] }\n';

/** A NetworkPolicy whose spec lines start at line 4 (the `spec:` line). */
function policy(spec: string): string {
  return `${HEAD}spec:\n${spec}`;
}

function check(text: string, file = 'p.yaml'): PolicyProblem[] {
  return validateSources([{ file, text }]);
}

/** Exactly one problem, with these properties. */
function one(problems: PolicyProblem[], expected: Omit<Partial<PolicyProblem>, 'message'> & { message?: RegExp | string }): PolicyProblem {
  assert.equal(problems.length, 1, problems.map(formatProblem).join('\n'));
  const [p] = problems;
  const { message, ...rest } = expected;
  for (const [key, value] of Object.entries(rest)) assert.equal(p![key as keyof PolicyProblem], value, `${key} of ${formatProblem(p!)}`);
  if (message instanceof RegExp) assert.match(p!.message, message);
  else if (message !== undefined) assert.equal(p!.message, message);
  return p!;
}

test('a valid policy has no problems', () => {
  assert.deepEqual(check(policy('  defaultAction: deny\n  rules:\n    - { name: a, action: allow, from: [corp] }\n') + CORP), []);
});

test('YAML syntax error → DS_E_POLICY_PARSE with line and column', () => {
  const p = check(policy('  defaultAction: deny\n  rules: [ { name: a\n'));
  assert.ok(p.length >= 1);
  assert.deepEqual(
    { code: p[0]!.code, file: p[0]!.file, line: p[0]!.line, column: p[0]!.column, field: p[0]!.field },
    { code: 'DS_E_POLICY_PARSE', file: 'p.yaml', line: 7, column: 1, field: '(syntax)' },
    'an unclosed flow collection is found where the text ends',
  );
  assert.match(p[0]!.message, /must be sufficiently indented and end with a \}; the file must be YAML or JSON$/);
});

test('duplicate keys in YAML → DS_E_POLICY_PARSE at the second key', () => {
  one(check(policy('  defaultAction: deny\n  defaultAction: allow\n')), {
    code: 'DS_E_POLICY_PARSE',
    line: 6,
    column: 3,
    message: /Map keys must be unique/,
  });
});

test('duplicate keys in JSON → DS_E_POLICY_PARSE too (the JSON fast path defers to YAML)', () => {
  const text = '{"apiVersion": "doorstep/v1", "kind": "NetworkPolicy",\n "metadata": {"name": "a"}, "metadata": {"name": "b"},\n "spec": {"defaultAction": "deny"}}';
  one(check(text, 'p.json'), { code: 'DS_E_POLICY_PARSE', file: 'p.json', line: 2, message: /unique/ });
});

test('unknown field → DS_E_POLICY_INVALID at the key, listing the allowed fields', () => {
  one(check(policy('  defaultAction: deny\n  colour: blue\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 6,
    column: 3,
    field: 'spec.colour',
    message: 'unknown field "colour"; allowed fields here: defaultAction, log, tenants, rules',
  });
});

test('unknown field inside a rule', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      port: 443\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 9,
    field: 'spec.rules[0].port',
    message: /unknown field "port"; allowed fields here: name, action, priority, from, to, protocol, ports, icmp, log/,
  });
});

test('wrong apiVersion → DS_E_POLICY_INVALID', () => {
  one(check('apiVersion: doorstep/v2\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {defaultAction: deny}\n'), {
    code: 'DS_E_POLICY_INVALID',
    line: 1,
    column: 13,
    field: 'apiVersion',
    message: 'got "doorstep/v2"; it must be doorstep/v1',
  });
});

test('unknown kind → DS_E_POLICY_INVALID', () => {
  const p = check(`${policy('  defaultAction: deny\n')}---\napiVersion: doorstep/v1\nkind: Firewall\n`);
  one(p, { code: 'DS_E_POLICY_INVALID', line: 8, field: 'kind', message: 'got "Firewall"; it must be NetworkPolicy or AddressGroup' });
});

test('missing kind → DS_E_POLICY_INVALID', () => {
  const p = check(`${policy('  defaultAction: deny\n')}---\napiVersion: doorstep/v1\n`);
  one(p, { code: 'DS_E_POLICY_INVALID', line: 7, field: 'kind', message: /is missing; it must be NetworkPolicy or AddressGroup/ });
});

test('a document that is not a mapping → DS_E_POLICY_INVALID', () => {
  const p = check(`${policy('  defaultAction: deny\n')}---\n- a\n- b\n`);
  one(p, { code: 'DS_E_POLICY_INVALID', line: 7, column: 1, field: '(document)', message: /a document must be a mapping/ });
});

test('invalid metadata.name → DS_E_POLICY_INVALID', () => {
  one(check('apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata:\n  name: Web_Tier\nspec: {defaultAction: deny}\n'), {
    code: 'DS_E_POLICY_INVALID',
    line: 4,
    column: 9,
    field: 'metadata.name',
    message: /got "Web_Tier"; it must be a name of 1 to 63 lowercase letters/,
  });
  const long = 'a'.repeat(64);
  one(check(`apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: {name: ${long}}\nspec: {defaultAction: deny}\n`), {
    field: 'metadata.name',
  });
});

test('missing defaultAction → DS_E_POLICY_INVALID at spec', () => {
  one(check(policy('  rules: []\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 4,
    field: 'spec.defaultAction',
    message: 'is missing; it must be allow or deny',
  });
});

test('invalid action → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: permit\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 8,
    column: 15,
    field: 'spec.rules[0].action',
    message: 'got "permit"; it must be allow or deny',
  });
});

test('CIDR with host bits → DS_E_POLICY_INVALID naming the normalized form', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      to: [10.20.0.0/16, 10.0.0.1/8]\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 9,
    column: 26,
    field: 'spec.rules[0].to[1]',
    message: /"10\.0\.0\.1\/8" has host bits set; write 10\.0\.0\.0\/8/,
  });
});

test('an address that is neither group, CIDR nor any → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      from: ["Corp Net"]\n')), {
    field: 'spec.rules[0].from[0]',
    line: 9,
    message: /it must be an AddressGroup name, a CIDR .* or "any"/,
  });
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      from: [10.0.0.300]\n')), {
    field: 'spec.rules[0].from[0]',
    message: /not an IP address or CIDR/,
  });
});

test('ports with a protocol that has none → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      protocol: icmp\n      ports: [443]\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 10,
    field: 'spec.rules[0].ports',
    message: /ports need protocol tcp, udp or sctp, but this rule's protocol is icmp/,
  });
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      ports: [443]\n')), {
    field: 'spec.rules[0].ports',
    message: /protocol is any \(the default\)/,
  });
});

test('icmp with a protocol other than icmp/icmpv6 → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      protocol: udp\n      icmp: [{type: 8}]\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 10,
    field: 'spec.rules[0].icmp',
    message: /icmp needs protocol icmp or icmpv6, but this rule's protocol is udp/,
  });
});

test('ports out of range or reversed → DS_E_POLICY_INVALID per entry', () => {
  const p = check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      protocol: tcp\n      ports: [0, 65536, "90-80", "1-2-3", 22]\n'));
  assert.deepEqual(
    p.map((x) => [x.field, x.line, x.column]),
    [
      ['spec.rules[0].ports[0]', 10, 15],
      ['spec.rules[0].ports[1]', 10, 18],
      ['spec.rules[0].ports[2]', 10, 25],
      ['spec.rules[0].ports[3]', 10, 34],
    ],
  );
  assert.match(p[2]!.message, /the low end comes first/);
  assert.ok(p.every((x) => x.code === 'DS_E_POLICY_INVALID' && /port from 1 to 65535/.test(x.message)));
});

test('unknown protocol name or number → DS_E_POLICY_INVALID', () => {
  for (const bad of ['banana', '256', 'TCP', '-1']) {
    one(check(policy(`  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      protocol: ${bad}\n`)), {
      field: 'spec.rules[0].protocol',
      line: 9,
      message: /it must be a protocol name \(icmp, .*tcp, udp.*\) or a number from 0 to 255/,
    });
  }
});

test('priority out of range → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      priority: 70000\n')), {
    field: 'spec.rules[0].priority',
    message: 'got 70000; it must be a priority, an integer from 0 to 65535',
  });
});

test('icmp type or code out of range → DS_E_POLICY_INVALID', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      protocol: icmp\n      icmp: [{type: 3, code: 300}]\n')), {
    field: 'spec.rules[0].icmp[0].code',
    line: 10,
    message: /an ICMP code, an integer from 0 to 255/,
  });
});

test('empty address and port lists are refused', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      from: []\n')), {
    field: 'spec.rules[0].from',
    message: /must not be empty; .* leave the field out to match any/,
  });
  one(check(`${policy('  defaultAction: deny\n')}---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: {name: g}\nspec: {cidrs: []}\n`), {
    field: 'spec.cidrs',
    line: 10,
    message: /must not be empty/,
  });
});

test('tenant names: a bad one is named with file, line and field; empty lists say what to write instead', () => {
  one(check(policy('  defaultAction: deny\n  tenants: [vpc-a, VPC_B]\n')), {
    code: 'DS_E_POLICY_INVALID',
    line: 6,
    column: 20,
    field: 'spec.tenants[1]',
    message: /got "VPC_B"; it must be a tenant name \(1 to 63 lowercase letters, digits and "-", .*\) or "any" for every tenant/,
  });
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      tenants: [vpc-a, -b]\n')), {
    field: 'spec.rules[0].tenants[1]',
    line: 9,
    column: 24,
  });
  one(check(policy('  defaultAction: deny\n  tenants: []\n')), {
    field: 'spec.tenants',
    message: "must not be empty; list at least one tenant, or leave the field out to apply the policy's rules to every tenant",
  });
  one(check(policy('  defaultAction: deny\n  rules:\n    - { name: a, action: allow, tenants: [] }\n')), {
    field: 'spec.rules[0].tenants',
    message: /must not be empty; .* leave the field out to use the policy's spec\.tenants .*, or write \[any\]/,
  });
  one(check(policy('  defaultAction: deny\n  tenants: vpc-a\n')), { field: 'spec.tenants', message: /a list of tenants, e\.g\. \[vpc-a, vpc-b\]/ });
  assert.deepEqual(check(policy('  defaultAction: deny\n  tenants: [vpc-a]\n  rules:\n    - { name: a, action: allow, tenants: [any] }\n    - { name: b, action: allow, tenants: [vpc-b, vpc-a] }\n')), []);
});

test('two tenant names with one datapath id → DS_E_POLICY_INVALID at the second, naming the first', () => {
  // tenantId("tdrq") === tenantId("t13gj") === 0x9e5eef1a: found by search, as any 32-bit hash has such pairs
  const p = check(policy('  defaultAction: deny\n  tenants: [tdrq]\n  rules:\n    - { name: a, action: allow, tenants: [tdrq, t13gj] }\n'));
  one(p, {
    code: 'DS_E_POLICY_INVALID',
    field: 'spec.rules[0].tenants[1]',
    line: 8,
    message: 'tenant "t13gj" has the same id (0x9e5eef1a) as tenant "tdrq" at p.yaml:6:13; the datapath could not tell their traffic apart, so rename one of them',
  });
});

test('an AddressGroup may not be called "any"', () => {
  one(check(`${policy('  defaultAction: deny\n')}---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: {name: any}\nspec: {cidrs: [10.0.0.0/8]}\n`), {
    code: 'DS_E_POLICY_INVALID',
    field: 'metadata.name',
    line: 9,
    message: /reserved/,
  });
});

test('unknown AddressGroup → DS_E_POLICY_REFERENCE naming the group', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      from: [corp, partners]\n') + CORP), {
    code: 'DS_E_POLICY_REFERENCE',
    file: 'p.yaml',
    line: 9,
    column: 20,
    field: 'spec.rules[0].from[1]',
    message: /AddressGroup "partners" is not defined \(defined groups: corp\)/,
  });
});

test('references are checked even in a rule with other problems', () => {
  const p = check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: maybe\n      to: [partners]\n'));
  assert.deepEqual(
    p.map((x) => [x.code, x.field]),
    [
      ['DS_E_POLICY_INVALID', 'spec.rules[0].action'],
      ['DS_E_POLICY_REFERENCE', 'spec.rules[0].to[0]'],
    ],
  );
  assert.match(p[1]!.message, /no AddressGroup is defined/);
});

test('a reference to an invalid group is not reported as missing', () => {
  const bad = '---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: corp }\nspec: { cidrs: [10.0.0.1/8] }\n';
  one(check(policy('  defaultAction: deny\n  rules:\n    - name: a\n      action: allow\n      from: [corp]\n') + bad), {
    code: 'DS_E_POLICY_INVALID',
    field: 'spec.cidrs[0]',
  });
});

test('duplicate NetworkPolicy names across files → DS_E_POLICY_DUPLICATE naming both places', () => {
  const problems = validateSources([
    { file: 'a.yaml', text: policy('  defaultAction: deny\n') },
    { file: 'b.yaml', text: `# second copy\n${policy('  defaultAction: allow\n')}` },
  ]);
  one(problems, {
    code: 'DS_E_POLICY_DUPLICATE',
    file: 'b.yaml',
    line: 4,
    field: 'metadata.name',
    message: /NetworkPolicy "web" is already defined at a\.yaml:3:19/,
  });
});

test('duplicate AddressGroup names → DS_E_POLICY_DUPLICATE; the same name in two kinds is fine', () => {
  const group = (name: string) => `---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: {name: ${name}}\nspec: {cidrs: [10.0.0.0/8]}\n`;
  assert.deepEqual(check(policy('  defaultAction: deny\n') + group('web')), []);
  one(check(policy('  defaultAction: deny\n') + group('corp') + group('corp')), {
    code: 'DS_E_POLICY_DUPLICATE',
    line: 14,
    message: /AddressGroup "corp" is already defined at p\.yaml:9:18/,
  });
});

test('duplicate rule names in a policy → DS_E_POLICY_DUPLICATE', () => {
  one(check(policy('  defaultAction: deny\n  rules:\n    - { name: a, action: allow }\n    - { name: b, action: allow }\n    - { name: a, action: deny }\n')), {
    code: 'DS_E_POLICY_DUPLICATE',
    line: 9,
    field: 'spec.rules[2].name',
    message: /rule "a" is already defined at p\.yaml:7:15 \(spec\.rules\[0\]\)/,
  });
});

test('no NetworkPolicy → DS_E_POLICY_EMPTY', () => {
  one(check(CORP.slice(4), 'groups.yaml'), { code: 'DS_E_POLICY_EMPTY', file: 'groups.yaml', line: 1, field: 'kind', message: /no document of kind NetworkPolicy in groups\.yaml/ });
  one(validateSources([]), { code: 'DS_E_POLICY_EMPTY', message: /no policy files were given/ });
  one(check('# only a comment\n'), { code: 'DS_E_POLICY_EMPTY' });
});

test('JSON documents report positions too', () => {
  const text = '{\n  "apiVersion": "doorstep/v1",\n  "kind": "NetworkPolicy",\n  "metadata": {"name": "web"},\n  "spec": {\n    "defaultAction": "deny",\n    "rules": [{"name": "a", "action": "allow", "ports": [443]}]\n  }\n}\n';
  const line7 = text.split('\n')[6]!;
  one(check(text, 'p.json'), {
    code: 'DS_E_POLICY_INVALID',
    file: 'p.json',
    line: 7,
    column: line7.indexOf('"ports"') + 1,
    field: 'spec.rules[0].ports',
  });
});

test('all problems of all files are collected, in file order, and compile throws them as one PolicyError', () => {
  const sources = [
    { file: 'b.yaml', text: policy('  defaultAction: maybe\n') },
    { file: 'a.yaml', text: `${HEAD.replace('web', 'other')}spec:\n  defaultAction: deny\n  rules:\n    - { name: x, action: allow, from: [nowhere] }\n` },
  ];
  const problems = validateSources(sources);
  assert.deepEqual(
    problems.map((p) => [p.file, p.code]),
    [
      ['b.yaml', 'DS_E_POLICY_INVALID'],
      ['a.yaml', 'DS_E_POLICY_REFERENCE'],
    ],
  );
  assert.throws(
    () => compileSources(sources),
    (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.equal(error.code, 'DS_E_POLICY_INVALID');
      assert.deepEqual(error.problems, problems);
      assert.match(error.message, /^b\.yaml:5:18: spec\.defaultAction: got "maybe"; it must be allow or deny \[DS_E_POLICY_INVALID\] \(and 1 more\)$/);
      return true;
    },
  );
});
