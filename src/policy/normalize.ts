// SPDX-License-Identifier: Apache-2.0
// Validated model → IR: resolves AddressGroups, merges address and port sets, resolves each rule's
// tenants (its own, else its policy's), orders the rules of all policies (priority, then document
// order, then rule order), drops rules whose match repeats an earlier rule's, numbers the rest
// 1..N, combines default actions (fail-closed), and stamps the content hash as the version.

import { DEFAULT_PRIORITY, type Action, type Cidr, type IrRule, type PolicyIr, type Range, type Tenant } from './ir/ir.js';
import { ANY_CIDRS, mergeCidrs } from './ir/cidr-set.js';
import { policyVersion } from './ir/canonical.js';
import { mix32 } from './tables/hash32.js';
import { mergeRanges } from './ir/ranges.js';
import { ANY_TENANT, type AddressRef } from './parse/schema.js';
import { tenantId } from './ir/tenants.js';
import type { PolicyModel, ValidRule } from './parse/validate.js';

export interface Normalized {
  ir: PolicyIr;
  /** `file:line: …` notes about rules that were dropped or can never match. */
  warnings: string[];
}

export function normalize(model: PolicyModel): Normalized {
  const resolve = addressResolver(model);
  const tenants = tenantResolver();
  const ordered: IrRule[] = [];
  for (const policy of model.policies) {
    for (const rule of policy.rules) ordered.push(toRule(policy.name, policy.log, rule, resolve, tenants(rule.tenants ?? policy.tenants)));
  }
  // Array.prototype.sort is stable: equal priorities keep document order, then rule order.
  ordered.sort((a, b) => a.priority - b.priority);

  const warnings: string[] = [];
  const earlierMatches = new Map<number, IrRule[]>();
  const rules: IrRule[] = [];
  for (const rule of ordered) {
    const digest = matchDigest(rule);
    const candidates = earlierMatches.get(digest);
    const earlier = candidates?.find((e) => sameMatch(e, rule));
    if (earlier) {
      warnings.push(
        `${at(rule)}: rule ${rule.id} is dropped: rule ${earlier.id} (${at(earlier)}) matches exactly the same traffic and comes first`,
      );
      continue;
    }
    if (candidates) candidates.push(rule);
    else earlierMatches.set(digest, [rule]);
    if (!familiesOverlap(rule.src, rule.dst)) {
      warnings.push(`${at(rule)}: rule ${rule.id} can never match: its from and to addresses are of different IP families`);
    }
    rule.index = rules.length + 1;
    rules.push(rule);
  }

  const defaultAction: Action = model.policies.some((p) => p.defaultAction === 'deny') ? 'deny' : 'allow';
  const withoutVersion = { defaultAction, defaultLog: true, rules, policies: model.policies.map((p) => p.name) };
  return { ir: { version: policyVersion(withoutVersion), ...withoutVersion }, warnings };
}

type Resolve = (refs: readonly AddressRef[] | undefined) => Cidr[];

/**
 * Turns from/to lists into merged prefix lists. A lone entry resolves to one list that every rule
 * with that entry shares: a group's merged list, or the list of one parsed CIDR (rules share those
 * when the validator parsed a repeated entry once).
 */
function addressResolver(model: PolicyModel): Resolve {
  const merged = new Map<string, Cidr[]>();
  const groupCidrs = (name: string): Cidr[] => {
    let cidrs = merged.get(name);
    if (!cidrs) {
      cidrs = mergeCidrs(model.groups.get(name)?.cidrs ?? []);
      merged.set(name, cidrs);
    }
    return cidrs;
  };
  const loneCidrs = new Map<Cidr, Cidr[]>();
  return (refs) => {
    if (refs === undefined || refs.some((r) => r.kind === 'any')) return ANY_CIDRS.slice();
    const [only] = refs;
    if (refs.length === 1 && only?.kind === 'group') return groupCidrs(only.name);
    if (refs.length === 1 && only?.kind === 'cidr') {
      let cidrs = loneCidrs.get(only.cidr);
      if (!cidrs) {
        cidrs = [only.cidr];
        loneCidrs.set(only.cidr, cidrs);
      }
      return cidrs;
    }
    return mergeCidrs(refs.flatMap((r) => (r.kind === 'group' ? groupCidrs(r.name) : r.kind === 'cidr' ? [r.cidr] : [])));
  };
}

/**
 * A `tenants` list as the IR keeps it: null for none or one naming "any" (every tenant), else the
 * names sorted and without repeats, with their ids. Equal lists resolve to one shared array.
 */
function tenantResolver(): (names: readonly string[] | undefined) => Tenant[] | null {
  const lists = new Map<string, Tenant[]>();
  return (names) => {
    if (names === undefined || names.includes(ANY_TENANT)) return null;
    const sorted = [...new Set(names)].sort();
    const key = sorted.join(',');
    let list = lists.get(key);
    if (!list) {
      list = sorted.map((name) => ({ name, id: tenantId(name) }));
      lists.set(key, list);
    }
    return list;
  };
}

/** The rule's IR form; `index` is assigned once the order is final. */
function toRule(policy: string, policyLog: boolean | undefined, rule: ValidRule, resolve: Resolve, tenants: Tenant[] | null): IrRule {
  const ranges = rule.ports ?? rule.icmp;
  return {
    index: 0,
    id: `${policy}/${rule.name}`,
    policy,
    name: rule.name,
    action: rule.action,
    log: rule.log ?? policyLog ?? true,
    priority: rule.priority ?? DEFAULT_PRIORITY,
    src: resolve(rule.from),
    dst: resolve(rule.to),
    protocol: rule.protocol ?? 'any',
    ports: ranges ? mergeRanges(ranges) : null,
    tenants,
    source: rule.source,
  };
}

/**
 * A 32-bit digest of what a rule matches: rules with equal matches have equal digests (sameMatch
 * tells apart the rest). A number, not a string: 100,000 string keys cost more to build and hash
 * than the rest of normalization.
 */
function matchDigest(rule: IrRule): number {
  let h = mix32(0, rule.protocol === 'any' ? -1 : rule.protocol);
  h = mixEnds(h, rule.src);
  h = mixEnds(h, rule.dst);
  if (rule.tenants !== null) for (const t of rule.tenants) h = mix32(h, t.id);
  if (rule.ports === null) return mix32(h, -1);
  for (const r of rule.ports) h = mix32(mix32(h, r.lo), r.hi);
  return h;
}

/** Mixes in a prefix list's length and its first and last prefixes. */
function mixEnds(h: number, list: Cidr[]): number {
  h = mix32(h, list.length);
  if (list.length === 0) return h;
  return mixCidr(mixCidr(h, list[0]!), list[list.length - 1]!);
}

function mixCidr(h: number, c: Cidr): number {
  h = mix32(h, c.len);
  const a = c.addr;
  for (let i = 0; i < a.length; i += 4) h = mix32(h, (a[i]! << 24) | (a[i + 1]! << 16) | (a[i + 2]! << 8) | a[i + 3]!);
  return h;
}

function sameMatch(a: IrRule, b: IrRule): boolean {
  const sameCidrs = (x: Cidr[], y: Cidr[]) => x.length === y.length && x.every((c, i) => c.text === y[i]!.text);
  return (
    a.protocol === b.protocol &&
    sameTenants(a.tenants, b.tenants) &&
    sameRanges(a.ports, b.ports) &&
    sameCidrs(a.src, b.src) &&
    sameCidrs(a.dst, b.dst)
  );
}

function sameRanges(a: Range[] | null, b: Range[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((r, i) => r.lo === b[i]!.lo && r.hi === b[i]!.hi);
}

function sameTenants(a: Tenant[] | null, b: Tenant[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((t, i) => t.name === b[i]!.name);
}

function familiesOverlap(src: Cidr[], dst: Cidr[]): boolean {
  return (families(src) & families(dst)) !== 0;
}

/** 1 for IPv4, 2 for IPv6, or both: resolved lists are sorted IPv4 first, so their ends tell. */
function families(list: Cidr[]): number {
  if (list.length === 0) return 0;
  return (list[0]!.family === 4 ? 1 : 0) | (list[list.length - 1]!.family === 6 ? 2 : 0);
}

function at(rule: IrRule): string {
  return `${rule.source.file}:${rule.source.line}`;
}
