// SPDX-License-Identifier: Apache-2.0
// Hairpin replies through BPF_PROG_TEST_RUN (the infra placement, DESIGN.md): an allowed flow from
// tenant A to a network tenant B serves on this enforcer leaves the enforcer by B's source
// interface, and B's reply arrives on that source interface. There it passes as `reply` while the
// forward flow is allowed under the active version — and only there: not on another tenant's
// interface with the same addresses, not without a forward session, not once a new version denies
// the forward flow. Veth interfaces (down, no traffic) give the tenants' ifindexes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, Reason } from '../../src/abi/generated.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { compileYaml, sessionKeyOf, withTestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame, ipPacket } from '../lib/packet.js';

const policy = (aToB: 'allow' | 'deny') => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: infra }
spec:
  defaultAction: deny
  rules:
    - { name: a-to-b, action: ${aToB}, from: [10.1.0.0/16], to: [10.2.0.0/16], protocol: tcp, ports: [443], tenants: [vpc-a] }
    - { name: a-ping-b, action: allow, from: [10.1.0.0/16], to: [10.2.0.0/16], protocol: icmp, tenants: [vpc-a] }
`;

const forward: FrameSpec = { src: '10.1.0.5', dst: '10.2.0.7', proto: 6, sport: 40000, dport: 443 };
const reply: FrameSpec = { src: '10.2.0.7', dst: '10.1.0.5', proto: 6, sport: 443, dport: 40000 };

describe('datapath: hairpin replies on source interfaces', () => {
  let engine: NativeEngine;
  const ifindex = withTestInterfaces('hp', 3, (e, ifindexes) => {
    engine = e;
    engine.install(compileYaml(policy('allow')).image);
    engine.setInterfaceRoles(['vpc-a', 'vpc-b', 'vpc-c'].map((t, i) => ({ ifindex: ifindexes[i] as number, role: 'source', tenant: tenantId(t) })));
  });
  const [vpcA, vpcB, vpcC] = [0, 1, 2].map((i) => () => ifindex(i)) as [() => number, () => number, () => number];
  const run = (spec: FrameSpec, ifindex: number) => engine.testRun(frame(spec), { ingressIfindex: ifindex });
  /** B serves 10.2.0.0/16; A serves 10.1.0.0/16 (C, with B's addresses, serves nothing here). */
  const nets = () => {
    const a = parseCidr('10.1.0.0/16'); // parsed, or as text
    assert.ok(!('problem' in a));
    return engine.setTenantNetworks([
      { cidr: '10.2.0.0/16', tenant: tenantId('vpc-b') },
      { cidr: a, tenant: tenantId('vpc-a') },
    ]);
  };

  it("passes B's reply on B's source interface as a reply, without a session, and counts it", () => {
    assert.equal(nets(), true);
    assert.equal(nets(), false, 'the same networks again change nothing');
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    const before = engine.stats();
    assert.equal(run(reply, vpcB()).verdict, 'pass');
    assert.equal(run(reply, vpcB()).verdict, 'pass');
    const s = engine.stats();
    assert.equal(s.counters.REPLIES - before.counters.REPLIES, 2);
    assert.equal(s.byReason.REPLY.pass.packets - before.byReason.REPLY.pass.packets, 2);
    assert.equal(s.counters.CACHE_MISSES, before.counters.CACHE_MISSES, 'a reply is not classified');
    assert.equal(engine.lookupSession(sessionKeyOf(reply, vpcB())), null, 'no session of its own');
    assert.equal(engine.ruleStats().get(0)?.packets ?? 0, 0, 'nothing reached the default');
  });

  it('denies an unsolicited flow from B with the same ports, and a reply before its forward flow', () => {
    nets();
    assert.equal(run(reply, vpcB()).verdict, 'drop', 'no forward session yet');
    const denied = engine.lookupSession(sessionKeyOf(reply, vpcB()));
    assert.deepEqual([denied?.action, denied?.reason], [Action.DENY, Reason.POLICY]);
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    // the cached deny was left while tenant networks were set: it yields to the reply now
    assert.equal(run(reply, vpcB()).verdict, 'pass');
    assert.equal(engine.stats().byReason.REPLY.pass.packets, 1);
    // another host of B with the same ports has no forward session
    assert.equal(run({ ...reply, src: '10.2.0.8' }, vpcB()).verdict, 'drop');
    assert.equal(run({ ...reply, dport: 40001 }, vpcB()).verdict, 'drop');
    assert.equal(engine.stats().byReason.REPLY.pass.packets, 1);
  });

  it("keeps tenants apart: C, with B's addresses, does not get B's reply; nor does A", () => {
    nets();
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    assert.equal(run(reply, vpcC()).verdict, 'drop');
    assert.equal(run(reply, vpcA()).verdict, 'drop');
    assert.equal(run(reply, vpcB()).verdict, 'pass');
  });

  it('stops passing the reply once a new version denies the forward flow, and passes it again when allowed', () => {
    nets();
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    assert.equal(run(reply, vpcB()).verdict, 'pass');
    engine.install(compileYaml(policy('deny')).image);
    assert.equal(run(reply, vpcB()).verdict, 'drop', 'no forward packet since: the forward flow is classified under the new version');
    engine.install(compileYaml(policy('allow')).image);
    assert.equal(run(reply, vpcB()).verdict, 'pass');
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    engine.install(compileYaml(policy('deny')).image);
    assert.equal(run(forward, vpcA()).verdict, 'drop');
    assert.equal(run(reply, vpcB()).verdict, 'drop', 'the re-classified forward session is a deny');
  });

  it('without tenant networks, source interfaces neither remember nor accept hairpin replies', () => {
    assert.equal(run(forward, vpcA()).verdict, 'pass');
    nets(); // the session above was allowed before any network was set: no reply remembered
    assert.equal(run(reply, vpcB()).verdict, 'drop');
    assert.equal(engine.setTenantNetworks([]), true);
    assert.equal(run({ ...forward, sport: 40002 }, vpcA()).verdict, 'pass');
    assert.equal(run({ ...reply, dport: 40002 }, vpcB()).verdict, 'drop', 'networks cleared: a reply is just another packet');
    assert.equal(engine.stats().counters.REPLIES, 0);
  });

  it('passes echo replies of allowed pings, and ICMP errors from the hairpinned network', () => {
    nets();
    const ping: FrameSpec = { src: '10.1.0.5', dst: '10.2.0.7', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 9 };
    const pong: FrameSpec = { src: '10.2.0.7', dst: '10.1.0.5', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 9 };
    assert.equal(run(ping, vpcA()).verdict, 'pass');
    assert.equal(run(pong, vpcB()).verdict, 'pass');
    assert.equal(run({ ...pong, icmpId: 10 }, vpcB()).verdict, 'drop');

    assert.equal(run(forward, vpcA()).verdict, 'pass');
    const quoted = ipPacket({ ...forward }).subarray(0, 28);
    const unreachable: FrameSpec = { src: '10.2.0.1', dst: '10.1.0.5', proto: 1, icmpType: 3, icmpCode: 4, quote: quoted };
    const related = engine.stats().byReason.ICMP_RELATED.pass.packets;
    assert.equal(run(unreachable, vpcB()).verdict, 'pass');
    assert.equal(engine.stats().byReason.ICMP_RELATED.pass.packets, related + 1);
    assert.equal(run(unreachable, vpcC()).verdict, 'drop', "not from another tenant's network");
    const stranger = ipPacket({ ...forward, sport: 1 }).subarray(0, 28);
    assert.equal(run({ ...unreachable, quote: stranger }, vpcB()).verdict, 'drop');
  });

  it('refuses networks it cannot hold, with what to do', () => {
    assert.throws(() => engine.setTenantNetworks([{ cidr: '10.2.0.1/16', tenant: 1 }]), /tenant network 10\.2\.0\.1\/16: .*host bits/);
    assert.throws(() => engine.setTenantNetworks([{ cidr: '10.2.0.0/16', tenant: 2 ** 32 }]), /not a tenant id/);
    assert.throws(() => engine.setTenantNetworks(Array.from({ length: 4097 }, (_, i) => ({ cidr: `10.${i >> 8}.${i & 255}.0/24`, tenant: 1 }))), /at most 4096/);
  });
});
