// SPDX-License-Identifier: Apache-2.0
// Class tables: structure, budgets, and the property that a datapath-style lookup over the
// tables decides every packet exactly as the reference evaluator does
// (src/policy/tables/tables.ts, tables-lookup.ts, service-index.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { compileIr, compileSources } from '../../src/policy/compile.js';
import { buildTables } from '../../src/policy/tables/tables.js';
import { lookupRule, lookupTables } from '../../src/policy/tables/tables-lookup.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { formatCidr, maskAddress } from '../../src/policy/ir/cidr.js';
import { DoorstepError } from '../../src/errors.js';
import { SVC_ENTRIES, SVC_KIND, SVC_SPAN, type ClassTables, type FlowTuple, type PolicyIr } from '../../src/policy/ir/ir.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { tupleOf } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant } from '../lib/random-policy.js';

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

/** Invariants every ClassTables must keep, whatever the policy. */
function assertWellFormed(tables: ClassTables): void {
  let next = 0;
  tables.svc.forEach((run, i) => {
    assert.equal(run.lo, next, 'svc runs are contiguous');
    assert.ok(run.hi >= run.lo);
    if (i > 0) assert.notEqual(run.cls, tables.svc[i - 1]!.cls, 'adjacent runs of one class are merged');
    next = run.hi + 1;
  });
  assert.equal(next, SVC_ENTRIES, 'svc runs cover the whole index space');
  for (const table of [tables.src4, tables.src6, tables.dst4, tables.dst6]) {
    assert.equal(new Set(table.map((e) => e.cidr.text)).size, table.length, 'one entry per distinct prefix');
    assert.ok(table.every((e) => e.cls > 0));
  }
  assert.equal(new Set(tables.target.map((e) => `${e.dst},${e.svc}`)).size, tables.target.length);
  assert.equal(new Set(tables.verdict.map((e) => `${e.src},${e.target}`)).size, tables.verdict.length);
  assert.ok(tables.target.every((e) => e.target > 0 || e.scoped > 0), 'an entry leads somewhere');
  const scoped = new Set(tables.target.map((e) => e.scoped).filter((x) => x !== 0));
  assert.equal(new Set(tables.tenantTarget.map((e) => `${e.scoped},${e.tenant}`)).size, tables.tenantTarget.length);
  assert.ok(tables.tenantTarget.every((e) => scoped.has(e.scoped) && e.tenant > 0 && e.target > 0), 'tenant targets refine scoped targets');
  assert.equal(new Set(tables.tenants.map((e) => e.id)).size, tables.tenants.length, 'one entry per tenant');
  if (tables.tenants.length === 0) assert.deepEqual([scoped.size, tables.tenantTarget.length, tables.stats.tenantClasses], [0, 0, 0], 'no tenants, no tenant lookups');
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

test('property with tenants: class-table lookup decides like evaluate (random policies of test/lib, packets from tenants)', () => {
  const r = new Random(prng(0x7e4a47));
  let scoped = 0;
  let byScopedRule = 0;
  for (let p = 0; p < 300; p++) {
    const policy = randomPolicy(r, 24, { tenants: true });
    const { ir, tables } = compileSources([{ file: `random-${p}.yaml`, text: policy.yaml }]);
    assertWellFormed(tables);
    if (tables.tenants.length > 0) scoped++;
    for (let i = 0; i < 100; i++) {
      const t: FlowTuple = { ...tupleOf(randomPacket(r, policy)), tenant: randomTenant(r, policy) };
      const expected = evaluate(ir, t);
      if (expected.rule !== 0 && ir.rules[expected.rule - 1]!.tenants !== null) byScopedRule++;
      assert.deepEqual(lookupTables(ir, tables, t), expected, `policy ${p}, packet ${i}: ${JSON.stringify({ ...t, src: [...t.src], dst: [...t.dst] })}\n${policy.yaml}`);
    }
  }
  assert.ok(scoped > 100, `most random policies scope some rule (${scoped} of 300)`);
  assert.ok(byScopedRule > 1000, `many packets are decided by scoped rules (${byScopedRule})`);
});

// ---- property: tables lookup ≡ evaluate, over random policies and packets ----

/** mulberry32: small, seedable, good enough to explore policies. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    int,
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
  };
}

type Rng = ReturnType<typeof random>;

interface Prefix {
  family: 4 | 6;
  bytes: Uint8Array;
  len: number;
}

function randomBytes(rng: Rng, family: 4 | 6): Uint8Array {
  const bytes = new Uint8Array(family === 4 ? 4 : 16).map(() => rng.int(256));
  if (family === 4) bytes[0] = rng.pick([10, 172, 192]);
  else [bytes[0], bytes[1], bytes[2], bytes[3]] = [0x20, 0x01, 0x0d, 0xb8];
  return bytes;
}

/** Prefixes that nest: half of them are drawn inside an earlier one. */
function prefixPool(rng: Rng): Prefix[] {
  const pool: Prefix[] = [];
  for (let i = 0; i < 12; i++) {
    const family = rng.chance(0.6) ? 4 : 6;
    const lengths = family === 4 ? [8, 12, 16, 20, 24, 28, 31, 32] : [32, 40, 48, 56, 64, 96, 127, 128];
    const parent = pool.filter((p) => p.family === family && p.len < 120);
    let bytes = randomBytes(rng, family);
    let len = rng.pick(lengths);
    if (parent.length > 0 && rng.chance(0.5)) {
      const outer = rng.pick(parent);
      const longer = lengths.filter((l) => l > outer.len);
      len = longer.length > 0 ? rng.pick(longer) : outer.len;
      bytes = inside(rng, outer);
    }
    if (rng.chance(0.03)) len = 0;
    pool.push({ family, bytes: maskAddress(bytes, len), len });
  }
  return pool;
}

/** A random address within a prefix. */
function inside(rng: Rng, p: Prefix): Uint8Array {
  const out = randomBytes(rng, p.family);
  for (let bit = 0; bit < p.len; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    out[byte] = (out[byte]! & ~mask) | (p.bytes[byte]! & mask);
  }
  return out;
}

const PORTS = [1, 21, 22, 23, 53, 80, 443, 1024, 8080, 65535];
const ICMP_TYPES = [0, 3, 8, 11, 128, 129, 255];

function randomPolicySet(rng: Rng): { documents: object[]; pool: Prefix[] } {
  const pool = prefixPool(rng);
  const text = (p: Prefix) => {
    const t = formatCidr(p.family, p.bytes, p.len);
    return p.len === (p.family === 4 ? 32 : 128) && rng.chance(0.5) ? t.slice(0, t.indexOf('/')) : t;
  };
  const groups = Array.from({ length: rng.int(4) }, (_, i) => ({
    name: `g${i}`,
    cidrs: Array.from({ length: 1 + rng.int(4) }, () => text(rng.pick(pool))),
  }));
  const addresses = () => {
    if (rng.chance(0.1)) return ['any'];
    return Array.from({ length: 1 + rng.int(3) }, () => (groups.length > 0 && rng.chance(0.4) ? rng.pick(groups).name : text(rng.pick(pool))));
  };
  const rules: Record<string, unknown>[] = [];
  const ruleCount = rng.int(15);
  for (let i = 0; i < ruleCount; i++) {
    const earlier = rules.length > 0 && rng.chance(0.1) ? rng.pick(rules) : undefined;
    const rule: Record<string, unknown> = earlier ? { ...earlier } : {};
    rule.name = `r${i}`;
    rule.action = rng.chance(0.5) ? 'allow' : 'deny';
    if (!earlier) {
      if (rng.chance(0.8)) rule.from = addresses();
      if (rng.chance(0.8)) rule.to = addresses();
      const protocol = rng.chance(0.15) ? undefined : rng.pick<string | number>(['tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 'gre', 'any', 6, 17, 1, 58, rng.int(256)]);
      if (protocol !== undefined) rule.protocol = protocol;
      if (['tcp', 'udp', 'sctp', 6, 17, 132].includes(protocol as never) && rng.chance(0.6)) {
        rule.ports = Array.from({ length: 1 + rng.int(3) }, () => {
          const a = rng.pick(PORTS);
          if (rng.chance(0.5)) return a;
          const b = rng.pick(PORTS);
          return `${Math.min(a, b)}-${Math.max(a, b)}`;
        });
      }
      if (['icmp', 'icmpv6', 1, 58].includes(protocol as never) && rng.chance(0.6)) {
        rule.icmp = Array.from({ length: 1 + rng.int(3) }, () =>
          rng.chance(0.5) ? { type: rng.pick(ICMP_TYPES) } : { type: rng.pick(ICMP_TYPES), code: rng.pick([0, 1, 3, 4, 255]) },
        );
      }
    }
    if (rng.chance(0.5)) rule.priority = rng.pick([0, 5, 10, 1000, 2000]);
    else delete rule.priority;
    rules.push(rule);
  }
  const policyCount = 1 + rng.int(3);
  const documents: object[] = [];
  for (let p = 0; p < policyCount; p++) {
    documents.push({
      apiVersion: 'doorstep/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `policy-${p}` },
      spec: { defaultAction: rng.chance(0.5) ? 'allow' : 'deny', rules: rules.filter((_, i) => i % policyCount === p) },
    });
  }
  for (const g of groups) documents.push({ apiVersion: 'doorstep/v1', kind: 'AddressGroup', metadata: { name: g.name }, spec: { cidrs: g.cidrs } });
  return { documents, pool };
}

/** Packets aimed at the interesting places: inside the pool's prefixes, on the rules' range edges. */
function randomTuple(rng: Rng, ir: PolicyIr, pool: Prefix[]): FlowTuple {
  const family: 4 | 6 = rng.chance(0.6) ? 4 : 6;
  const prefixes = pool.filter((p) => p.family === family);
  const address = () => (prefixes.length > 0 && rng.chance(0.75) ? inside(rng, rng.pick(prefixes)) : randomBytes(rng, family));
  const edges = [0, 65535, ...ir.rules.flatMap((r) => (r.ports ?? []).flatMap((x) => [x.lo - 1, x.lo, x.hi, x.hi + 1]))].filter(
    (v) => v >= 0 && v <= 65535,
  );
  const protocol = rng.pick([6, 17, 132, 1, 58, 47, 50, rng.int(256)]);
  const t: FlowTuple = { family, src: address(), dst: address(), protocol };
  if ([6, 17, 132].includes(protocol) && rng.chance(0.9)) {
    t.dport = rng.chance(0.7) ? rng.pick(edges) : rng.int(65536);
    t.sport = rng.int(65536);
  }
  if ((protocol === 1 || protocol === 58) && rng.chance(0.9)) {
    const value = rng.chance(0.7) ? rng.pick(edges) : rng.int(65536);
    t.icmpType = value >> 8;
    t.icmpCode = value & 255;
  }
  return t;
}

test('property: class-table lookup decides like evaluate (200 random policies × 200 packets)', () => {
  let decidedByRules = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const rng = random(seed);
    const { documents, pool } = randomPolicySet(rng);
    const text =
      seed % 2 === 0
        ? documents.map((d) => stringify(d)).join('---\n')
        : documents.map((d) => JSON.stringify(d, null, seed % 3 === 0 ? 2 : undefined)).join('\n---\n');
    const { ir, tables } = compileSources([{ file: `random-${seed}.yaml`, text }]);
    assertWellFormed(tables);
    for (let i = 0; i < 200; i++) {
      const t = randomTuple(rng, ir, pool);
      const expected = evaluate(ir, t);
      if (expected.rule !== 0) decidedByRules++;
      assert.deepEqual(lookupTables(ir, tables, t), expected, `seed ${seed}, packet ${i}: ${JSON.stringify({ ...t, src: [...t.src], dst: [...t.dst] })}`);
    }
  }
  assert.ok(decidedByRules > 10_000, `the packets must mostly hit rules, not the default (hit ${decidedByRules} of 40000)`);
});
