// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, the shared builder: a random but well-formed frame of either family
// (addresses and ports from the scene, 0–2 VLAN tags, IPv4 options, IPv6 extension headers,
// any transport), with every part overridable, and the offsets the classes patch to make it lie.
import type { Random } from '../random-policy.js';
import type { Scene } from './scene.js';
import { type Bytes, cat, type Extension, ethernet, extensionChain, filler, icmp, ipv4, ipv6, sctp, type Tag, tcp, udp, type V4Header, type V6Header } from './wire.js';

export interface Ctx {
  r: Random;
  scene: Scene;
}

export interface PacketOptions {
  family?: 4 | 6;
  proto?: number;
  src?: Bytes;
  dst?: Bytes;
  /** The transport bytes (default: a random header of `proto`). */
  l4?: Bytes;
  tags?: Tag[];
  v4?: Partial<V4Header>;
  v6?: Partial<V6Header>;
  exts?: Extension[];
  /** Bytes after the datagram (Ethernet padding, trailers). */
  trailer?: number;
}

export interface Built {
  frame: Bytes;
  /** Offset of the IP header. */
  l3: number;
  family: 4 | 6;
}

const TPIDS = [0x8100, 0x88a8, 0x9100];
const VIDS = [0, 1, 100, 4095];
const PROTOCOLS = [6, 6, 17, 17, 136, 132, 1, 58, 47, 50, 4, 41, 0, 255];

export function pickTags(c: Ctx, count = c.r.pick([0, 0, 0, 1, 2])): Tag[] {
  return Array.from({ length: count }, () => ({ tpid: c.r.pick(TPIDS), vid: c.r.chance(0.8) ? c.r.pick(VIDS) : c.r.int(0, 0xffff) }));
}

export function pickAddress(c: Ctx, family: 4 | 6): Bytes {
  const r = c.r;
  if (r.chance(0.85)) return r.pick(family === 4 ? r.pick([c.scene.v4, c.scene.v4, c.scene.mgmt4]) : r.pick([c.scene.v6, c.scene.v6, c.scene.mgmt6]));
  if (family === 4) return new Uint8Array([10, r.int(0, 3), r.int(0, 3), r.int(0, 255)]);
  const a = new Uint8Array(16);
  a.set([0xfd, 0, 0, r.int(0, 3)]);
  a[15] = r.int(0, 255);
  return a;
}

export function pickPort(c: Ctx): number {
  return c.r.chance(0.8) ? c.r.pick(c.scene.ports) : c.r.int(0, 65535);
}

export function pickProto(c: Ctx): number {
  return c.r.chance(0.9) ? c.r.pick(PROTOCOLS) : c.r.int(0, 255);
}

const V4_ICMP = [0, 8, 8, 3, 11, 12, 4, 5, 13];
const V6_ICMP = [128, 129, 1, 2, 3, 4, 133, 134, 135, 136, 137];
export const ERRORS = { 1: [3, 11, 12], 58: [1, 2, 3, 4] } as const;

/** A random transport header of `proto`; ICMP errors quote a random datagram (depth 1). */
export function transport(c: Ctx, proto: number, family: 4 | 6, depth = 0): Bytes {
  const r = c.r;
  switch (proto) {
    case 6:
      return tcp(pickPort(c), pickPort(c), r.chance(0.8) ? 5 : r.int(5, 15), filler(r.int(0, 24)));
    case 17:
    case 136:
      return udp(pickPort(c), pickPort(c), filler(r.int(0, 16)), r.chance(0.1) ? r.int(0, 65535) : undefined);
    case 132:
      return sctp(pickPort(c), pickPort(c), filler(r.int(0, 16)));
    case 1:
    case 58: {
      const type = r.chance(0.9) ? r.pick(proto === 1 ? V4_ICMP : V6_ICMP) : r.int(0, 255);
      const code = r.chance(0.8) ? 0 : r.int(0, 16);
      const error = (ERRORS[proto] as readonly number[]).includes(type);
      const body = error && depth === 0 ? quoteOf(c, randomDatagram(c, family, depth + 1), r.int(0, 3)) : filler(r.int(0, 32), 0x62);
      return icmp(type, code, r.chance(0.5) ? r.pick([0, 1, 7]) : r.int(0, 65535), body);
    }
    default:
      return filler(r.int(0, 24), r.int(0, 255));
  }
}

/** A well-formed IP datagram (no link header) for a quote. */
export function randomDatagram(c: Ctx, family: 4 | 6, depth = 1, options: PacketOptions = {}): Bytes {
  const b = packet(c, { ...options, family, tags: [] }, depth);
  return b.frame.subarray(b.l3);
}

/** A quoted datagram cut as routers cut it: 0 whole, 1 IP header + 8, 2 a random length, 3 short of the IP header. */
export function quoteOf(c: Ctx, datagram: Bytes, cut: number): Bytes {
  const ihl = datagram[0]! >> 4 === 4 ? (datagram[0]! & 15) * 4 : 40;
  const at = [datagram.length, ihl + 8, c.r.int(0, datagram.length), c.r.int(0, ihl)][cut] ?? datagram.length;
  return datagram.slice(0, Math.min(at, datagram.length));
}

export function randomExtensions(c: Ctx): Extension[] {
  const r = c.r;
  const out: Extension[] = [];
  if (r.chance(0.3)) out.push({ type: 0, n: r.int(0, 2) });
  const more = r.int(0, 3);
  for (let i = 0; i < more; i++) out.push(r.pick<Extension>([{ type: 60, n: r.int(0, 2) }, { type: 43, n: r.int(0, 2) }, { type: 51, n: r.int(1, 4) }]));
  return out;
}

/** A frame: Ethernet (tags), IP, transport, and a trailer; defaults well-formed and random. */
export function packet(c: Ctx, o: PacketOptions = {}, depth = 0): Built {
  const r = c.r;
  const family = o.family ?? (r.chance(0.5) ? 4 : 6);
  const proto = o.proto ?? pickProto(c);
  const l4 = o.l4 ?? transport(c, proto, family, depth);
  const src = o.src ?? pickAddress(c, family);
  const dst = o.dst ?? pickAddress(c, family);
  const tags = o.tags ?? pickTags(c);
  let ip: Bytes;
  if (family === 4) {
    const options = r.chance(0.15) ? filler(r.int(1, 40), r.pick([0, 1, 7, 0x44])) : undefined;
    ip = ipv4({ src, dst, proto, id: r.int(0, 0xffff), dontFragment: r.chance(0.5), ttl: r.int(1, 255), options, ...o.v4 }, l4);
  } else {
    const chain = extensionChain(o.exts ?? (r.chance(0.2) ? randomExtensions(c) : []), proto, l4);
    ip = ipv6({ src, dst, next: chain.first, hopLimit: r.pick([1, 64, 255]), ...o.v6 }, chain.bytes);
  }
  const eth = ethernet(family === 4 ? 0x0800 : 0x86dd, tags);
  return { frame: cat(eth, ip, filler(o.trailer ?? 0, r.int(0, 255))), l3: eth.length, family };
}

/** Overwrite a 16-bit big-endian field of a frame. */
export function patch16(frame: Bytes, at: number, value: number): Bytes {
  frame[at] = (value >>> 8) & 0xff;
  frame[at + 1] = value & 0xff;
  return frame;
}
