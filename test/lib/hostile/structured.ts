// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, (a) structured frames: one generator per class of docs/datapath.md
// "Packet semantics" — link layers and tags, both IP families and their lengths (true, short,
// long, padded), IPv4 options, every row of the extension-header table, every transport,
// fragments alone, neighbour-discovery variants, management prefixes and IPv4-mapped twins.
import { type Built, type Ctx, packet, patch16, pickAddress, pickPort, pickTags, randomDatagram, randomExtensions, quoteOf, transport } from './build.js';
import { addressBytes } from './scene.js';
import { type Bytes, cat, ethernet, type Extension, filler, icmp, tcp, udp } from './wire.js';

type Generator = (c: Ctx) => Bytes;

const v4 = (c: Ctx, proto: number, more = {}) => packet(c, { family: 4, proto, ...more }).frame;
const v6 = (c: Ctx, proto: number, more = {}) => packet(c, { family: 6, proto, ...more }).frame;
const either = (c: Ctx): 4 | 6 => (c.r.chance(0.5) ? 4 : 6);

/** Rewrite the length field of the frame's IP header: IPv4 total length or IPv6 payload length. */
function lie(b: Built, delta: number): Bytes {
  const at = b.l3 + (b.family === 4 ? 2 : 4);
  const real = (b.frame[at]! << 8) | b.frame[at + 1]!;
  return patch16(b.frame, at, Math.max(0, Math.min(0xffff, real + delta)));
}

/** Where the transport header of a frame built without IPv6 extension headers starts. */
const l4Offset = (b: Built) => b.l3 + (b.family === 4 ? (b.frame[b.l3]! & 15) * 4 : 40);

/** An IPv6 packet with these extension headers before `proto`. */
const withExts = (c: Ctx, exts: Extension[], proto = c.r.pick([6, 17, 58, 59, 1])) => v6(c, proto, { exts });

const walked = (c: Ctx): Extension => c.r.pick<Extension>([{ type: 60, n: c.r.int(0, 1) }, { type: 43 }, { type: 51, n: c.r.int(1, 3) }, { type: 44 }]);

// neighbour discovery ---------------------------------------------------------------------
const LINK_LOCAL = ['fe80::1', 'fe80::2:3', 'febf:ffff::1'];
const NOT_LINK_LOCAL = ['fec0::1', '2001:db8::1', 'fd00:1::1', '::ffff:a01:203', 'ff02::1'];
const LINK_MULTICAST = ['ff02::1', 'ff02::2', 'ff02::1:ff00:1', 'ff02:ffff::1'];
const NOT_LINK_MULTICAST = ['ff05::1', 'ff12::1', 'ff03::1', '2001:db8::2', 'fd00:1::1'];

interface NdVariant {
  type?: number;
  hopLimit?: number;
  src?: string;
  dst?: string;
  code?: number;
  /** ICMPv6 message length (≥ 8). */
  length?: number;
  exts?: Extension[];
}

function neighbour(c: Ctx, v: NdVariant = {}): Bytes {
  const r = c.r;
  const type = v.type ?? r.pick([135, 136]);
  const src = v.src ?? (type === 135 && r.chance(0.2) ? '::' : r.pick(LINK_LOCAL));
  const dst = v.dst ?? r.pick([...LINK_LOCAL, ...LINK_MULTICAST]);
  const length = v.length ?? 24 + 8 * r.int(0, 2);
  const message = icmp(type, v.code ?? 0, 0, filler(length - 8, 0x11));
  return v6(c, 58, { src: addressBytes(src), dst: addressBytes(dst), l4: message, exts: v.exts ?? [], v6: { hopLimit: v.hopLimit ?? 255 } });
}

const ndVariant = (c: Ctx): NdVariant => {
  const r = c.r;
  return r.pick<() => NdVariant>([
    () => ({}),
    () => ({ src: r.pick(NOT_LINK_LOCAL) }),
    () => ({ dst: r.pick([...NOT_LINK_LOCAL, ...NOT_LINK_MULTICAST]) }),
    () => ({ src: '::', type: r.pick([135, 136]) }),
    () => ({ hopLimit: r.pick([0, 1, 64, 254]) }),
    () => ({ length: r.pick([8, 16, 20, 23, 25, 31, 32, 33, 40]) }),
    () => ({ code: r.int(1, 255) }),
  ])();
};

// the classes -------------------------------------------------------------------------------
export const STRUCTURED: Record<string, Generator> = {
  // link
  'link-no-tag': (c) => packet(c, { tags: [] }).frame,
  'link-one-tag': (c) => packet(c, { tags: pickTags(c, 1) }).frame,
  'link-two-tags': (c) => packet(c, { tags: pickTags(c, 2) }).frame,
  'link-three-tags': (c) => packet(c, { tags: pickTags(c, 3) }).frame,
  'link-tag-cut': (c) => cat(ethernet(c.r.pick([0x8100, 0x88a8, 0x9100]), pickTags(c, c.r.int(0, 1))), filler(c.r.int(0, 3))),
  arp: (c) => cat(ethernet(0x0806, pickTags(c)), filler(c.r.pick([0, 28, 46]), 1)),
  'non-ip': (c) => cat(ethernet(c.r.pick([0x88cc, 0x8035, 0x0842, 0x0600, 0x05dc, 0x86de, 0x0801]), pickTags(c)), filler(c.r.int(0, 60))),
  // transport, by family
  'v4-tcp': (c) => v4(c, 6),
  'v4-udp': (c) => v4(c, 17),
  'v4-udplite': (c) => v4(c, 136),
  'v4-sctp': (c) => v4(c, 132),
  'v4-icmp': (c) => v4(c, 1),
  'v4-icmpv6-number': (c) => v4(c, 58),
  'v4-other': (c) => v4(c, c.r.pick([0, 4, 41, 47, 50, 51, 59, 89, 135, 255, c.r.int(0, 255)])),
  'v6-tcp': (c) => v6(c, 6),
  'v6-udp': (c) => v6(c, 17),
  'v6-udplite': (c) => v6(c, 136),
  'v6-sctp': (c) => v6(c, 132),
  'v6-icmpv6': (c) => v6(c, 58),
  'v6-icmp-number': (c) => v6(c, 1),
  'v6-other': (c) => v6(c, c.r.pick([4, 41, 47, 89, 103, 255, c.r.int(0, 255)])),
  // lengths
  'v4-options': (c) => v4(c, c.r.pick([6, 17, 1]), { v4: { options: filler(c.r.int(1, 40), c.r.pick([1, 0x44, 0x83, 0x89])) } }),
  'v4-version': (c) => v4(c, 6, { v4: { version: c.r.pick([0, 5, 6, 15]) } }),
  'v4-ihl': (c) => v4(c, 17, { v4: { ihl: c.r.pick([0, 1, 4, 6, 15]) } }),
  'v4-total-short': (c) => lie(packet(c, { family: 4 }), -c.r.int(1, 40)),
  'v4-total-long': (c) => lie(packet(c, { family: 4 }), c.r.pick([1, 2, 8, 100, 65535])),
  'v6-version': (c) => v6(c, 6, { v6: { version: c.r.pick([0, 4, 7, 15]) } }),
  'v6-payload-short': (c) => lie(packet(c, { family: 6 }), -c.r.int(1, 40)),
  'v6-payload-long': (c) => lie(packet(c, { family: 6 }), c.r.pick([1, 2, 8, 100, 65535])),
  'ethernet-padding': (c) => packet(c, { trailer: c.r.int(1, 46) }).frame,
  'padding-after-short-datagram': (c) => {
    // a datagram that ends inside its transport header, followed by bytes that would complete it
    const b = packet(c, { proto: c.r.pick([6, 17, 132, 1, 58]) });
    return lie(b, -c.r.int(1, 12));
  },
  'tcp-offset-beyond': (c) => {
    const b = packet(c, { proto: 6, l4: tcp(pickPort(c), pickPort(c), 5, filler(c.r.int(0, 30))), exts: [] });
    b.frame[l4Offset(b) + 12] = c.r.int(6, 15) << 4;
    return c.r.chance(0.5) ? b.frame : cat(b.frame, filler(60)); // trailing bytes never count
  },
  'tcp-offset-small': (c) => {
    const b = packet(c, { proto: 6, l4: tcp(pickPort(c), pickPort(c), 5), exts: [] });
    b.frame[l4Offset(b) + 12] = c.r.int(0, 4) << 4;
    return b.frame;
  },
  'transport-cut': (c) => {
    const proto = c.r.pick([6, 17, 136, 132, 1, 58]);
    const full = transport(c, proto, either(c));
    return packet(c, { proto, l4: full.subarray(0, c.r.int(0, Math.min(full.length, 20) - 1)), trailer: c.r.int(0, 20) }).frame;
  },
  // the extension-header table
  'v6-ext-hop': (c) => withExts(c, [{ type: 0, n: c.r.int(0, 3) }]),
  'v6-ext-dst': (c) => withExts(c, [{ type: 60, n: c.r.int(0, 3) }]),
  'v6-ext-routing-0': (c) => withExts(c, [{ type: 43, n: c.r.int(0, 3), segmentsLeft: 0 }]),
  'v6-ext-routing-left': (c) => withExts(c, [{ type: 43, n: c.r.int(0, 3), segmentsLeft: c.r.int(1, 255) }]),
  'v6-ext-ah': (c) => withExts(c, [{ type: 51, n: c.r.int(0, 5) }]),
  'v6-ext-atomic-fragment': (c) => withExts(c, [{ type: 44, fragment: { offset: 0, more: false, id: c.r.int(0, 0xffffffff) } }]),
  'v6-ext-esp': (c) => withExts(c, c.r.chance(0.5) ? [] : randomExtensions(c), 50),
  'v6-ext-none-59': (c) => withExts(c, c.r.chance(0.5) ? [] : randomExtensions(c), 59),
  'v6-ext-mobility': (c) => {
    // a mobility header with a UDP header behind it: never read
    const mh = cat(new Uint8Array([17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), udp(pickPort(c), 53));
    return v6(c, 135, { exts: c.r.chance(0.5) ? [] : randomExtensions(c), l4: c.r.chance(0.7) ? mh : filler(c.r.int(0, 4)) });
  },
  'v6-ext-by-number': (c) => withExts(c, c.r.chance(0.5) ? [] : randomExtensions(c), c.r.pick([139, 140, 253, 254])),
  'v6-hop-not-first': (c) => withExts(c, [walked(c), { type: 0 }]),
  'v6-ext-eight': (c) => withExts(c, Array.from({ length: 8 }, (_, i) => (i === 0 && c.r.chance(0.5) ? { type: 0 } : { type: c.r.pick([60, 43, 51]) }))),
  'v6-ext-nine-or-more': (c) => withExts(c, Array.from({ length: c.r.int(9, 12) }, () => ({ type: c.r.pick([60, 43, 51]) }))),
  'v6-ext-cut': (c) => lie(packet(c, { family: 6, proto: 17, exts: [...randomExtensions(c), walked(c)], l4: new Uint8Array(0) }), -c.r.int(1, 8)),
  'v6-two-fragment-headers': (c) =>
    withExts(c, [
      { type: 44, fragment: { offset: 0, more: c.r.chance(0.5), id: 9 } },
      { type: 44, fragment: { offset: c.r.pick([0, 8]), more: false, id: 9 } },
    ]),
  // fragments alone
  'fragment-first-short': (c) => {
    const family = either(c);
    const proto = c.r.pick([6, 17, 132, 1, 58]);
    const l4 = transport(c, proto, family).subarray(0, c.r.int(0, 7));
    const frag = { type: 44, fragment: { offset: 0, more: true, id: c.r.int(0, 0xffff) } };
    return packet(c, { family, proto, l4, v4: { more: true, dontFragment: false }, exts: [frag] }).frame;
  },
  'v4-tcp-offset-1': (c) => v4(c, c.r.chance(0.8) ? 6 : 17, { v4: { offset: 1, more: c.r.chance(0.5), dontFragment: false } }),
  'fragment-later-alone': (c) => {
    const family = either(c);
    const offset = c.r.int(1, 200);
    return packet(c, { family, l4: filler(c.r.int(0, 40)), v4: { offset, more: c.r.chance(0.5) }, exts: [{ type: 44, fragment: { offset: offset * 8, more: c.r.chance(0.5), id: c.r.int(0, 99) } }] }).frame;
  },
  // neighbour discovery and other ICMPv6 of the link
  'nd-133': (c) => neighbour(c, { ...ndVariant(c), type: 133 }),
  'nd-134': (c) => neighbour(c, { ...ndVariant(c), type: 134 }),
  'nd-135': (c) => neighbour(c, { ...ndVariant(c), type: 135 }),
  'nd-136': (c) => neighbour(c, { ...ndVariant(c), type: 136 }),
  'nd-137': (c) => neighbour(c, { ...ndVariant(c), type: 137 }),
  'nd-hop-limit': (c) => neighbour(c, { hopLimit: c.r.pick([0, 1, 64, 254]) }),
  'nd-source': (c) => neighbour(c, { src: c.r.pick([...NOT_LINK_LOCAL, '::', ...LINK_LOCAL]) }),
  'nd-destination': (c) => neighbour(c, { dst: c.r.pick([...NOT_LINK_LOCAL, ...NOT_LINK_MULTICAST, ...LINK_MULTICAST]) }),
  'nd-extension-headers': (c) => neighbour(c, { exts: c.r.chance(0.3) ? [{ type: 44, fragment: { offset: 0, more: false, id: 1 } }] : randomExtensions(c).concat([{ type: 60 }]) }),
  'nd-length': (c) => neighbour(c, { length: c.r.pick([8, 16, 20, 23, 25, 31, 32, 33, 40, 41]) }),
  'nd-code': (c) => neighbour(c, { code: c.r.int(1, 255) }),
  // management prefixes, and IPv6 addresses that map IPv4 ones
  'mgmt-v4': (c) => v4(c, c.r.pick([6, 17, 1, 47]), { src: c.r.pick(c.scene.mgmt4) }),
  'mgmt-v6': (c) => v6(c, c.r.pick([6, 17, 58, 47]), { src: c.r.pick(c.scene.mgmt6) }),
  'v6-mapped': (c) => {
    const mapped = (a: Bytes) => cat(new Uint8Array(10), new Uint8Array([0xff, 0xff]), a);
    const src = mapped(c.r.pick([...c.scene.mgmt4, ...c.scene.v4]));
    const dst = c.r.chance(0.5) ? mapped(c.r.pick(c.scene.v4)) : pickAddress(c, 6);
    return v6(c, c.r.pick([6, 17, 58, 1, 47]), { src, dst });
  },
  'icmp-error-random-quote': (c) => {
    const family = either(c);
    const proto = family === 4 ? 1 : 58;
    const type = c.r.pick(family === 4 ? [3, 11, 12] : [1, 2, 3, 4]);
    const quoted = randomDatagram(c, c.r.chance(0.9) ? family : family === 4 ? 6 : 4);
    return packet(c, { family, proto, l4: icmp(type, c.r.int(0, 4), 0, quoteOf(c, quoted, c.r.int(0, 3))) }).frame;
  },
};
