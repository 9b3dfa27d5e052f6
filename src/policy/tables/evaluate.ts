// SPDX-License-Identifier: Apache-2.0
// The reference evaluator: first match over the IR's ordered rules (a rule scoped to tenants
// matches only packets from one of them), written to be obviously correct rather than fast. It is the oracle the class tables and the datapath are tested against.

import type { Decision, FlowTuple, IrRule, PolicyIr } from '../ir/ir.js';
import { cidrContains } from '../ir/cidr.js';
import { ICMP_PROTOCOLS, PORT_PROTOCOLS } from '../ir/protocols.js';

export function evaluate(ir: PolicyIr, tuple: FlowTuple): Decision {
  for (const rule of ir.rules) {
    if (ruleMatches(rule, tuple)) return { action: rule.action, rule: rule.index };
  }
  return { action: ir.defaultAction, rule: 0 };
}

function ruleMatches(rule: IrRule, t: FlowTuple): boolean {
  if (rule.tenants !== null && !rule.tenants.some((x) => x.id === (t.tenant ?? 0))) return false;
  if (!rule.src.some((c) => cidrContains(c, t.family, t.src))) return false;
  if (!rule.dst.some((c) => cidrContains(c, t.family, t.dst))) return false;
  if (rule.protocol !== 'any' && rule.protocol !== t.protocol) return false;
  if (rule.ports === null) return true;
  const value = matchedValue(t);
  return value !== undefined && rule.ports.some((r) => r.lo <= value && value <= r.hi);
}

/** The value a rule's `ports` ranges are compared with: dport, or (type << 8 | code) for ICMP. */
function matchedValue(t: FlowTuple): number | undefined {
  if (PORT_PROTOCOLS.has(t.protocol)) return t.dport;
  if (ICMP_PROTOCOLS.has(t.protocol) && t.icmpType !== undefined && t.icmpCode !== undefined) {
    return (t.icmpType << 8) | t.icmpCode;
  }
  return undefined;
}
