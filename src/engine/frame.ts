// SPDX-License-Identifier: Apache-2.0
// Frame builder: Ethernet, VLAN tags, IPv4 (options, fragments), IPv6 (extension headers,
// fragments), TCP, UDP, SCTP, ICMP, ICMPv6, raw protocols. Used by `doorstep explain` (a probe
// frame through ds_xdp_explain), the datapath tests and the benchmarks. Checksums are left zero:
// XDP sees frames before any checksum validation.
import { isIPv4 } from 'node:net';
import type { FlowTuple } from '../policy/ir/ir.js';

export interface FrameSpec {
  src: string;
  dst: string;
  /** IP protocol number (6 tcp, 17 udp, 132 sctp, 1 icmp, 58 icmpv6, …). */
  proto: number;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  /** Echo identifier for ICMP echo. */
  icmpId?: number;
  /** Outer then inner VLAN ids. */
  vlans?: number[];
  /** IPv4 options bytes (padded to 4). */
  ipv4Options?: number[];
  /** IPv6 extension headers before the transport header (and before a fragment header), in order. */
  ipv6Ext?: ('hop' | 'dst' | 'routing' | 'ah' | 'mh')[];
  /** IPv6 routing headers' segments left (0 unless given). */
  routingSegmentsLeft?: number;
  /**
   * IPv6 extension headers in the fragmentable part, behind the fragment header: a first fragment
   * carries them, a later one only names the first of them in its fragment header.
   */
  fragmentableExt?: ('dst' | 'routing')[];
  /** IP fragment: offset in bytes (multiple of 8), more-fragments flag, identification. */
  fragment?: { offset: number; more: boolean; id: number };
  payload?: number;
  hopLimit?: number;
  /** ICMP error quoting: the frame bytes of the quoted IP packet (from its IP header on). */
  quote?: Buffer;
  /** TCP data offset in 32-bit words (5 unless given), whatever the header's real length. */
  tcpDataOffset?: number;
  /** IPv4 total length or IPv6 payload length as written, whatever the datagram's real length. */
  ipLength?: number;
  /** Bytes after the datagram, inside the frame (Ethernet padding, a trailer). */
  trailer?: Buffer;
}

export function parseIp(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  const [head = '', tail] = text.split('::');
  const groups = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** 16-byte form used by the datapath (IPv4 mapped into ::ffff:0:0/96). */
export function addr16(text: string): Uint8Array {
  const b = parseIp(text);
  if (b.length === 16) return new Uint8Array(b);
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b, 12);
  return out;
}

function transport(spec: FrameSpec): Buffer {
  const payload = Buffer.alloc(spec.payload ?? 0, 0x61);
  switch (spec.proto) {
    case 6: {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(spec.sport ?? 40000, 0);
      h.writeUInt16BE(spec.dport ?? 80, 2);
      h.writeUInt8((spec.tcpDataOffset ?? 5) << 4, 12);
      h.writeUInt8(0x02, 13); // SYN
      h.writeUInt16BE(65535, 14);
      return Buffer.concat([h, payload]);
    }
    case 17:
    case 136: {
      const h = Buffer.alloc(8);
      h.writeUInt16BE(spec.sport ?? 40000, 0);
      h.writeUInt16BE(spec.dport ?? 53, 2);
      h.writeUInt16BE(8 + payload.length, 4);
      return Buffer.concat([h, payload]);
    }
    case 132: {
      const h = Buffer.alloc(12);
      h.writeUInt16BE(spec.sport ?? 40000, 0);
      h.writeUInt16BE(spec.dport ?? 38412, 2);
      return Buffer.concat([h, payload]);
    }
    case 1:
    case 58: {
      const h = Buffer.alloc(8);
      h.writeUInt8(spec.icmpType ?? (spec.proto === 1 ? 8 : 128), 0);
      h.writeUInt8(spec.icmpCode ?? 0, 1);
      h.writeUInt16BE(spec.icmpId ?? 0, 4);
      return Buffer.concat([h, spec.quote ?? Buffer.alloc(0), payload]);
    }
    default:
      return payload.length ? payload : Buffer.alloc(8);
  }
}

function ipv4(spec: FrameSpec, l4: Buffer): Buffer {
  const opts = Buffer.from(spec.ipv4Options ?? []);
  const optLen = Math.ceil(opts.length / 4) * 4;
  const h = Buffer.alloc(20 + optLen);
  h.writeUInt8(0x40 | ((20 + optLen) / 4), 0);
  h.writeUInt16BE(spec.ipLength ?? h.length + l4.length, 2);
  const f = spec.fragment;
  h.writeUInt16BE(f?.id ?? 0x1234, 4);
  h.writeUInt16BE(f ? (f.more ? 0x2000 : 0) | (f.offset / 8) : 0x4000, 6);
  h.writeUInt8(spec.hopLimit ?? 64, 8);
  h.writeUInt8(spec.proto, 9);
  parseIp(spec.src).copy(h, 12);
  parseIp(spec.dst).copy(h, 16);
  opts.copy(h, 20);
  return Buffer.concat([h, l4]);
}

const EXT_NUMBER = { hop: 0, routing: 43, dst: 60, ah: 51, mh: 135 } as const;

function extHeader(spec: FrameSpec, e: keyof typeof EXT_NUMBER): { next: number; body: Buffer } {
  // hop/dst/routing/mh: 8 bytes (hdrlen 0); ah: 12 bytes (hdrlen 1 → (1+2)*4)
  const body = Buffer.alloc(e === 'ah' ? 12 : 8);
  if (e === 'ah') body.writeUInt8(1, 1);
  if (e === 'routing') body.writeUInt8(spec.routingSegmentsLeft ?? 0, 3);
  return { next: EXT_NUMBER[e], body };
}

function ipv6(spec: FrameSpec, l4: Buffer): Buffer {
  const chain: { next: number; body: Buffer }[] = (spec.ipv6Ext ?? []).map((e) => extHeader(spec, e));
  const fragmentable = (spec.fragmentableExt ?? []).map((e) => extHeader(spec, e));
  if (spec.fragment) {
    const fh = Buffer.alloc(8);
    fh.writeUInt16BE(spec.fragment.offset | (spec.fragment.more ? 1 : 0), 2);
    fh.writeUInt32BE(spec.fragment.id, 4);
    chain.push({ next: 44, body: fh });
    // a later fragment carries none of the fragmentable part's headers, only names the first
    if (spec.fragment.offset === 0) chain.push(...fragmentable);
  }
  // link next-header fields: each header names the one after it
  const later = spec.fragment !== undefined && spec.fragment.offset > 0 && fragmentable.length > 0;
  const numbers = [...chain.map((c) => c.next), later ? fragmentable[0]!.next : spec.proto];
  chain.forEach((c, i) => c.body.writeUInt8(numbers[i + 1]!, 0));
  const ext = Buffer.concat(chain.map((c) => c.body));
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(spec.ipLength ?? ext.length + l4.length, 4);
  h.writeUInt8(numbers[0]!, 6);
  h.writeUInt8(spec.hopLimit ?? 64, 7);
  parseIp(spec.src).copy(h, 8);
  parseIp(spec.dst).copy(h, 24);
  return Buffer.concat([h, ext, l4]);
}

/** The IP packet (no Ethernet header). */
export function ipPacket(spec: FrameSpec): Buffer {
  const l4 = spec.fragment && spec.fragment.offset > 0 ? Buffer.alloc(spec.payload ?? 16, 0x62) : transport(spec);
  return isIPv4(spec.src) ? ipv4(spec, l4) : ipv6(spec, l4);
}

export function ethernet(etherType: number, body: Buffer, vlans: number[] = []): Buffer {
  const head = Buffer.alloc(12);
  Buffer.from([0x02, 0, 0, 0, 0, 2]).copy(head, 0);
  Buffer.from([0x02, 0, 0, 0, 0, 1]).copy(head, 6);
  const tags = vlans.map((vid, i) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(i === 0 && vlans.length > 1 ? 0x88a8 : 0x8100, 0);
    t.writeUInt16BE(vid, 2);
    return t;
  });
  // dst, src, then per tag [TPID][TCI], then the ethertype of the payload
  const type = Buffer.alloc(2);
  type.writeUInt16BE(etherType);
  return Buffer.concat([head, ...tags, type, body]);
}

export function frame(spec: FrameSpec): Buffer {
  const ip = spec.trailer ? Buffer.concat([ipPacket(spec), spec.trailer]) : ipPacket(spec);
  return ethernet(isIPv4(spec.src) ? 0x0800 : 0x86dd, ip, spec.vlans);
}

export function arpFrame(): Buffer {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0);
  arp.writeUInt16BE(0x0800, 2);
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6);
  return ethernet(0x0806, arp);
}

const ICMP = new Set([1, 58]);
const PORTS = new Set([6, 17, 132]);

/** The classification tuple of a frame spec, with the builder's defaults for absent ports and ICMP type. */
export function tupleOf(spec: FrameSpec): FlowTuple {
  const t: FlowTuple = {
    family: isIPv4(spec.src) ? 4 : 6,
    src: new Uint8Array(parseIp(spec.src)),
    dst: new Uint8Array(parseIp(spec.dst)),
    protocol: spec.proto,
  };
  if (PORTS.has(spec.proto)) {
    t.sport = spec.sport ?? 40000;
    t.dport = spec.dport ?? (spec.proto === 6 ? 80 : spec.proto === 17 ? 53 : 38412);
  }
  if (ICMP.has(spec.proto)) {
    t.icmpType = spec.icmpType ?? (spec.proto === 1 ? 8 : 128);
    t.icmpCode = spec.icmpCode ?? 0;
  }
  return t;
}
