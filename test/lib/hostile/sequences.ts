// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, (b) stateful sequences: the fragments of one datagram in any order
// (first before or after later ones, duplicates, a replacing first fragment, a twin identity,
// IPv6 extension headers in the fragmentable part); sessions and then ICMP errors about them
// (towards either endpoint, quoting the forward or reverse packet, echo requests and replies,
// quotes with IPv6 extension headers, truncated quotes, on another interface or VLAN, as
// fragments); policy changes in between.
import { type Ctx, ERRORS, packet, pickAddress, pickPort, pickTags, quoteOf, randomExtensions } from './build.js';
import type { Topology } from './topology.js';
import { type Bytes, cat, type Extension, extensionChain, filler, icmp, ipv4, ipv6, sctp, type Tag, tcp, udp, ethernet } from './wire.js';

export type Step =
  | { kind: 'frame'; cls: string; frame: Bytes; iface: number }
  | { kind: 'install'; policy: number }
  | { kind: 'uninstall' };

export interface SequenceCtx extends Ctx {
  /** Interfaces frames may arrive on (0 = the test run's default). */
  ifaces: number;
  /** Policies of the scene (install steps pick one). */
  policies: number;
  /** The run of frames starts with no policy installed. */
  noPolicy: boolean;
  /** The roles of the interfaces (by index) and the tenant networks of the run. */
  topology: Topology;
}

/** Where a conversation happens: an interface and the VLAN tags on it. */
export interface Place {
  iface: number;
  tags: Tag[];
}

const place = (c: SequenceCtx): Place => ({ iface: c.r.int(0, c.ifaces - 1), tags: pickTags(c) });
const elsewhere = (c: SequenceCtx, p: Place): Place =>
  c.r.chance(0.5) && c.ifaces > 1 ? { iface: (p.iface + c.r.int(1, c.ifaces - 1)) % c.ifaces, tags: p.tags } : { iface: p.iface, tags: p.tags.length ? [] : pickTags(c, 1) };

function shuffle<T>(c: Ctx, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = c.r.int(0, i);
    [xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
  }
  return xs;
}

// one flow, both directions -----------------------------------------------------------------

export interface Conversation {
  family: 4 | 6;
  proto: number;
  a: Bytes;
  b: Bytes;
  /** The forward packet's transport (a → b) and the reverse one's (b → a). */
  forward: Bytes;
  reverse: Bytes;
}

export function conversation(c: SequenceCtx, o: { echo?: boolean; fromFailsafe?: boolean; family?: 4 | 6 } = {}): Conversation {
  const r = c.r;
  const family = o.family ?? (r.chance(0.5) ? 4 : 6);
  const proto = o.echo ? (family === 4 ? 1 : 58) : r.pick([6, 6, 17, 17, 136, 132, 47, 50, family === 4 ? 1 : 58]);
  const a = o.fromFailsafe ? r.pick(family === 4 ? c.scene.mgmt4 : c.scene.mgmt6) : pickAddress(c, family);
  const b = pickAddress(c, family);
  const [sp, dp] = [pickPort(c), o.fromFailsafe && r.chance(0.5) ? r.pick([22, 1000, 1500]) : pickPort(c)];
  const id = r.int(0, 65535);
  const [request, reply] = family === 4 || proto === 1 ? [8, 0] : [128, 129];
  const ports = (s: number, d: number): Bytes => {
    if (proto === 6) return tcp(s, d, 5, filler(r.int(0, 16)));
    if (proto === 17 || proto === 136) return udp(s, d, filler(r.int(0, 16)));
    if (proto === 132) return sctp(s, d);
    return filler(r.int(8, 24), 0x63);
  };
  if (proto === 1 || proto === 58) {
    const code = r.chance(0.9) ? 0 : r.int(1, 3);
    const kinds = o.echo || r.chance(0.7) ? [request, reply] : [r.pick(ERRORS[proto]), r.int(0, 255)];
    return { family, proto, a, b, forward: icmp(kinds[0]!, code, id, filler(16)), reverse: icmp(kinds[1]!, code, id, filler(16)) };
  }
  return { family, proto, a, b, forward: ports(sp, dp), reverse: ports(dp, sp) };
}

/** The IP datagram of one direction (no link header), optionally with IPv6 extension headers. */
export function datagram(v: Conversation, reverse: boolean, exts: Extension[] = [], proto = v.proto): Bytes {
  const [src, dst, l4] = reverse ? [v.b, v.a, v.reverse] : [v.a, v.b, v.forward];
  if (v.family === 4) return ipv4({ src, dst, proto, ttl: 64 }, l4);
  const chain = extensionChain(exts, proto, l4);
  return ipv6({ src, dst, next: chain.first }, chain.bytes);
}

export const onLink = (family: 4 | 6, p: Place, ip: Bytes): Bytes => cat(ethernet(family === 4 ? 0x0800 : 0x86dd, p.tags), ip);
export const frameStep = (cls: string, p: Place, frame: Bytes): Step => ({ kind: 'frame', cls, frame, iface: p.iface });

// fragments ---------------------------------------------------------------------------------

export interface Piece {
  offset: number;
  more: boolean;
  data: Bytes;
}

/** Cut a payload into fragments at multiples of 8 bytes; the first one is `first` bytes long. */
export function cut(c: Ctx, payload: Bytes, first: number): Piece[] {
  const out: Piece[] = [];
  let at = 0;
  let size = first;
  while (at < payload.length) {
    const data = payload.subarray(at, Math.min(payload.length, at + size));
    out.push({ offset: at, more: at + data.length < payload.length, data });
    at += data.length;
    size = 8 * c.r.int(1, 4);
  }
  return out;
}

export function fragmentFrame(v: Conversation, p: Place, id: number, piece: Piece, identity: number, unfragmentable: Extension[]): Bytes {
  if (v.family === 4) return onLink(4, p, ipv4({ src: v.a, dst: v.b, proto: identity, id, offset: piece.offset / 8, more: piece.more }, piece.data));
  const chain = extensionChain([...unfragmentable, { type: 44, fragment: { offset: piece.offset, more: piece.more, id } }], identity, piece.data);
  return onLink(6, p, ipv6({ src: v.a, dst: v.b, next: chain.first }, chain.bytes));
}

function fragments(c: SequenceCtx, cls: string, o: { fragmentableExts?: boolean; duplicates?: boolean; replace?: boolean; twin?: boolean }): Step[] {
  const r = c.r;
  const v = conversation(c);
  const p = place(c);
  const id = v.family === 4 ? r.int(0, 0xffff) : r.int(0, 0xffffffff);
  const inner: Extension[] = v.family === 6 && o.fragmentableExts ? [{ type: 60, n: r.int(0, 2) }, ...(r.chance(0.3) ? [{ type: 51, n: 1 }] : [])] : [];
  const unfragmentable: Extension[] = v.family === 6 && r.chance(0.3) ? randomExtensions(c) : [];
  const body = extensionChain(inner, v.proto, cat(v.forward, filler(r.int(8, 64), 0x64)));
  const identity = v.family === 4 ? v.proto : body.first;
  const first = r.chance(0.9) ? 8 * r.int(3, 8) : 8;
  const pieces = cut(c, body.bytes, first);
  if (pieces.length === 1) pieces[0]!.more = true;
  const frames = (ps: Piece[], ident = identity) => ps.map((piece) => frameStep(cls, p, fragmentFrame(v, p, id, piece, ident, unfragmentable)));
  let order = shuffle(c, [...pieces]);
  if (r.chance(0.3)) order = [pieces[0]!, ...shuffle(c, pieces.slice(1))];
  if (o.duplicates) for (let k = r.int(1, 3); k > 0; k--) order.splice(r.int(0, order.length), 0, r.pick(pieces));
  const steps = frames(order);
  if (o.replace) {
    // another first fragment of the same identity, with other ports, then the later fragments again
    const other = cat(v.proto === 6 ? tcp(pickPort(c), pickPort(c)) : udp(pickPort(c), pickPort(c)), filler(24));
    const again = extensionChain(inner, v.proto, other);
    steps.push(frameStep(cls, p, fragmentFrame(v, p, id, { offset: 0, more: true, data: again.bytes.subarray(0, Math.max(8, first)) }, identity, unfragmentable)));
    steps.push(...frames(pieces.slice(1)));
  }
  if (o.twin) {
    // the same addresses and identification under another identity protocol
    const twin = identity === 17 ? 6 : 17;
    steps.push(...frames(pieces.slice(1), twin));
  }
  if (r.chance(0.3)) steps.push(frameStep(cls, p, onLink(v.family, p, datagram(v, false, [], v.proto))));
  return steps;
}

// ICMP errors -------------------------------------------------------------------------------

type ErrorVariant = 'reverse' | 'forward' | 'wrong-direction' | 'echo-reply' | 'echo-request' | 'quote-extensions' | 'truncated' | 'elsewhere' | 'fragmented';

export function errorMessage(c: Ctx, family: 4 | 6, quote: Bytes): Bytes {
  const proto = family === 4 ? 1 : 58;
  const type = c.r.chance(0.9) ? c.r.pick(ERRORS[proto]) : c.r.pick(family === 4 ? [4, 5, 0, 8] : [128, 129, 135]);
  return icmp(type, c.r.chance(0.8) ? 0 : c.r.int(0, 5), c.r.int(0, 3), quote);
}

const QUOTE_EXTENSIONS = (c: Ctx): Extension[] =>
  c.r.pick<() => Extension[]>([
    () => randomExtensions(c),
    () => [{ type: 43, segmentsLeft: c.r.int(1, 5) }],
    () => [{ type: 44, fragment: { offset: 0, more: c.r.chance(0.5), id: 5 } }],
    () => [{ type: 44, fragment: { offset: 8 * c.r.int(1, 4), more: c.r.chance(0.5), id: 5 } }],
    () => [{ type: 60 }, { type: 0 }],
    () => Array.from({ length: c.r.int(8, 9) }, () => ({ type: 60 })),
    () => [{ type: 51, n: c.r.int(1, 3) }, { type: 60, n: 1 }],
  ])();

function icmpErrors(c: SequenceCtx, cls: string, variant: ErrorVariant, o: { fromFailsafe?: boolean } = {}): Step[] {
  const r = c.r;
  const echo = variant === 'echo-reply' || variant === 'echo-request';
  const v = conversation(c, { echo, fromFailsafe: o.fromFailsafe ?? r.chance(0.15), ...(variant === 'quote-extensions' ? { family: 6 as const } : {}) });
  const p = place(c);
  const steps: Step[] = [frameStep(cls, p, onLink(v.family, p, datagram(v, false)))];
  if (r.chance(0.3)) steps.push(frameStep(cls, p, onLink(v.family, p, datagram(v, false))));
  if (variant === 'forward' ? r.chance(0.5) : r.chance(0.2)) steps.push(frameStep(cls, p, onLink(v.family, p, datagram(v, true))));
  const router = r.chance(0.5) ? pickAddress(c, v.family) : v.a;
  let quoted = datagram(v, true);
  let to = v.b;
  let at = p;
  let cutKind = r.chance(0.7) ? 0 : 1;
  switch (variant) {
    case 'forward':
      quoted = datagram(v, false);
      to = v.a;
      break;
    case 'wrong-direction':
      to = r.chance(0.5) ? v.a : pickAddress(c, v.family);
      break;
    case 'echo-request':
      // the peer's echo request (b → a), or the pinger's own request quoted back to it
      if (r.chance(0.5)) quoted = datagram({ ...v, reverse: v.forward }, true);
      else [quoted, to] = [datagram(v, false), v.a];
      break;
    case 'quote-extensions':
      quoted = datagram(v, true, QUOTE_EXTENSIONS(c));
      break;
    case 'truncated':
      cutKind = r.int(2, 3);
      break;
    case 'elsewhere':
      at = elsewhere(c, p);
      break;
    default:
      break;
  }
  const message = errorMessage(c, v.family, quoteOf(c, quoted, cutKind));
  const src = router;
  if (variant === 'fragmented') {
    const id = r.int(0, 0xffff);
    const ip =
      v.family === 4
        ? ipv4({ src, dst: to, proto: 1, id, more: true }, message)
        : (() => {
            const chain = extensionChain([{ type: 44, fragment: { offset: 0, more: true, id } }], 58, message);
            return ipv6({ src, dst: to, next: chain.first }, chain.bytes);
          })();
    steps.push(frameStep(cls, at, onLink(v.family, at, ip)));
  } else {
    steps.push(frameStep(cls, at, packet(c, { family: v.family, proto: v.family === 4 ? 1 : 58, src, dst: to, l4: message, tags: at.tags, exts: [] }).frame));
  }
  return steps;
}

// a policy change in the middle -------------------------------------------------------------

function policyChange(c: SequenceCtx): Step[] {
  const cls = 'sequence-policy-change';
  const before = c.r.chance(0.5) ? icmpErrors(c, cls, c.r.pick<ErrorVariant>(['reverse', 'echo-reply'])) : fragments(c, cls, {});
  const change: Step = c.r.chance(0.9) ? { kind: 'install', policy: c.r.int(0, c.policies - 1) } : { kind: 'uninstall' };
  // after the change: the same frames again (sessions re-decided, errors and fragments related anew)
  return [...before, change, ...before.filter(() => c.r.chance(0.8))];
}

export const SEQUENCES: Record<string, (c: SequenceCtx) => Step[]> = {
  'fragments-v4-or-v6': (c) => fragments(c, 'fragments-v4-or-v6', {}),
  'fragments-duplicates': (c) => fragments(c, 'fragments-duplicates', { duplicates: true }),
  'fragments-v6-fragmentable-extensions': (c) => fragments(c, 'fragments-v6-fragmentable-extensions', { fragmentableExts: true }),
  'fragments-replaced-first': (c) => fragments(c, 'fragments-replaced-first', { replace: true }),
  'fragments-twin-identity': (c) => fragments(c, 'fragments-twin-identity', { twin: true }),
  'icmp-error-reverse': (c) => icmpErrors(c, 'icmp-error-reverse', 'reverse'),
  'icmp-error-forward': (c) => icmpErrors(c, 'icmp-error-forward', 'forward'),
  'icmp-error-wrong-direction': (c) => icmpErrors(c, 'icmp-error-wrong-direction', 'wrong-direction'),
  'icmp-error-echo-reply': (c) => icmpErrors(c, 'icmp-error-echo-reply', 'echo-reply'),
  'icmp-error-echo-request': (c) => icmpErrors(c, 'icmp-error-echo-request', 'echo-request'),
  'icmp-error-quote-extensions': (c) => icmpErrors(c, 'icmp-error-quote-extensions', 'quote-extensions'),
  'icmp-error-truncated-quote': (c) => icmpErrors(c, 'icmp-error-truncated-quote', 'truncated'),
  'icmp-error-elsewhere': (c) => icmpErrors(c, 'icmp-error-elsewhere', 'elsewhere'),
  'icmp-error-fragmented': (c) => icmpErrors(c, 'icmp-error-fragmented', 'fragmented'),
  // only meaningful in a run without a policy: the runner keeps it there
  'icmp-error-failsafe-no-policy': (c) => icmpErrors(c, 'icmp-error-failsafe-no-policy', c.r.pick<ErrorVariant>(['reverse', 'echo-reply', 'forward']), { fromFailsafe: true }),
  'sequence-policy-change': policyChange,
};
