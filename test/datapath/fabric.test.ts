// SPDX-License-Identifier: Apache-2.0
// Interface roles through BPF_PROG_TEST_RUN (issue 5, DESIGN.md placements): on a fabric
// interface the engine passes the replies of sessions allowed from a source interface of the
// same tenant, and applies policy to everything else; a reply stops passing the moment a new
// version denies its forward flow. Veth interfaces, down and carrying no traffic (test runs
// only), give the source and fabric ifindexes; their names are unique per run and removed afterwards.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Reason } from '../../src/abi/generated.js';
import { reasonLabel } from '../../src/abi/records.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { compileYaml, withTestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame, ipPacket } from '../lib/packet.js';

const policy = (https: 'allow' | 'deny') => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: vpc }
spec:
  defaultAction: deny
  rules:
    - { name: https-out, action: ${https}, from: [10.1.0.0/16], to: [198.51.100.0/24], protocol: tcp, ports: [443] }
    - { name: ping-out, action: allow, from: [10.1.0.0/16], protocol: icmp }
    - { name: ssh-in, action: allow, from: [203.0.113.0/24], to: [10.1.0.0/16], protocol: tcp, ports: [22] }
`;

const out: FrameSpec = { src: '10.1.0.5', dst: '198.51.100.7', proto: 6, sport: 40000, dport: 443 };
const reply: FrameSpec = { src: '198.51.100.7', dst: '10.1.0.5', proto: 6, sport: 443, dport: 40000 };

describe('datapath: fabric interfaces and tenants', () => {
  let engine: NativeEngine;
  const ifindex = withTestInterfaces('fab', 4, (e) => {
    engine = e;
    engine.install(compileYaml(policy('allow')).image);
  });

  const ifindexOf = (i: number) => () => ifindex(i);
  const source = ifindexOf(0);
  const fabric = ifindexOf(1);
  const otherTenantFabric = ifindexOf(2);
  const run = (spec: FrameSpec, ifindex: number) => engine.testRun(frame(spec), { ingressIfindex: ifindex });
  const roles = () =>
    engine.setInterfaceRoles([
      { ifindex: source(), role: 'source', tenant: 1 },
      { ifindex: fabric(), role: 'fabric', tenant: 1 },
      { ifindex: otherTenantFabric(), role: 'fabric', tenant: 2 },
    ]);

  it('passes the reply of an allowed session on the fabric, and nothing unsolicited', () => {
    assert.equal(roles(), true);
    assert.equal(roles(), false, 'the same roles again change nothing');
    assert.equal(run(reply, fabric()).verdict, 'drop', 'a reply before its session is unsolicited');
    assert.equal(run(out, source()).verdict, 'pass');
    assert.equal(run(reply, fabric()).verdict, 'pass');
    assert.equal(run(reply, fabric()).verdict, 'pass');
    const s = engine.stats();
    assert.equal(s.counters.REPLIES, 2);
    assert.equal(s.byReason.REPLY.pass.packets, 2);

    // unsolicited traffic from the fabric side meets policy: another port, another peer
    assert.equal(run({ ...reply, dport: 40001 }, fabric()).verdict, 'drop');
    assert.equal(run({ ...reply, src: '198.51.100.8' }, fabric()).verdict, 'drop');
    assert.equal(run({ src: '198.51.100.7', dst: '10.1.0.5', proto: 6, sport: 50000, dport: 22 }, fabric()).verdict, 'drop');
    // …and what policy allows inbound passes
    assert.equal(run({ src: '203.0.113.9', dst: '10.1.0.5', proto: 6, sport: 50000, dport: 22 }, fabric()).verdict, 'pass');
    assert.equal(engine.stats().counters.REPLIES, 2);
  });

  it('keeps tenants apart: the same reply on another tenant\'s fabric is unsolicited', () => {
    roles();
    assert.equal(run(out, source()).verdict, 'pass');
    assert.equal(run(reply, otherTenantFabric()).verdict, 'drop');
    assert.equal(run(reply, fabric()).verdict, 'pass');
  });

  it('without a fabric role a reply is just another packet, and sources do not remember replies', () => {
    assert.equal(run(out, source()).verdict, 'pass');
    roles(); // the session above was allowed while no interface was a fabric: no reply remembered
    assert.equal(run(reply, fabric()).verdict, 'drop');
    engine.setInterfaceRoles([]);
    assert.equal(run(out, source()).verdict, 'pass');
    assert.equal(run(reply, fabric()).verdict, 'drop', 'roles cleared: the fabric is a source again');
  });

  it('cuts replies the moment a new version denies the forward flow, and restores them when allowed again', () => {
    roles();
    assert.equal(run(out, source()).verdict, 'pass');
    assert.equal(run(reply, fabric()).verdict, 'pass');
    engine.install(compileYaml(policy('deny')).image);
    assert.equal(run(reply, fabric()).verdict, 'drop', 'no forward packet since: the reply is checked against the new version');
    engine.install(compileYaml(policy('allow')).image);
    assert.equal(run(reply, fabric()).verdict, 'pass');
  });

  it('passes echo replies of allowed pings and ICMP errors about allowed sessions', () => {
    roles();
    const ping: FrameSpec = { src: '10.1.0.5', dst: '198.51.100.7', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 77 };
    const pong: FrameSpec = { src: '198.51.100.7', dst: '10.1.0.5', proto: 1, icmpType: 0, icmpCode: 0, icmpId: 77 };
    assert.equal(run(pong, fabric()).verdict, 'drop');
    assert.equal(run(ping, source()).verdict, 'pass');
    assert.equal(run(pong, fabric()).verdict, 'pass');
    assert.equal(run({ ...pong, icmpId: 78 }, fabric()).verdict, 'drop', 'another identifier');

    // a router beyond the edge says the forward packets are too big: the error quotes them
    assert.equal(run(out, source()).verdict, 'pass');
    const quoted = ipPacket({ ...out }).subarray(0, 28);
    const tooBig: FrameSpec = { src: '192.0.2.1', dst: '10.1.0.5', proto: 1, icmpType: 3, icmpCode: 4, quote: quoted };
    assert.equal(run(tooBig, fabric()).verdict, 'pass');
    assert.equal(engine.stats().byReason.ICMP_RELATED.pass.packets, 1);
    const stranger = ipPacket({ ...out, sport: 1 }).subarray(0, 28);
    assert.equal(run({ ...tooBig, quote: stranger }, fabric()).verdict, 'drop');
  });

  it('passes, on the source interface, the reply of a session a rule allowed in from the fabric', () => {
    roles();
    const sshIn: FrameSpec = { src: '203.0.113.9', dst: '10.1.0.5', proto: 6, sport: 50000, dport: 22 };
    const sshOut: FrameSpec = { src: '10.1.0.5', dst: '203.0.113.9', proto: 6, sport: 22, dport: 50000 };
    assert.equal(run(sshOut, source()).verdict, 'drop', 'no rule lets the source side start it');
    assert.equal(run(sshIn, fabric()).verdict, 'pass');
    assert.equal(run(sshOut, source()).verdict, 'pass', 'the cached deny yields to the reply');
    assert.equal(run(sshOut, source()).verdict, 'pass');
    assert.equal(engine.stats().byReason.REPLY.pass.packets, 2);
    assert.equal(run(sshIn, otherTenantFabric()).verdict, 'pass', 'policy allows it on any fabric');
    assert.equal(run({ ...sshOut, dport: 50001 }, source()).verdict, 'drop');
    engine.install(compileYaml(policy('allow').replace('name: ssh-in, action: allow', 'name: ssh-in, action: deny')).image);
    assert.equal(run(sshOut, source()).verdict, 'drop', 'the inbound flow is denied now');
  });

  it('refuses a role for an interface index the engine cannot hold', () => {
    assert.throws(() => engine.setInterfaceRoles([{ ifindex: 70_000, role: 'fabric' }]), /cannot have a role/);
  });

  it('records and metrics call the reason "reply"', () => {
    assert.equal(reasonLabel(Reason.REPLY), 'reply');
  });
});
