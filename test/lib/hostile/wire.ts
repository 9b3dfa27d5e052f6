// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, the bytes: Ethernet with any tags, IPv4 and IPv6 headers whose length
// fields may lie, extension headers of every kind, transport headers. Every field can be set, so
// the generators can build what a correct stack never sends. Independent of src/engine/frame.ts.

export type Bytes = Uint8Array;

export function cat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function put16(b: Bytes, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function put32(b: Bytes, at: number, v: number): void {
  put16(b, at, v >>> 16);
  put16(b, at + 2, v & 0xffff);
}

export interface Tag {
  tpid: number;
  vid: number;
}

export function ethernet(etherType: number, tags: readonly Tag[] = []): Bytes {
  const b = new Uint8Array(14 + 4 * tags.length);
  b.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
  let at = 12;
  for (const t of tags) {
    put16(b, at, t.tpid);
    put16(b, at + 2, t.vid);
    at += 4;
  }
  put16(b, at, etherType);
  return b;
}

export interface V4Header {
  src: Bytes;
  dst: Bytes;
  proto: number;
  id?: number;
  /** More fragments. */
  more?: boolean;
  dontFragment?: boolean;
  /** Fragment offset field (units of 8 bytes). */
  offset?: number;
  ttl?: number;
  /** Options (padded to a multiple of 4 with zeros). */
  options?: Bytes;
  /** Total length as written; default: the real length. */
  totalLength?: number;
  /** IHL as written; default: the real one. */
  ihl?: number;
  version?: number;
}

export function ipv4(h: V4Header, payload: Bytes): Bytes {
  const optLen = Math.ceil((h.options?.length ?? 0) / 4) * 4;
  const b = new Uint8Array(20 + optLen);
  b[0] = ((h.version ?? 4) << 4) | ((h.ihl ?? (20 + optLen) / 4) & 15);
  put16(b, 2, h.totalLength ?? b.length + payload.length);
  put16(b, 4, h.id ?? 0x1234);
  put16(b, 6, (h.more ? 0x2000 : 0) | (h.dontFragment ? 0x4000 : 0) | ((h.offset ?? 0) & 0x1fff));
  b[8] = h.ttl ?? 64;
  b[9] = h.proto;
  b.set(h.src, 12);
  b.set(h.dst, 16);
  if (h.options) b.set(h.options, 20);
  return cat(b, payload);
}

export interface V6Header {
  src: Bytes;
  dst: Bytes;
  next: number;
  hopLimit?: number;
  /** Payload length as written; default: the real one. */
  payloadLength?: number;
  version?: number;
}

export function ipv6(h: V6Header, payload: Bytes): Bytes {
  const b = new Uint8Array(40);
  put32(b, 0, ((h.version ?? 6) << 28) >>> 0);
  put16(b, 4, h.payloadLength ?? payload.length);
  b[6] = h.next;
  b[7] = h.hopLimit ?? 64;
  b.set(h.src, 8);
  b.set(h.dst, 24);
  return cat(b, payload);
}

/** One IPv6 extension header (its next-header byte is filled in by `extensionChain`). */
export interface Extension {
  type: number;
  /** The length field: (n + 1) × 8 bytes, or (n + 2) × 4 for AH (51). Ignored for a fragment header. */
  n?: number;
  segmentsLeft?: number;
  fragment?: { offset: number; more: boolean; id: number };
}

function extension(e: Extension, next: number): Bytes {
  if (e.type === 44) {
    const b = new Uint8Array(8);
    b[0] = next;
    const f = e.fragment ?? { offset: 0, more: false, id: 0 };
    put16(b, 2, (f.offset & 0xfff8) | (f.more ? 1 : 0));
    put32(b, 4, f.id >>> 0);
    return b;
  }
  const n = e.n ?? (e.type === 51 ? 1 : 0);
  const b = new Uint8Array(e.type === 51 ? (n + 2) * 4 : (n + 1) * 8);
  b[0] = next;
  b[1] = n;
  if (e.type === 43) {
    b[2] = 4; // segment routing type, whatever
    b[3] = e.segmentsLeft ?? 0;
  }
  if (e.type === 0 || e.type === 60) {
    b[2] = 1; // one PadN option over the rest
    b[3] = b.length - 4;
  } else {
    b.fill(0xa5, 4);
  }
  return b;
}

/** The headers in order, each naming the next; returns the first header's type and the bytes. */
export function extensionChain(exts: readonly Extension[], upper: number, payload: Bytes): { first: number; bytes: Bytes } {
  const parts: Bytes[] = [];
  exts.forEach((e, i) => parts.push(extension(e, exts[i + 1]?.type ?? upper)));
  return { first: exts[0]?.type ?? upper, bytes: cat(...parts, payload) };
}

export function tcp(sport: number, dport: number, offset = 5, data: Bytes = new Uint8Array(0)): Bytes {
  const b = new Uint8Array(Math.max(20, offset * 4));
  put16(b, 0, sport);
  put16(b, 2, dport);
  b[12] = (offset & 15) << 4;
  b[13] = 0x02;
  put16(b, 14, 65535);
  for (let i = 20; i < b.length; i++) b[i] = 1; // NOP options
  return cat(b, data);
}

/** UDP and UDP-Lite (8 bytes), with a length field that may lie. */
export function udp(sport: number, dport: number, data: Bytes = new Uint8Array(0), length?: number): Bytes {
  const b = new Uint8Array(8);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put16(b, 4, length ?? 8 + data.length);
  return cat(b, data);
}

export function sctp(sport: number, dport: number, data: Bytes = new Uint8Array(0)): Bytes {
  const b = new Uint8Array(12);
  put16(b, 0, sport);
  put16(b, 2, dport);
  put32(b, 4, 0xc0ffee);
  return cat(b, data);
}

/** ICMP or ICMPv6: type, code, identifier and sequence (the second word), then the body. */
export function icmp(type: number, code: number, id: number, body: Bytes = new Uint8Array(0)): Bytes {
  const b = new Uint8Array(8);
  b[0] = type;
  b[1] = code;
  put16(b, 4, id);
  put16(b, 6, 1);
  return cat(b, body);
}

export function filler(n: number, byte = 0x61): Bytes {
  return new Uint8Array(Math.max(0, n)).fill(byte);
}
