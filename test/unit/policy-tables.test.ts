// SPDX-License-Identifier: Apache-2.0
// Class tables: structure and budgets (src/policy/tables/tables.ts, service-index.ts); that a
// lookup over them decides every packet as the reference evaluator does is
// evaluate-fast.equivalence.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIr, compileSources } from '../../src/policy/compile.js';
import { buildTables } from '../../src/policy/tables/tables.js';
import { lookupRule, lookupTables } from '../../src/policy/tables/evaluate-fast.js';
import { DoorstepError } from '../../src/errors.js';
import { SVC_ENTRIES, SVC_KIND, SVC_SPAN, type FlowTuple } from '../../src/policy/ir/ir.js';
import { assertWellFormed } from '../lib/class-tables.js';
import { tenantId } from '../../src/policy/ir/tenants.js';

function policyText(rules: string): string {
  return `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: deny\n  rules:\n${rules}`;
}

function compileRules(rules: string) {
  return compileSources([{ file: 'p.yaml', text: policyText(rules) }]);
}

function v4(text: string): Uint8Array {
  return new Uint8Array(text.split('.').map(Number));
}

function tuple(src: string, dst: string, protocol = 6, dport?: number): FlowTuple {
  return { family: 4, src: v4(src), dst: v4(dst), protocol, dport };
}


test('a prefix’s class holds its own rules and those of every enclosing prefix', () => {
  const { ir, tables } = compileRules(
    '    - { name: a, action: allow, from: [10.0.0.0/8] }\n' +
      '    - { name: b, action: deny, from: [10.1.0.0/16] }\n' +
      '    - { name: c, action: allow, from: [10.1.2.0/24] }\n' +
      '    - { name: d, action: deny, protocol: udp }\n',
  );
  assertWellFormed(tables);
  assert.deepEqual(
    tables.src4.map((e) => e.cidr.text),
    ['0.0.0.0/0', '10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24'],
  );
  assert.equal(new Set(tables.src4.map((e) => e.cls)).size, 4, 'four distinct rule sets');
  assert.equal(tables.stats.srcClasses, 4, '::/0 holds {d}, the class of 0.0.0.0/0 too');
  assert.equal(tables.src6[0]!.cls, tables.src4[0]!.cls);
  assert.deepEqual(lookupTables(ir, tables, tuple('10.1.2.3', '1.1.1.1')), { action: 'allow', rule: 1 });
  assert.deepEqual(lookupTables(ir, tables, tuple('11.0.0.1', '1.1.1.1', 17, 53)), { action: 'deny', rule: 4 });
  assert.deepEqual(lookupTables(ir, tables, tuple('11.0.0.1', '1.1.1.1', 6, 53)), { action: 'deny', rule: 0 });
});

test('svc runs: a port rule covers its ports; a protocol rule its whole kind plus its unknown-value slot', () => {
  const ports = compileRules('    - { name: a, action: allow, protocol: tcp, ports: [80] }\n').tables;
  assert.deepEqual(ports.svc, [
    { lo: 0, hi: 79, cls: 0 },
    { lo: 80, hi: 80, cls: 1 },
    { lo: 81, hi: SVC_ENTRIES - 1, cls: 0 },
  ]);
  const udp = compileRules('    - { name: a, action: allow, protocol: udp }\n').tables;
  const udpBase = SVC_KIND.udp * SVC_SPAN;
  const slot = SVC_KIND.other * SVC_SPAN + 17;
  assert.deepEqual(udp.svc, [
    { lo: 0, hi: udpBase - 1, cls: 0 },
    { lo: udpBase, hi: udpBase + SVC_SPAN - 1, cls: 1 },
    { lo: udpBase + SVC_SPAN, hi: slot - 1, cls: 0 },
    { lo: slot, hi: slot, cls: 1 },
    { lo: slot + 1, hi: SVC_ENTRIES - 1, cls: 0 },
  ]);
  const any = compileRules('    - { name: a, action: allow }\n').tables;
  assert.deepEqual(any.svc, [{ lo: 0, hi: SVC_ENTRIES - 1, cls: 1 }]);
});

test('a packet without its port or ICMP type matches only rules without ports', () => {
  const { ir, tables } = compileRules(
    '    - { name: a, action: allow, protocol: tcp, ports: ["1-65535"] }\n' +
      '    - { name: b, action: deny, protocol: tcp }\n' +
      '    - { name: c, action: allow, protocol: icmp, icmp: [{ type: 0 }] }\n',
  );
  assert.deepEqual(lookupTables(ir, tables, tuple('1.1.1.1', '2.2.2.2', 6)), { action: 'deny', rule: 2 });
  assert.deepEqual(lookupTables(ir, tables, tuple('1.1.1.1', '2.2.2.2', 6, 0)), { action: 'deny', rule: 2 });
  assert.deepEqual(lookupTables(ir, tables, tuple('1.1.1.1', '2.2.2.2', 6, 22)), { action: 'allow', rule: 1 });
  assert.deepEqual(lookupTables(ir, tables, tuple('1.1.1.1', '2.2.2.2', 1)), { action: 'deny', rule: 0 });
  const echoReply = { ...tuple('1.1.1.1', '2.2.2.2', 1), icmpType: 0, icmpCode: 0 };
  assert.deepEqual(lookupTables(ir, tables, echoReply), { action: 'allow', rule: 3 });
});

test('the verdict is the lowest-index rule in source ∩ destination ∩ service', () => {
  const { tables } = compileRules(
    '    - { name: a, action: deny, from: [10.0.0.0/8], protocol: tcp, ports: [22] }\n' +
      '    - { name: b, action: allow, from: [10.0.0.0/8] }\n' +
      '    - { name: c, action: allow, to: [10.20.0.0/16], protocol: tcp }\n',
  );
  assertWellFormed(tables);
  assert.equal(lookupRule(tables, tuple('10.0.0.1', '10.20.0.1', 6, 22)), 1);
  assert.equal(lookupRule(tables, tuple('10.0.0.1', '10.20.0.1', 6, 23)), 2);
  assert.equal(lookupRule(tables, tuple('11.0.0.1', '10.20.0.1', 6, 22)), 3);
  assert.equal(lookupRule(tables, tuple('11.0.0.1', '10.21.0.1', 6, 22)), 0);
});

test('a policy without rules gives empty tables and the default everywhere', () => {
  const text = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec: { defaultAction: deny }\n';
  const { ir, tables } = compileSources([{ file: 'p.yaml', text }]);
  assert.deepEqual(ir.rules, []);
  assert.deepEqual([tables.src4, tables.src6, tables.dst4, tables.dst6, tables.target, tables.verdict], [[], [], [], [], [], []]);
  assert.deepEqual(tables.svc, [{ lo: 0, hi: SVC_ENTRIES - 1, cls: 0 }]);
  assert.deepEqual(lookupTables(ir, tables, tuple('1.1.1.1', '2.2.2.2')), { action: 'deny', rule: 0 });
});

test('budgets: each table refuses to grow past its limit with DS_E_TABLE_BUDGET', () => {
  const { ir } = compileIr([
    {
      file: 'p.yaml',
      text: policyText(
        '    - { name: a, action: allow, from: [10.0.0.0/8], to: [10.1.0.0/16], protocol: tcp, ports: [1] }\n' +
          '    - { name: b, action: allow, from: [10.2.0.0/16], to: [10.3.0.0/16], protocol: tcp, ports: [2] }\n' +
          '    - { name: c, action: allow, from: [10.0.0.0/8], to: [10.1.0.0/16], protocol: udp, ports: [3] }\n',
      ),
    },
  ]);
  const expectBudget = (budget: Parameters<typeof buildTables>[1], table: RegExp) =>
    assert.throws(
      () => buildTables(ir, budget),
      (error: unknown) => error instanceof DoorstepError && error.code === 'DS_E_TABLE_BUDGET' && table.test(error.message) && !!error.hint,
    );
  expectBudget({ maxPrefixes: 1 }, /the src4 table would hold 2 distinct prefixes, over its budget of 1/);
  expectBudget({ maxTargets: 2 }, /the target table would hold at least \d+ \(destination class, service class\) entries, over its budget of 2/);
  expectBudget({ maxVerdicts: 4 }, /the verdict table would hold more than 4 /);
  const fits = buildTables(ir, { maxPrefixes: 2, maxTargets: 3, maxVerdicts: 5 });
  assert.equal(fits.target.length, 3);
  assert.equal(fits.verdict.length, 5);
});

test('rules whose source is "any" live in one wildcard row, not in every source class', () => {
  const sources = Array.from({ length: 300 }, (_, i) => `    - { name: s${i}, action: deny, from: [10.${i >> 8}.${i & 255}.1], protocol: tcp, ports: [22] }\n`);
  const anys = Array.from({ length: 100 }, (_, i) => `    - { name: a${i}, action: allow, protocol: tcp, ports: [${1000 + i}] }\n`);
  const { ir, tables } = compileRules(sources.join('') + anys.join(''));
  assertWellFormed(tables);
  // 300 source rows for port 22 + 100 wildcard rows; without the wildcard, 301 × 100 more
  assert.equal(tables.verdict.length, 300 + 100);
  assert.equal(tables.verdict.filter((v) => v.src === 0).length, 100);
  assert.deepEqual(lookupTables(ir, tables, tuple('10.0.7.1', '10.9.9.9', 6, 22)), { action: 'deny', rule: 8 });
  assert.deepEqual(lookupTables(ir, tables, tuple('10.0.7.1', '10.9.9.9', 6, 1042)), { action: 'allow', rule: 343 });
  assert.deepEqual(lookupTables(ir, tables, tuple('10.0.7.1', '10.9.9.9', 6, 23)), { action: ir.defaultAction, rule: 0 });
});

test('tenants: the same source range in two tenants gets each tenant\'s rules; no tenant gets the rules for all', () => {
  const { ir, tables } = compileSources([
    {
      file: 'p.yaml',
      text: policyText(
        '    - { name: web-a, action: allow, from: [10.1.0.0/24], protocol: tcp, ports: [80], tenants: [vpc-a] }\n' +
          '    - { name: ssh-b, action: allow, from: [10.1.0.0/24], protocol: tcp, ports: [22], tenants: [vpc-b, vpc-c] }\n' +
          '    - { name: dns, action: allow, from: [10.1.0.0/24], protocol: udp, ports: [53] }\n' +
          '    - { name: no-80, action: deny, protocol: tcp, ports: [80] }\n',
      ),
    },
  ]);
  assertWellFormed(tables);
  const [a, b, c] = ['vpc-a', 'vpc-b', 'vpc-c'].map(tenantId) as [number, number, number];
  const from = (tenant: number, dport: number, protocol = 6) => ({ ...tuple('10.1.0.5', '192.0.2.1', protocol, dport), tenant });
  assert.deepEqual(lookupTables(ir, tables, from(a, 80)), { action: 'allow', rule: 1 });
  assert.deepEqual(lookupTables(ir, tables, from(b, 80)), { action: 'deny', rule: 4 });
  assert.deepEqual(lookupTables(ir, tables, from(0, 80)), { action: 'deny', rule: 4 });
  assert.deepEqual(lookupTables(ir, tables, from(a, 22)), { action: 'deny', rule: 0 });
  assert.deepEqual(lookupTables(ir, tables, from(c, 22)), { action: 'allow', rule: 2 });
  assert.deepEqual(lookupTables(ir, tables, from(tenantId('vpc-z'), 22)), { action: 'deny', rule: 0 });
  for (const t of [a, b, c, 0, tenantId('vpc-z')]) assert.deepEqual(lookupTables(ir, tables, from(t, 53, 17)), { action: 'allow', rule: 3 });
  // vpc-b and vpc-c are named by the same rules: one tenant class
  assert.deepEqual(tables.tenants.map((t) => t.name), ['vpc-a', 'vpc-b', 'vpc-c']);
  assert.equal(tables.stats.tenantClasses, 2);
  assert.equal(tables.tenants[1]!.cls, tables.tenants[2]!.cls);
  // only where a scoped rule meets (dst, svc) does the tenant count: port 53 needs no tenant lookup
  assert.equal(tables.target.filter((e) => e.scoped !== 0).length, 2);
});

test('tenants: a policy without scoped rules has the tables it had before tenants existed', () => {
  const rules = '    - { name: a, action: allow, from: [10.0.0.0/8], protocol: tcp, ports: [22] }\n    - { name: b, action: deny, to: [10.1.0.0/16] }\n';
  const plain = compileRules(rules).tables;
  const any = compileRules(rules.replace('ports: [22] }', 'ports: [22], tenants: [any] }')).tables;
  assert.deepEqual(any, plain);
  assert.deepEqual([plain.tenants, plain.tenantTarget], [[], []]);
  assert.ok(plain.target.every((e) => e.scoped === 0));
});

test('budgets: the tenant-target table refuses to grow past its limit', () => {
  const rules = Array.from({ length: 6 }, (_, i) => `    - { name: r${i}, action: allow, protocol: tcp, ports: [${100 + (i % 2)}], tenants: [t${i}] }\n`).join('');
  const { ir } = compileIr([{ file: 'p.yaml', text: policyText(rules) }]);
  assert.throws(
    () => buildTables(ir, { maxTenantTargets: 5 }),
    (error: unknown) => error instanceof DoorstepError && error.code === 'DS_E_TABLE_BUDGET' && /the tenant target table would hold at least 6 \(target, tenant class\) entries, over its budget of 5/.test(error.message),
  );
  assert.equal(buildTables(ir, { maxTenantTargets: 6 }).tenantTarget.length, 6);
});
