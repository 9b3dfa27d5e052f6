// SPDX-License-Identifier: Apache-2.0
// Every header case of DESIGN.md "Parsing", as a table: build a frame, run it through the engine
// with BPF_PROG_TEST_RUN, assert the verdict, the reason, the deciding rule and the counters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Reason } from '../../src/abi/generated.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { compileYaml, openTestEngine, sessionKeyOf } from '../lib/datapath.js';
import { arpFrame, ethernet, type FrameSpec, frame, ipPacket } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: headers }
spec:
  defaultAction: deny
  rules:
    - { name: deny-bad, priority: 10, action: deny, from: [10.66.0.0/16] }
    - { name: web, action: allow, to: [10.1.0.0/16, "fd00:1::/64"], protocol: tcp, ports: [80, 443] }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
    - { name: sctp, action: allow, protocol: sctp, ports: [38412] }
    - { name: ping, action: allow, protocol: icmp, icmp: [{ type: 8 }] }
    - { name: ping6, action: allow, protocol: icmpv6, icmp: [{ type: 128 }] }
    - { name: gre, action: allow, protocol: gre }
`;

const rule = (name: string, ir: ReturnType<typeof compileYaml>['ir']) => {
  const r = ir.rules.find((x) => x.name === name);
  assert.ok(r, `rule ${name}`);
  return r.index;
};

describe('datapath: header parsing and classification', () => {
  let engine: NativeEngine;
  let compiled: ReturnType<typeof compileYaml>;

  before(() => {
    engine = openTestEngine();
    compiled = compileYaml(POLICY);
    engine.install(compiled.image);
  });
  after(() => engine?.close());

  const v4 = (over: Partial<FrameSpec>): FrameSpec => ({ src: '10.9.0.1', dst: '10.1.2.3', proto: 6, dport: 80, ...over });
  const v6 = (over: Partial<FrameSpec>): FrameSpec => ({ src: 'fd00:9::1', dst: 'fd00:1::5', proto: 6, dport: 443, ...over });

  const cases: { name: string; spec: FrameSpec; verdict: 'pass' | 'drop'; rule: string | 0 }[] = [
    { name: 'IPv4 TCP to an allowed port', spec: v4({}), verdict: 'pass', rule: 'web' },
    { name: 'IPv4 TCP to a port no rule allows (policy default)', spec: v4({ dport: 22 }), verdict: 'drop', rule: 0 },
    { name: 'IPv4 TCP to an address outside the rule', spec: v4({ dst: '10.2.0.1' }), verdict: 'drop', rule: 0 },
    { name: 'IPv4 with options (IHL 8)', spec: v4({ sport: 40001, ipv4Options: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0] }), verdict: 'pass', rule: 'web' },
    { name: 'one VLAN tag', spec: v4({ sport: 40002, vlans: [100] }), verdict: 'pass', rule: 'web' },
    { name: 'two VLAN tags (QinQ)', spec: v4({ sport: 40003, vlans: [100, 200] }), verdict: 'pass', rule: 'web' },
    { name: 'priority deny before a later allow', spec: v4({ src: '10.66.3.4' }), verdict: 'drop', rule: 'deny-bad' },
    { name: 'IPv4 UDP', spec: v4({ proto: 17, dport: 53 }), verdict: 'pass', rule: 'dns' },
    { name: 'IPv4 UDP to a closed port', spec: v4({ proto: 17, dport: 54 }), verdict: 'drop', rule: 0 },
    { name: 'IPv4 SCTP', spec: v4({ proto: 132, dport: 38412 }), verdict: 'pass', rule: 'sctp' },
    { name: 'ICMP echo request', spec: v4({ proto: 1, icmpType: 8, icmpId: 7 }), verdict: 'pass', rule: 'ping' },
    { name: 'ICMP timestamp (type 13)', spec: v4({ proto: 1, icmpType: 13 }), verdict: 'drop', rule: 0 },
    { name: 'GRE by protocol number', spec: v4({ proto: 47 }), verdict: 'pass', rule: 'gre' },
    { name: 'ESP (no rule)', spec: v4({ proto: 50 }), verdict: 'drop', rule: 0 },
    { name: 'IPv6 TCP', spec: v6({}), verdict: 'pass', rule: 'web' },
    { name: 'IPv6 hop-by-hop + destination options + routing', spec: v6({ sport: 41001, ipv6Ext: ['hop', 'dst', 'routing'] }), verdict: 'pass', rule: 'web' },
    { name: 'IPv6 authentication header', spec: v6({ sport: 41002, ipv6Ext: ['ah'] }), verdict: 'pass', rule: 'web' },
    { name: 'IPv6 UDP', spec: v6({ proto: 17, dport: 53 }), verdict: 'pass', rule: 'dns' },
    { name: 'IPv6 SCTP', spec: v6({ proto: 132, dport: 38412 }), verdict: 'pass', rule: 'sctp' },
    { name: 'ICMPv6 echo request', spec: v6({ proto: 58, icmpType: 128, icmpId: 9 }), verdict: 'pass', rule: 'ping6' },
    { name: 'ICMPv6 node information (no rule)', spec: v6({ proto: 58, icmpType: 139 }), verdict: 'drop', rule: 0 },
    { name: 'IPv6 TCP to a closed port', spec: v6({ dport: 8443 }), verdict: 'drop', rule: 0 },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const before = engine.stats().counters;
      const r = engine.testRun(frame(c.spec));
      assert.equal(r.verdict, c.verdict);
      const session = engine.lookupSession(sessionKeyOf(c.spec));
      assert.ok(session, 'a session entry exists');
      assert.equal(session.reason, Reason.POLICY);
      assert.equal(session.rule, c.rule === 0 ? 0 : rule(c.rule, compiled.ir));
      assert.equal(session.packets, 1);
      const after = engine.stats().counters;
      assert.equal(after.CACHE_MISSES - before.CACHE_MISSES, 1);
      assert.equal(after.PARSE_ERRORS, before.PARSE_ERRORS);
    });
  }

  const malformed: { name: string; bytes: () => Buffer }[] = [
    { name: 'IPv4 header cut short', bytes: () => frame(v4({})).subarray(0, 14 + 12) },
    {
      name: 'IPv4 IHL below 5',
      bytes: () => {
        const f = frame(v4({}));
        f.writeUInt8(0x44, 14);
        return f;
      },
    },
    {
      name: 'IPv4 total length beyond the frame',
      bytes: () => {
        const f = frame(v4({}));
        f.writeUInt16BE(1500, 16);
        return f;
      },
    },
    {
      name: 'IPv4 version field not 4',
      bytes: () => {
        const f = frame(v4({}));
        f.writeUInt8(0x65, 14);
        return f;
      },
    },
    { name: 'TCP header cut short', bytes: () => ethernet(0x0800, fixLength4(ipPacket(v4({})).subarray(0, 20 + 10))) },
    { name: 'UDP header cut short', bytes: () => ethernet(0x0800, fixLength4(ipPacket(v4({ proto: 17 })).subarray(0, 20 + 4))) },
    { name: 'SCTP header cut short', bytes: () => ethernet(0x0800, fixLength4(ipPacket(v4({ proto: 132 })).subarray(0, 20 + 8))) },
    { name: 'ICMP header cut short', bytes: () => ethernet(0x0800, fixLength4(ipPacket(v4({ proto: 1 })).subarray(0, 20 + 4))) },
    {
      name: 'TCP data offset below 5',
      bytes: () => {
        const f = frame(v4({}));
        f.writeUInt8(0x40, 14 + 20 + 12);
        return f;
      },
    },
    { name: 'IPv6 header cut short', bytes: () => frame(v6({})).subarray(0, 14 + 30) },
    {
      name: 'IPv6 payload length beyond the frame',
      bytes: () => {
        const f = frame(v6({}));
        f.writeUInt16BE(2000, 14 + 4);
        return f;
      },
    },
    { name: 'IPv6 with more extension headers than the bound', bytes: () => frame(v6({ ipv6Ext: ['hop', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst'] })) },
    { name: 'three VLAN tags', bytes: () => frame(v4({ vlans: [1, 2, 3] })) },
    { name: 'TCP fragment at offset 8 (RFC 1858 overlap)', bytes: () => frame(v4({ fragment: { offset: 8, more: true, id: 77 } })) },
  ];

  for (const m of malformed) {
    it(`malformed: ${m.name} → drop, counted, no session`, () => {
      const before = engine.stats();
      const sessionsBefore = engine.sessions().length;
      assert.equal(engine.testRun(m.bytes()).verdict, 'drop');
      const after = engine.stats();
      assert.equal(after.counters.PARSE_ERRORS - before.counters.PARSE_ERRORS, 1);
      assert.equal(after.byReason.MALFORMED.drop.packets - before.byReason.MALFORMED.drop.packets, 1);
      assert.equal(engine.sessions().length, sessionsBefore);
    });
  }

  it('ARP always passes (failsafe), without a session', () => {
    const before = engine.stats();
    assert.equal(engine.testRun(arpFrame()).verdict, 'pass');
    const after = engine.stats();
    assert.equal(after.byReason.FAILSAFE.pass.packets - before.byReason.FAILSAFE.pass.packets, 1);
  });

  it('IPv6 neighbour solicitation with hop limit 255 passes; with hop limit 64 it is classified', () => {
    const ns = v6({ src: 'fe80::1', dst: 'ff02::1:ff00:5', proto: 58, icmpType: 135, payload: 16 });
    assert.equal(engine.testRun(frame({ ...ns, hopLimit: 255 })).verdict, 'pass');
    assert.equal(engine.testRun(frame({ ...ns, hopLimit: 64 })).verdict, 'drop');
    const s = engine.lookupSession(sessionKeyOf(ns));
    assert.equal(s?.reason, Reason.POLICY);
  });

  it('non-IP frames drop by default and pass when configured', () => {
    const lldp = ethernet(0x88cc, Buffer.alloc(46));
    assert.equal(engine.testRun(lldp).verdict, 'drop');
    engine.setPassNonIp(true);
    assert.equal(engine.testRun(lldp).verdict, 'pass');
    engine.setPassNonIp(false);
    assert.equal(engine.testRun(lldp).verdict, 'drop');
    const s = engine.stats().byReason.NON_IP;
    assert.equal(s.drop.packets, 2);
    assert.equal(s.pass.packets, 1);
  });

  it('records VLAN ids in the session key', () => {
    const spec = v4({ sport: 40010, vlans: [300, 400] });
    engine.testRun(frame(spec));
    const s = engine.lookupSession(sessionKeyOf(spec));
    assert.ok(s);
    assert.equal(engine.lookupSession({ ...sessionKeyOf(spec), vlanInner: 0 }), null);
  });
});

/** After truncating an IPv4 packet, make its total length honest so only the L4 cut remains. */
function fixLength4(ip: Buffer): Buffer {
  const copy = Buffer.from(ip);
  copy.writeUInt16BE(copy.length, 2);
  return copy;
}
