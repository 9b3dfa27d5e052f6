// SPDX-License-Identifier: Apache-2.0
// The pure policy diff (src/policy/tools/diff.ts): rules added, removed and changed with what changed,
// moves told apart from index shifts, the default action, the version; and the cached sessions a
// candidate would flip, checked against the reference evaluator on random policies.
import assert from 'node:assert/strict';
import { isIPv4 } from 'node:net';
import { describe, it } from 'node:test';
import { Action, Reason } from '../../src/abi/generated.js';
import type { SessionKey, SessionValue } from '../../src/abi/records.js';
import { compileIr } from '../../src/policy/compile.js';
import { type CachedSession, diffPolicies, formatDiff, sessionImpact, sessionImpactAccumulator } from '../../src/policy/tools/diff.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { flowTupleOf } from '../../src/policy/tools/explain.js';
import type { PolicyIr } from '../../src/policy/ir/ir.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { addr16, type FrameSpec } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy } from '../lib/random-policy.js';

const ir = (text: string, file = 'p.yaml'): PolicyIr => compileIr([{ file, text }]).ir;
const doc = (rules: string[], defaultAction = 'deny') =>
  `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: ${defaultAction}\n  rules:\n${rules.map((r) => `    - ${r}`).join('\n')}\n`;

function keyOf(spec: FrameSpec): SessionKey {
  const icmp = spec.proto === 1 || spec.proto === 58;
  return {
    family: isIPv4(spec.src) ? 4 : 6,
    src: addr16(spec.src),
    dst: addr16(spec.dst),
    ifindex: 1,
    vlanOuter: 0,
    vlanInner: 0,
    proto: spec.proto,
    sport: icmp ? (spec.icmpId ?? 0) : (spec.sport ?? 0),
    dport: icmp ? ((spec.icmpType ?? 0) << 8) | (spec.icmpCode ?? 0) : (spec.dport ?? 0),
  };
}

function session(spec: FrameSpec, action: 'allow' | 'deny', rule: number, reason: number = Reason.POLICY, generation = 1): CachedSession {
  const value: SessionValue = {
    firstSeenNs: 1n,
    lastSeenNs: 2n,
    packets: 3,
    bytes: 300,
    rule,
    generation,
    action: action === 'allow' ? Action.ALLOW : Action.DENY,
    reason,
    flags: 1,
  };
  return { key: keyOf(spec), value };
}

describe('policy diff: rules', () => {
  const base = [
    '{ name: a, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [80] }',
    '{ name: b, action: allow, protocol: udp, ports: [53] }',
    '{ name: c, action: deny, from: [192.0.2.0/24] }',
    '{ name: d, action: allow, protocol: icmp, icmp: [{ type: 8 }] }',
  ];

  it('is empty for the same policy, and says so', () => {
    const d = diffPolicies(ir(doc(base)), ir(doc(base), 'moved.yaml'));
    assert.equal(d.sameVersion, true);
    assert.deepEqual(d.counts, { added: 0, removed: 0, changed: 0, unchanged: 4 });
    assert.equal(d.defaultAction, null);
    assert.deepEqual([d.added, d.removed, d.changed], [[], [], []]);
    assert.equal(formatDiff(d)[0], `same version ${d.candidate.version}: nothing would change`);
  });

  it('names every change by rule id and field', () => {
    const installed = ir(doc(base));
    const candidate = ir(
      doc(
        [
          '{ name: new, action: deny, from: [198.51.100.0/24], priority: 5 }',
          '{ name: a, action: deny, to: [10.1.0.0/16, 10.9.0.0/16], protocol: tcp, ports: [80, 443] }',
          '{ name: b, action: allow, protocol: udp, ports: [53], log: false }',
          '{ name: d, action: allow, protocol: icmp, icmp: [{ type: 8 }, { type: 3, code: 4 }] }',
        ],
        'allow',
      ),
    );
    const d = diffPolicies(installed, candidate);
    assert.equal(d.sameVersion, false);
    assert.deepEqual(d.defaultAction, { before: 'deny', after: 'allow' });
    assert.deepEqual(d.counts, { added: 1, removed: 1, changed: 3, unchanged: 0 });
    assert.deepEqual(
      d.added.map((r) => [r.id, r.index, r.action, r.priority]),
      [['web/new', 1, 'deny', 5]],
    );
    assert.deepEqual(
      d.removed.map((r) => [r.id, r.index]),
      [['web/c', 3]],
    );
    const byId = new Map(d.changed.map((c) => [c.id, c]));
    assert.deepEqual(byId.get('web/a')?.changes, [
      { field: 'action', before: 'allow', after: 'deny' },
      { field: 'dst', before: '10.1.0.0/16', after: '10.1.0.0/16, 10.9.0.0/16', added: ['10.9.0.0/16'], addedCount: 1, removed: [], removedCount: 0 },
      { field: 'ports', before: '80', after: '80, 443' },
    ]);
    assert.deepEqual(byId.get('web/b')?.changes, [{ field: 'log', before: 'true', after: 'false' }]);
    assert.deepEqual(byId.get('web/d')?.changes, [{ field: 'ports', before: 'type 8', after: 'type 3 code 4, type 8' }]);
    // the new rule at the top shifts every index, but moves nothing
    assert.ok(d.changed.every((c) => !c.changes.some((f) => f.field === 'order')));
    assert.deepEqual(formatDiff(d).slice(0, 4), [`${installed.version} → ${candidate.version}`, 'default action: deny → allow', 'rules: 1 added, 1 removed, 3 changed, 0 unchanged', '+ #1 web/new deny (p.yaml:7)']);
  });

  it('tells a moved rule from shifted ones', () => {
    const names = Array.from({ length: 10 }, (_, i) => `{ name: r${i}, action: allow, protocol: udp, ports: [${1000 + i}] }`);
    const moved = [...names];
    const [r7] = moved.splice(7, 1);
    moved.splice(1, 0, r7 as string);
    const d = diffPolicies(ir(doc(names)), ir(doc(moved)));
    assert.deepEqual(
      d.changed.map((c) => [c.id, c.changes]),
      [['web/r7', [{ field: 'order', before: '#8', after: '#2' }]]],
    );
    assert.equal(d.counts.unchanged, 9);

    // a priority change that moves a rule is both; one that moves nothing is only a priority change
    const prio = [...names];
    prio[9] = '{ name: r9, action: allow, protocol: udp, ports: [1009], priority: 1 }';
    prio[0] = '{ name: r0, action: allow, protocol: udp, ports: [1000], priority: 2 }';
    const p = diffPolicies(ir(doc(names)), ir(doc(prio)));
    assert.deepEqual(
      p.changed.map((c) => [c.id, c.changes.map((f) => f.field)]),
      [
        ['web/r9', ['priority', 'order']],
        ['web/r0', ['priority']],
      ],
    );
  });

  it('names a change of tenants', () => {
    const before = ir(doc(['{ name: a, action: allow, protocol: tcp, ports: [80] }', '{ name: b, action: allow, protocol: udp, tenants: [vpc-a] }']));
    const after = ir(doc(['{ name: a, action: allow, protocol: tcp, ports: [80], tenants: [vpc-b, vpc-a] }', '{ name: b, action: allow, protocol: udp, tenants: [vpc-a] }']));
    const d = diffPolicies(before, after);
    assert.deepEqual(d.counts, { added: 0, removed: 0, changed: 1, unchanged: 1 });
    assert.deepEqual(d.changed[0]?.changes, [{ field: 'tenants', before: 'every tenant', after: 'vpc-a, vpc-b' }]);
  });

  it('describes a first install and bounds its lists', () => {
    const many = Array.from({ length: 300 }, (_, i) => `{ name: r${i}, action: allow, protocol: udp, ports: [${1000 + i}] }`);
    const d = diffPolicies(null, ir(doc(many)), { limit: 20 });
    assert.equal(d.installed, null);
    assert.equal(d.sameVersion, false);
    assert.deepEqual(d.counts, { added: 300, removed: 0, changed: 0, unchanged: 0 });
    assert.equal(d.added.length, 20);
    assert.equal(d.truncated, true);
    assert.deepEqual(d.policies, { added: ['web'], removed: [] });
    assert.equal(formatDiff(d)[0], `(no policy installed) → ${d.candidate.version}`);
  });
});

describe('policy diff: cached sessions', () => {
  const installed = ir(doc(['{ name: web, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [80, 443] }', '{ name: dns, action: allow, protocol: udp, ports: [53] }']));
  const candidate = ir(doc(['{ name: web, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [443] }', '{ name: ssh, action: allow, protocol: tcp, ports: [22] }', '{ name: dns, action: allow, protocol: udp, ports: [53] }']));
  const http = { src: '10.9.0.1', dst: '10.1.2.3', proto: 6, sport: 40000, dport: 80 };
  const ssh = { src: '10.9.0.1', dst: '10.1.2.3', proto: 6, sport: 40001, dport: 22 };
  const dns = { src: '10.9.0.1', dst: '10.1.2.3', proto: 17, sport: 40002, dport: 53 };
  const https = { ...http, dport: 443 };

  it('reports flips both ways and leaves failsafe and no-policy sessions out', () => {
    const sessions = [
      session(http, 'allow', 1),
      session(ssh, 'deny', 0),
      session(dns, 'allow', 2),
      session(https, 'allow', 1),
      session({ ...ssh, sport: 1 }, 'allow', 0, Reason.FAILSAFE),
      session({ ...ssh, sport: 2 }, 'deny', 0, Reason.NO_POLICY, 0),
    ];
    const s = sessionImpact(installed, candidate, sessions);
    assert.equal(s.total, 6);
    assert.equal(s.compared, 4);
    assert.deepEqual(s.notPolicy, { failsafe: 1, noPolicy: 1, other: 0 });
    assert.equal(s.toDeny.count, 1);
    assert.equal(s.toAllow.count, 1);
    assert.equal(s.ruleChanged, 1); // dns: rule 2 → rule 3
    assert.equal(s.unchanged, 1); // https
    const cut = s.toDeny.first[0];
    assert.equal(cut?.flow, 'tcp 10.9.0.1:40000 → 10.1.2.3:80');
    assert.deepEqual(cut?.now, { action: 'allow', rule: 1, ruleId: 'web/web', generation: 1 });
    assert.deepEqual(cut?.candidate, { action: 'deny', rule: 0, ruleId: 'web/default' });
    assert.deepEqual(s.toAllow.first[0]?.candidate, { action: 'allow', rule: 2, ruleId: 'web/ssh' });
    assert.deepEqual(formatDiff(diffPolicies(installed, candidate), s).slice(-4), [
      'sessions: 6 cached, 4 decided by the policy: 1 would be cut (allow → deny), 1 would be let through (deny → allow), 1 keep their verdict under another rule',
      '  not compared: 1 failsafe, 1 from before any policy, 0 other',
      '  cut   tcp 10.9.0.1:40000 → 10.1.2.3:80: web/web → web/default',
      '  allow tcp 10.9.0.1:40001 → 10.1.2.3:22: web/default → web/ssh',
    ]);
  });

  it('gives the same impact fed a session at a time (as the policy thread is)', () => {
    const sessions = [session(http, 'allow', 1), session(ssh, 'deny', 0), session(dns, 'allow', 2), session(https, 'allow', 1), session({ ...ssh, sport: 1 }, 'allow', 0, Reason.FAILSAFE)];
    const fed = sessionImpactAccumulator(installed, candidate, { limit: 1 });
    for (const s of sessions) fed.add(s);
    assert.deepEqual(fed.result, sessionImpact(installed, candidate, sessions, { limit: 1 }));
  });

  it('judges a stale entry by what the installed policy gives it now', () => {
    // cached as allowed under generation 1; generation 2 (installed) already denies ssh... and the candidate allows it
    const s = sessionImpact(installed, candidate, [session(ssh, 'allow', 5, Reason.POLICY, 1)], { generation: 2 });
    assert.equal(s.stale, 1);
    assert.equal(s.toAllow.count, 1);
    assert.deepEqual(s.toAllow.first[0]?.now, { action: 'deny', rule: 0, ruleId: 'web/default', generation: 1 });
    const fresh = sessionImpact(installed, candidate, [session(ssh, 'allow', 5, Reason.POLICY, 2)], { generation: 2 });
    assert.equal(fresh.stale, 0);
    assert.equal(fresh.toAllow.count + fresh.toDeny.count, 0);
  });

  it('judges sessions of a tenant-scoped policy by their interface\'s tenant', () => {
    const scoped = ir(doc(['{ name: web, action: allow, protocol: tcp, ports: [80], tenants: [vpc-a] }']));
    const sessions = [session(http, 'allow', 1)];
    const noTenant = sessionImpact(installed, scoped, sessions);
    assert.equal(noTenant.toDeny.count, 1, 'from no tenant, the scoped rule does not apply');
    const tenantOf = (ifindex: number) => (ifindex === 1 ? tenantId('vpc-a') : 0);
    const fromA = sessionImpact(installed, scoped, sessions, { tenantOf });
    assert.deepEqual([fromA.toDeny.count, fromA.unchanged], [0, 1]);
  });

  it('counts every flip of a large cache and lists the first few', () => {
    const sessions = Array.from({ length: 20_000 }, (_, i) => session({ ...http, sport: 1024 + (i % 60000), src: `10.9.${i >> 8}.${i & 255}` }, 'allow', 1));
    const s = sessionImpact(installed, candidate, sessions, { limit: 5 });
    assert.equal(s.toDeny.count, 20_000);
    assert.equal(s.toDeny.first.length, 5);
    assert.ok(JSON.stringify(s).length < 5_000);
  });

  it('agrees with the reference evaluator on random policies and caches', () => {
    const r = new Random(prng(0xd1ff));
    let flips = 0;
    for (let p = 0; p < 150; p++) {
      const a = randomPolicy(r);
      const b = r.chance(0.2) ? a : randomPolicy(r);
      const irA = ir(a.yaml);
      const irB = ir(b.yaml);
      const specs = Array.from({ length: 80 }, () => randomPacket(r, r.chance(0.5) ? a : b));
      const sessions = specs.map((spec) => {
        const d = evaluate(irA, flowTupleOf(keyOf(spec)));
        return session(spec, d.action, d.rule);
      });
      const s = sessionImpact(irA, irB, sessions, { limit: 1000, generation: 1 });
      let toDeny = 0;
      let toAllow = 0;
      let ruleChanged = 0;
      for (const spec of specs) {
        const t = flowTupleOf(keyOf(spec));
        const [x, y] = [evaluate(irA, t), evaluate(irB, t)];
        if (x.action !== y.action) (y.action === 'deny' ? toDeny++ : toAllow++);
        else if (x.rule !== y.rule) ruleChanged++;
      }
      assert.deepEqual([s.toDeny.count, s.toAllow.count, s.ruleChanged], [toDeny, toAllow, ruleChanged], `policy ${p}`);
      assert.equal(s.toDeny.first.length + s.toAllow.first.length, toDeny + toAllow);
      if (a === b) assert.equal(toDeny + toAllow + ruleChanged, 0);
      flips += toDeny + toAllow;

      const d = diffPolicies(irA, irB);
      assert.equal(d.sameVersion, a === b || irA.version === irB.version);
      assert.equal(d.counts.added + d.counts.changed + d.counts.unchanged, irB.rules.length);
      assert.equal(d.counts.removed + d.counts.changed + d.counts.unchanged, irA.rules.length);
    }
    assert.ok(flips > 100, `${flips} flips exercised`);
  });
});
