// SPDX-License-Identifier: Apache-2.0
// Rules scoped to tenants through BPF_PROG_TEST_RUN: two VPCs with the same address range, served
// by one enforcer, get their own rules, decided by the tenant of the interface a packet arrives on
// (ds_ifaces); ds_xdp_explain takes the tenant in front of the frame and agrees with the reference
// evaluator. Veth interfaces (down, no traffic) give the tenants' ifindexes; removed afterwards.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, Reason } from '../../src/abi/generated.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { explain, flowTupleOf } from '../../src/policy/tools/explain.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { compileYaml, sessionKeyOf, tupleOf, withTestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant } from '../lib/random-policy.js';

const policy = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: vpcs }
spec:
  defaultAction: deny
  rules:
    - { name: web-a, action: allow, from: [10.1.0.0/24], protocol: tcp, ports: [80], tenants: [vpc-a] }
    - { name: dns, action: allow, from: [10.1.0.0/24], protocol: udp, ports: [53] }
`;

const web: FrameSpec = { src: '10.1.0.5', dst: '192.0.2.10', proto: 6, sport: 40000, dport: 80 };
const dns: FrameSpec = { src: '10.1.0.5', dst: '192.0.2.53', proto: 17, sport: 40001, dport: 53 };

describe('datapath: rules scoped to tenants', () => {
  let engine: NativeEngine;
  const ifindex = withTestInterfaces('tnt', 2, (e, [a, b]) => {
    engine = e;
    engine.setInterfaceRoles([
      { ifindex: a as number, role: 'source', tenant: tenantId('vpc-a') },
      { ifindex: b as number, role: 'source', tenant: tenantId('vpc-b') },
    ]);
  });
  const vpcA = () => ifindex(0);
  const vpcB = () => ifindex(1);
  const run = (spec: FrameSpec, ifindex: number) => engine.testRun(frame(spec), { ingressIfindex: ifindex });

  it('passes tcp/80 from vpc-a by its rule, and denies the identical packet from vpc-b by default', () => {
    const { generation } = engine.install(compileYaml(policy).image);
    assert.equal(run(web, vpcA()).verdict, 'pass');
    assert.equal(run(web, vpcA()).verdict, 'pass', 'from the cache');
    assert.equal(run(web, vpcB()).verdict, 'drop');
    assert.equal(run(web, vpcB()).verdict, 'drop');
    const a = engine.lookupSession(sessionKeyOf(web, vpcA()));
    const b = engine.lookupSession(sessionKeyOf(web, vpcB()));
    assert.deepEqual([a?.action, a?.reason, a?.rule, a?.generation], [Action.ALLOW, Reason.POLICY, 1, generation]);
    assert.deepEqual([b?.action, b?.reason, b?.rule, b?.generation], [Action.DENY, Reason.POLICY, 0, generation]);
    // the rule for every tenant applies to both
    assert.equal(run(dns, vpcA()).verdict, 'pass');
    assert.equal(run(dns, vpcB()).verdict, 'pass');
    assert.equal(engine.lookupSession(sessionKeyOf(dns, vpcB()))?.rule, 2);

    const rules = engine.ruleStats();
    assert.equal(rules.get(1)?.packets, 2, 'web-a counted the two vpc-a packets only');
    assert.equal(rules.get(2)?.packets, 2, 'dns counted one packet per tenant');
    assert.equal(rules.get(0)?.packets, 2, 'the default counted the two vpc-b packets');
    const s = engine.stats();
    assert.equal(s.byReason.POLICY.pass.packets, 4);
    assert.equal(s.byReason.POLICY.drop.packets, 2);
  });

  it('re-decides a cached session when a new version changes the tenants of its rule', () => {
    engine.install(compileYaml(policy).image);
    assert.equal(run(web, vpcB()).verdict, 'drop');
    engine.install(compileYaml(policy.replace('tenants: [vpc-a]', 'tenants: [vpc-a, vpc-b]')).image);
    assert.equal(run(web, vpcB()).verdict, 'pass');
    assert.equal(engine.lookupSession(sessionKeyOf(web, vpcB()))?.rule, 1);
    engine.install(compileYaml(policy.replace('tenants: [vpc-a]', 'tenants: [vpc-c]')).image);
    assert.equal(run(web, vpcA()).verdict, 'drop');
    assert.equal(run(web, vpcB()).verdict, 'drop');
  });

  it('explains for the tenant named in front of the frame, writing nothing', () => {
    const { generation } = engine.install(compileYaml(policy).image);
    const a = engine.explain(frame(web), { tenant: tenantId('vpc-a') });
    assert.deepEqual([a.action, a.reason, a.rule, a.generation, a.tenant], [Action.ALLOW, Reason.POLICY, 1, generation, tenantId('vpc-a')]);
    const b = engine.explain(frame(web), { tenant: tenantId('vpc-b') });
    assert.deepEqual([b.action, b.reason, b.rule, b.tenant], [Action.DENY, Reason.POLICY, 0, tenantId('vpc-b')]);
    const none = engine.explain(frame(web));
    assert.deepEqual([none.action, none.rule, none.tenant], [Action.DENY, 0, 0]);
    assert.equal(engine.sessions().length, 0);
    assert.throws(() => engine.explain(frame(web), { tenant: -1 }), /not a tenant id/);
  });

  it('explain agrees with the reference evaluator on random tenant-scoped policies', () => {
    const r = new Random(prng(0x7e9a));
    for (let p = 0; p < 20; p++) {
      const random = randomPolicy(r, 24, { tenants: true });
      const { ir, image } = compileYaml(random.yaml, `random-${p}.yaml`);
      engine.install(image);
      for (let i = 0; i < 100; i++) {
        const spec = randomPacket(r, random);
        const tenant = randomTenant(r, random);
        const expected = evaluate(ir, { ...tupleOf(spec), tenant });
        const got = engine.explain(frame(spec), { tenant });
        const context = () => `policy ${p}, packet ${i} from ${tenant}: ${JSON.stringify(spec)}\n${random.yaml}`;
        assert.equal(got.rule, expected.rule, context());
        assert.equal(got.action, expected.action === 'allow' ? Action.ALLOW : Action.DENY, context());
        assert.equal(explain(ir, flowTupleOf(got.key, got.tenant), { limit: 1 }).rule, got.rule, context());
      }
    }
    assert.equal(engine.sessions().length, 0);
  });
});
