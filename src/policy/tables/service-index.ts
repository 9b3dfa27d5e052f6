// SPDX-License-Identifier: Apache-2.0
// The service dimension's index space, shared with the datapath: kind * SVC_SPAN + value, where
// kind comes from the protocol (SVC_KIND) and value is the destination port (tcp, udp, sctp),
// (type << 8 | code) (icmp, icmpv6) or the protocol number itself (every other protocol).
//
// A tcp/udp/sctp/icmp/icmpv6 packet whose port or type/code is unknown maps to the "other" slot
// of its own protocol number (e.g. 5 * SVC_SPAN + 6 for tcp). No real packet of another protocol
// lands there, so that slot matches exactly the rules of that protocol (or any) without ports.

import { SVC_ENTRIES, SVC_KIND, SVC_SPAN, type FlowTuple, type IrRule } from '../ir/ir.js';

const KIND_OF_PROTOCOL: ReadonlyMap<number, number> = new Map([
  [6, SVC_KIND.tcp],
  [17, SVC_KIND.udp],
  [132, SVC_KIND.sctp],
  [1, SVC_KIND.icmp],
  [58, SVC_KIND.icmpv6],
]);

/** The service index of a packet: protocol plus its dport or ICMP (type, code), when known. */
export function flowServiceIndex(t: FlowTuple): number {
  const kind = KIND_OF_PROTOCOL.get(t.protocol);
  if (kind === undefined) return SVC_KIND.other * SVC_SPAN + t.protocol;
  const value =
    kind === SVC_KIND.icmp || kind === SVC_KIND.icmpv6
      ? t.icmpType !== undefined && t.icmpCode !== undefined
        ? (t.icmpType << 8) | t.icmpCode
        : undefined
      : t.dport;
  return value === undefined ? SVC_KIND.other * SVC_SPAN + t.protocol : kind * SVC_SPAN + value;
}

/** The closed service-index ranges a rule covers. */
export function ruleServiceRanges(rule: Pick<IrRule, 'protocol' | 'ports'>): [number, number][] {
  if (rule.protocol === 'any') return [[0, SVC_ENTRIES - 1]];
  const kind = KIND_OF_PROTOCOL.get(rule.protocol);
  const unknownValueSlot = SVC_KIND.other * SVC_SPAN + rule.protocol;
  if (kind === undefined) return [[unknownValueSlot, unknownValueSlot]];
  const base = kind * SVC_SPAN;
  if (rule.ports === null) return [[base, base + SVC_SPAN - 1], [unknownValueSlot, unknownValueSlot]];
  return rule.ports.map((r): [number, number] => [base + r.lo, base + r.hi]);
}
