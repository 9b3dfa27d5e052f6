// SPDX-License-Identifier: Apache-2.0
// The reference datapath: docs/datapath.md "What a packet is, in order", over the reference
// parse and its own state (session cache with generations, fragment records), deciding new
// sessions by management prefixes, then the policy language's reference evaluator
// (src/policy/evaluate.ts), or no-policy. Interfaces are all sources here, and no replies are
// expected (no fabric, no tenant networks): the reference does not model ds_replies.
// Written from the documentation, never from bpf/: it is the oracle the XDP program is held to.
import type { ReasonName, SessionKey } from '../../../src/abi/records.js';
import type { FailsafeEntry } from '../../../src/engine/engine.js';
import { evaluate } from '../../../src/policy/evaluate.js';
import type { FlowTuple, PolicyIr } from '../../../src/policy/ir.js';
import { sameBytes } from './bytes.js';
import { failsafeAllows } from './failsafe.js';
import { isIcmpError, parseQuote, type Quote } from './icmp-quote.js';
import { engineKeyOf, fragmentKey, sessionKey, type Where } from './keys.js';
import { isFailsafeNeighbour } from './neighbour.js';
import { type Datagram, type Flow, parseFrame } from './parse.js';

export interface RefSession {
  /** The key as the engine writes it (for lookups). */
  key: SessionKey;
  action: 'allow' | 'deny';
  reason: ReasonName;
  /** Deciding rule for `POLICY` (0 = the policy default); 0 otherwise. */
  rule: number;
  generation: number;
  packets: number;
}

export interface Outcome {
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  /** Which sentence of the doc decided: the label disagreements are grouped by. */
  because: string;
  /** The session the packet hit or created, if any. */
  session: string | null;
}

export class ReferenceDatapath {
  private policy: { ir: PolicyIr; generation: number } | null = null;
  private failsafe: readonly FailsafeEntry[] = [];
  private readonly tenants = new Map<number, number>();
  private onLink: (ifindex: number, dst: Uint8Array) => boolean = () => false;
  readonly sessions = new Map<string, RefSession>();
  readonly fragments = new Map<string, Flow>();

  /** The active policy and its generation, or none (generation 0). */
  setPolicy(active: { ir: PolicyIr; generation: number } | null): void {
    this.policy = active;
  }

  setFailsafe(entries: readonly FailsafeEntry[]): void {
    this.failsafe = entries;
  }

  /** The tenant of each source interface (every other interface: tenant 0). */
  setTenants(entries: readonly { ifindex: number; tenant: number }[]): void {
    this.tenants.clear();
    for (const e of entries) this.tenants.set(e.ifindex, e.tenant);
  }

  /**
   * The kernel FIB's answer for a unicast neighbour-discovery destination arriving on `ifindex`:
   * is it on this link (a local address, no route, forwarding off, or a connected route out of it)?
   */
  setOnLink(onLink: (ifindex: number, dst: Uint8Array) => boolean): void {
    this.onLink = onLink;
  }

  /** Forget sessions and fragment records (Engine.clearFlowState). */
  clearFlowState(): void {
    this.sessions.clear();
    this.fragments.clear();
  }

  get generation(): number {
    return this.policy?.generation ?? 0;
  }

  run(frame: Uint8Array, ifindex: number): Outcome {
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
    if (!fragment && isIcmpError(ip.family, flow)) {
      const quote = parseQuote(frame, ip.family, p.l4, ip.end);
      if (quote && this.relates(ip, quote, where)) return pass('ICMP_RELATED', 'icmp-related: the reply of a session here');
    }
    const outcome = this.session(ip, where, flow, how);
    // only a first fragment that passes leaves a record
    if (fragment && !fragment.later && outcome.verdict === 'pass') this.fragments.set(fragmentId, flow);
    return outcome;
  }

  /** ICMP errors, relation 1 and the first way of 2 (the second needs ds_replies, not modelled). */
  private relates(ip: Datagram, q: Quote, where: Where): boolean {
    if (!sameBytes(ip.dst, q.src)) return false;
    let sport = q.dport;
    let dport = q.sport;
    if (q.proto === 1 || q.proto === 58) {
      const type = q.dport >> 8;
      const [reply, request] = q.proto === 1 ? [0, 8] : [129, 128];
      if (type !== reply) return false;
      sport = q.sport;
      dport = (request << 8) | (q.dport & 0xff);
    }
    const s = this.sessions.get(sessionKey(ip.family, q.dst, q.src, where, q.proto, sport, dport));
    return s !== undefined && s.generation === this.generation && s.action === 'allow';
  }

  private session(ip: Datagram, where: Where, flow: Flow, how: string): Outcome {
    const key = sessionKey(ip.family, ip.src, ip.dst, where, flow.proto, flow.sport, flow.dport);
    const cached = this.sessions.get(key);
    if (cached && cached.generation === this.generation) {
      cached.packets++;
      return { ...verdictOf(cached), because: `cached ${label(cached)}${how}`, session: key };
    }
    const s = { key: engineKeyOf(ip.family, ip.src, ip.dst, where, flow.proto, flow.sport, flow.dport), ...this.decide(ip, where, flow) };
    // re-classified: the decision is new, the session's traffic carries on
    if (cached) s.packets = cached.packets + 1;
    this.sessions.set(key, s);
    return { ...verdictOf(s), because: `${label(s)}${cached ? ' (stale session)' : ''}${how}`, session: key };
  }

  private decide(ip: Datagram, where: Where, flow: Flow): Omit<RefSession, 'key'> {
    const generation = this.generation;
    if (failsafeAllows(this.failsafe, ip.family, ip.src, flow)) return { action: 'allow', reason: 'FAILSAFE', rule: 0, generation, packets: 1 };
    if (!this.policy) return { action: 'deny', reason: 'NO_POLICY', rule: 0, generation, packets: 1 };
    const tuple: FlowTuple = { family: ip.family, src: ip.src, dst: ip.dst, protocol: flow.proto, tenant: this.tenants.get(where.ifindex) ?? 0 };
    if (flow.proto === 6 || flow.proto === 17 || flow.proto === 132) {
      tuple.sport = flow.sport;
      tuple.dport = flow.dport;
    } else if (flow.proto === 1 || flow.proto === 58) {
      tuple.icmpType = flow.dport >> 8;
      tuple.icmpCode = flow.dport & 0xff;
    }
    const d = evaluate(this.policy.ir, tuple);
    return { action: d.action, reason: 'POLICY', rule: d.rule, generation, packets: 1 };
  }
}

const pass = (reason: ReasonName, because: string): Outcome => ({ verdict: 'pass', reason, because, session: null });
const drop = (reason: ReasonName, because: string): Outcome => ({ verdict: 'drop', reason, because, session: null });
const verdictOf = (s: RefSession) => ({ verdict: s.action === 'allow' ? ('pass' as const) : ('drop' as const), reason: s.reason });

function label(s: RefSession): string {
  if (s.reason === 'POLICY') return `policy ${s.action}`;
  return s.reason === 'FAILSAFE' ? 'failsafe: management prefix' : 'no-policy';
}
