// SPDX-License-Identifier: Apache-2.0
// The specification of a session record: a raw ring-buffer event → its audit record, names for
// rules, policy, interface and protocol, RFC 3339 time, printable addresses, written plainly.
// session-record-fast.ts is its fast path (test/unit/session-record-fast.equivalence.test.ts).
// Pure apart from the clock offset captured at creation.
import { Action, EventKind, Reason } from '../abi/generated.js';
import { type RawEvent, reasonLabel, type SessionKey } from '../abi/records.js';
import { formatAddress } from '../policy/ir/cidr.js';
import type { IrRule } from '../policy/ir/ir.js';
import { protocolLabel, setPortFields } from '../policy/ir/protocols.js';
import type { FlowFields, RecordBase } from './records.js';

export interface SessionRecord extends RecordBase, FlowFields {
  type: 'session';
  event: 'new' | 'changed';
  reason: string;
  policy?: string;
  policyVersion?: string;
  generation: number;
  cpu: number;
  seq: number;
  /** Placements: the source network (tenant) the session came from, or arrived for. */
  tenant?: string;
  /** Placements, allowed sessions: where it went (`edge`, `hairpin`, or `source` for what came from the edge). */
  path?: 'edge' | 'hairpin' | 'source';
}


/** The address as text: IPv4 from its mapped form, IPv6 as is. */
export function formatAddress16(family: 4 | 6, addr16: Uint8Array): string {
  return family === 4 ? formatAddress(4, addr16.subarray(12)) : formatAddress(6, addr16);
}

/** What naming a generation's rules takes from its IR (a PolicyIr is one): the version, the
 *  policies, and each rule's id and policy. */
export interface RuleNames {
  readonly version: string;
  readonly policies: readonly string[];
  readonly rules: readonly Pick<IrRule, 'id' | 'policy'>[];
}

/** The names of `ir`, without the rest of it: what an agent keeps of the generations before the
 *  current one, for the events still in the ring buffer. A 10,000-rule IR is ~5 MB of objects
 *  that every major garbage collection walks (its prefixes, ports, tenants); its names ~0.3 MB. */
export function ruleNamesOf(ir: RuleNames): RuleNames {
  return { version: ir.version, policies: ir.policies, rules: ir.rules.map((r) => ({ id: r.id, policy: r.policy })) };
}

/** `<policy>/<rule>` for a rule index of `ir`; index 0 is the set's default, `<policies>/default`. */
export function ruleName(ir: RuleNames | undefined, index: number): string {
  const rule = index === 0 ? undefined : ir?.rules[index - 1];
  if (rule) return rule.id;
  return index === 0 ? `${ir?.policies.join('+') ?? 'policy'}/default` : `rule-${index}`;
}

export interface EnrichContext {
  enforcer: string;
  /** ifindex → interface name */
  interfaces: ReadonlyMap<number, string>;
  /** generation → the names of the IR installed under it */
  policies: ReadonlyMap<number, RuleNames>;
  /** Adds what the enforcer's placement knows of a session (its tenant, where it went). */
  annotate?: (record: SessionRecord) => void;
}

/** Maps the kernel's CLOCK_MONOTONIC nanoseconds to wall-clock time. */
export function monotonicToWall(): (ns: bigint) => Date {
  const offsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return (ns) => new Date(Number((ns + offsetNs) / 1_000_000n));
}

/** The key fields `setFlowDetails` reads (a session key and an event both have them). */
export type FlowDetailKey = Pick<SessionKey, 'proto' | 'sport' | 'dport' | 'vlanOuter' | 'vlanInner'>;

/**
 * Set what a flow's protocol gives it: ports (tcp, udp, sctp), or ICMP type and code (the
 * datapath keeps `type << 8 | code` in dport), and the VLAN tags when tagged.
 */
export function setFlowDetails(r: Pick<FlowFields, 'sport' | 'dport' | 'icmpType' | 'icmpCode' | 'vlan'>, k: FlowDetailKey): void {
  setPortFields(r, k);
  if (k.vlanOuter) r.vlan = k.vlanInner ? [k.vlanOuter, k.vlanInner] : [k.vlanOuter];
}

export function sessionRecord(e: RawEvent, ctx: EnrichContext, toWall: (ns: bigint) => Date): SessionRecord {
  const ir = ctx.policies.get(e.generation);
  let rule = reasonLabel(e.reason);
  let policy: string | undefined;
  if (e.reason === Reason.POLICY && ir) {
    rule = ruleName(ir, e.rule);
    policy = ir.rules[e.rule - 1]?.policy ?? ir.policies.join('+');
  }
  const record: SessionRecord = {
    time: toWall(e.timeNs).toISOString(),
    type: 'session',
    event: e.kind === EventKind.CHANGED ? 'changed' : 'new',
    enforcer: ctx.enforcer,
    interface: ctx.interfaces.get(e.ifindex) ?? `if${e.ifindex}`,
    verdict: e.action === Action.ALLOW ? 'allow' : 'deny',
    reason: reasonLabel(e.reason),
    protocol: protocolLabel(e.proto),
    src: formatAddress16(e.family, e.src),
    dst: formatAddress16(e.family, e.dst),
    rule,
    generation: e.generation,
    cpu: e.cpu,
    seq: e.seq,
  };
  setFlowDetails(record, e);
  if (policy) record.policy = policy;
  if (ir) record.policyVersion = ir.version;
  ctx.annotate?.(record);
  return record;
}
