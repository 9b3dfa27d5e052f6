// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, (d) interface roles and replies (docs/datapath.md step 4a and "ICMP
// errors", the second way): sessions from a source and their replies on the fabric of the right
// tenant, of another tenant, or on the wrong side; unsolicited fabric traffic and near misses;
// replies after a policy change; hairpinned replies between tenants' source interfaces; ICMP
// errors from beyond the edge or from a hairpinned network, towards the sender or not; echo
// across the fabric; replies on a source to sessions allowed in from a fabric, after a cached
// deny; and, for ICMP messages other than echo requests (which expect no reply), what their tuple
// reversed literally would be.
import { packet, pickAddress, pickTags, quoteOf } from './build.js';
import { type Conversation, conversation, cut, datagram, errorMessage, fragmentFrame, frameStep, onLink, type Place, type SequenceCtx, type Step } from './sequences.js';
import { TENANT_NETS, type Side } from './topology.js';
import { type Bytes, cat, filler, icmp } from './wire.js';

// where ------------------------------------------------------------------------------------

/** Interfaces of the run with this role (and tenant, when given). */
function interfaces(c: SequenceCtx, role: Side, tenant?: number): number[] {
  const out: number[] = [];
  c.topology.of.forEach((r, i) => {
    if (r.role === role && (tenant === undefined || r.tenant === tenant)) out.push(i);
  });
  return out;
}

const at = (c: SequenceCtx, iface: number): Place => ({ iface, tags: pickTags(c) });

/** One of these interfaces, or (none in this run) any interface: every class makes frames. */
const oneOf = (c: SequenceCtx, xs: number[]): number => (xs.length ? c.r.pick(xs) : c.r.int(0, c.ifaces - 1));

/** A source interface, preferring one with a tenant (and so possibly a fabric). */
const aSource = (c: SequenceCtx): number => oneOf(c, c.r.chance(0.9) ? interfaces(c, 'source').filter((i) => c.topology.of[i]!.tenant !== 0) : interfaces(c, 'source'));
const tenantOf = (c: SequenceCtx, iface: number): number => c.topology.of[iface]!.tenant;
const fabricOf = (c: SequenceCtx, tenant: number): number => oneOf(c, interfaces(c, 'fabric', tenant));
const otherThan = (c: SequenceCtx, role: Side, tenant: number): number => oneOf(c, interfaces(c, role).filter((i) => tenantOf(c, i) !== tenant));

/** The same interface, mostly with the same tags: the reply key carries no VLANs. */
const again = (c: SequenceCtx, p: Place): Place => (c.r.chance(0.7) ? p : { iface: p.iface, tags: pickTags(c) });

/** An address inside one of the networks tenants serve (the run's, or the usual ones). */
function inTenantNet(c: SequenceCtx, family: 4 | 6): { addr: Bytes; tenant: number } {
  const nets = (c.topology.nets.length ? c.topology.nets : TENANT_NETS).filter((n) => n.cidr.family === family);
  const n = c.r.pick(nets);
  const addr = new Uint8Array(n.cidr.addr);
  const whole = n.cidr.len >> 3;
  if (n.cidr.len & 7) addr[whole] = (addr[whole]! & (0xff << (8 - (n.cidr.len & 7)))) | (c.r.int(0, 255) >> (n.cidr.len & 7));
  for (let i = Math.ceil(n.cidr.len / 8); i < addr.length; i++) addr[i] = i === addr.length - 1 || c.r.chance(0.2) ? c.r.int(0, 255) : 0;
  return { addr, tenant: n.tenant };
}

// one flow ------------------------------------------------------------------------------------

const reversed = (v: Conversation): Conversation => ({ ...v, a: v.b, b: v.a, forward: v.reverse, reverse: v.forward });

/** A datagram of `v`'s forward direction cut into fragments (the first long enough for any transport). */
function fragmented(c: SequenceCtx, v: Conversation, p: Place): Bytes[] {
  const id = v.family === 4 ? c.r.int(0, 0xffff) : c.r.int(0, 0xffffffff);
  const pieces = cut(c, cat(v.forward, filler(c.r.int(8, 40), 0x65)), 8 * c.r.int(3, 5));
  if (pieces.length === 1) pieces[0]!.more = true;
  const order = c.r.chance(0.8) ? pieces : [...pieces].reverse();
  return order.map((piece) => fragmentFrame(v, p, id, piece, v.proto, []));
}

/** The forward packet at `from`, replies at `to` (some fragmented), maybe one unsolicited first. */
function exchange(c: SequenceCtx, cls: string, v: Conversation, from: Place, to: Place): Step[] {
  const r = c.r;
  const steps: Step[] = [];
  const fwd = () => frameStep(cls, again(c, from), onLink(v.family, from, datagram(v, false)));
  const reply = (): Step[] => {
    const p = again(c, to);
    if (r.chance(0.1)) return fragmented(c, reversed(v), p).map((f) => frameStep(cls, p, f));
    return [frameStep(cls, p, onLink(v.family, p, datagram(v, true)))];
  };
  if (r.chance(0.25)) steps.push(...reply());
  steps.push(fwd());
  if (r.chance(0.3)) steps.push(fwd());
  for (let k = r.int(1, 3); k > 0; k--) steps.push(...reply());
  if (r.chance(0.3)) steps.push(fwd(), ...reply());
  return steps;
}

function replyOnFabric(c: SequenceCtx, cls: string, where: 'right' | 'wrong-tenant' | 'wrong-side'): Step[] {
  const v = conversation(c);
  if (where === 'wrong-side' && c.r.chance(0.5)) {
    // allowed in from a fabric: its replies arrive on a source, not on a fabric
    const fabric = oneOf(c, interfaces(c, 'fabric'));
    return exchange(c, cls, v, at(c, fabric), at(c, c.r.chance(0.5) ? fabric : oneOf(c, interfaces(c, 'fabric'))));
  }
  const from = aSource(c);
  const t = tenantOf(c, from);
  const to = where === 'right' ? fabricOf(c, t) : where === 'wrong-tenant' ? otherThan(c, c.r.chance(0.7) ? 'fabric' : 'source', t) : oneOf(c, interfaces(c, 'source', t));
  return exchange(c, cls, v, at(c, from), at(c, to));
}

function unsolicited(c: SequenceCtx, cls: string): Step[] {
  const r = c.r;
  const fabric = at(c, oneOf(c, interfaces(c, 'fabric')));
  const v = conversation(c);
  const steps: Step[] = [];
  for (let k = r.int(1, 3); k > 0; k--) {
    const kind = r.int(0, 3);
    if (kind === 0) steps.push(frameStep(cls, fabric, packet(c, { tags: fabric.tags }).frame));
    else if (kind === 1) steps.push(frameStep(cls, again(c, fabric), onLink(v.family, fabric, datagram(v, true))));
    else if (kind === 2) steps.push(frameStep(cls, fabric, onLink(v.family, fabric, datagram(v, false))));
    else {
      // a near miss: a session from a source, then a reply with one field changed
      const from = at(c, aSource(c));
      steps.push(frameStep(cls, from, onLink(v.family, from, datagram(v, false))));
      const miss = r.pick<() => Conversation>([
        () => ({ ...v, a: pickAddress(c, v.family) }),
        () => ({ ...v, b: pickAddress(c, v.family) }),
        () => {
          const reverse = v.reverse.slice();
          reverse[r.int(0, 3)]! ^= 1 << r.int(0, 7);
          return { ...v, reverse };
        },
      ])();
      steps.push(frameStep(cls, fabric, onLink(v.family, fabric, datagram(miss, true))));
    }
  }
  return steps;
}

/** Replies pass, then a new version (or none) decides the forward flow again: do they still? */
function afterPolicyChange(c: SequenceCtx): Step[] {
  const cls = 'reply-after-policy-change';
  const v = conversation(c, c.r.chance(0.2) ? { echo: true } : {});
  const from = at(c, aSource(c));
  const hairpin = c.r.chance(0.4);
  if (hairpin) v.b = inTenantNet(c, v.family).addr;
  const to = at(c, hairpin ? oneOf(c, interfaces(c, 'source')) : fabricOf(c, tenantOf(c, from.iface)));
  const before = exchange(c, cls, v, from, to);
  const change: Step = c.r.chance(0.7) ? { kind: 'install', policy: c.r.int(0, c.policies - 1) } : { kind: 'uninstall' };
  const reply = () => frameStep(cls, to, onLink(v.family, to, datagram(v, true)));
  const fwd = () => frameStep(cls, from, onLink(v.family, from, datagram(v, false)));
  const after: Step[] = [reply(), ...(c.r.chance(0.5) ? [reply()] : []), ...(c.r.chance(0.4) ? [fwd(), reply()] : [])];
  return [...before, change, ...after];
}

function hairpin(c: SequenceCtx, cls: string): Step[] {
  const v = conversation(c);
  const served = inTenantNet(c, v.family);
  v.b = served.addr;
  if (c.r.chance(0.2)) v.a = inTenantNet(c, v.family).addr;
  const from = aSource(c);
  const right = oneOf(c, interfaces(c, 'source', served.tenant));
  const to = c.r.pick([right, right, right, otherThan(c, 'source', served.tenant), oneOf(c, interfaces(c, 'fabric')), from]);
  return exchange(c, cls, v, at(c, from), at(c, to));
}

/** An error about the forward packet (Q = forward), from a router at `to`, towards `dst`. */
function errorAbout(c: SequenceCtx, cls: string, v: Conversation, to: Place, dst: Bytes): Step {
  const router = c.r.chance(0.5) ? pickAddress(c, v.family) : v.b;
  const message = errorMessage(c, v.family, quoteOf(c, datagram(v, false), c.r.chance(0.7) ? 0 : 1));
  return frameStep(cls, to, packet(c, { family: v.family, proto: v.family === 4 ? 1 : 58, src: router, dst, l4: message, tags: to.tags, exts: [] }).frame);
}

function errorFromBeyond(c: SequenceCtx, cls: string, towardsSender: boolean, hairpinned: boolean): Step[] {
  const v = conversation(c, c.r.chance(0.15) ? { echo: true } : {});
  const from = at(c, aSource(c));
  let to: Place;
  if (hairpinned) {
    const served = inTenantNet(c, v.family);
    v.b = served.addr;
    to = at(c, c.r.chance(0.8) ? oneOf(c, interfaces(c, 'source', served.tenant)) : otherThan(c, 'source', served.tenant));
  } else {
    to = at(c, c.r.chance(0.85) ? fabricOf(c, tenantOf(c, from.iface)) : otherThan(c, 'fabric', tenantOf(c, from.iface)));
  }
  const steps: Step[] = [frameStep(cls, from, onLink(v.family, from, datagram(v, false)))];
  if (c.r.chance(0.3)) steps.push(frameStep(cls, to, onLink(v.family, to, datagram(v, true))));
  const dst = towardsSender ? v.a : c.r.chance(0.5) ? v.b : pickAddress(c, v.family);
  steps.push(errorAbout(c, cls, v, to, dst));
  return steps;
}

function echoAcrossFabric(c: SequenceCtx, cls: string): Step[] {
  const r = c.r;
  const v = conversation(c, { echo: true });
  const inbound = r.chance(0.4);
  const source = aSource(c);
  const fabric = fabricOf(c, tenantOf(c, source));
  const [from, to] = inbound ? [at(c, fabric), at(c, source)] : [at(c, source), at(c, fabric)];
  const variant = r.int(0, 9);
  if (variant >= 7) {
    // a reply with another identifier or code: not the expected one
    const reverse = v.reverse.slice();
    reverse[variant === 7 ? 1 : 4 + r.int(0, 1)]! ^= 1 << r.int(0, 7);
    v.reverse = reverse;
  }
  return exchange(c, cls, v, from, to);
}

/** Allowed in from a fabric: its reply on a source of the fabric's tenant, maybe after a cached deny. */
function inboundThenReply(c: SequenceCtx, cls: string): Step[] {
  const v = conversation(c);
  const fabric = at(c, oneOf(c, interfaces(c, 'fabric')));
  const t = tenantOf(c, fabric.iface);
  const to = at(c, c.r.chance(0.8) ? oneOf(c, interfaces(c, 'source', t)) : otherThan(c, 'source', t));
  const reply = () => frameStep(cls, again(c, to), onLink(v.family, to, datagram(v, true)));
  const steps: Step[] = [];
  // first seen from the tenant's side: a cached deny that the inbound flow then makes a reply
  if (c.r.chance(0.5)) for (let k = c.r.int(1, 2); k > 0; k--) steps.push(reply());
  steps.push(frameStep(cls, fabric, onLink(v.family, fabric, datagram(v, false))));
  for (let k = c.r.int(1, 3); k > 0; k--) steps.push(reply());
  return steps;
}

/** An error on a source about a packet allowed in from a fabric (a session not allowed on a source). */
function errorOnSourceAboutInbound(c: SequenceCtx, cls: string): Step[] {
  const v = conversation(c);
  const fabric = at(c, oneOf(c, interfaces(c, 'fabric')));
  const to = at(c, oneOf(c, interfaces(c, 'source', tenantOf(c, fabric.iface))));
  return [frameStep(cls, fabric, onLink(v.family, fabric, datagram(v, false))), errorAbout(c, cls, v, to, c.r.chance(0.8) ? v.a : v.b)];
}

/**
 * ICMP messages other than echo requests expect no reply. Were their tuple reversed literally
 * (addresses and ports swapped), an ICMP type t code c (ports 0, t·256+c) would expect an echo
 * reply (type 0, code 0) with identifier t·256+c, and an echo reply with identifier (request
 * type)·256+nn an echo request of code nn whose identifier is the reply's type·256+code: those are
 * sent, beside other near misses.
 */
function literalReversal(c: SequenceCtx, cls: string): Step[] {
  const r = c.r;
  const family: 4 | 6 = r.chance(0.5) ? 4 : 6;
  const proto = r.chance(0.8) ? (family === 4 ? 1 : 58) : family === 4 ? 58 : 1;
  const echo = proto === 1 ? { request: 8, reply: 0 } : { request: 128, reply: 129 };
  const a = pickAddress(c, family);
  const b = pickAddress(c, family);
  let forward: Bytes;
  let reverse: Bytes;
  if (r.chance(0.6)) {
    const [type, code] = [r.pick([13, 15, 17, 3, 11, 0, 1, 2, 4, 133, 130]), r.chance(0.7) ? 0 : r.int(1, 3)];
    forward = icmp(type, code, r.int(0, 3), filler(8));
    reverse = r.chance(0.7) ? icmp(0, 0, (type << 8) | code, filler(8)) : icmp(echo.reply, 0, (type << 8) | code, filler(8));
  } else {
    const code = r.int(0, 3);
    const nn = r.int(0, 3);
    forward = icmp(echo.reply, code, (echo.request << 8) | nn, filler(8));
    reverse = r.chance(0.7) ? icmp(echo.request, nn, (echo.reply << 8) | code, filler(8)) : icmp(echo.request, code, (echo.request << 8) | nn, filler(8));
  }
  const v: Conversation = { family, proto, a, b, forward, reverse };
  const from = aSource(c);
  const to = r.chance(0.6) ? fabricOf(c, tenantOf(c, from)) : r.chance(0.5) ? oneOf(c, interfaces(c, 'source')) : from;
  if (to !== from && r.chance(0.3)) v.b = inTenantNet(c, family).addr;
  return exchange(c, cls, v, at(c, from), at(c, to));
}

export const POLICY_CHANGE_REPLIES = 'reply-after-policy-change';

export const REPLY_SEQUENCES: Record<string, (c: SequenceCtx) => Step[]> = {
  'reply-fabric-right-tenant': (c) => replyOnFabric(c, 'reply-fabric-right-tenant', 'right'),
  'reply-fabric-wrong-tenant': (c) => replyOnFabric(c, 'reply-fabric-wrong-tenant', 'wrong-tenant'),
  'reply-fabric-wrong-side': (c) => replyOnFabric(c, 'reply-fabric-wrong-side', 'wrong-side'),
  'fabric-unsolicited': (c) => unsolicited(c, 'fabric-unsolicited'),
  'reply-hairpin': (c) => hairpin(c, 'reply-hairpin'),
  'reply-echo-across-fabric': (c) => echoAcrossFabric(c, 'reply-echo-across-fabric'),
  'reply-on-source-to-inbound': (c) => inboundThenReply(c, 'reply-on-source-to-inbound'),
  'reply-icmp-other-than-echo': (c) => literalReversal(c, 'reply-icmp-other-than-echo'),
  'icmp-error-fabric-to-sender': (c) => errorFromBeyond(c, 'icmp-error-fabric-to-sender', true, false),
  'icmp-error-fabric-not-to-sender': (c) => errorFromBeyond(c, 'icmp-error-fabric-not-to-sender', false, false),
  'icmp-error-hairpin-to-sender': (c) => errorFromBeyond(c, 'icmp-error-hairpin-to-sender', true, true),
  'icmp-error-hairpin-not-to-sender': (c) => errorFromBeyond(c, 'icmp-error-hairpin-not-to-sender', false, true),
  'icmp-error-source-quoting-inbound': (c) => errorOnSourceAboutInbound(c, 'icmp-error-source-quoting-inbound'),
  [POLICY_CHANGE_REPLIES]: afterPolicyChange,
};
