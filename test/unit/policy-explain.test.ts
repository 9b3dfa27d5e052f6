// SPDX-License-Identifier: Apache-2.0
// The pure explanation (src/policy/tools/explain.ts): it decides exactly as the reference evaluator on
// random policies and packets, its misses are true misses, its messages say what failed, and its
// output stays small on a 100,000-rule policy.
import assert from 'node:assert/strict';
import { isIPv4 } from 'node:net';
import { describe, it } from 'node:test';
import { compileIr } from '../../src/policy/compile.js';
import { makeCidr, makeCidr4 } from '../../src/policy/ir/cidr.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { explain, flowTupleOf, formatExplanation } from '../../src/policy/tools/explain.js';
import type { FlowTuple, IrRule, PolicyIr } from '../../src/policy/ir/ir.js';
import { addr16, type FrameSpec, parseIp } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant } from '../lib/random-policy.js';
import { tenantId } from '../../src/policy/ir/tenants.js';

const ir = (text: string): PolicyIr => compileIr([{ file: 'p.yaml', text }]).ir;

function tuple(spec: FrameSpec): FlowTuple {
  const t: FlowTuple = { family: isIPv4(spec.src) ? 4 : 6, src: new Uint8Array(parseIp(spec.src)), dst: new Uint8Array(parseIp(spec.dst)), protocol: spec.proto };
  if ([6, 17, 132].includes(spec.proto)) {
    t.sport = spec.sport ?? 40000;
    t.dport = spec.dport ?? 80;
  }
  if (spec.proto === 1 || spec.proto === 58) {
    t.icmpType = spec.icmpType ?? 8;
    t.icmpCode = spec.icmpCode ?? 0;
  }
  return t;
}

/** Checks every claim an explanation makes against the reference evaluator. */
function checkAgainstEvaluate(policy: PolicyIr, t: FlowTuple, limit: number, context: () => string): number {
  const expected = evaluate(policy, t);
  const e = explain(policy, t, { limit });
  assert.equal(e.action, expected.action, context());
  assert.equal(e.rule, expected.rule, `rule: ${context()}`);
  assert.equal(e.decidedBy.index, expected.rule);
  assert.equal(e.skipped, expected.rule === 0 ? policy.rules.length : expected.rule - 1);
  assert.ok(e.misses.length <= limit);
  assert.ok(e.nearMisses <= e.skipped);
  assert.equal(e.omitted, e.nearMisses - e.misses.length);
  assert.equal(e.misses.length, Math.min(limit, e.nearMisses));
  let last = 0;
  for (const m of e.misses) {
    assert.ok(m.rule.index > last, 'misses in rule order');
    last = m.rule.index;
    assert.ok(e.rule === 0 || m.rule.index < e.rule, 'a miss comes before the deciding rule');
    const alone = { ...policy, rules: [policy.rules[m.rule.index - 1] as IrRule] };
    assert.equal(evaluate(alone, t).rule, 0, `rule ${m.rule.id} listed as a miss matches: ${context()}`);
    assert.ok(m.matched.length >= 1 && m.matched.length <= 4);
    assert.ok(m.failed !== 'tenant' || m.rule.tenants !== undefined, 'only a scoped rule misses on its tenant');
    assert.ok(!m.matched.includes('tenant') || m.rule.tenants !== undefined, 'only a scoped rule matches on a tenant');
    assert.ok(!m.matched.includes(m.failed));
  }
  return e.rule;
}

describe('policy explain', () => {
  it('agrees with evaluate on 24,000 random packets over 400 random policies', () => {
    const r = new Random(prng(0xe4a1));
    let n = 0;
    for (let p = 0; p < 400; p++) {
      const policy = randomPolicy(r);
      const compiled = ir(policy.yaml);
      for (let i = 0; i < 60; i++) {
        const spec = randomPacket(r, policy);
        checkAgainstEvaluate(compiled, tuple(spec), r.int(0, 4), () => `policy ${p}, packet ${JSON.stringify(spec)}\n${policy.yaml}`);
        n++;
      }
    }
    assert.equal(n, 24_000);
  });

  it('agrees with evaluate on random policies with rules scoped to tenants, packets from tenants', () => {
    const r = new Random(prng(0x7e11));
    const failed = new Set<string>();
    for (let p = 0; p < 200; p++) {
      const policy = randomPolicy(r, 24, { tenants: true });
      const compiled = ir(policy.yaml);
      for (let i = 0; i < 60; i++) {
        const spec = randomPacket(r, policy);
        const t = { ...tuple(spec), tenant: randomTenant(r, policy) };
        checkAgainstEvaluate(compiled, t, r.int(0, 4), () => `policy ${p}, packet ${JSON.stringify(spec)} from ${t.tenant}\n${policy.yaml}`);
        for (const m of explain(compiled, t).misses) failed.add(m.failed);
      }
    }
    assert.ok(failed.has('tenant'), 'some rules miss on their tenant');
  });

  it('says when a rule is for other tenants, and names the packet\'s tenant where the policy does', () => {
    const policy = ir(`apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: vpcs }
spec:
  defaultAction: deny
  tenants: [vpc-a]
  rules:
    - { name: web, action: allow, from: [10.1.0.0/24], protocol: tcp, ports: [80] }
    - { name: ssh, action: allow, from: [10.1.0.0/24], protocol: tcp, ports: [22], tenants: [vpc-b, vpc-c] }
    - { name: ping, action: allow, protocol: icmp, tenants: [any] }
`);
    const web = (tenant: number) => ({ ...tuple({ src: '10.1.0.5', dst: '192.0.2.1', proto: 6, sport: 40000, dport: 80 }), tenant });
    const a = explain(policy, web(tenantId('vpc-a')));
    assert.deepEqual([a.rule, a.decidedBy.tenants], [1, ['vpc-a']]);
    const b = explain(policy, web(tenantId('vpc-b')));
    assert.equal(b.rule, 0);
    assert.deepEqual(
      b.misses.map((m) => [m.rule.id, m.failed, m.matched, m.detail]),
      [
        ['vpcs/web', 'tenant', ['source', 'destination', 'protocol', 'port'], 'tenant vpc-b is not in vpc-a'],
        ['vpcs/ssh', 'port', ['tenant', 'source', 'destination', 'protocol'], 'destination port 80 is not in 22'],
        ['vpcs/ping', 'protocol', ['source', 'destination', 'port'], 'protocol tcp; the rule is for icmp'],
      ],
    );
    assert.equal(explain(policy, web(0)).misses[0]?.detail, 'the packet comes from no tenant; the rule is only for vpc-a');
    assert.equal(explain(policy, web(tenantId('vpc-z'))).misses[0]?.detail, `tenant 0x${tenantId('vpc-z').toString(16).padStart(8, '0')} is not in vpc-a`);
    assert.equal(formatExplanation(b, web(tenantId('vpc-b')), policy)[0], 'tcp 10.1.0.5:40000 → 192.0.2.1:80 from tenant vpc-b');
    // a rule for every tenant neither misses nor matches on the tenant
    const ping = explain(policy, { ...tuple({ src: '10.1.0.5', dst: '192.0.2.1', proto: 1, icmpType: 8, icmpCode: 0 }), tenant: tenantId('vpc-z') });
    assert.deepEqual([ping.rule, ping.decidedBy.tenants], [3, undefined]);
  });

  it('agrees with evaluate when address lists are long (binary search)', () => {
    const r = new Random(prng(77));
    const decided = new Set<number>();
    const v4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    for (let p = 0; p < 20; p++) {
      const cidrs: string[] = [];
      const probes: string[] = ['10.0.0.0', '255.255.255.255', '::', 'fd00::'];
      for (let i = 0; i < 300; i++) {
        if (r.chance(0.8)) {
          const len = r.pick([20, 24, 28, 32]);
          const size = 2 ** (32 - len);
          const base = (0x0a000000 + r.int(0, 4095) * 4096 + Math.floor(r.int(0, 4095) / size) * size) >>> 0;
          cidrs.push(`${v4(base)}/${len}`);
          // first, last, and the addresses just outside on both sides
          probes.push(v4(base), v4(base + size - 1), v4((base - 1) >>> 0), v4((base + size) >>> 0));
        } else {
          const g = r.int(1, 0xfffe).toString(16);
          cidrs.push(`fd00:${g}::/32`);
          probes.push(`fd00:${g}::1`, `fd00:${g}:ffff:ffff:ffff:ffff:ffff:ffff`, `fd00:${(parseInt(g, 16) + 1).toString(16)}::`);
        }
      }
      const rules = Array.from({ length: 6 }, (_, i) => {
        const list = cidrs.slice(i * 50, i * 50 + 50 + r.int(0, 40)).map((c) => JSON.stringify(c));
        return `    - { name: r${i}, action: ${i % 2 ? 'allow' : 'deny'}, ${r.chance(0.5) ? 'from' : 'to'}: [${list.join(', ')}], protocol: ${r.pick(['tcp', 'any'])} }`;
      });
      const compiled = ir(`apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: long }\nspec:\n  defaultAction: deny\n  rules:\n${rules.join('\n')}\n`);
      assert.ok(compiled.rules.every((x) => x.src.length > 8 || x.dst.length > 8), 'the lists are binary-searched');
      for (let i = 0; i < 400; i++) {
        const src = r.pick(probes);
        let dst = r.pick(probes);
        if (isIPv4(src) !== isIPv4(dst)) dst = src;
        const spec: FrameSpec = { src, dst, proto: r.pick([6, 17]), sport: 1000, dport: 80 };
        decided.add(checkAgainstEvaluate(compiled, tuple(spec), 3, () => `policy ${p}: ${JSON.stringify(spec)}`));
      }
    }
    assert.deepEqual([...decided].sort(), [0, 1, 2, 3, 4, 5, 6], 'every rule and the default decided some probe');
  });

  const web = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - name: corp-https
      action: allow
      from: [10.0.0.0/8, "2001:db8::/32"]
      to: [10.20.0.0/16]
      protocol: tcp
      ports: [443, "8000-8080"]
    - { name: dns, action: allow, protocol: udp, ports: [53] }
    - { name: ping, action: allow, protocol: icmp, icmp: [{ type: 8 }] }
    - { name: v6-only, action: allow, from: ["2001:db8::/32"] }
    - { name: ssh, action: allow, from: [192.0.2.0/24], to: [10.20.0.0/16], protocol: tcp, ports: [22] }
`;

  it('says which dimension failed, rule by rule, and where the deciding rule is written', () => {
    const policy = ir(web);
    const t = tuple({ src: '10.1.2.3', dst: '10.20.1.1', proto: 6, sport: 40000, dport: 80 });
    const e = explain(policy, t);
    assert.equal(e.action, 'deny');
    assert.equal(e.rule, 0);
    assert.deepEqual(e.decidedBy, { index: 0, id: 'web/default', action: 'deny', log: true });
    assert.equal(e.skipped, 5);
    assert.deepEqual(
      e.misses.map((m) => [m.rule.id, m.failed, m.matched, m.detail]),
      [
        ['web/corp-https', 'port', ['source', 'destination', 'protocol'], 'destination port 80 is not in 443, 8000-8080'],
        ['web/dns', 'protocol', ['source', 'destination'], 'protocol tcp; the rule is for udp'],
        ['web/ping', 'protocol', ['source', 'destination'], 'protocol tcp; the rule is for icmp'],
        ['web/v6-only', 'source', ['destination', 'protocol', 'port'], "source 10.1.2.3 is IPv4; the rule's sources are IPv6 only"],
        ['web/ssh', 'source', ['destination', 'protocol'], 'source 10.1.2.3 is not in 192.0.2.0/24'],
      ],
    );
    assert.deepEqual(e.misses[0]?.rule.source, { file: 'p.yaml', line: 7 });
    assert.deepEqual(formatExplanation(e, t), [
      'tcp 10.1.2.3:40000 → 10.20.1.1:80',
      'deny by the default action (web/default): none of the 5 rules matched',
      '5 of them matched in part:',
      '  #1 web/corp-https (allow, p.yaml:7): destination port 80 is not in 443, 8000-8080',
      '  #2 web/dns (allow, p.yaml:13): protocol tcp; the rule is for udp',
      '  #3 web/ping (allow, p.yaml:14): protocol tcp; the rule is for icmp',
      "  #4 web/v6-only (allow, p.yaml:15): source 10.1.2.3 is IPv4; the rule's sources are IPv6 only",
      '  #5 web/ssh (allow, p.yaml:16): source 10.1.2.3 is not in 192.0.2.0/24',
    ]);

    const ping = explain(policy, tuple({ src: '10.1.2.3', dst: '10.20.1.1', proto: 1, icmpType: 0, icmpCode: 0 }));
    assert.equal(ping.rule, 0);
    assert.equal(ping.misses.find((m) => m.rule.id === 'web/ping')?.detail, 'ICMP type 0 code 0 is not in type 8');

    const https = explain(policy, tuple({ src: '10.1.2.3', dst: '10.20.1.1', proto: 6, dport: 8080 }), { limit: 1 });
    assert.equal(https.action, 'allow');
    assert.equal(https.decidedBy.id, 'web/corp-https');
    assert.deepEqual(https.decidedBy.source, { file: 'p.yaml', line: 7 });
    assert.equal(https.skipped, 0);
    assert.deepEqual(formatExplanation(https), ['allow by rule #1 web/corp-https, p.yaml:7']);

    const unknownPort = explain(policy, { ...tuple({ src: '10.1.2.3', dst: '10.20.1.1', proto: 6 }), dport: undefined });
    assert.equal(unknownPort.misses[0]?.detail, "the packet's port is unknown; the rule needs 443, 8000-8080");
  });

  it('lists the closest misses first and counts the rest', () => {
    const policy = ir(web);
    // udp 192.0.2.9 → 10.20.1.1:54: dns misses only the port, v6-only only the source; ping and
    // ssh match two dimensions, corp-https one
    const e = explain(policy, tuple({ src: '192.0.2.9', dst: '10.20.1.1', proto: 17, dport: 54 }), { limit: 2 });
    assert.equal(e.rule, 0);
    assert.equal(e.nearMisses, 5);
    assert.equal(e.omitted, 3);
    assert.deepEqual(
      e.misses.map((m) => [m.rule.id, m.matched.length]),
      [
        ['web/dns', 3],
        ['web/v6-only', 3],
      ],
    );
  });

  it('stays small on a 100,000-rule policy', () => {
    const rules: IrRule[] = [];
    for (let i = 0; i < 100_000; i++) {
      rules.push({
        index: i + 1,
        id: `big/r${i}`,
        policy: 'big',
        name: `r${i}`,
        action: i % 2 ? 'allow' : 'deny',
        log: true,
        priority: 1000,
        src: [makeCidr4((0x0a000000 + i) >>> 0, 32)],
        dst: [makeCidr(4, new Uint8Array([0, 0, 0, 0]), 0), makeCidr(6, new Uint8Array(16), 0)],
        protocol: 6,
        ports: [{ lo: 443, hi: 443 }],
        tenants: null,
        source: { file: 'big.json', line: i + 1 },
      });
    }
    const policy: PolicyIr = { version: 'sha256:big', defaultAction: 'deny', defaultLog: true, rules, policies: ['big'] };
    const miss = tuple({ src: '192.0.2.1', dst: '10.20.1.1', proto: 6, dport: 443 });
    const e = explain(policy, miss);
    assert.equal(e.rule, 0);
    assert.equal(e.skipped, 100_000);
    assert.equal(e.nearMisses, 100_000);
    assert.equal(e.misses.length, 10);
    assert.equal(e.omitted, 99_990);
    assert.ok(JSON.stringify(e).length < 8_000, `${JSON.stringify(e).length} bytes`);
    assert.ok(formatExplanation(e).length <= 13);

    const hit = explain(policy, tuple({ src: '10.1.134.159', dst: '10.20.1.1', proto: 6, dport: 443 }), { limit: 3 });
    assert.equal(hit.rule, 0x186a0); // 10.1.134.159 = 10.0.0.0 + 99,999
    assert.equal(hit.misses.length, 3);
    assert.equal(hit.omitted, 99_999 - 3);
  });

  it('turns a datapath flow key into the evaluator tuple', () => {
    const key = { family: 4, src: addr16('10.1.2.3'), dst: addr16('10.20.1.1'), proto: 1, sport: 7, dport: (3 << 8) | 4 };
    const t = flowTupleOf(key);
    assert.deepEqual([...t.src], [10, 1, 2, 3]);
    assert.deepEqual([t.icmpType, t.icmpCode, t.dport], [3, 4, undefined]);
    const v6 = flowTupleOf({ family: 6, src: addr16('2001:db8::1'), dst: addr16('2001:db8::2'), proto: 6, sport: 1, dport: 443 });
    assert.equal(v6.src.length, 16);
    assert.deepEqual([v6.sport, v6.dport, v6.protocol], [1, 443, 6]);
    assert.equal(explain(ir(web), v6).decidedBy.id, 'web/v6-only');
  });
});
