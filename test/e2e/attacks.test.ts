// SPDX-License-Identifier: Apache-2.0
// Live attacks (docs/datapath.md, "Packet semantics"): an attacker namespace sends crafted frames
// (scapy, raw on the wire, untagged and tagged VLAN 100; a kernel without 802.1Q forwards no
// tagged frame, so there they are judged past XDP only) to the enforcer, where `doorstep agent`
// enforces on the attacker-facing interface and the kernel forwards to a router and a sink
// behind it. Every frame of a probe carries the probe's tag (IPv4 identification, IPv6 flow
// label); two captures see what got through: inbound on the enforced interface, which shows
// what the engine passed (XDP runs before any capture; the kernel may still drop it after), and
// inbound on the sink, behind the router. A denied probe must be seen at neither; an allowed
// control must be seen past XDP and, unless it is link-scoped, at the sink, so each class can
// fail. Each class ends on marker frames seen at both captures, never on a sleep. The report
// printed at the end names, per class, every frame that leaked and where it was seen.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StatusReport } from '../../src/controller/routes.js';
import { formatAddress } from '../../src/policy/ir/cidr.js';
import { AgentHarness, type AgentProcess } from '../lib/agent-rig.js';
import { AttackTopology, type AttackLink, LINKS, NET } from '../lib/attack-topology.js';
import { Capture, describeFrames } from '../lib/live-capture.js';
import { ScapySender } from '../lib/scapy.js';

const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: attacks }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: allow, to: [${NET.sinkNet4}, "${NET.sinkNet6}"], protocol: tcp, ports: [80] }
    - { name: dns, action: allow, to: [${NET.sinkNet4}, "${NET.sinkNet6}"], protocol: udp, ports: [53] }
    - { name: ping, action: allow, to: [${NET.sinkNet4}], protocol: icmp, icmp: [{ type: 8 }] }
    - { name: ping6, action: allow, to: ["${NET.sinkNet6}"], protocol: icmpv6, icmp: [{ type: 128 }] }
`;

/** The agent's management prefix: the attacker's IPv4 networks, TCP 2200–2299. */
const MGMT = { cidr: '10.77.0.0/16', ports: '2200-2299', port: 2222 };
const AGENT_CONFIG = `failsafe:\n  - { cidr: ${MGMT.cidr}, protocol: tcp, ports: "${MGMT.ports}" }\n`;

/** The sessions the forged ICMP errors quote: UDP attacker:5301 → sink:53, and a ping. */
const DNS_SPORT = 5301;
const ECHO_ID = 0x4242;
const TAG_BASE = 0xd000;
/** The prefix of the control advertisement, sent from the router side. */
const CONTROL_RA_PREFIX = 'fd00:77:97:';

/** Polls `read` until `ok` holds (at most `ms`), and returns the last value read. */
async function until<T>(read: () => T, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = read();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    v = read();
  }
  return v;
}

type ClassId = 'path' | 'mapped' | 'icmp-errors' | 'lengths' | 'tcp-offset' | 'ipv6-ext' | 'nd-tunnel' | 'floods';

interface Probe {
  cls: ClassId;
  link: AttackLink['name'];
  name: string;
  expect: 'deny' | 'allow';
  /** Where an allowed control must be seen: forwarded to the sink, or only past XDP (link scope). */
  reach: 'sink' | 'enforcer';
  tag: number;
  exprs: string[];
}

interface Outcome {
  probe: Probe;
  sent: Buffer[];
  atEnforcer: Buffer[];
  atSink: Buffer[];
  ok: boolean;
}

/** The outer IP header's tag and source of a captured frame (VLAN tags skipped). */
function tagOf(frame: Buffer): { tag: number; src: string } | undefined {
  let at = 12;
  let type = frame.readUInt16BE(at);
  while ((type === 0x8100 || type === 0x88a8 || type === 0x9100) && frame.length >= at + 6) {
    at += 4;
    type = frame.readUInt16BE(at);
  }
  const ip = at + 2;
  if (type === 0x0800 && frame.length >= ip + 20) return { tag: frame.readUInt16BE(ip + 4), src: formatAddress(4, frame.subarray(ip + 12, ip + 16)) };
  if (type === 0x86dd && frame.length >= ip + 40) return { tag: frame.readUInt32BE(ip) & 0xfffff, src: formatAddress(6, frame.subarray(ip + 8, ip + 24)) };
  return undefined;
}

const fromAttacker = (src: string) => NET.attackerSources.some((re) => re.test(src));

/** Frames of the attacker's side carrying `tag`. */
const tagged = (tag: number) => (frame: Buffer) => {
  const t = tagOf(frame);
  return t !== undefined && t.tag === tag && fromAttacker(t.src);
};

// ── scapy expressions ──────────────────────────────────────────────────────────────────────────

const MCAST_ALL_NODES = { ip: 'ff02::1', mac: '33:33:00:00:00:01' };
/** The solicited-node group of the enforcer's addresses (…::1) on either link. */
const MCAST_SOLICITED = { ip: 'ff02::1:ff00:1', mac: '33:33:ff:00:00:01' };

const l2 = (l: AttackLink, dst = NET.enforcerMac) => `Ether(src='${NET.attackerMac}', dst='${dst}')${l.vlan ? `/Dot1Q(vlan=${l.vlan})` : ''}`;

interface IpOpts {
  src?: string;
  dst?: string;
  /** More fields of the IP header, as scapy keyword arguments. */
  ip?: string;
  mac?: string;
}

function v4(l: AttackLink, tag: number, rest: string, o: IpOpts = {}): string {
  return `${l2(l, o.mac)}/IP(src='${o.src ?? l.attacker4}', dst='${o.dst ?? NET.sink4}', id=${tag}${o.ip ? `, ${o.ip}` : ''})/${rest}`;
}

function v6(l: AttackLink, tag: number, rest: string, o: IpOpts = {}): string {
  return `${l2(l, o.mac)}/IPv6(src='${o.src ?? l.attacker6}', dst='${o.dst ?? NET.sink6}', fl=${tag}${o.ip ? `, ${o.ip}` : ''})/${rest}`;
}

const udp = (sport: number, dport: number) => `UDP(sport=${sport}, dport=${dport}, chksum=0)`;
const syn = (sport: number, dport: number, more = '') => `TCP(sport=${sport}, dport=${dport}, flags='S'${more})`;
/** A mobility header (8 bytes, header length 0) whose payload-protocol field says `next`. */
const mobility = (next: number) => `Raw(bytes([${next}, 0, 0, 0, 0, 0, 0, 0]))`;
const PAYLOAD = `Raw(b'T' * 64)`;
/** The sink's replies in the DNS session (IPv4, IPv6): what the ICMP errors quote. */
const dnsReplies = (l: AttackLink) => [
  `IP(src='${NET.sink4}', dst='${l.attacker4}')/UDP(sport=53, dport=${DNS_SPORT})`,
  `IPv6(src='${NET.sink6}', dst='${l.attacker6}')/UDP(sport=53, dport=${DNS_SPORT})`,
] as const;

// ── the catalogue ──────────────────────────────────────────────────────────────────────────────

/** Adds a probe: its frames from its tag and a source port of its own; `reach` for allowed ones. */
type AddProbe = (name: string, expect: Probe['expect'], build: (tag: number, sport: number) => string | string[], reach?: Probe['reach']) => void;

class Catalogue {
  readonly probes: Probe[] = [];
  private n = 0;

  tag(): number {
    return TAG_BASE + this.n++;
  }

  /** `vlanForwarded`: whether the kernel forwards what passes on the VLAN (else it is judged past XDP only). */
  constructor(private readonly vlanForwarded: boolean) {}

  /** Adds probes of class `cls` on link `l`. */
  adder(cls: ClassId, l: AttackLink): AddProbe {
    return (name, expect, build, linkReach = 'sink') => {
      const reach = l.vlan && !this.vlanForwarded ? 'enforcer' : linkReach;
      const tag = this.tag();
      const exprs = build(tag, 20_000 + (tag - TAG_BASE));
      this.probes.push({ cls, link: l.name, name, expect, reach, tag, exprs: Array.isArray(exprs) ? exprs : [exprs] });
    };
  }
}

const CLASSES: { id: ClassId; title: string; links: 'both' | 'plain'; build: (add: AddProbe, l: AttackLink) => void }[] = [
  {
    id: 'path',
    title: 'the path: the engine is on it (plain allowed and denied traffic; the sessions later classes quote)',
    links: 'both',
    build: (add, l) => {
      add('UDP/53 (the DNS session)', 'allow', (t) => v4(l, t, udp(DNS_SPORT, 53)));
      add('UDP/53 IPv6 (the DNS session)', 'allow', (t) => v6(l, t, udp(DNS_SPORT, 53)));
      add('ping (the echo session)', 'allow', (t) => v4(l, t, `ICMP(type=8, id=${ECHO_ID}, seq=1)`));
      add('ping IPv6 (the echo session)', 'allow', (t) => v6(l, t, `ICMPv6EchoRequest(id=${ECHO_ID}, seq=1)`));
      add('TCP/80 SYN', 'allow', (t, s) => v4(l, t, syn(s, 80)));
      add('TCP/80 SYN IPv6', 'allow', (t, s) => v6(l, t, syn(s, 80)));
      add('UDP/9999', 'deny', (t, s) => v4(l, t, udp(s, 9999)));
      add('UDP/9999 IPv6', 'deny', (t, s) => v6(l, t, udp(s, 9999)));
    },
  },
  {
    id: 'mapped',
    title: '1. IPv4-mapped IPv6 addresses: a source in the management prefix, a destination in a rule',
    links: 'both',
    build: (add, l) => {
      add(`IPv4 from ${l.attacker4} to the management port tcp/${MGMT.port}`, 'allow', (t, s) => v4(l, t, syn(s, MGMT.port)));
      add(`IPv6 from ::ffff:${l.attacker4} to tcp/${MGMT.port}`, 'deny', (t, s) => v6(l, t, syn(s, MGMT.port), { src: `::ffff:${l.attacker4}` }));
      add(`IPv6 from ::ffff:${l.attacker4} to tcp/${MGMT.port} of ::ffff:${NET.sink4}`, 'deny', (t, s) =>
        v6(l, t, syn(s, MGMT.port), { src: `::ffff:${l.attacker4}`, dst: `::ffff:${NET.sink4}` }),
      );
      add(`IPv6 to ::ffff:${NET.sink4} (inside the IPv4 prefix of the dns rule), udp/53`, 'deny', (t, s) => v6(l, t, udp(s, 53), { dst: `::ffff:${NET.sink4}` }));
      add(`IPv6 from ${l.attacker6} to tcp/${MGMT.port}`, 'deny', (t, s) => v6(l, t, syn(s, MGMT.port)));
    },
  },
  {
    id: 'icmp-errors',
    title: '2. forged ICMP errors quoting allowed sessions',
    links: 'both',
    build: (add, l) => {
      const [dnsReply4, dnsReply6] = dnsReplies(l);
      add('port unreachable to the sink, quoting its DNS reply', 'allow', (t) => v4(l, t, `ICMP(type=3, code=3)/${dnsReply4}`));
      add('fragmentation needed (PMTU) to the sink, quoting its DNS reply', 'allow', (t) => v4(l, t, `ICMP(type=3, code=4, nexthopmtu=1400)/${dnsReply4}`));
      add('port unreachable to ANOTHER host, quoting the DNS reply, with payload', 'deny', (t) =>
        v4(l, t, `ICMP(type=3, code=3)/${dnsReply4}/Raw(b'P' * 200)`, { dst: NET.other4 }),
      );
      add('time exceeded to ANOTHER host, quoting the DNS reply', 'deny', (t) => v4(l, t, `ICMP(type=11, code=0)/${dnsReply4}`, { dst: NET.other4 }));
      add('host unreachable to the sink, quoting its echo reply', 'allow', (t) =>
        v4(l, t, `ICMP(type=3, code=1)/IP(src='${NET.sink4}', dst='${l.attacker4}')/ICMP(type=0, id=${ECHO_ID}, seq=1)`),
      );
      add("host unreachable to the sink, quoting the peer's echo REQUEST, with payload", 'deny', (t) =>
        v4(l, t, `ICMP(type=3, code=1)/IP(src='${NET.sink4}', dst='${l.attacker4}')/ICMP(type=8, id=${ECHO_ID}, seq=1)/Raw(b'P' * 200)`),
      );
      add('IPv6 port unreachable to the sink, quoting its DNS reply', 'allow', (t) => v6(l, t, `ICMPv6DestUnreach(code=4)/${dnsReply6}`));
      add('IPv6 packet too big (PMTU) to the sink, quoting its DNS reply', 'allow', (t) => v6(l, t, `ICMPv6PacketTooBig(mtu=1280)/${dnsReply6}`));
      add('IPv6 port unreachable to ANOTHER host, quoting the DNS reply, with payload', 'deny', (t) =>
        v6(l, t, `ICMPv6DestUnreach(code=4)/${dnsReply6}/Raw(b'P' * 200)`, { dst: NET.other6 }),
      );
      add('IPv6 packet too big to ANOTHER host, quoting the DNS reply', 'deny', (t) => v6(l, t, `ICMPv6PacketTooBig(mtu=1280)/${dnsReply6}`, { dst: NET.other6 }));
      add('IPv6 unreachable to the sink, quoting its echo reply', 'allow', (t) =>
        v6(l, t, `ICMPv6DestUnreach(code=1)/IPv6(src='${NET.sink6}', dst='${l.attacker6}')/ICMPv6EchoReply(id=${ECHO_ID}, seq=1)`),
      );
      add('port unreachable to the sink, quoting a LATER fragment of its DNS reply (no ports: no quote)', 'deny', (t) =>
        v4(l, t, `ICMP(type=3, code=3)/IP(src='${NET.sink4}', dst='${l.attacker4}', frag=1, proto=17)/Raw(bytes([0, 53, ${DNS_SPORT >> 8}, ${DNS_SPORT & 255}]) + b'Q' * 4)`),
      );
      add('IPv6 port unreachable to the sink, quoting a LATER fragment of its DNS reply (no ports: no quote)', 'deny', (t) =>
        v6(l, t, `ICMPv6DestUnreach(code=4)/IPv6(src='${NET.sink6}', dst='${l.attacker6}')/IPv6ExtHdrFragment(nh=17, offset=1, m=0, id=7)/Raw(bytes([0, 53, ${DNS_SPORT >> 8}, ${DNS_SPORT & 255}]) + b'Q' * 4)`),
      );
      add("IPv6 unreachable to the sink, quoting the peer's echo REQUEST, with payload", 'deny', (t) =>
        v6(l, t, `ICMPv6DestUnreach(code=1)/IPv6(src='${NET.sink6}', dst='${l.attacker6}')/ICMPv6EchoRequest(id=${ECHO_ID}, seq=1)/Raw(b'P' * 200)`),
      );
    },
  },
  {
    id: 'lengths',
    title: '3. lengths that lie (trailing bytes, lengths past the frame, short first fragments)',
    links: 'both',
    build: (add, l) => {
      const [dnsReply4, dnsReply6] = dnsReplies(l);
      // IPv4
      add('UDP/53 followed by 18 bytes of Ethernet padding', 'allow', (t, s) => v4(l, t, `${udp(s, 53)}/Raw(b'x' * 4)/Padding(b'\\xff' * 18)`));
      add('fragmented UDP/53 (16 bytes, then 32)', 'allow', (t, s) => [
        v4(l, t, `Raw(bytes(UDP(sport=${s}, dport=53, len=48, chksum=0)) + b'a' * 8)`, { ip: "flags='MF', proto=17" }),
        v4(l, t, `Raw(b'a' * 32)`, { ip: 'frag=2, proto=17' }),
      ]);
      add('total length 20: the UDP/53 header only in trailing bytes', 'deny', (t, s) => v4(l, t, udp(s, 53), { ip: 'len=20' }));
      add('total length 24: a TCP/80 SYN header cut at 4 bytes, the rest trailing', 'deny', (t, s) => v4(l, t, syn(s, 80), { ip: 'len=24' }));
      add('total length 28: an ICMP error whose quote (the DNS reply) is trailing', 'deny', (t) => v4(l, t, `ICMP(type=3, code=3)/${dnsReply4}`, { ip: 'len=28' }));
      add('total length 1000 in a 62-byte frame, UDP/53', 'deny', (t, s) => v4(l, t, `${udp(s, 53)}/Raw(b'x' * 20)`, { ip: 'len=1000' }));
      add('first fragment ending inside the ports (2 bytes of UDP/53), then a later fragment', 'deny', (t, s) => [
        v4(l, t, udp(s, 53), { ip: "flags='MF', len=22, proto=17" }),
        v4(l, t, `Raw(b'Z' * 8)`, { ip: 'frag=1, proto=17' }),
      ]);
      add('first fragment with 16 of the 20 bytes of a TCP/80 SYN, then the rest', 'deny', (t, s) => [
        v4(l, t, `Raw(bytes(TCP(sport=${s}, dport=80, flags='S', chksum=0))[:16])`, { ip: "flags='MF', proto=6" }),
        v4(l, t, `Raw(bytes(TCP(sport=${s}, dport=80, flags='S', chksum=0))[16:] + b'Z' * 4)`, { ip: 'frag=2, proto=6' }),
      ]);
      // IPv6
      add('IPv6 UDP/53 followed by 18 bytes of Ethernet padding', 'allow', (t, s) => v6(l, t, `${udp(s, 53)}/Raw(b'x' * 4)/Padding(b'\\xff' * 18)`));
      add('IPv6 fragmented UDP/53 (16 bytes, then 32)', 'allow', (t, s) => [
        v6(l, t, `IPv6ExtHdrFragment(nh=17, m=1, offset=0, id=${t})/Raw(bytes(UDP(sport=${s}, dport=53, len=48, chksum=0)) + b'a' * 8)`),
        v6(l, t, `IPv6ExtHdrFragment(nh=17, m=0, offset=2, id=${t})/Raw(b'a' * 32)`),
      ]);
      add('IPv6 payload length 0: the UDP/53 header only in trailing bytes', 'deny', (t, s) => v6(l, t, udp(s, 53), { ip: 'plen=0' }));
      add('IPv6 payload length 0, next header 58, a neighbour solicitation (hop limit 255) trailing', 'deny', (t) =>
        v6(l, t, `ICMPv6ND_NS(tgt='${NET.sink6}')`, { ip: 'plen=0, hlim=255' }),
      );
      add('IPv6 payload length 4: ICMPv6 type 135 present, the rest of the solicitation trailing', 'deny', (t) =>
        v6(l, t, `ICMPv6ND_NS(tgt='${NET.sink6}')`, { ip: 'plen=4, hlim=255' }),
      );
      add('IPv6 payload length 8: an ICMPv6 error whose quote (the DNS reply) is trailing', 'deny', (t) =>
        v6(l, t, `ICMPv6DestUnreach(code=4)/${dnsReply6}`, { ip: 'plen=8' }),
      );
      add('IPv6 payload length 1000 in a short frame, UDP/53', 'deny', (t, s) => v6(l, t, `${udp(s, 53)}/Raw(b'x' * 20)`, { ip: 'plen=1000' }));
      add('IPv6 first fragment ending inside the ports (2 bytes of UDP/53), then a later fragment', 'deny', (t, s) => [
        v6(l, t, `IPv6ExtHdrFragment(nh=17, m=1, offset=0, id=${t})/${udp(s, 53)}`, { ip: 'plen=10' }),
        v6(l, t, `IPv6ExtHdrFragment(nh=17, m=0, offset=1, id=${t})/Raw(b'Z' * 8)`),
      ]);
    },
  },
  {
    id: 'tcp-offset',
    title: '4. TCP with a data offset beyond the segment',
    links: 'both',
    build: (add, l) => {
      const opts = ", options=[('MSS', 1460), ('WScale', 7)]";
      add('TCP/80 SYN with options (data offset 8)', 'allow', (t, s) => v4(l, t, syn(s, 80, opts)));
      add('TCP/80 SYN, data offset 15 in a 20-byte segment', 'deny', (t, s) => v4(l, t, syn(s, 80, ', dataofs=15')));
      add('TCP/80 SYN, data offset 2', 'deny', (t, s) => v4(l, t, syn(s, 80, ', dataofs=2')));
      add('IPv6 TCP/80 SYN with options (data offset 8)', 'allow', (t, s) => v6(l, t, syn(s, 80, opts)));
      add('IPv6 TCP/80 SYN, data offset 15 in a 20-byte segment', 'deny', (t, s) => v6(l, t, syn(s, 80, ', dataofs=15')));
      add('IPv6 TCP/80 SYN, data offset 2', 'deny', (t, s) => v6(l, t, syn(s, 80, ', dataofs=2')));
    },
  },
  {
    id: 'ipv6-ext',
    title: '5. IPv6 mobility header (135) and routing header with segments left',
    links: 'both',
    build: (add, l) => {
      add('destination options, then UDP/53', 'allow', (t, s) => v6(l, t, `IPv6ExtHdrDestOpt()/${udp(s, 53)}`));
      add('routing header, segments left 0, then UDP/53', 'allow', (t, s) => v6(l, t, `IPv6ExtHdrRouting(addresses=['${NET.other6}'], segleft=0)/${udp(s, 53)}`));
      add('mobility header, then UDP/9999', 'deny', (t, s) => v6(l, t, `${mobility(17)}/${udp(s, 9999)}`, { ip: 'nh=135' }));
      add('mobility header, then UDP/53', 'deny', (t, s) => v6(l, t, `${mobility(17)}/${udp(s, 53)}`, { ip: 'nh=135' }));
      add('mobility header, then a neighbour solicitation to the sink (hop limit 255), with payload', 'deny', (t) =>
        v6(l, t, `${mobility(58)}/ICMPv6ND_NS(tgt='${NET.sink6}')/${PAYLOAD}`, { ip: 'nh=135, hlim=255' }),
      );
      add('mobility header, then a link-scope neighbour solicitation for the enforcer', 'deny',
        (t) => v6(l, t, `${mobility(58)}/ICMPv6ND_NS(tgt='${l.enforcer6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, { src: NET.attackerLinkLocal, dst: MCAST_SOLICITED.ip, mac: MCAST_SOLICITED.mac, ip: 'nh=135, hlim=255' }),
        'enforcer',
      );
      add('hop-by-hop options after a destination-options header, then UDP/53', 'deny', (t, s) => v6(l, t, `IPv6ExtHdrDestOpt()/IPv6ExtHdrHopByHop()/${udp(s, 53)}`));
      add('two fragment headers (atomic), then UDP/53', 'deny', (t, s) => v6(l, t, `IPv6ExtHdrFragment(id=1)/IPv6ExtHdrFragment(id=2)/${udp(s, 53)}`));
      add('eight destination-options headers, then UDP/53', 'allow', (t, s) => v6(l, t, `${'IPv6ExtHdrDestOpt()/'.repeat(8)}${udp(s, 53)}`));
      add('nine destination-options headers, then UDP/53', 'deny', (t, s) => v6(l, t, `${'IPv6ExtHdrDestOpt()/'.repeat(9)}${udp(s, 53)}`));
      add('routing header, segments left 1, then UDP/53', 'deny', (t, s) => v6(l, t, `IPv6ExtHdrRouting(addresses=['${NET.other6}'], segleft=1)/${udp(s, 53)}`));
    },
  },
  {
    id: 'nd-tunnel',
    title: '6. neighbour discovery as a tunnel; router advertisements and redirects',
    links: 'both',
    build: (add, l) => {
      const hl = { ip: 'hlim=255' };
      const ll = (group = MCAST_ALL_NODES) => ({ src: NET.attackerLinkLocal, dst: group.ip, mac: group.mac, ip: 'hlim=255' });
      add('IPv6 ping to the sink', 'allow', (t) => v6(l, t, `ICMPv6EchoRequest(id=${ECHO_ID + 1}, seq=1)`));
      add('link-scope neighbour solicitation for the enforcer', 'allow',
        (t) => v6(l, t, `ICMPv6ND_NS(tgt='${l.enforcer6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, ll(MCAST_SOLICITED)),
        'enforcer',
      );
      add('link-scope unsolicited neighbour advertisement', 'allow',
        (t) => v6(l, t, `ICMPv6ND_NA(tgt='${l.attacker6}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='${NET.attackerMac}')`, ll()),
        'enforcer',
      );
      const tunnels: [string, string][] = [
        ['133 router solicitation', 'ICMPv6ND_RS()'],
        ['134 router advertisement', "ICMPv6ND_RA(routerlifetime=0)"],
        ['135 neighbour solicitation', `ICMPv6ND_NS(tgt='${NET.sink6}')`],
        ['136 neighbour advertisement', `ICMPv6ND_NA(tgt='${l.attacker6}')`],
        ['137 redirect', `ICMPv6ND_Redirect(tgt='${l.attacker6}', dst='${NET.other6}')`],
      ];
      for (const [what, msg] of tunnels) {
        add(`${what}, hop limit 255, to the sink (routed), with payload`, 'deny', (t) => v6(l, t, `${msg}/${PAYLOAD}`, hl));
      }
      add('neighbour solicitation from a link-local source to the sink (routed), with payload', 'deny', (t) =>
        v6(l, t, `ICMPv6ND_NS(tgt='${NET.sink6}')/${PAYLOAD}`, { src: NET.attackerLinkLocal, ip: 'hlim=255' }),
      );
      add('neighbour solicitation between global addresses (attacker → an address on this link)', 'allow',
        (t) => v6(l, t, `ICMPv6ND_NS(tgt='${l.enforcer6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, { dst: l.enforcer6, ip: 'hlim=255' }),
        'enforcer',
      );
      add('solicited neighbour advertisement between global addresses (attacker → an address on this link)', 'allow',
        (t) => v6(l, t, `ICMPv6ND_NA(tgt='${l.attacker6}', R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr='${NET.attackerMac}')`, { dst: l.enforcer6, ip: 'hlim=255' }),
        'enforcer',
      );
      add(`neighbour solicitation to the router (${NET.routerLink6}: on the enforcer's other link, not this one)`, 'deny', (t) =>
        v6(l, t, `ICMPv6ND_NS(tgt='${NET.routerLink6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, { dst: NET.routerLink6, ip: 'hlim=255' }),
      );
      add('neighbour solicitation to a site-scope group (ff05::1:ff00:1)', 'deny', (t) =>
        v6(l, t, `ICMPv6ND_NS(tgt='${l.enforcer6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, { src: NET.attackerLinkLocal, dst: 'ff05::1:ff00:1', mac: MCAST_SOLICITED.mac, ip: 'hlim=255' }),
      );
      add(`router advertisement from the attacker (default route, prefix ${l.raPrefix}/64)`, 'deny',
        (t) =>
          v6(l, t, `ICMPv6ND_RA(routerlifetime=1800)/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')/ICMPv6NDOptPrefixInfo(prefix='${l.raPrefix}', prefixlen=64, L=1, A=1, validlifetime=3600, preferredlifetime=1800)`, ll()),
        'enforcer',
      );
      add(
        'link-scope neighbour solicitation in an atomic fragment (RFC 6946)', 'deny',
        (t) => v6(l, t, `IPv6ExtHdrFragment(id=${t})/ICMPv6ND_NS(tgt='${l.enforcer6}')/ICMPv6NDOptSrcLLAddr(lladdr='${NET.attackerMac}')`, ll(MCAST_SOLICITED)),
        'enforcer',
      );
      add('link-scope redirect from the attacker', 'deny', (t) => v6(l, t, `ICMPv6ND_Redirect(tgt='${NET.attackerLinkLocal}', dst='${NET.sink6}')`, ll()), 'enforcer');
    },
  },
  {
    id: 'floods',
    title: 'smoke: scans and floods from spoofed sources',
    links: 'plain',
    build: (add, l) => {
      add('SYN scan of 200 ports from 200 spoofed sources (10.200/16)', 'deny', (t) =>
        Array.from({ length: 200 }, (_, i) => v4(l, t, syn(1024 + i, 1000 + i), { src: `10.200.${i >> 4}.${(i & 15) + 1}` })),
      );
      add('100 UDP datagrams from 100 spoofed sources (fd00:200::/64) to ports 9000–9099', 'deny', (t) =>
        Array.from({ length: 100 }, (_, i) => v6(l, t, udp(1024 + i, 9000 + i), { src: `fd00:200::${(i + 1).toString(16)}` })),
      );
      add('50 SYNs to tcp/80 from 50 spoofed sources (allowed by policy)', 'allow', (t) =>
        Array.from({ length: 50 }, (_, i) => v4(l, t, syn(2048 + i, 80), { src: `10.200.100.${i + 1}` })),
      );
    },
  },
];

function catalogue(vlanForwarded: boolean): Catalogue {
  const c = new Catalogue(vlanForwarded);
  for (const cls of CLASSES) for (const l of cls.links === 'both' ? LINKS : LINKS.slice(0, 1)) cls.build(c.adder(cls.id, l), l);
  return c;
}

// ── the run ────────────────────────────────────────────────────────────────────────────────────

describe('attacks: crafted frames from an attacker through the enforcer to a sink behind a router', { timeout: 180_000 }, () => {
  const topo = new AttackTopology();
  const harness = new AgentHarness(topo);
  let cat: Catalogue;
  const outcomes = new Map<Probe, Outcome>();
  let agent: AgentProcess | undefined;
  let attacker: ScapySender;
  let atEnforcer: Capture;
  let atSink: Capture;
  let status: StatusReport | undefined;
  /** What each capture's kernel side dropped: a frame a capture missed could hide a leak. */
  const captureDrops: { atEnforcer?: number; atSink?: number } = {};
  /** The enforcer's RA state: after a control RA on the (unenforced) router side, and after the attack. */
  const ra: { control?: ReturnType<AttackTopology['enforcerRaState']>; attacked?: ReturnType<AttackTopology['enforcerRaState']> } = {};

  /** Marker frames (allowed UDP/53, both families) seen at both captures, twice: all before them has been decided and forwarded. */
  async function sync(what: string): Promise<void> {
    const [plain] = LINKS as [AttackLink];
    for (let round = 0; round < 2; round++) {
      const tags = [cat.tag(), cat.tag()] as const;
      await attacker.send([v4(plain, tags[0], udp(5999, 53)), v6(plain, tags[1], udp(5999, 53))]);
      for (const tag of tags) {
        for (const cap of [atEnforcer, atSink]) await cap.waitFor(tagged(tag), `marker ${tag.toString(16)} after ${what}`);
      }
    }
  }

  before(async () => {
    topo.create();
    cat = catalogue(topo.vlanForwarded);
    harness.writePolicy('attacks.yaml', POLICY);
    const config = join(harness.dir, 'agent.yaml');
    writeFileSync(config, AGENT_CONFIG);
    agent = harness.startAgent(['--config', config]);
    await agent.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
    await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install', 30_000);

    atEnforcer = new Capture('the enforced interface (past XDP)', topo.enforcer, 'src0', (c) => topo.own(c));
    atSink = new Capture('the sink (behind the router)', topo.sink, 'eth0', (c) => topo.own(c));
    attacker = new ScapySender(topo.attacker, 'eth0', (c) => topo.own(c));
    await Promise.all([atEnforcer.ready, atSink.ready]);

    await sync('start-up'); // also resolves the neighbours on the way
    for (const cls of CLASSES) {
      const probes = cat.probes.filter((p) => p.cls === cls.id);
      for (const p of probes) outcomes.set(p, { probe: p, sent: await attacker.send(p.exprs), atEnforcer: [], atSink: [], ok: false });
      await sync(cls.id);
    }
    ra.attacked = topo.enforcerRaState();
    // the control for the RA check, after the attack (its route would change the FIB that the
    // datapath asks about neighbour discovery): an advertisement on the router side, where
    // nothing enforces, shows that one reaching the kernel gives the enforcer a default route
    // and an address
    const router = new ScapySender(topo.router, 'dn0', (c) => topo.own(c));
    await router.send([
      `Ether(dst='${MCAST_ALL_NODES.mac}')/IPv6(src='fe80::77:8:2', dst='${MCAST_ALL_NODES.ip}', hlim=255)/ICMPv6ND_RA(routerlifetime=1800)/ICMPv6NDOptPrefixInfo(prefix='${CONTROL_RA_PREFIX}:', prefixlen=64, L=1, A=1, validlifetime=3600, preferredlifetime=1800)`,
    ]);
    router.close();
    ra.control = await until(() => topo.enforcerRaState(), (s) => /dev up0/.test(s.defaultRoutes) && s.raAddresses.length > 0, 5_000);
    status = harness.cliJson<StatusReport>(['status']);
    [captureDrops.atEnforcer, captureDrops.atSink] = await Promise.all([atEnforcer.stop(), atSink.stop()]).then((r) => r.map((x) => x.dropped));

    for (const o of outcomes.values()) {
      o.atEnforcer = atEnforcer.frames.filter(tagged(o.probe.tag));
      o.atSink = atSink.frames.filter(tagged(o.probe.tag));
      const n = o.probe.exprs.length;
      o.ok = o.probe.expect === 'deny' ? o.atEnforcer.length === 0 && o.atSink.length === 0 : o.atEnforcer.length === n && (o.probe.reach === 'enforcer' || o.atSink.length === n);
    }
    report();
  });

  after(async () => {
    attacker?.close();
    await agent?.terminate();
    harness.cleanup();
  });

  function report(): void {
    const lines = ['', 'attacks: what got past the engine (enforced interface) and behind the router (sink), per class'];
    if (!topo.vlanForwarded) lines.push(`  (this kernel has no 802.1Q: frames tagged VLAN ${LINKS[1]!.vlan} are judged past XDP only; the kernel forwards none)`);
    for (const cls of CLASSES) {
      const of = [...outcomes.values()].filter((o) => o.probe.cls === cls.id);
      const bad = of.filter((o) => !o.ok);
      lines.push(`  ${cls.title}: ${of.length - bad.length}/${of.length} as expected`);
      for (const o of bad) {
        const p = o.probe;
        const verdict = p.expect === 'deny' ? 'LEAK' : 'CONTROL MISSING';
        lines.push(`    ${verdict} [${p.link}] ${p.name}: ${o.atEnforcer.length}/${o.sent.length} frames past XDP, ${o.atSink.length} behind the router`);
        p.exprs.slice(0, 2).forEach((e, i) => lines.push(`      frame: ${e}`, `      sent:  ${describeFrames([o.sent[i]!])[0]}`));
        for (const [where, frames] of [['past XDP', o.atEnforcer], ['at sink ', o.atSink]] as const) {
          for (const line of describeFrames(frames.slice(0, 2))) lines.push(`      ${where}: ${line}`);
        }
      }
    }
    lines.push(`  RA check: control (router side): ${JSON.stringify(ra.control)}; after the attack: ${JSON.stringify(ra.attacked)}`);
    lines.push(`  frames the captures dropped: ${JSON.stringify(captureDrops)}`);
    if (status) lines.push(`  engine by reason: ${JSON.stringify(status.byReason)}`, `  counters: ${JSON.stringify(status.counters)}`);
    console.log(lines.join('\n'));
  }

  const failures = (cls: ClassId) =>
    [...outcomes.values()]
      .filter((o) => o.probe.cls === cls && !o.ok)
      .map((o) => `${o.probe.expect === 'deny' ? 'leaked' : 'control missing'}: [${o.probe.link}] ${o.probe.name} (past XDP ${o.atEnforcer.length}, at sink ${o.atSink.length})`);

  it('the captures missed no frame', () => {
    assert.deepEqual(captureDrops, { atEnforcer: 0, atSink: 0 });
  });

  for (const cls of CLASSES) {
    it(cls.title, () => {
      const of = [...outcomes.values()].filter((o) => o.probe.cls === cls.id);
      assert.ok(of.length > 0 && of.some((o) => o.probe.expect === 'allow') && of.some((o) => o.probe.expect === 'deny'), 'the class has controls and attacks');
      assert.deepEqual(failures(cls.id), []);
    });
  }

  it("the attacker's router advertisements gave the enforcer no default route and no address", () => {
    assert.match(ra.control?.defaultRoutes ?? '', /dev up0/, 'the control RA (router side, unenforced) did make a default route');
    assert.ok(ra.control?.raAddresses.some((a) => a.includes(CONTROL_RA_PREFIX)), 'and an address');
    assert.doesNotMatch(ra.attacked?.defaultRoutes ?? '', /dev src0/, 'no default route towards the attacker');
    assert.deepEqual(ra.attacked?.raAddresses.filter((a) => !a.includes(CONTROL_RA_PREFIX)), [], "no address from the attacker's prefixes");
  });
});
