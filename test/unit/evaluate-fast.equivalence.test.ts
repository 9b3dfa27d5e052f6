// SPDX-License-Identifier: Apache-2.0
// evaluate-fast.ts (a packet classified through the class tables, as the datapath does) against
// its specification, evaluate.ts (first match over the IR's rules): identical decisions for random
// policies and packets aimed at the interesting places, with and without tenants. The datapath
// tier holds the XDP program to the same specification (test/datapath/differential.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { compileSources } from '../../src/policy/compile.js';
import { lookupTables } from '../../src/policy/tables/evaluate-fast.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { formatCidr, maskAddress } from '../../src/policy/ir/cidr.js';
import type { FlowTuple, PolicyIr } from '../../src/policy/ir/ir.js';
import { assertWellFormed } from '../lib/class-tables.js';
import { tupleOf } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant } from '../lib/random-policy.js';

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
