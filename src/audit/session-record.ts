// SPDX-License-Identifier: Apache-2.0
// The specification of a session record: a raw ring-buffer event → its audit record, names for
// rules, policy, interface and protocol, RFC 3339 time, printable addresses, written plainly.
// session-record-fast.ts is its fast path (test/unit/session-record-fast.equivalence.test.ts).
// Pure apart from the clock offset captured at creation.
import { Action, EventKind, Reason } from '../abi/generated.js';
import { type RawEvent, reasonLabel, type SessionKey } from '../abi/records.js';
import { formatAddress } from '../policy/ir/cidr.js';
import { protocolLabel, setPortFields } from '../policy/ir/protocols.js';
import type { FlowFields, RecordBase } from './records.js';
import { ruleName, rulePolicy, type RuleNames } from './rule-names.js';

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

export interface EnrichContext {
  enforcer: string;
  /** ifindex → interface name */
  interfaces: ReadonlyMap<number, string>;
  /** generation → the names of the rules installed under it */
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
  const names = ctx.policies.get(e.generation);
  let rule = reasonLabel(e.reason);
  let policy: string | undefined;
  if (e.reason === Reason.POLICY && names) {
    rule = ruleName(names, e.rule);
    policy = rulePolicy(names, e.rule) ?? names.policies.join('+');
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
  if (names) record.policyVersion = names.version;
  ctx.annotate?.(record);
  return record;
}
