// SPDX-License-Identifier: Apache-2.0
// The reference datapath: docs/datapath.md "What a packet is, in order", over the reference
// parse and its own state (session cache with generations, fragment records, expected replies),
// deciding new sessions by management prefixes, then the policy language's reference evaluator
// (src/policy/tables/evaluate.ts), or no-policy. Interface roles and tenant networks (step 4a) decide
// where a session's replies are expected and where a packet is looked up as a reply.
// Written from the documentation, never from bpf/: it is the oracle the XDP program is held to.
import type { ReasonName, SessionKey } from '../../../src/abi/records.js';
import type { FailsafeEntry } from '../../../src/engine/engine.js';
import { evaluate } from '../../../src/policy/tables/evaluate.js';
import type { Cidr, FlowTuple, PolicyIr } from '../../../src/policy/ir/ir.js';
import { sameBytes } from './bytes.js';
import { bucketOf } from './deny-buckets.js';
import { failsafeAllows } from './failsafe.js';
import { isIcmpError, parseQuote, type Quote } from './icmp-quote.js';
import { engineKeyOf, flowOfEngineKey, fragmentKey, sessionKey, type Where } from './keys.js';
import { isFailsafeNeighbour } from './neighbour.js';
import { type Datagram, type Flow, parseFrame } from './parse.js';
import { expectedReply, replyKey, type Tuple } from './replies.js';
import { type Role, Roles, type Side } from './roles.js';

export interface RefSession {
  /** The key as the engine writes it (for lookups). */
  key: SessionKey;
  action: 'allow' | 'deny';
  reason: ReasonName;
  /** Deciding rule for `POLICY` (0 = the policy default); 0 otherwise. */
  rule: number;
  generation: number;
  packets: number;
  /** DS_SESSION_REPLY_CHECK: denied on a source interface while replies were expected there. */
  replyCheck: boolean;
}

export interface Outcome {
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  /** Which sentence of the doc decided: the label disagreements are grouped by. */
  because: string;
  /** The session the packet hit or created (for a reply: its forward session), if any. */
  session: string | null;
}

type Decision = Omit<RefSession, 'key' | 'packets'>;

/**
 * Which of a full bucket's two denied sessions the engine evicted for a third: docs/datapath.md (pipeline, item 4) says
 * "the way seen least recently" by the engine's clock, which moves once a tick, so frames within
 * a tick tie and the reference cannot tell; it asks whoever ran the engine, after the engine ran
 * the frame (settleEvictions). Returns the evicted one, or null if the engine did not evict one.
 */
export type EvictionResolver = (candidates: readonly RefSession[]) => RefSession | null;

export class ReferenceDatapath {
  private policy: { ir: PolicyIr; generation: number } | null = null;
  private failsafe: readonly FailsafeEntry[] = [];
  private readonly roles = new Roles();
  private onLink: (ifindex: number, dst: Uint8Array) => boolean = () => false;
  readonly sessions = new Map<string, RefSession>();
  readonly fragments = new Map<string, Flow>();
  /** ds_replies: expected reply (replyKey) → the forward session's key. */
  readonly replies = new Map<string, string>();
  /** Entries of the denied-session cache (semantics 4: 2-way buckets). */
  private denyWays = 262144;
  /** bucket → the keys of the denied sessions in it. */
  private readonly buckets = new Map<number, Set<string>>();
  /** The frame each session was last seen in (for the eviction an unresolved bucket gets). */
  private readonly seen = new Map<string, number>();
  private frames = 0;
  /** A full bucket met a third denied session: its two others, one of which the engine evicted. */
  private pending: string[] | null = null;
  private resolveEviction: EvictionResolver = () => null;

  /** The engine's denied-session cache: `ways` entries, and who tells which session it evicted. */
  setDenyCache(ways: number, resolve: EvictionResolver): void {
    this.denyWays = ways;
    this.resolveEviction = resolve;
  }

  /** Apply the eviction the last frame made, if any (the engine has run that frame by now). */
  settleEvictions(): void {
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    const candidates = pending.map((k) => this.sessions.get(k)!);
    const told = this.resolveEviction(candidates);
    // not told (the engine kept both): the least recently seen goes, and the tables will differ
    const at = told ? candidates.indexOf(told) : (this.seen.get(pending[0]!) ?? 0) <= (this.seen.get(pending[1]!) ?? 0) ? 0 : 1;
    const key = pending[at]!;
    this.bucketOf(this.sessions.get(key)!.key).delete(key);
    this.sessions.delete(key);
    this.seen.delete(key);
  }

  private bucketOf(k: SessionKey): Set<string> {
    const b = bucketOf(k, this.denyWays);
    let set = this.buckets.get(b);
    if (!set) this.buckets.set(b, (set = new Set()));
    return set;
  }

  /** Cache session `s` under `key`: a denied one takes a way of its bucket, and a third in a full bucket evicts one of the others. */
  private cache(key: string, s: RefSession): void {
    const before = this.sessions.get(key);
    this.sessions.set(key, s);
    this.seen.set(key, this.frames);
    if (before?.action === 'deny' && s.action !== 'deny') this.bucketOf(s.key).delete(key);
    if (s.action !== 'deny' || before?.action === 'deny') return;
    const bucket = this.bucketOf(s.key);
    if (bucket.size >= 2) this.pending = [...bucket];
    bucket.add(key);
  }

  /** The active policy and its generation, or none (generation 0). */
  setPolicy(active: { ir: PolicyIr; generation: number } | null): void {
    this.policy = active;
  }

  setFailsafe(entries: readonly FailsafeEntry[]): void {
    this.failsafe = entries;
  }

  /** Engine.setInterfaceRoles: role and tenant per interface (others: a source of tenant 0). */
  setInterfaceRoles(entries: readonly { ifindex: number; role: Side; tenant?: number }[]): void {
    this.roles.setInterfaceRoles(entries);
  }

  /** Engine.setTenantNetworks: where hairpinned replies arrive. */
  setTenantNetworks(entries: readonly { cidr: Cidr; tenant: number }[]): void {
    this.roles.setTenantNetworks(entries);
  }

  /**
   * The kernel FIB's answer for a unicast neighbour-discovery destination arriving on `ifindex`:
   * is it on this link (a local address, no route, forwarding off, or a connected route out of it)?
   */
  setOnLink(onLink: (ifindex: number, dst: Uint8Array) => boolean): void {
    this.onLink = onLink;
  }

  /** Forget sessions, fragment records and expected replies (Engine.clearFlowState). */
  clearFlowState(): void {
    this.sessions.clear();
    this.fragments.clear();
    this.replies.clear();
    this.buckets.clear();
    this.seen.clear();
    this.pending = null;
  }

  get generation(): number {
    return this.policy?.generation ?? 0;
  }

  /** "On a source interface, while replies are expected there (either setting above)". */
  private get repliesOnSources(): boolean {
    return this.roles.anyFabric || this.roles.tenantNetworks;
  }

  run(frame: Uint8Array, ifindex: number): Outcome {
    this.settleEvictions();
    this.frames++;
    const p = parseFrame(frame);
    if (p.kind === 'malformed') return drop('MALFORMED', `malformed: ${p.why}`);
    if (p.kind === 'arp') return pass('FAILSAFE', 'failsafe: ARP');
    if (p.kind === 'non-ip') return drop('NON_IP', 'non-ip');
    const { ip, fragment } = p;
    const where: Where = { ifindex, vlanOuter: p.link.vlanOuter, vlanInner: p.link.vlanInner };
    let flow = p.flow;
    if (flow && isFailsafeNeighbour(ip, fragment, flow, (dst) => this.onLink(ifindex, dst))) return pass('FAILSAFE', 'failsafe: neighbour discovery');
    const fragmentId = fragment ? fragmentKey(ip.family, ip.src, ip.dst, where, fragment.id, fragment.identityProto) : '';
    if (fragment?.later) {
      flow = this.fragments.get(fragmentId) ?? null;
      if (!flow) return drop('FRAG_UNKNOWN', 'frag-unknown: a later fragment without a record');
    }
    if (!flow) throw new Error('unreachable: an IP packet without a flow');
    const how = fragment ? (fragment.later ? ' (later fragment)' : ' (first fragment)') : '';
    const role = this.roles.of(ifindex);
    if (!fragment && isIcmpError(ip.family, flow)) {
      const quote = parseQuote(frame, ip.family, p.l4, ip.end);
      const way = quote ? this.relates(ip, quote, where, role) : null;
      if (way) return pass('ICMP_RELATED', `icmp-related: ${way}`);
    }
    const outcome = this.session(ip, where, role, flow, how);
    // only a first fragment that passes (by its session's verdict, or as a reply) leaves a record
    if (fragment && !fragment.later && outcome.verdict === 'pass') this.fragments.set(fragmentId, flow);
    return outcome;
  }

  /** ICMP errors, relation 1 and its two ways; which way related, or null. */
  private relates(ip: Datagram, q: Quote, where: Where, role: Role): string | null {
    if (!sameBytes(ip.dst, q.src)) return null;
    // way 1: Q is the reply of a session that arrived on this interface
    let sport = q.dport;
    let dport = q.sport;
    let reply = true;
    if (q.proto === 1 || q.proto === 58) {
      const type = q.dport >> 8;
      const [echoReply, request] = q.proto === 1 ? [0, 8] : [129, 128];
      reply = type === echoReply;
      sport = q.sport;
      dport = (request << 8) | (q.dport & 0xff);
    }
    if (reply) {
      const s = this.sessions.get(sessionKey(ip.family, q.dst, q.src, where, q.proto, sport, dport));
      if (s !== undefined && s.generation === this.generation && s.action === 'allow') return 'the reply of a session here';
    }
    // way 2: Q is a packet of an allowed session whose replies arrive here: Q's expected reply,
    // with this interface's role and tenant, is in ds_replies, and its forward session is cached
    // as allowed
    const expected = expectedReply({ family: ip.family, ...q });
    const forward = expected ? this.replies.get(replyKey(expected, role.role, role.tenant)) : undefined;
    const s = forward === undefined ? undefined : this.sessions.get(forward);
    if (s === undefined || s.generation !== this.generation || s.action !== 'allow') return null;
    return `a packet of a session whose replies arrive here (${role.role})`;
  }

  /**
   * Is the packet the expected reply of an allowed session, arriving where `role` says? Looks it
   * up in ds_replies; a forward session of an older version is classified again under the active
   * one, from its own interface's tenant. That classification decides this reply only: step 4a
   * does not say the forward session's entry is rewritten (step 4 says so of a packet's own
   * session), and it is not. Returns the forward session's key, or null.
   */
  private reply(t: Tuple, role: Role): string | null {
    const forward = this.replies.get(replyKey(t, role.role, role.tenant));
    const s = forward === undefined ? undefined : this.sessions.get(forward);
    if (forward === undefined || s === undefined) return null;
    if (s.generation === this.generation) return s.action === 'allow' ? forward : null;
    const f = flowOfEngineKey(s.key);
    return this.decide(f.family, f.src, f.dst, f.where, f).action === 'allow' ? forward : null;
  }

  private session(ip: Datagram, where: Where, role: Role, flow: Flow, how: string): Outcome {
    const t: Tuple = { family: ip.family, src: ip.src, dst: ip.dst, proto: flow.proto, sport: flow.sport, dport: flow.dport };
    if (role.role === 'fabric') {
      const forward = this.reply(t, role);
      if (forward) return { verdict: 'pass', reason: 'REPLY', because: `reply on a fabric${how}`, session: forward };
    }
    const key = sessionKey(ip.family, ip.src, ip.dst, where, flow.proto, flow.sport, flow.dport);
    const cached = this.sessions.get(key);
    if (cached && cached.generation === this.generation) {
      if (cached.replyCheck) {
        const forward = this.reply(t, role);
        if (forward) return { verdict: 'pass', reason: 'REPLY', because: `reply on a source, over a cached deny${how}`, session: forward };
      }
      cached.packets++;
      this.seen.set(key, this.frames);
      return { ...verdictOf(cached), because: `cached ${label(cached)}${how}`, session: key };
    }
    if (role.role === 'source' && this.repliesOnSources) {
      const forward = this.reply(t, role);
      if (forward) return { verdict: 'pass', reason: 'REPLY', because: `reply on a source${cached ? ' (stale session)' : ''}${how}`, session: forward };
    }
    const s: RefSession = { key: engineKeyOf(ip.family, ip.src, ip.dst, where, flow.proto, flow.sport, flow.dport), ...this.decide(ip.family, ip.src, ip.dst, where, flow), packets: 1 };
    // re-classified: the decision is new, the session's traffic carries on
    if (cached) s.packets = cached.packets + 1;
    this.cache(key, s);
    if (s.action === 'allow') this.expectReplies(t, where, key);
    return { ...verdictOf(s), because: `${label(s)}${cached ? ' (stale session)' : ''}${how}`, session: key };
  }

  /** Step 4a "Expected replies": where the replies of the session `key`, just allowed, arrive. */
  private expectReplies(t: Tuple, where: Where, key: string): void {
    const role = this.roles.of(where.ifindex);
    const reply = expectedReply(t);
    if (!reply) return;
    if (role.role === 'fabric') {
      this.replies.set(replyKey(reply, 'source', role.tenant), key);
      return;
    }
    if (this.roles.anyFabric) this.replies.set(replyKey(reply, 'fabric', role.tenant), key);
    const served = this.roles.tenantNetworks ? this.roles.servedBy(t.family, t.dst) : null;
    if (served !== null) this.replies.set(replyKey(reply, 'source', served), key);
  }

  private decide(family: 4 | 6, src: Uint8Array, dst: Uint8Array, where: Where, flow: Flow): Decision {
    const generation = this.generation;
    const role = this.roles.of(where.ifindex);
    const replyCheck = role.role === 'source' && this.repliesOnSources;
    if (failsafeAllows(this.failsafe, family, src, flow)) return { action: 'allow', reason: 'FAILSAFE', rule: 0, generation, replyCheck: false };
    if (!this.policy) return { action: 'deny', reason: 'NO_POLICY', rule: 0, generation, replyCheck };
    const tuple: FlowTuple = { family, src, dst, protocol: flow.proto, tenant: role.tenant };
    if (flow.proto === 6 || flow.proto === 17 || flow.proto === 132) {
      tuple.sport = flow.sport;
      tuple.dport = flow.dport;
    } else if (flow.proto === 1 || flow.proto === 58) {
      tuple.icmpType = flow.dport >> 8;
      tuple.icmpCode = flow.dport & 0xff;
    }
    const d = evaluate(this.policy.ir, tuple);
    return { action: d.action, reason: 'POLICY', rule: d.rule, generation, replyCheck: d.action === 'deny' && replyCheck };
  }
}

const pass = (reason: ReasonName, because: string): Outcome => ({ verdict: 'pass', reason, because, session: null });
const drop = (reason: ReasonName, because: string): Outcome => ({ verdict: 'drop', reason, because, session: null });
const verdictOf = (s: RefSession) => ({ verdict: s.action === 'allow' ? ('pass' as const) : ('drop' as const), reason: s.reason });

function label(s: RefSession): string {
  if (s.reason === 'POLICY') return `policy ${s.action}`;
  return s.reason === 'FAILSAFE' ? 'failsafe: management prefix' : 'no-policy';
}
