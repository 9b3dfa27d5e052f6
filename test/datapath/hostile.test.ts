// SPDX-License-Identifier: Apache-2.0
// The leak classes of issue 11, each built as a whole class rather than one frame: both families,
// no, one and two VLAN tags, both directions where a direction exists, whole and fragmented
// datagrams. Every case asserts the verdict and the reason (from the per-reason counters) that
// docs/datapath.md "Packet semantics" gives it.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type ReasonName } from '../../src/abi/records.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { writeFileSync } from 'node:fs';
import { ip, runToken } from '../../src/demo/topology.js';
import { compileYaml, openTestEngine, TestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame, ipPacket } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: hostile }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: allow, to: [10.1.0.0/16, "fd00:1::/64"], protocol: tcp, ports: [80] }
    - { name: dns, action: allow, to: [10.1.0.0/16, "fd00:1::/64"], protocol: udp, ports: [53] }
    - { name: ping, action: allow, protocol: icmp, icmp: [{ type: 8 }] }
    - { name: ping6, action: allow, protocol: icmpv6, icmp: [{ type: 128 }] }
`;
const RA_POLICY = POLICY.replace('    - { name: ping6,', '    - { name: ra, action: allow, protocol: icmpv6, icmp: [{ type: 134 }] }\n    - { name: ping6,');

type Family = 4 | 6;
const FAMILIES: Family[] = [4, 6];
const VLANS: number[][] = [[], [100], [100, 200]];

/** Addresses per family: a client on the source side, a server it may reach, a third host. */
const HOSTS = {
  4: { client: '10.9.0.5', server: '10.1.2.3', other: '10.1.7.7', router: '10.9.0.254', mgmt: '10.99.0.5' },
  6: { client: 'fd00:9::5', server: 'fd00:1::3', other: 'fd00:1::7', router: 'fd00:9::fe', mgmt: 'fd00:99::5' },
} as const;
const ICMP_OF = { 4: 1, 6: 58 } as const;
const ECHO = { 4: { request: 8, reply: 0 }, 6: { request: 128, reply: 129 } } as const;
const UNREACH = { 4: { type: 3, code: 3 }, 6: { type: 1, code: 4 } } as const;

/** A neighbour solicitation in its RFC 4861 form (24 bytes: header, reserved, target). */
const nd = (over: Partial<FrameSpec>): FrameSpec => ({ src: 'fe80::1', dst: 'ff02::1:ff00:3', proto: 58, icmpType: 135, hopLimit: 255, payload: 16, ...over });

/** Frame through the engine; its verdict and the reason whose counter moved. */
function run(engine: NativeEngine, f: Buffer, ingressIfindex?: number): { verdict: string; reason: ReasonName | 'none' } {
  const before = engine.stats().byReason;
  const { verdict } = engine.testRun(f, ingressIfindex === undefined ? {} : { ingressIfindex });
  const after = engine.stats().byReason;
  const moved = (Object.keys(after) as ReasonName[]).filter(
    (r) => after[r].pass.packets + after[r].drop.packets !== before[r].pass.packets + before[r].drop.packets,
  );
  assert.ok(moved.length <= 1, `one reason per packet, got ${moved.join(', ')}`);
  return { verdict, reason: moved[0] ?? 'none' };
}

function expectRun(engine: NativeEngine, spec: FrameSpec | Buffer, verdict: 'pass' | 'drop', reason: ReasonName, what: string, ingressIfindex?: number): void {
  const f = Buffer.isBuffer(spec) ? spec : frame(spec);
  const got = run(engine, f, ingressIfindex);
  assert.deepEqual(got, { verdict, reason }, `${what}: ${f.toString('hex')}`);
}

/** Every (family, VLAN stack) combination, with a label. */
function* combos(): Generator<{ fam: Family; vlans: number[]; label: string }> {
  for (const fam of FAMILIES) for (const vlans of VLANS) yield { fam, vlans, label: `IPv${fam}, ${vlans.length} VLAN tag(s)` };
}

/** The quote of an ICMP error: the first `bytes` of an IP packet, with at least the 8 transport bytes. */
function quoteOf(spec: FrameSpec, transportBytes = 8): Buffer {
  const ip = ipPacket(spec);
  const ipHeader = spec.src.includes(':') ? 40 + 8 * (spec.ipv6Ext?.length ?? 0) : 20;
  return ip.subarray(0, ipHeader + transportBytes);
}

describe('datapath under hostile input (issue 11)', () => {
  let engine: NativeEngine;
  before(() => {
    engine = openTestEngine();
  });
  after(() => engine?.close());
  beforeEach(() => {
    engine.close();
    engine = openTestEngine();
    engine.install(compileYaml(POLICY).image);
    engine.setFailsafe([
      { cidr: parseCidr('10.99.0.0/16') as never, protocol: 6, ports: { lo: 22, hi: 22 } },
      { cidr: parseCidr('fd00:99::/64') as never, protocol: 6, ports: { lo: 22, hi: 22 } },
    ]);
  });

  it('1. an IPv4 failsafe prefix never matches IPv6, from an IPv4-mapped address or otherwise', () => {
    for (const vlans of VLANS) {
      const mapped = { src: '::ffff:10.99.0.5', dst: HOSTS[6].server, proto: 6, dport: 22, vlans };
      expectRun(engine, mapped, 'drop', 'POLICY', `IPv6 from ::ffff:10.99.0.5, ${vlans.length} tags`);
      expectRun(engine, { ...mapped, src: '::ffff:10.99.0.5', sport: 40001, fragment: { offset: 0, more: true, id: 9 }, payload: 16 }, 'drop', 'POLICY', 'first fragment');
      expectRun(engine, { ...mapped, src: '::ffff:10.99.0.5', sport: 40001, fragment: { offset: 24, more: false, id: 9 } }, 'drop', 'FRAG_UNKNOWN', 'its later fragment (the first left no record)');
      expectRun(engine, { src: HOSTS[4].mgmt, dst: HOSTS[4].server, proto: 6, dport: 22, vlans }, 'pass', 'FAILSAFE', 'the IPv4 management host itself');
      expectRun(engine, { src: HOSTS[6].mgmt, dst: HOSTS[6].server, proto: 6, dport: 22, vlans }, 'pass', 'FAILSAFE', 'the IPv6 management host');
      // the IPv6 prefix fd00:99::/64 says nothing about an IPv4 address with the same first bytes
      expectRun(engine, { src: '253.0.0.153', dst: HOSTS[4].server, proto: 6, dport: 22, vlans }, 'drop', 'POLICY', 'IPv4 253.0.0.153');
    }
  });

  it('2. an ICMP error relates only travelling towards the sender of the quoted packet, about a reply of a session here', () => {
    for (const { fam, vlans, label } of combos()) {
      const h = HOSTS[fam];
      const icmp = ICMP_OF[fam];
      const sport = 41000 + vlans.length * 10 + fam;
      const fwd: FrameSpec = { src: h.client, dst: h.server, proto: 6, sport, dport: 80, vlans };
      expectRun(engine, fwd, 'pass', 'POLICY', `${label}: the session`);
      const reply: FrameSpec = { src: h.server, dst: h.client, proto: 6, sport: 80, dport: sport };
      const err = (quote: Buffer, dst: string, extra?: Partial<FrameSpec>): FrameSpec => ({
        src: h.router, dst, proto: icmp, icmpType: UNREACH[fam].type, icmpCode: UNREACH[fam].code, quote, vlans, ...extra,
      });
      // towards the server, which sent the reply it quotes
      expectRun(engine, err(quoteOf(reply), h.server), 'pass', 'ICMP_RELATED', `${label}: towards the quoted sender`);
      expectRun(engine, err(quoteOf(reply), h.server, { payload: 200 }), 'pass', 'ICMP_RELATED', `${label}: with a payload behind the quote`);
      // towards anyone else: the error is not about their session
      expectRun(engine, err(quoteOf(reply), h.other), 'drop', 'POLICY', `${label}: towards a third host`);
      expectRun(engine, err(quoteOf(reply), h.client), 'drop', 'POLICY', `${label}: towards the session's own client`);
      // quoting the forward packet (sent by the client, which is on this side): no reply of a session here
      expectRun(engine, err(quoteOf(fwd), h.client), 'drop', 'POLICY', `${label}: quoting the forward packet`);
      // a quote short of the 8 transport bytes relates to nothing
      expectRun(engine, err(quoteOf(reply, 4), h.server), 'drop', 'POLICY', `${label}: a truncated quote`);
      // an error that is itself a fragment carries no quote
      expectRun(engine, err(quoteOf(reply), h.server, { fragment: { offset: 0, more: true, id: 77 } }), 'drop', 'POLICY', `${label}: a fragmented error`);

      // ping: the error about the echo reply relates (8), one about the peer's echo request does not
      const id = 500 + vlans.length * 10 + fam;
      expectRun(engine, { src: h.client, dst: h.server, proto: icmp, icmpType: ECHO[fam].request, icmpId: id, vlans }, 'pass', 'POLICY', `${label}: ping`);
      const echoReply = { src: h.server, dst: h.client, proto: icmp, icmpType: ECHO[fam].reply, icmpId: id };
      const peerRequest = { ...echoReply, icmpType: ECHO[fam].request };
      expectRun(engine, err(quoteOf(echoReply), h.server), 'pass', 'ICMP_RELATED', `${label}: about the echo reply`);
      expectRun(engine, err(quoteOf(peerRequest), h.server), 'drop', 'POLICY', `${label}: about the peer's echo request`);
    }
  });

  it('2. errors of other types are no errors: redirect and source quench meet policy', () => {
    const h = HOSTS[4];
    expectRun(engine, { src: h.client, dst: h.server, proto: 6, sport: 42000, dport: 80 }, 'pass', 'POLICY', 'the session');
    const q = quoteOf({ src: h.server, dst: h.client, proto: 6, sport: 80, dport: 42000 });
    for (const type of [4, 5]) expectRun(engine, { src: h.router, dst: h.server, proto: 1, icmpType: type, quote: q }, 'drop', 'POLICY', `ICMP type ${type}`);
  });

  it('9. an ICMPv6 error quoting a packet with extension headers relates (the quote is walked)', () => {
    const h = HOSTS[6];
    for (const ext of [['dst'], ['hop', 'dst'], ['routing'], ['ah']] as ('hop' | 'dst' | 'routing' | 'ah')[][]) {
      const sport = 43000 + ext.length * 7 + ext[0]!.length;
      expectRun(engine, { src: h.client, dst: h.server, proto: 17, sport, dport: 53 }, 'pass', 'POLICY', 'the session');
      const reply: FrameSpec = { src: h.server, dst: h.client, proto: 17, sport: 53, dport: sport, ipv6Ext: ext };
      const quote = ipPacket(reply).subarray(0, 40 + ext.reduce((n, e) => n + (e === 'ah' ? 12 : 8), 0) + 8);
      expectRun(engine, { src: h.router, dst: h.server, proto: 58, icmpType: 2, quote }, 'pass', 'ICMP_RELATED', `quote with ${ext.join('+')}`);
    }
  });

  it('10. with no policy installed, errors about failsafe sessions relate', () => {
    engine.uninstall();
    for (const { fam, vlans, label } of combos()) {
      const h = HOSTS[fam];
      const sport = 44000 + vlans.length;
      expectRun(engine, { src: h.mgmt, dst: h.server, proto: 6, sport, dport: 22, vlans }, 'pass', 'FAILSAFE', `${label}: management session`);
      const reply = { src: h.server, dst: h.mgmt, proto: 6, sport: 22, dport: sport };
      const error = { src: h.router, dst: h.server, proto: ICMP_OF[fam], icmpType: UNREACH[fam].type, quote: quoteOf(reply), vlans };
      expectRun(engine, error, 'pass', 'ICMP_RELATED', `${label}: error about it`);
      expectRun(engine, { ...error, dst: h.other }, 'drop', 'NO_POLICY', `${label}: the same error to a third host`);
    }
  });

  it('3. headers are bounded by the datagram: trailing bytes are never parsed', () => {
    for (const { fam, vlans, label } of combos()) {
      const h = HOSTS[fam];
      const ip = { src: h.client, dst: h.server, vlans };
      const tcpTo80 = ipPacket({ ...ip, proto: 6, sport: 45000, dport: 80 }).subarray(fam === 4 ? 20 : 40);
      // an empty datagram whose trailer would be an allowed TCP header
      expectRun(engine, { ...ip, proto: 6, ipLength: fam === 4 ? 20 : 0, trailer: tcpTo80 }, 'drop', 'MALFORMED', `${label}: TCP header in the trailer`);
      // a first fragment ending before the ports, the rest in the trailer
      expectRun(engine, { ...ip, proto: 17, dport: 53, fragment: { offset: 0, more: true, id: 5 }, ipLength: fam === 4 ? 22 : 10, trailer: Buffer.alloc(30) }, 'drop', 'MALFORMED', `${label}: first fragment without its ports`);
      // a datagram that claims more than the frame holds
      expectRun(engine, { ...ip, proto: 6, dport: 80, ipLength: 1000 }, 'drop', 'MALFORMED', `${label}: length beyond the frame`);
      // padding behind a whole datagram is ignored: the datagram decides
      expectRun(engine, { ...ip, proto: 6, sport: 45001, dport: 80, trailer: Buffer.alloc(18, 0xee) }, 'pass', 'POLICY', `${label}: allowed, padded`);
      expectRun(engine, { ...ip, proto: 6, sport: 45002, dport: 22, trailer: tcpTo80 }, 'drop', 'POLICY', `${label}: denied, padded with an allowed header`);
      // an ICMP error whose quote lies in the trailer has no quote
      const session = { ...ip, proto: 6, sport: 45003, dport: 80 };
      expectRun(engine, session, 'pass', 'POLICY', `${label}: session`);
      const q = quoteOf({ src: h.server, dst: h.client, proto: 6, sport: 80, dport: 45003 });
      const icmpLen = fam === 4 ? 20 + 8 : 8;
      expectRun(engine, { src: h.router, dst: h.server, proto: ICMP_OF[fam], icmpType: UNREACH[fam].type, vlans, ipLength: icmpLen, trailer: q }, 'drop', 'POLICY', `${label}: quote in the trailer`);
    }
    // a neighbour-discovery type in the trailer of an empty ICMPv6 datagram
    const nd = Buffer.alloc(24);
    nd.writeUInt8(135, 0);
    expectRun(engine, { src: 'fe80::1', dst: 'ff02::1:ff00:3', proto: 58, hopLimit: 255, ipLength: 0, trailer: nd }, 'drop', 'MALFORMED', 'ND type in the trailer');
  });

  it('4. a TCP data offset beyond the segment is malformed; within it, options are fine', () => {
    for (const { fam, vlans, label } of combos()) {
      const h = HOSTS[fam];
      const base = { src: h.client, dst: h.server, proto: 6, sport: 46000 + vlans.length, dport: 80, vlans };
      expectRun(engine, { ...base, tcpDataOffset: 15 }, 'drop', 'MALFORMED', `${label}: offset 60 in a 20-byte segment`);
      expectRun(engine, { ...base, tcpDataOffset: 6, payload: 3 }, 'drop', 'MALFORMED', `${label}: offset 24 in a 23-byte segment`);
      expectRun(engine, { ...base, tcpDataOffset: 4 }, 'drop', 'MALFORMED', `${label}: offset below 5`);
      expectRun(engine, { ...base, tcpDataOffset: 6, payload: 4 }, 'pass', 'POLICY', `${label}: 4 bytes of options`);
      expectRun(engine, { ...base, sport: 46100, tcpDataOffset: 15, payload: 30, fragment: { offset: 0, more: true, id: 3 } }, 'drop', 'MALFORMED', `${label}: first fragment, options beyond it`);
    }
  });

  it('5. extension headers never hide the upper layer', () => {
    for (const vlans of VLANS) {
      const h = HOSTS[6];
      const udp = { src: h.client, dst: h.server, proto: 17, sport: 47000 + vlans.length, dport: 53, vlans };
      expectRun(engine, udp, 'pass', 'POLICY', 'UDP 53 itself');
      // mobility header: protocol 135, whatever follows it
      expectRun(engine, { ...udp, sport: 47010, ipv6Ext: ['mh'] }, 'drop', 'POLICY', 'mobility header before UDP 53');
      expectRun(engine, { ...udp, sport: 47011, ipv6Ext: ['dst', 'mh'] }, 'drop', 'POLICY', 'destination options, mobility, UDP');
      expectRun(engine, { src: 'fe80::1', dst: 'ff02::1:ff00:3', proto: 58, icmpType: 135, hopLimit: 255, payload: 16, ipv6Ext: ['mh'], vlans }, 'drop', 'POLICY', 'mobility header before a solicitation');
      // routing header with segments left: the destination is not final
      expectRun(engine, { ...udp, sport: 47020, ipv6Ext: ['routing'], routingSegmentsLeft: 1 }, 'drop', 'MALFORMED', 'routing, segments left 1');
      expectRun(engine, { ...udp, sport: 47021, ipv6Ext: ['routing'] }, 'pass', 'POLICY', 'routing, segments left 0');
      // hop-by-hop anywhere but first
      expectRun(engine, { ...udp, sport: 47030, ipv6Ext: ['dst', 'hop'] }, 'drop', 'MALFORMED', 'hop-by-hop second');
      expectRun(engine, { ...udp, sport: 47031, ipv6Ext: ['hop', 'dst', 'ah'] }, 'pass', 'POLICY', 'hop-by-hop, destination options, AH');
      // ESP: protocol 50, nothing behind it read
      expectRun(engine, { src: h.client, dst: h.server, proto: 50, payload: 40, vlans }, 'drop', 'POLICY', 'ESP');
      // more than the bound
      expectRun(engine, { ...udp, sport: 47040, ipv6Ext: ['hop', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst', 'dst'] }, 'drop', 'MALFORMED', 'nine headers');
      // a first fragment with the upper layer behind an extension header in the fragmentable part
      expectRun(engine, { ...udp, sport: 47050, fragment: { offset: 0, more: true, id: 0x51 }, fragmentableExt: ['dst'], ipv6Ext: ['mh'] }, 'drop', 'POLICY', 'mobility header before a fragment header');
    }
  });

  it('6. neighbour discovery passes only in the form RFC 4861 gives it; RA, RS and redirects meet policy', () => {
    for (const vlans of VLANS) {
      const v = { vlans };
      expectRun(engine, nd(v), 'pass', 'FAILSAFE', 'solicitation to the solicited-node group');
      expectRun(engine, nd({ ...v, dst: 'fe80::2' }), 'pass', 'FAILSAFE', 'unicast link-local solicitation (NUD)');
      expectRun(engine, nd({ ...v, icmpType: 136, dst: 'ff02::1' }), 'pass', 'FAILSAFE', 'advertisement to all nodes');
      expectRun(engine, nd({ ...v, src: '::' }), 'pass', 'FAILSAFE', 'duplicate address detection');
      expectRun(engine, nd({ ...v, payload: 24 }), 'pass', 'FAILSAFE', 'one 8-byte option');
      expectRun(engine, nd({ ...v, src: HOSTS[6].client }), 'pass', 'FAILSAFE', 'solicitation from a global source (RFC 4861 7.2.2)');
      // not its form
      expectRun(engine, nd({ ...v, dst: 'ff05::1' }), 'drop', 'POLICY', 'to site-scope multicast');
      expectRun(engine, nd({ ...v, src: 'ff02::1' }), 'drop', 'POLICY', 'from a multicast source');
      expectRun(engine, nd({ ...v, icmpType: 136, src: '::', dst: 'ff02::1' }), 'drop', 'POLICY', 'advertisement from ::');
      expectRun(engine, nd({ ...v, src: '::', dst: 'ff02::1' }), 'drop', 'POLICY', 'solicitation from :: to all nodes');
      expectRun(engine, nd({ ...v, hopLimit: 254 }), 'drop', 'POLICY', 'hop limit 254');
      expectRun(engine, nd({ ...v, icmpCode: 1 }), 'drop', 'POLICY', 'code 1');
      expectRun(engine, nd({ ...v, payload: 0 }), 'drop', 'POLICY', '8 bytes: no target');
      expectRun(engine, nd({ ...v, payload: 19 }), 'drop', 'POLICY', 'a partial option');
      expectRun(engine, nd({ ...v, ipv6Ext: ['hop'] }), 'drop', 'POLICY', 'behind a hop-by-hop header');
      expectRun(engine, nd({ ...v, fragment: { offset: 0, more: true, id: 4 } }), 'drop', 'POLICY', 'a first fragment');
      // the other ND types meet policy: denied here
      for (const type of [133, 134, 137]) expectRun(engine, nd({ ...v, icmpType: type, dst: 'ff02::1' }), 'drop', 'POLICY', `ICMPv6 ${type}`);
    }
    // and pass where a rule allows them
    engine.install(compileYaml(RA_POLICY).image);
    expectRun(engine, nd({ icmpType: 134, dst: 'ff02::1' }), 'pass', 'POLICY', 'RA with a rule');
  });

  it('7. IPv6 fragments with extension headers in the fragmentable part share one identity, in every order', () => {
    let nextId = 0;
    for (const vlans of VLANS) {
      for (const fragmentableExt of [['dst'], ['routing'], ['dst', 'routing']] as ('dst' | 'routing')[][]) {
        for (const [order, dport, verdict, laterReason] of [
          ['first, later', 53, 'pass', 'POLICY'],
          ['later, first, later', 53, 'pass', 'POLICY'],
          ['first, later', 54, 'drop', 'FRAG_UNKNOWN'], // a dropped first fragment leaves no record
        ] as const) {
          const id = 0x7000 + nextId++;
          const udp = { src: HOSTS[6].client, dst: HOSTS[6].server, proto: 17, sport: 48000, dport, vlans, fragmentableExt };
          const first = { ...udp, fragment: { offset: 0, more: true, id }, payload: 32 };
          const later = { ...udp, fragment: { offset: 48, more: false, id }, payload: 16 };
          const what = `${vlans.length} tags, ${fragmentableExt.join('+')}, ${order}, port ${dport}`;
          if (order.startsWith('later')) expectRun(engine, later, 'drop', 'FRAG_UNKNOWN', `${what}: later before first`);
          expectRun(engine, first, verdict, 'POLICY', `${what}: first`);
          expectRun(engine, later, verdict, laterReason, `${what}: later`);
        }
      }
    }
  });

  it('IPv4 fragments: a later fragment follows its first, in every order, and never another protocol\'s', () => {
    for (const vlans of VLANS) {
      const udp = { src: HOSTS[4].client, dst: HOSTS[4].server, proto: 17, sport: 49000 + vlans.length, dport: 53, vlans };
      const id = 0x600 + vlans.length;
      expectRun(engine, { ...udp, fragment: { offset: 24, more: false, id } }, 'drop', 'FRAG_UNKNOWN', 'later first');
      expectRun(engine, { ...udp, fragment: { offset: 0, more: true, id }, payload: 16 }, 'pass', 'POLICY', 'first');
      expectRun(engine, { ...udp, fragment: { offset: 24, more: false, id } }, 'pass', 'POLICY', 'later');
      expectRun(engine, { ...udp, proto: 6, fragment: { offset: 24, more: false, id } }, 'drop', 'FRAG_UNKNOWN', 'a later TCP fragment with the same id');
    }
  });
});

describe('datapath: tenant networks never mix families', () => {
  let engine: NativeEngine | undefined;
  let ifaces: TestInterfaces | undefined;
  before(() => {
    ifaces = new TestInterfaces('hfm', 2);
    engine = openTestEngine();
  });
  after(() => {
    engine?.close();
    ifaces?.remove();
  });

  it('a session to an IPv4-mapped IPv6 address leaves no hairpin reply for the tenant serving the IPv4 network', () => {
    const e = engine as NativeEngine;
    const [a, b] = ifaces?.ifindex as number[];
    e.install(compileYaml(POLICY.replace('to: [10.1.0.0/16, "fd00:1::/64"], protocol: udp', 'protocol: udp')).image);
    e.setInterfaceRoles([
      { ifindex: a!, role: 'source', tenant: 11 },
      { ifindex: b!, role: 'source', tenant: 22 },
    ]);
    e.setTenantNetworks([{ cidr: '10.50.0.0/16', tenant: 22 }]);
    // control: an IPv4 session into tenant 22's network leaves its reply there
    expectRun(e, { src: '10.9.0.5', dst: '10.50.0.1', proto: 17, sport: 50000, dport: 53 }, 'pass', 'POLICY', 'IPv4 session', a);
    expectRun(e, { src: '10.50.0.1', dst: '10.9.0.5', proto: 17, sport: 53, dport: 50000 }, 'pass', 'REPLY', 'its hairpin reply', b);
    // the same over IPv6 to the IPv4-mapped address: no tenant network, so no reply passes
    expectRun(e, { src: 'fd00:9::5', dst: '::ffff:10.50.0.1', proto: 17, sport: 50001, dport: 53 }, 'pass', 'POLICY', 'IPv6 session to ::ffff:10.50.0.1', a);
    expectRun(e, { src: '::ffff:10.50.0.1', dst: 'fd00:9::5', proto: 17, sport: 53, dport: 50001 }, 'drop', 'POLICY', 'no hairpin reply for it', b);
  });
});

describe('datapath: neighbour discovery to a unicast address is never a way to a routed host', () => {
  // Two veth pairs in the host namespace, one end of each up and the other down, so that no frame
  // can flow: `a` is the ingress and holds a route on its link, `b` holds a route to another test
  // prefix and one address of this host. Prefixes are unique per run.
  let engine: NativeEngine | undefined;
  let ifaces: TestInterfaces | undefined;
  const tag = runToken().slice(0, 4);
  const routed = `fd00:7e57:${tag}:1::9`;
  const local = `fd00:7e57:${tag}:2::1`;
  const onLink = `fd00:7e57:${tag}:3::9`;
  const sysctl = (name: string, dev: string, value: number) => writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/${name}`, String(value));
  before(() => {
    ifaces = new TestInterfaces('hnd', 4);
    const [a, , b] = ifaces.names as [string, string, string];
    for (const dev of [a, b]) {
      sysctl('accept_ra', dev, 0);
      sysctl('accept_dad', dev, 0);
      ip('link', 'set', dev, 'up');
    }
    ip('-6', 'route', 'add', `fd00:7e57:${tag}:1::/64`, 'dev', b);
    ip('-6', 'addr', 'add', `${local}/128`, 'dev', b, 'nodad');
    ip('-6', 'route', 'add', `fd00:7e57:${tag}:3::/64`, 'dev', a);
    engine = openTestEngine();
  });
  after(() => {
    engine?.close();
    ifaces?.remove(); // its routes and address go with it
  });

  it('passes it to this host or on the ingress link, and meets policy towards a route elsewhere, unless forwarding is off', () => {
    const e = engine as NativeEngine;
    const [a] = ifaces?.names as [string];
    const ingress = ifaces?.ifindex[0] as number;
    e.install(compileYaml(POLICY).image);
    sysctl('forwarding', a, 1);
    for (const vlans of VLANS) {
      for (const type of [135, 136]) {
        const v = { vlans, icmpType: type, src: HOSTS[6].client };
        expectRun(e, nd({ ...v, dst: routed, payload: 400 }), 'drop', 'POLICY', `ND ${type} to a host routed out of another interface`, ingress);
        expectRun(e, nd({ ...v, src: 'fe80::1', dst: routed }), 'drop', 'POLICY', `ND ${type} from a link-local source to a routed host`, ingress);
        expectRun(e, nd({ ...v, dst: local }), 'pass', 'FAILSAFE', `ND ${type} to an address of this host`, ingress);
        expectRun(e, nd({ ...v, dst: onLink }), 'pass', 'FAILSAFE', `ND ${type} to a host on the ingress link`, ingress);
      }
    }
    sysctl('forwarding', a, 0);
    expectRun(e, nd({ dst: routed }), 'pass', 'FAILSAFE', 'forwarding off: nothing is routed', ingress);
  });
});
