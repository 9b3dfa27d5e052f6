// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the parse of one frame (docs/datapath.md "Layers and lengths", "Transport
// header", "Fragments"): link, IP header and datagram bounds, extension headers, fragment
// identity, and the flow's protocol and ports. Bytes after the datagram are never read.
import { u16 } from './bytes.js';
import { walkExtensions } from './ipv6-extensions.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, type Link, parseLink } from './link.js';
import { type Ports, readPorts } from './transport.js';

export interface Flow extends Ports {
  proto: number;
}

export interface Datagram {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  /** IPv4 TTL or IPv6 hop limit. */
  hopLimit: number;
  /** IPv4 protocol, or the IPv6 fixed header's next header. */
  fixedNext: number;
  /** Offset of the IP header. */
  start: number;
  /** Offset just past the datagram (total length, or 40 + payload length). */
  end: number;
}

export interface Fragment {
  id: number;
  /** IPv4's protocol field; IPv6's fragment header next header. */
  identityProto: number;
  /** A non-zero offset: nothing behind the IP (or fragment) header was read. */
  later: boolean;
}

export type Parsed =
  | { kind: 'malformed'; why: string }
  | { kind: 'arp' }
  | { kind: 'non-ip'; etherType: number }
  | {
      kind: 'ip';
      link: Link;
      ip: Datagram;
      fragment: Fragment | null;
      /** The upper-layer protocol and ports; null for a later fragment. */
      flow: Flow | null;
      /** Offset of the upper-layer header (meaningful when `flow` is set). */
      l4: number;
    };

const malformed = (why: string): Parsed => ({ kind: 'malformed', why });

export function parseFrame(f: Uint8Array): Parsed {
  const link = parseLink(f);
  if (typeof link === 'string') return malformed(link);
  if (link.etherType === ETHERTYPE_ARP) return { kind: 'arp' };
  if (link.etherType === ETHERTYPE_IPV4) return parseIpv4(f, link);
  if (link.etherType === ETHERTYPE_IPV6) return parseIpv6(f, link);
  return { kind: 'non-ip', etherType: link.etherType };
}

function parseIpv4(f: Uint8Array, link: Link): Parsed {
  const at = link.end;
  const available = f.length - at;
  if (available < 20) return malformed('IPv4 header: fewer than 20 bytes');
  if (f[at]! >> 4 !== 4) return malformed('IPv4 header: version ≠ 4');
  const ihl = f[at]! & 15;
  if (ihl < 5) return malformed('IPv4 header: IHL < 5');
  const total = u16(f, at + 2);
  if (total < ihl * 4) return malformed('IPv4 header: total length < IHL × 4');
  if (total > available) return malformed('IPv4 header: total length beyond the frame');
  const ip: Datagram = {
    family: 4,
    src: f.slice(at + 12, at + 16),
    dst: f.slice(at + 16, at + 20),
    hopLimit: f[at + 8]!,
    fixedNext: f[at + 9]!,
    start: at,
    end: at + total,
  };
  const word = u16(f, at + 6);
  const offset = word & 0x1fff;
  const more = (word & 0x2000) !== 0;
  const proto = ip.fixedNext;
  if (offset === 1 && proto === 6) return malformed('Fragments: IPv4 TCP fragment at offset 8 (RFC 1858)');
  const fragment = offset !== 0 || more ? { id: u16(f, at + 4), identityProto: proto, later: offset !== 0 } : null;
  return transport(f, link, ip, fragment, proto, at + ihl * 4);
}

function parseIpv6(f: Uint8Array, link: Link): Parsed {
  const at = link.end;
  const available = f.length - at;
  if (available < 40) return malformed('IPv6 header: fewer than 40 bytes');
  if (f[at]! >> 4 !== 6) return malformed('IPv6 header: version ≠ 6');
  const payload = u16(f, at + 4);
  if (40 + payload > available) return malformed('IPv6 header: payload length beyond the frame');
  const ip: Datagram = {
    family: 6,
    src: f.slice(at + 8, at + 24),
    dst: f.slice(at + 24, at + 40),
    hopLimit: f[at + 7]!,
    fixedNext: f[at + 6]!,
    start: at,
    end: at + 40 + payload,
  };
  const walk = walkExtensions(f, ip.fixedNext, at + 40, ip.end, false);
  if (typeof walk === 'string') return malformed(walk);
  const h = walk.fragment;
  const fragment = h && (h.offset !== 0 || h.more) ? { id: h.id, identityProto: h.next, later: h.offset !== 0 } : null;
  return transport(f, link, ip, fragment, walk.upper, walk.at);
}

/** The flow of the upper-layer header `proto` at `l4`; none read for a later fragment. */
function transport(f: Uint8Array, link: Link, ip: Datagram, fragment: Fragment | null, proto: number, l4: number): Parsed {
  if (fragment?.later) return { kind: 'ip', link, ip, fragment, flow: null, l4 };
  const ports = readPorts(f, proto, l4, ip.end, false);
  if (typeof ports === 'string') return malformed(ports);
  return { kind: 'ip', link, ip, fragment, flow: { proto, ...ports }, l4 };
}
