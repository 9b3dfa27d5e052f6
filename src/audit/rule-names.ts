// SPDX-License-Identifier: Apache-2.0
// A policy generation's rule names, flat: what the agent's event loop keeps of an installed IR to
// name rules in audit records, sessions, status and metrics. The IR itself stays on the agent's
// policy thread (controller/policy-worker.ts): a 10,000-rule IR is ~100,000 objects, and every
// major garbage collection of the event loop's heap walks what it keeps; these names are one
// string and two typed arrays, whatever the rule count. Pure.
import type { PolicyIr } from '../policy/ir/ir.js';

export interface RuleNames {
  readonly version: string;
  /** The set's NetworkPolicy documents, in order; its default rule is `<them joined by +>/default`. */
  readonly policies: readonly string[];
  /** Every rule's id (`<policy>/<rule>`) in index order, end to end. */
  readonly ids: string;
  /** Where rule `index`'s id starts in `ids` at [index - 1], and ends at [index] (rules + 1 entries). */
  readonly idStarts: Uint32Array;
  /** Rule `index`'s policy, as its position in `policies`, at [index - 1]. */
  readonly policyOf: Uint32Array;
}

/** The names of `ir`, without the rest of it. */
export function ruleNamesOf(ir: Pick<PolicyIr, 'version' | 'policies' | 'rules'>): RuleNames {
  const n = ir.rules.length;
  const idStarts = new Uint32Array(n + 1);
  const policyOf = new Uint32Array(n);
  const position = new Map(ir.policies.map((p, i) => [p, i]));
  let at = 0;
  for (let i = 0; i < n; i++) {
    const rule = ir.rules[i]!;
    const p = position.get(rule.policy);
    if (p === undefined) throw new Error(`rule ${rule.id} names policy ${rule.policy}, which is not in the set (${ir.policies.join(', ')})`);
    policyOf[i] = p;
    at += rule.id.length;
    idStarts[i + 1] = at;
  }
  return { version: ir.version, policies: [...ir.policies], ids: ir.rules.map((r) => r.id).join(''), idStarts, policyOf };
}

/** The rules named (the default not counted). */
export function ruleCount(names: RuleNames): number {
  return names.policyOf.length;
}

/** `<policy>/<rule>` for a rule index of `names`; index 0 is the set's default, `<policies>/default`. */
export function ruleName(names: RuleNames | undefined, index: number): string {
  if (index === 0) return `${names?.policies.join('+') ?? 'policy'}/default`;
  if (names && index > 0 && index <= ruleCount(names)) return names.ids.slice(names.idStarts[index - 1], names.idStarts[index]);
  return `rule-${index}`;
}

/** The policy rule `index` of `names` belongs to; undefined for the default or an index it has not. */
export function rulePolicy(names: RuleNames, index: number): string | undefined {
  return index >= 1 && index <= ruleCount(names) ? names.policies[names.policyOf[index - 1]!] : undefined;
}

/** Every rule's id in index order, the default's last. */
export function ruleIds(names: RuleNames): string[] {
  const ids = Array.from({ length: ruleCount(names) }, (_, i) => ruleName(names, i + 1));
  ids.push(ruleName(names, 0));
  return ids;
}

/** The buffers of `names`, to move them to another thread rather than copy them. */
export function ruleNamesBuffers(names: RuleNames): ArrayBuffer[] {
  return [names.idStarts.buffer as ArrayBuffer, names.policyOf.buffer as ArrayBuffer];
}
