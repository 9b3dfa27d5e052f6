// SPDX-License-Identifier: Apache-2.0
// Canonical serialization and the version hash (src/policy/ir/canonical.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIr } from '../../src/policy/compile.js';
import { canonicalJson, irToJson, policyVersion } from '../../src/policy/ir/canonical.js';

const BASE = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - name: https
      action: allow
      from: [corp]
      to: [10.20.0.0/16]
      protocol: tcp
      ports: [443, "8000-8080"]
    - name: ping
      action: allow
      protocol: icmp
      icmp: [{ type: 8 }]
---
apiVersion: doorstep/v1
kind: AddressGroup
metadata: { name: corp }
spec: { cidrs: [10.0.0.0/8] }
`;

/** The same policy: keys reordered, flow and block styles swapped, comments, groups first, as JSON. */
const REWRITTEN = `# corp first this time
kind: AddressGroup
spec:
  cidrs:
    - 10.0.0.0/8
metadata: { name: corp }
apiVersion: doorstep/v1
---
{"spec": {"rules": [
  {"ports": ["8000-8080", 443], "protocol": 6, "to": ["10.20.0.0/16"], "from": ["corp"], "action": "allow", "name": "https"},
  {"icmp": [{"type": 8}], "protocol": "icmp", "name": "ping", "action": "allow"}
 ], "defaultAction": "deny"},
 "metadata": {"name": "web"}, "kind": "NetworkPolicy", "apiVersion": "doorstep/v1"}
`;

const version = (text: string, file = 'policy.yaml') => compileIr([{ file, text }]).ir.version;

test('the version is sha256 of the canonical JSON, which leaves out version and source', () => {
  const { ir } = compileIr([{ file: 'policy.yaml', text: BASE }]);
  assert.match(ir.version, /^sha256:[0-9a-f]{64}$/);
  assert.equal(policyVersion(ir), ir.version);
  const json = canonicalJson(ir);
  assert.ok(!json.includes('policy.yaml') && !json.includes('sha256'));
  assert.deepEqual(JSON.parse(json).rules[0], {
    index: 1,
    id: 'web/https',
    policy: 'web',
    name: 'https',
    action: 'allow',
    log: true,
    priority: 1000,
    src: ['10.0.0.0/8'],
    dst: ['10.20.0.0/16'],
    protocol: 6,
    ports: [
      [443, 443],
      [8000, 8080],
    ],
  });
});

test('the version does not change with key order, style, comments, JSON vs YAML, or file names', () => {
  const base = version(BASE);
  assert.equal(version(REWRITTEN), base);
  assert.equal(version(BASE, 'elsewhere/renamed.yml'), base);
  assert.equal(version(`\n\n# moved down\n${BASE}`), base, 'rules on other lines');
});

test('every semantic change changes the version', () => {
  const base = version(BASE);
  const variants = {
    port: BASE.replace('443,', '444,'),
    action: BASE.replace('action: allow\n      from', 'action: deny\n      from'),
    cidr: BASE.replace('10.20.0.0/16', '10.21.0.0/16'),
    group: BASE.replace('cidrs: [10.0.0.0/8]', 'cidrs: [11.0.0.0/8]'),
    protocol: BASE.replace('protocol: tcp', 'protocol: udp'),
    icmp: BASE.replace('{ type: 8 }', '{ type: 8, code: 0 }'),
    priority: BASE.replace('    - name: ping\n', '    - name: ping\n      priority: 5\n'),
    log: BASE.replace('    - name: ping\n', '    - name: ping\n      log: false\n'),
    ruleName: BASE.replace('name: ping', 'name: echo'),
    policyName: BASE.replace('name: web', 'name: web2'),
    defaultAction: BASE.replace('defaultAction: deny', 'defaultAction: allow'),
  };
  const seen = new Set([base]);
  for (const [what, text] of Object.entries(variants)) {
    assert.notEqual(text, BASE, `${what} variant must differ`);
    const v = version(text);
    assert.ok(!seen.has(v), `${what} must change the version`);
    seen.add(v);
  }
});

test('irToJson gives the whole IR with version and sources', () => {
  const { ir } = compileIr([{ file: 'policy.yaml', text: BASE }]);
  const json = irToJson(ir);
  assert.equal(json.version, ir.version);
  assert.deepEqual(json.policies, ['web']);
  assert.deepEqual(json.rules[1], {
    index: 2,
    id: 'web/ping',
    policy: 'web',
    name: 'ping',
    action: 'allow',
    log: true,
    priority: 1000,
    src: ['0.0.0.0/0', '::/0'],
    dst: ['0.0.0.0/0', '::/0'],
    protocol: 1,
    ports: [[2048, 2303]],
    source: { file: 'policy.yaml', line: 13 },
  });
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json, 'plain JSON');
});

test('a policy without tenants hashes as before tenants existed', () => {
  // pinned from the compiler before rules could be scoped to tenants
  assert.equal(version(BASE), 'sha256:e15ab713d73e6054bf51702faa49fd30c686a3efe2fea9bfc0c52c39d072a7ba');
  assert.ok(!canonicalJson(compileIr([{ file: 'policy.yaml', text: BASE }]).ir).includes('tenants'));
  assert.equal(version(BASE.replace('  rules:\n', '  tenants: [any]\n  rules:\n')), version(BASE), '[any] is every tenant, as no tenants');
});

test('tenant scoping is part of the version; where and how it is written is not', () => {
  const scoped = (spec: string, rule: string) =>
    BASE.replace('  rules:\n', `${spec}  rules:\n`).replace('      protocol: tcp\n', `      protocol: tcp\n${rule}`);
  const base = version(BASE);
  const ab = version(scoped('  tenants: [vpc-a, vpc-b]\n', ''));
  assert.notEqual(ab, base);
  assert.equal(version(scoped('  tenants: [vpc-b, vpc-a, vpc-b]\n', '')), ab, 'order and repeats do not count');
  const ruleOnly = version(scoped('', '      tenants: [vpc-a, vpc-b]\n').replace('icmp: [{ type: 8 }]\n', 'icmp: [{ type: 8 }]\n      tenants: [vpc-b, vpc-a]\n'));
  assert.equal(ruleOnly, ab, 'spec.tenants and each rule saying the same compile to the same rules');
  const a = version(scoped('  tenants: [vpc-a]\n', ''));
  const overridden = version(scoped('  tenants: [vpc-a, vpc-b]\n', '      tenants: [vpc-a]\n'));
  assert.ok(new Set([base, ab, a, overridden]).size === 4, 'narrowing one rule or the policy is a new version');
  assert.equal(version(scoped('  tenants: [vpc-a]\n', '      tenants: [any]\n')), version(BASE.replace('icmp: [{ type: 8 }]\n', 'icmp: [{ type: 8 }]\n      tenants: [vpc-a]\n')), 'a rule\'s [any] replaces the policy\'s tenants');
  const { ir } = compileIr([{ file: 'policy.yaml', text: scoped('  tenants: [vpc-b, vpc-a]\n', '') }]);
  assert.deepEqual(JSON.parse(canonicalJson(ir)).rules[0].tenants, ['vpc-a', 'vpc-b']);
  assert.deepEqual(irToJson(ir).rules[1]?.tenants, ['vpc-a', 'vpc-b']);
});
