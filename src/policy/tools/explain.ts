// SPDX-License-Identifier: Apache-2.0
// Why a flow gets its verdict under a policy (`doorstep explain`): the deciding rule or the
// default, and, for the rules ordered before it, the first dimension each one failed (tenant, for
// rules scoped to tenants, then source, destination, protocol, port). Only the closest misses are listed (most dimensions matched,
// then earliest), the rest are counted, so a 100,000-rule policy explains in one pass over the
// rules and a handful of lines. Pure; it decides exactly as tables/evaluate.ts does (a unit test holds
// the two together), but finds an address in a rule's prefix list by binary search.

import { cidrContains, formatAddress } from '../ir/cidr.js';
import type { Action, Cidr, FlowTuple, IrRule, PolicyIr, Range, Tenant } from '../ir/ir.js';
import { ICMP_PROTOCOLS, PORT_PROTOCOLS, protocolLabel, setPortFields } from '../ir/protocols.js';
import { formatTenantId, NO_TENANT } from '../ir/tenants.js';

/** A packet dimension a rule matches on, in the order explain checks them (tenant: scoped rules only). */
export type Dimension = 'tenant' | 'source' | 'destination' | 'protocol' | 'port';

/** A rule as explain and diff report it; index 0 is the policy set's default action. */
export interface RuleRef {
  index: number;
  /** `<policy>/<rule>`, or `<policies>/default` for index 0. */
  id: string;
  action: Action;
  log: boolean;
  /** Absent for the default. */
  priority?: number;
  /** Where the rule was written; absent for the default. */
  source?: { file: string; line: number };
  /** The tenants a scoped rule is for; absent for a rule for every tenant (and the default). */
  tenants?: string[];
}

/** A rule ordered before the deciding one that did not match. */
export interface Miss {
  rule: RuleRef;
  /** The first dimension that failed, in the order tenant (scoped rules), source, destination, protocol, port. */
  failed: Dimension;
  /** The dimensions that matched (at least one: rules matching none are only counted). */
  matched: Dimension[];
  /** e.g. `source 10.9.0.1 is not in 10.0.0.0/8, 172.16.0.0/12` */
  detail: string;
}

export interface Explanation {
  /** Identical to evaluate(ir, tuple). */
  action: Action;
  /** The deciding rule's index; 0 = the default action. */
  rule: number;
  decidedBy: RuleRef;
  /** Rules ordered before the deciding one (every rule when the default decides): none matched. */
  skipped: number;
  /** Of those, the rules that matched some dimensions but not all. */
  nearMisses: number;
  /** The closest near misses, at most `limit`, in rule order. */
  misses: Miss[];
  /** Near misses not listed: nearMisses - misses.length. */
  omitted: number;
}

export interface ExplainOptions {
  /** Near misses listed at most (default 10). */
  limit?: number;
}

export const DEFAULT_EXPLAIN_LIMIT = 10;
const DIMENSIONS: readonly Dimension[] = ['tenant', 'source', 'destination', 'protocol', 'port'];
/** A rule for every tenant has no tenant dimension: it cannot miss on it, nor match on it. */
const TENANT = 0;
/** Prefix lists up to this length are scanned; longer ones are binary-searched. */
const LINEAR_SCAN_MAX = 8;
/** Items shown of a long list in a message. */
const SHOWN = 4;

/** Which rule decides `tuple` under `ir`, and why the rules before it did not. */
export function explain(ir: PolicyIr, tuple: FlowTuple, options: ExplainOptions = {}): Explanation {
  const limit = Math.max(0, options.limit ?? DEFAULT_EXPLAIN_LIMIT);
  // closest misses first: buckets by number of dimensions missed (1, 2, 3, 4), each kept to `limit`
  const buckets: { rule: IrRule; matched: boolean[] }[][] = [[], [], [], []];
  let nearMisses = 0;
  for (let i = 0; i < ir.rules.length; i++) {
    const rule = ir.rules[i] as IrRule;
    const matched = matchDimensions(rule, tuple);
    const dimensions = rule.tenants === null ? DIMENSIONS.length - 1 : DIMENSIONS.length;
    const count = matched.filter((m, d) => m && (d !== TENANT || rule.tenants !== null)).length;
    if (count === dimensions) {
      return finish(ir, tuple, ruleRef(rule), i, nearMisses, buckets, limit);
    }
    if (count === 0) continue;
    nearMisses++;
    const bucket = buckets[dimensions - count - 1] as { rule: IrRule; matched: boolean[] }[];
    if (bucket.length < limit) bucket.push({ rule, matched });
  }
  return finish(ir, tuple, defaultRef(ir), ir.rules.length, nearMisses, buckets, limit);
}

function finish(
  ir: PolicyIr,
  tuple: FlowTuple,
  decidedBy: RuleRef,
  skipped: number,
  nearMisses: number,
  buckets: { rule: IrRule; matched: boolean[] }[][],
  limit: number,
): Explanation {
  const chosen = buckets.flat().slice(0, limit);
  chosen.sort((a, b) => a.rule.index - b.rule.index);
  const misses = chosen.map(({ rule, matched }): Miss => {
    const failed = DIMENSIONS[matched.indexOf(false)] as Dimension;
    return {
      rule: ruleRef(rule),
      failed,
      matched: DIMENSIONS.filter((_, i) => matched[i] && (i !== TENANT || rule.tenants !== null)),
      detail: missDetail(ir, rule, tuple, failed),
    };
  });
  return { action: decidedBy.action, rule: decidedBy.index, decidedBy, skipped, nearMisses, misses, omitted: nearMisses - misses.length };
}

export function ruleRef(rule: IrRule): RuleRef {
  const ref: RuleRef = { index: rule.index, id: rule.id, action: rule.action, log: rule.log, priority: rule.priority, source: { ...rule.source } };
  if (rule.tenants !== null) ref.tenants = rule.tenants.map((t) => t.name);
  return ref;
}

export function defaultRef(ir: PolicyIr): RuleRef {
  return { index: 0, id: `${ir.policies.join('+') || 'policy'}/default`, action: ir.defaultAction, log: ir.defaultLog };
}

/** [tenant, source, destination, protocol, port] matched, with tables/evaluate.ts's semantics. */
function matchDimensions(rule: IrRule, t: FlowTuple): boolean[] {
  const tenant = rule.tenants === null || rule.tenants.some((x) => x.id === (t.tenant ?? NO_TENANT));
  const protocol = rule.protocol === 'any' || rule.protocol === t.protocol;
  // ports are numbers of the rule's protocol: they can only match a packet of that protocol
  let port = rule.ports === null;
  if (!port && protocol) {
    const value = matchedValue(t);
    port = value !== undefined && inRanges(rule.ports as Range[], value);
  }
  return [tenant, addressIn(rule.src, t.family, t.src), addressIn(rule.dst, t.family, t.dst), protocol, port];
}

/** The value a rule's ranges are compared with: dport, or (type << 8 | code) for ICMP (as tables/evaluate.ts). */
function matchedValue(t: FlowTuple): number | undefined {
  if (PORT_PROTOCOLS.has(t.protocol)) return t.dport;
  if (ICMP_PROTOCOLS.has(t.protocol) && t.icmpType !== undefined && t.icmpCode !== undefined) return (t.icmpType << 8) | t.icmpCode;
  return undefined;
}

function inRanges(ranges: readonly Range[], value: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = ranges[mid] as Range;
    if (value < r.lo) hi = mid - 1;
    else if (value > r.hi) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Is `addr` inside one of `list`'s prefixes? An IR prefix list is sorted (IPv4 first, then by
 * address) and non-overlapping, so only the last prefix starting at or before `addr` can hold it.
 */
export function addressIn(list: readonly Cidr[], family: 4 | 6, addr: Uint8Array): boolean {
  if (list.length <= LINEAR_SCAN_MAX) return list.some((c) => cidrContains(c, family, addr));
  let lo = 0;
  let hi = list.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (compareStart(list[mid] as Cidr, family, addr) <= 0) {
      at = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return at >= 0 && cidrContains(list[at] as Cidr, family, addr);
}

/** Order of a prefix's network address against an address (families: IPv4 first). */
function compareStart(c: Cidr, family: 4 | 6, addr: Uint8Array): number {
  if (c.family !== family) return c.family - family;
  const n = family === 4 ? 4 : 16;
  for (let i = 0; i < n; i++) {
    const d = (c.addr[i] as number) - (addr[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

function missDetail(ir: PolicyIr, rule: IrRule, t: FlowTuple, failed: Dimension): string {
  switch (failed) {
    case 'tenant':
      return tenantDetail(ir, rule.tenants as Tenant[], t.tenant ?? NO_TENANT);
    case 'source':
      return addressDetail('source', rule.src, t.family, t.src);
    case 'destination':
      return addressDetail('destination', rule.dst, t.family, t.dst);
    case 'protocol':
      return `protocol ${protocolLabel(t.protocol)}; the rule is for ${protocolLabel(rule.protocol)}`;
    case 'port': {
      const value = matchedValue(t);
      const icmp = ICMP_PROTOCOLS.has(t.protocol);
      const wanted = formatServices(rule.protocol, rule.ports);
      if (value === undefined) return `the packet's ${icmp ? 'ICMP type and code are' : 'port is'} unknown; the rule needs ${wanted}`;
      return `${icmp ? formatIcmpValue(value) : `destination port ${value}`} is not in ${wanted}`;
    }
  }
}

function tenantDetail(ir: PolicyIr, tenants: readonly Tenant[], id: number): string {
  const wanted = shortList(tenants.map((x) => x.name));
  if (id === NO_TENANT) return `the packet comes from no tenant; the rule is only for ${wanted}`;
  return `tenant ${tenantLabel(ir, id)} is not in ${wanted}`;
}

/** A tenant id as its name where some rule of the policy names it, else as `0x…`. */
export function tenantLabel(ir: PolicyIr, id: number): string {
  for (const r of ir.rules) for (const x of r.tenants ?? []) if (x.id === id) return x.name;
  return formatTenantId(id);
}

function addressDetail(what: string, list: readonly Cidr[], family: 4 | 6, addr: Uint8Array): string {
  const text = formatAddress(family, addr);
  const same = list.filter((c) => c.family === family);
  if (same.length === 0) return `${what} ${text} is IPv${family}; the rule's ${what}s are IPv${family === 4 ? 6 : 4} only`;
  return `${what} ${text} is not in ${shortList(same.map((c) => c.text))}`;
}

/** `a, b, c, d and 12 more` */
export function shortList(items: readonly string[], shown = SHOWN): string {
  if (items.length <= shown + 1) return items.join(', ');
  return `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}

/** A rule's services as text: `any port`, `80, 443, 8000-8080`, `ICMP type 3 code 4, type 8`. */
export function formatServices(protocol: number | 'any', ports: readonly Range[] | null): string {
  if (ports === null) return protocol !== 'any' && ICMP_PROTOCOLS.has(protocol) ? 'any ICMP type' : 'any port';
  if (protocol !== 'any' && ICMP_PROTOCOLS.has(protocol)) return shortList(ports.map(formatIcmpRange));
  return shortList(ports.map((r) => (r.lo === r.hi ? String(r.lo) : `${r.lo}-${r.hi}`)));
}

function formatIcmpValue(v: number): string {
  return `ICMP type ${v >> 8} code ${v & 255}`;
}

function formatIcmpRange(r: Range): string {
  const [t1, c1, t2, c2] = [r.lo >> 8, r.lo & 255, r.hi >> 8, r.hi & 255];
  if (t1 === t2 && c1 === c2) return `type ${t1} code ${c1}`;
  if (c1 === 0 && c2 === 255) return t1 === t2 ? `type ${t1}` : `types ${t1}-${t2}`;
  return `type ${t1} code ${c1} to type ${t2} code ${c2}`;
}

/**
 * `tcp 10.9.0.1:40000 → 10.1.2.3:80`, `icmp 10.9.0.1 → 10.1.2.3 type 8 code 0`, `gre 10.9.0.1 → 10.1.2.3`;
 * from a tenant, followed by ` from tenant <name or id>` (the name from `ir` where a rule names it).
 */
export function describeFlow(t: FlowTuple, ir?: PolicyIr): string {
  const src = formatAddress(t.family, t.src);
  const dst = formatAddress(t.family, t.dst);
  const proto = protocolLabel(t.protocol);
  const from = t.tenant ? ` from tenant ${ir ? tenantLabel(ir, t.tenant) : formatTenantId(t.tenant)}` : '';
  if (PORT_PROTOCOLS.has(t.protocol) && t.dport !== undefined) {
    const host = (a: string) => (t.family === 6 ? `[${a}]` : a);
    return `${proto} ${host(src)}:${t.sport ?? '?'} → ${host(dst)}:${t.dport}${from}`;
  }
  if (ICMP_PROTOCOLS.has(t.protocol) && t.icmpType !== undefined) return `${proto} ${src} → ${dst} type ${t.icmpType} code ${t.icmpCode ?? '?'}${from}`;
  return `${proto} ${src} → ${dst}${from}`;
}

/** The fields of a datapath flow (src/abi/records.ts SessionKey, or the key Engine.explain parsed). */
export interface DatapathFlow {
  family: number;
  /** 16 bytes; IPv4 as ::ffff:a.b.c.d */
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  sport: number;
  /** ICMP: type << 8 | code */
  dport: number;
}

/**
 * The evaluator's tuple for a flow as the datapath keys it (ports, or ICMP type/code), arriving
 * from `tenant` (the tenant id of its ingress interface; 0 = none).
 */
export function flowTupleOf(k: DatapathFlow, tenant = NO_TENANT): FlowTuple {
  const family: 4 | 6 = k.family === 4 ? 4 : 6;
  const t: FlowTuple = {
    family,
    src: family === 4 ? k.src.subarray(12, 16) : k.src,
    dst: family === 4 ? k.dst.subarray(12, 16) : k.dst,
    protocol: k.proto,
  };
  if (tenant !== NO_TENANT) t.tenant = tenant;
  setPortFields(t, k);
  return t;
}

function where(r: RuleRef): string {
  return r.source ? `, ${r.source.file}:${r.source.line}` : '';
}

/** The explanation as terminal lines (tenant names from `ir` when given). */
export function formatExplanation(e: Explanation, tuple?: FlowTuple, ir?: PolicyIr): string[] {
  const lines: string[] = [];
  if (tuple) lines.push(describeFlow(tuple, ir));
  const d = e.decidedBy;
  lines.push(
    d.index === 0
      ? `${d.action} by the default action (${d.id}): none of the ${e.skipped} rules matched`
      : `${d.action} by rule #${d.index} ${d.id}${where(d)}`,
  );
  if (e.skipped > 0 && d.index !== 0) lines.push(`${e.skipped} earlier rule${e.skipped === 1 ? '' : 's'} did not match`);
  if (e.nearMisses > 0) {
    lines.push(`${e.nearMisses} of them matched in part${e.omitted ? `; the closest ${e.misses.length}:` : ':'}`);
    for (const m of e.misses) lines.push(`  #${m.rule.index} ${m.rule.id} (${m.rule.action}${where(m.rule)}): ${m.detail}`);
  }
  return lines;
}
