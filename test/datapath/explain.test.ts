// SPDX-License-Identifier: Apache-2.0
// ds_xdp_explain through NativeEngine.explain: on random policies and packets it decides exactly as the
// reference evaluator (and as the pure explanation), reports the non-policy reasons like
// ds_xdp_ingress, and writes nothing — no session, no fragment, no counter, no event.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Action, ExplainFlag, Reason } from '../../src/abi/generated.js';
import type { RawEvent, SessionKey } from '../../src/abi/records.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { explain, flowTupleOf } from '../../src/policy/tools/explain.js';
import { compileYaml, openTestEngine, sessionKeyOf, tupleOf, waitFor } from '../lib/datapath.js';
import { arpFrame, ethernet, type FrameSpec, frame, ipPacket } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy } from '../lib/random-policy.js';

const POLICIES = 30;
const PACKETS_PER_POLICY = 200;

const plain = (k: SessionKey) => ({ ...k, src: [...k.src], dst: [...k.dst] });

const policy = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: explain }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [80] }
    - { name: dns, action: allow, protocol: udp, ports: [53], log: false }
    - { name: pmtu, action: deny, protocol: icmp }
`;
const web: FrameSpec = { src: '10.9.0.1', dst: '10.1.2.3', proto: 6, sport: 40000, dport: 80 };

describe('datapath: ds_xdp_explain', () => {
  let engine: NativeEngine;
  before(() => {
    engine = openTestEngine();
  });
  after(() => engine?.close());

  it('reports no-policy, with generation 0, before any policy is installed', () => {
    const e = engine.explain(frame(web));
    assert.deepEqual([e.action, e.reason, e.rule, e.generation], [Action.DENY, Reason.NO_POLICY, 0, 0]);
    assert.deepEqual(plain(e.key), plain(sessionKeyOf(web)));
    assert.equal(engine.sessions().length, 0);
  });

  it(`agrees with the reference evaluator on ${POLICIES * PACKETS_PER_POLICY} random packets and writes nothing`, () => {
    const r = new Random(prng(0x3e91a1));
    let compared = 0;
    for (let p = 0; p < POLICIES; p++) {
      const random = randomPolicy(r);
      const { ir, image } = compileYaml(random.yaml, `random-${p}.yaml`);
      const { generation } = engine.install(image);
      const stats = engine.stats();
      const ruleStats = engine.ruleStats();
      for (let i = 0; i < PACKETS_PER_POLICY; i++) {
        const spec = randomPacket(r, random);
        const expected = evaluate(ir, tupleOf(spec));
        const got = engine.explain(frame(spec));
        const context = () => `policy ${p}, packet ${i}: ${JSON.stringify(spec)}\n${random.yaml}`;
        assert.equal(got.reason, Reason.POLICY, context());
        assert.equal(got.generation, generation, context());
        assert.equal(got.action, expected.action === 'allow' ? Action.ALLOW : Action.DENY, context());
        assert.equal(got.rule, expected.rule, `rule: ${context()}`);
        assert.equal(got.log, expected.rule === 0 ? true : (ir.rules[expected.rule - 1]?.log ?? true), context());
        assert.equal(got.flags, 0, context());
        assert.deepEqual(plain(got.key), plain(sessionKeyOf(spec)), context());
        // the key the kernel parsed, explained in TypeScript, names the same rule
        assert.equal(explain(ir, flowTupleOf(got.key), { limit: 2 }).rule, got.rule, context());
        compared++;
      }
      assert.equal(engine.sessions().length, 0, `policy ${p}: the session cache stays empty`);
      assert.deepEqual(engine.stats(), stats, `policy ${p}: counters, per-reason stats and event sequences unchanged`);
      assert.deepEqual(engine.ruleStats(), ruleStats, `policy ${p}: per-rule counters unchanged`);
    }
    assert.equal(compared, POLICIES * PACKETS_PER_POLICY);
  });

  it('emits no event: the only event after a burst of explains is the next real session', async () => {
    engine.install(compileYaml(policy).image);
    const events: RawEvent[] = [];
    const stop = engine.onEvents((batch) => events.push(...batch));
    try {
      for (let i = 0; i < 200; i++) engine.explain(frame({ ...web, sport: 1000 + i }));
      const sentinel = { ...web, sport: 999 };
      assert.equal(engine.testRun(frame(sentinel)).verdict, 'pass');
      assert.ok(await waitFor(() => events.length >= 1), 'the sentinel event arrives');
      assert.equal(events.length, 1);
      assert.equal(events[0]?.sport, 999);
    } finally {
      stop();
    }
  });

  it('explains the live tables, not the cache, and leaves a cached session as it was', () => {
    const allowed = compileYaml(policy).image;
    engine.install(allowed);
    const spec = { ...web, sport: 41000 };
    assert.equal(engine.testRun(frame(spec)).verdict, 'pass');
    const cached = engine.lookupSession(sessionKeyOf(spec));
    assert.equal(cached?.action, Action.ALLOW);

    const { generation } = engine.install(compileYaml(policy.replace('name: web, action: allow', 'name: web, action: deny')).image);
    const e = engine.explain(frame(spec));
    assert.deepEqual([e.action, e.reason, e.rule, e.generation], [Action.DENY, Reason.POLICY, 1, generation]);
    assert.deepEqual(engine.lookupSession(sessionKeyOf(spec)), cached, 'the stale entry is untouched');
  });

  it('reports the failsafe: ARP, neighbour discovery, management prefixes', () => {
    engine.install(compileYaml(policy).image);
    const cached = engine.sessions().length;
    const generation = engine.activePolicy()?.generation;
    const arp = engine.explain(arpFrame());
    assert.deepEqual([arp.action, arp.reason, arp.rule, arp.generation, arp.key.family], [Action.ALLOW, Reason.FAILSAFE, 0, generation, 0]);

    const ns: FrameSpec = { src: 'fe80::1', dst: 'ff02::1:ff00:5', proto: 58, icmpType: 135, hopLimit: 255, payload: 16 };
    assert.deepEqual([engine.explain(frame(ns)).action, engine.explain(frame(ns)).reason], [Action.ALLOW, Reason.FAILSAFE]);
    // with hop limit 64 it is not neighbour discovery: the policy decides
    assert.deepEqual([engine.explain(frame({ ...ns, hopLimit: 64 })).reason], [Reason.POLICY]);

    const mgmt = parseCidr('10.9.0.0/24');
    assert.ok(!('problem' in mgmt));
    engine.setFailsafe([{ cidr: mgmt, protocol: 6, ports: { lo: 22, hi: 22 } }]);
    try {
      const ssh = engine.explain(frame({ ...web, dport: 22 }));
      assert.deepEqual([ssh.action, ssh.reason, ssh.rule], [Action.ALLOW, Reason.FAILSAFE, 0]);
      assert.deepEqual([engine.explain(frame({ ...web, dport: 23 })).reason], [Reason.POLICY]);
    } finally {
      engine.setFailsafe([]);
    }
    assert.equal(engine.sessions().length, cached);
  });

  it('reports non-IP frames by the pass-non-IP setting, and malformed frames', () => {
    const before = engine.stats();
    const lldp = ethernet(0x88cc, Buffer.alloc(46));
    assert.deepEqual([engine.explain(lldp).action, engine.explain(lldp).reason], [Action.DENY, Reason.NON_IP]);
    engine.setPassNonIp(true);
    try {
      assert.deepEqual([engine.explain(lldp).action, engine.explain(lldp).reason], [Action.ALLOW, Reason.NON_IP]);
    } finally {
      engine.setPassNonIp(false);
    }
    const truncated = ethernet(0x0800, Buffer.alloc(10));
    assert.deepEqual([engine.explain(truncated).action, engine.explain(truncated).reason], [Action.DENY, Reason.MALFORMED]);
    assert.deepEqual(engine.stats(), before, 'nothing counted');
  });

  it('flags fragments and ICMP errors, and records no fragment', () => {
    engine.install(compileYaml(policy).image);
    const first: FrameSpec = { ...web, proto: 17, dport: 53, fragment: { offset: 0, more: true, id: 4242 }, payload: 64 };
    const later: FrameSpec = { ...first, fragment: { offset: 72, more: false, id: 4242 } };
    const f = engine.explain(frame(first));
    assert.deepEqual([f.action, f.reason, f.rule, f.log, f.flags], [Action.ALLOW, Reason.POLICY, 2, false, ExplainFlag.FRAG_FIRST]);
    const l = engine.explain(frame(later));
    assert.deepEqual([l.action, l.reason, l.flags], [Action.DENY, Reason.FRAG_UNKNOWN, ExplainFlag.FRAG_LATER]);
    // explain did not record the first fragment: the ingress program does not know it either
    const unknown = engine.stats().counters.FRAG_UNKNOWN;
    assert.equal(engine.testRun(frame(later)).verdict, 'drop');
    assert.equal(engine.stats().counters.FRAG_UNKNOWN, unknown + 1);

    const reply = ipPacket({ src: web.dst, dst: web.src, proto: 6, sport: 80, dport: 40000 }).subarray(0, 28);
    const tooBig = engine.explain(frame({ src: '10.9.0.254', dst: '10.1.2.3', proto: 1, icmpType: 3, icmpCode: 4, quote: reply }));
    assert.deepEqual([tooBig.action, tooBig.reason, tooBig.rule, tooBig.flags], [Action.DENY, Reason.POLICY, 3, ExplainFlag.ICMP_ERROR]);
    assert.equal(tooBig.key.dport, (3 << 8) | 4);
  });

  it('reports no-policy again once the policy is removed', () => {
    engine.uninstall();
    const e = engine.explain(frame({ ...web, vlans: [300, 400] }));
    assert.deepEqual([e.action, e.reason, e.rule, e.generation], [Action.DENY, Reason.NO_POLICY, 0, 0]);
    assert.deepEqual([e.key.vlanOuter, e.key.vlanInner], [300, 400]);
  });
});

describe('datapath: ds_xdp_explain in an engine that adopted pinned maps', () => {
  it("sees the policy another engine installed (the agent's live tables)", () => {
    const pinRoot = `/sys/fs/bpf/doorstep-explain-test-${process.pid}`;
    const owner = NativeEngine.open({ pinRoot, sessionEntries: 1 << 14 });
    try {
      const { generation } = owner.install(compileYaml(policy).image);
      const adopter = NativeEngine.open({ pinRoot, sessionEntries: 1 << 14 });
      try {
        assert.equal(adopter.adopted, true);
        const e = adopter.explain(frame(web));
        assert.deepEqual([e.action, e.reason, e.rule, e.generation], [Action.ALLOW, Reason.POLICY, 1, generation]);
        assert.equal(owner.sessions().length, 0);
      } finally {
        adopter.close({ keepAttached: true });
      }
    } finally {
      owner.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  });
});
