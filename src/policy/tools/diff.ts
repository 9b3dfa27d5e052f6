// SPDX-License-Identifier: Apache-2.0
// What installing a candidate policy would change (`doorstep diff`): rules added, removed and
// changed (matched by rule id, with the fields that differ), the default action, the version;
// and which cached sessions would flip between allow and deny. Pure; the caller brings the
// installed IR, the candidate IR and Engine.sessions(). Output is bounded: counts, plus the
// first `limit` items of each list.

import { Action as AbiAction, Reason } from '../../abi/generated.js';
import type { SessionKey, SessionValue } from '../../abi/records.js';
import { evaluate } from '../tables/evaluate.js';
import { defaultRef, describeFlow, flowTupleOf, formatServices, ruleRef, type RuleRef, shortList } from './explain.js';
import type { Action, Decision, FlowTuple, IrRule, PolicyIr } from '../ir/ir.js';
import { protocolLabel } from '../ir/protocols.js';

/** A rule field that can change between two versions of a rule with the same id. */
export type RuleField = 'action' | 'tenants' | 'src' | 'dst' | 'protocol' | 'ports' | 'priority' | 'order' | 'log';

export interface FieldChange {
  field: RuleField;
  before: string;
  after: string;
  /** src, dst: prefixes only the candidate has (first few) and how many. */
  added?: string[];
  addedCount?: number;
  /** src, dst: prefixes only the installed rule has (first few) and how many. */
  removed?: string[];
  removedCount?: number;
}

export interface RuleChange {
  id: string;
  before: RuleRef;
  after: RuleRef;
  changes: FieldChange[];
}

export interface PolicyDiff {
  /** Same content hash: the candidate is what is installed. */
  sameVersion: boolean;
  installed: { version: string; rules: number; defaultAction: Action } | null;
  candidate: { version: string; rules: number; defaultAction: Action };
  /** Null when unchanged. */
  defaultAction: { before: Action; after: Action } | null;
  /** NetworkPolicy documents that appear or disappear. */
  policies: { added: string[]; removed: string[] };
  counts: { added: number; removed: number; changed: number; unchanged: number };
  /** The first `limit` of each, in candidate order (removed: installed order). */
  added: RuleRef[];
  removed: RuleRef[];
  changed: RuleChange[];
  /** Some list above holds fewer items than its count. */
  truncated: boolean;
}

export interface DiffOptions {
  /** Items listed at most per list (default 100). */
  limit?: number;
}

export const DEFAULT_DIFF_LIMIT = 100;
/** Prefixes listed at most per added/removed list of an address change. */
const PREFIXES_SHOWN = 5;

/** The rule-level difference between the installed policy (null: none installed) and a candidate. */
export function diffPolicies(installed: PolicyIr | null, candidate: PolicyIr, options: DiffOptions = {}): PolicyDiff {
  const limit = Math.max(0, options.limit ?? DEFAULT_DIFF_LIMIT);
  const before = installed?.rules ?? [];
  const beforeById = new Map(before.map((r) => [r.id, r]));
  const afterIds = new Set(candidate.rules.map((r) => r.id));
  const moved = movedRules(before, candidate.rules, beforeById);

  const counts = { added: 0, removed: 0, changed: 0, unchanged: 0 };
  const added: RuleRef[] = [];
  const removed: RuleRef[] = [];
  const changed: RuleChange[] = [];
  for (const rule of candidate.rules) {
    const old = beforeById.get(rule.id);
    if (!old) {
      if (counts.added++ < limit) added.push(ruleRef(rule));
      continue;
    }
    const changes = ruleChanges(old, rule, moved.has(rule.id));
    if (changes.length === 0) {
      counts.unchanged++;
      continue;
    }
    if (counts.changed++ < limit) changed.push({ id: rule.id, before: ruleRef(old), after: ruleRef(rule), changes });
  }
  for (const rule of before) {
    if (!afterIds.has(rule.id) && counts.removed++ < limit) removed.push(ruleRef(rule));
  }
  const beforePolicies = new Set(installed?.policies ?? []);
  const afterPolicies = new Set(candidate.policies);
  return {
    sameVersion: installed?.version === candidate.version,
    installed: installed && { version: installed.version, rules: installed.rules.length, defaultAction: installed.defaultAction },
    candidate: { version: candidate.version, rules: candidate.rules.length, defaultAction: candidate.defaultAction },
    defaultAction: installed && installed.defaultAction !== candidate.defaultAction ? { before: installed.defaultAction, after: candidate.defaultAction } : null,
    policies: {
      added: candidate.policies.filter((p) => !beforePolicies.has(p)),
      removed: (installed?.policies ?? []).filter((p) => !afterPolicies.has(p)),
    },
    counts,
    added,
    removed,
    changed,
    truncated: added.length < counts.added || removed.length < counts.removed || changed.length < counts.changed,
  };
}

function ruleChanges(a: IrRule, b: IrRule, moved: boolean): FieldChange[] {
  const out: FieldChange[] = [];
  if (a.action !== b.action) out.push({ field: 'action', before: a.action, after: b.action });
  const tenantsA = tenantsText(a);
  const tenantsB = tenantsText(b);
  if (tenantsA !== tenantsB) out.push({ field: 'tenants', before: tenantsA, after: tenantsB });
  for (const field of ['src', 'dst'] as const) {
    const x = a[field].map((c) => c.text);
    const y = b[field].map((c) => c.text);
    if (x.length === y.length && x.every((t, i) => t === y[i])) continue;
    const xs = new Set(x);
    const ys = new Set(y);
    const plus = y.filter((t) => !xs.has(t));
    const minus = x.filter((t) => !ys.has(t));
    out.push({
      field,
      before: shortList(x),
      after: shortList(y),
      added: plus.slice(0, PREFIXES_SHOWN),
      addedCount: plus.length,
      removed: minus.slice(0, PREFIXES_SHOWN),
      removedCount: minus.length,
    });
  }
  if (a.protocol !== b.protocol) out.push({ field: 'protocol', before: protocolLabel(a.protocol), after: protocolLabel(b.protocol) });
  const portsA = formatServices(a.protocol, a.ports);
  const portsB = formatServices(b.protocol, b.ports);
  if (!sameRanges(a, b)) out.push({ field: 'ports', before: portsA, after: portsB });
  if (a.priority !== b.priority) out.push({ field: 'priority', before: String(a.priority), after: String(b.priority) });
  if (moved) out.push({ field: 'order', before: `#${a.index}`, after: `#${b.index}` });
  if (a.log !== b.log) out.push({ field: 'log', before: String(a.log), after: String(b.log) });
  return out;
}

function tenantsText(rule: IrRule): string {
  return rule.tenants === null ? 'every tenant' : rule.tenants.map((t) => t.name).join(', ');
}

function sameRanges(a: IrRule, b: IrRule): boolean {
  if (a.ports === null || b.ports === null) return a.ports === b.ports;
  return a.ports.length === b.ports.length && a.ports.every((r, i) => r.lo === b.ports?.[i]?.lo && r.hi === b.ports[i]?.hi);
}

/**
 * The ids of the rules present in both versions whose place relative to the others changed. Rules
 * added or removed shift indexes without moving anything. The fewest moves that explain the new
 * order: the rules outside a longest increasing subsequence of new positions, taken over the
 * rules whose priority did not change; a rule whose priority changed counts as moved when the
 * number of those fixed rules ahead of it changed.
 */
function movedRules(before: readonly IrRule[], after: readonly IrRule[], beforeById: ReadonlyMap<string, IrRule>): Set<string> {
  const newPos = new Map<string, number>();
  after.forEach((r, i) => {
    if (beforeById.has(r.id)) newPos.set(r.id, i);
  });
  const common = before.filter((r) => newPos.has(r.id));
  const afterById = new Map(after.map((r) => [r.id, r]));
  const samePriority = common.filter((r) => afterById.get(r.id)?.priority === r.priority);
  const repriced = common.filter((r) => afterById.get(r.id)?.priority !== r.priority);

  const seq = samePriority.map((r) => newPos.get(r.id) as number);
  const keep = longestIncreasing(seq);
  const moved = new Set<string>();
  samePriority.forEach((r, i) => {
    if (!keep.has(i)) moved.add(r.id);
  });
  // fixed points: the kept rules' old and new positions, both ascending
  const oldPos = new Map(before.map((r, i) => [r.id, i]));
  const fixedOld: number[] = [];
  const fixedNew: number[] = [];
  samePriority.forEach((r, i) => {
    if (keep.has(i)) {
      fixedOld.push(oldPos.get(r.id) as number);
      fixedNew.push(newPos.get(r.id) as number);
    }
  });
  for (const r of repriced) {
    if (countBelow(fixedOld, oldPos.get(r.id) as number) !== countBelow(fixedNew, newPos.get(r.id) as number)) moved.add(r.id);
  }
  return moved;
}

/** Indexes (into `seq`) of one longest strictly increasing subsequence: O(n log n). */
function longestIncreasing(seq: readonly number[]): Set<number> {
  const tails: number[] = []; // tails[k]: index in seq of the smallest tail of an increasing run of length k + 1
  const prev = new Array<number>(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i++) {
    const v = seq[i] as number;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((seq[tails[mid] as number] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1] as number;
    tails[lo] = i;
  }
  const out = new Set<number>();
  for (let i = tails.length ? (tails[tails.length - 1] as number) : -1; i >= 0; i = prev[i] as number) out.add(i);
  return out;
}

/** How many of the ascending `xs` are below `v`. */
function countBelow(xs: readonly number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((xs[mid] as number) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---- cached sessions ----

export interface CachedSession {
  key: SessionKey;
  value: SessionValue;
}

/** A cached session whose verdict the candidate would reverse. */
export interface SessionFlip {
  /** e.g. `tcp 10.9.0.1:40000 → 10.1.2.3:80` */
  flow: string;
  key: SessionKey;
  packets: number;
  bytes: number;
  /** What the flow gets now (its cached verdict; for a stale entry, the installed policy's). */
  now: { action: Action; rule: number; ruleId: string; generation: number };
  candidate: { action: Action; rule: number; ruleId: string };
}

export interface SessionImpact {
  total: number;
  /** Sessions a policy rule or default decided: the ones compared. */
  compared: number;
  /** Of those, entries from an older generation than `generation` (re-classified at their next packet anyway). */
  stale: number;
  /** allow → deny: the candidate would cut these flows. */
  toDeny: { count: number; first: SessionFlip[] };
  /** deny → allow */
  toAllow: { count: number; first: SessionFlip[] };
  /** Same action, decided by a different rule. */
  ruleChanged: number;
  unchanged: number;
  /**
   * Not compared: cached without the policy deciding. The failsafe passes management traffic
   * before any policy; no-policy denies came before any policy was installed (the candidate
   * will classify them afresh); other reasons are not policy decisions.
   */
  notPolicy: { failsafe: number; noPolicy: number; other: number };
}

export interface SessionImpactOptions {
  /** Flips listed at most per direction (default 50). */
  limit?: number;
  /** The installed policy's generation: cached verdicts of other generations are not trusted. */
  generation?: number;
  /**
   * The tenant id of an ingress interface (what the agent wrote in ds_ifaces), for policies with
   * rules scoped to tenants; without it every session is taken as from no tenant.
   */
  tenantOf?: (ifindex: number) => number;
}

export const DEFAULT_SESSION_LIMIT = 50;
/** Verdicts remembered per (addresses, protocol, port) while scanning a cache; sports share them. */
const MEMO_MAX = 1 << 16;

/**
 * Which cached sessions would flip between allow and deny if `candidate` replaced `installed`.
 * A session's verdict now is its cached one — or, when it comes from another generation than
 * `options.generation`, the installed policy's (that is what its next packet gets). Cost: one
 * evaluate() per distinct (addresses, protocol, port), remembered up to 65,536 at a time.
 */
export function sessionImpact(
  installed: PolicyIr | null,
  candidate: PolicyIr,
  sessions: Iterable<CachedSession>,
  options: SessionImpactOptions = {},
): SessionImpact {
  const impact = sessionImpactAccumulator(installed, candidate, options);
  for (const s of sessions) impact.add(s);
  return impact.result;
}

/** sessionImpact fed a session at a time (the agent's policy thread gets the cache in slices):
 *  `result` after the last add is what sessionImpact returns for the same sessions. */
export function sessionImpactAccumulator(
  installed: PolicyIr | null,
  candidate: PolicyIr,
  options: SessionImpactOptions,
): { add: (s: CachedSession) => void; result: SessionImpact } {
  const limit = Math.max(0, options.limit ?? DEFAULT_SESSION_LIMIT);
  const out: SessionImpact = {
    total: 0,
    compared: 0,
    stale: 0,
    toDeny: { count: 0, first: [] },
    toAllow: { count: 0, first: [] },
    ruleChanged: 0,
    unchanged: 0,
    notPolicy: { failsafe: 0, noPolicy: 0, other: 0 },
  };
  const memoCandidate = new Map<string, Decision>();
  const memoInstalled = new Map<string, Decision>();
  const decide = (ir: PolicyIr, memo: Map<string, Decision>, id: string, t: FlowTuple): Decision => {
    let d = memo.get(id);
    if (!d) {
      if (memo.size >= MEMO_MAX) memo.clear();
      d = evaluate(ir, t);
      memo.set(id, d);
    }
    return d;
  };

  const add = ({ key, value }: CachedSession): void => {
    out.total++;
    if (value.reason !== Reason.POLICY) {
      if (value.reason === Reason.FAILSAFE) out.notPolicy.failsafe++;
      else if (value.reason === Reason.NO_POLICY) out.notPolicy.noPolicy++;
      else out.notPolicy.other++;
      return;
    }
    out.compared++;
    const tenant = options.tenantOf?.(key.ifindex) ?? 0;
    const tuple = flowTupleOf(key, tenant);
    const id = `${tenant}|${memoKey(key)}`;
    let now: Decision = { action: value.action === AbiAction.ALLOW ? 'allow' : 'deny', rule: value.rule };
    const stale = options.generation !== undefined && value.generation !== options.generation;
    if (stale) {
      out.stale++;
      if (installed) now = decide(installed, memoInstalled, id, tuple);
    }
    const next = decide(candidate, memoCandidate, id, tuple);
    if (next.action === now.action) {
      if (next.rule === now.rule) out.unchanged++;
      else out.ruleChanged++;
      return;
    }
    const bucket = next.action === 'deny' ? out.toDeny : out.toAllow;
    if (bucket.count++ < limit) {
      bucket.first.push({
        flow: describeFlow(tuple, candidate),
        key,
        packets: value.packets,
        bytes: value.bytes,
        now: { ...now, ruleId: ruleId(installed, now.rule), generation: value.generation },
        candidate: { ...next, ruleId: ruleId(candidate, next.rule) },
      });
    }
  };
  return { add, result: out };
}

/** What the verdict depends on (besides the tenant): addresses, protocol and dport (ICMP: type/code); not sport. */
function memoKey(k: SessionKey): string {
  return `${k.family}|${Buffer.from(k.src.buffer, k.src.byteOffset, 16).toString('hex')}|${Buffer.from(k.dst.buffer, k.dst.byteOffset, 16).toString('hex')}|${k.proto}|${k.dport}`;
}

function ruleId(ir: PolicyIr | null, index: number): string {
  if (!ir) return index === 0 ? 'default' : `rule-${index}`;
  if (index === 0) return defaultRef(ir).id;
  return ir.rules[index - 1]?.id ?? `rule-${index}`;
}

// ---- text ----

/** The diff (and, when given, its session impact) as terminal lines. */
export function formatDiff(d: PolicyDiff, impact?: SessionImpact): string[] {
  const lines: string[] = [];
  if (d.sameVersion) lines.push(`same version ${d.candidate.version}: nothing would change`);
  else lines.push(`${d.installed?.version ?? '(no policy installed)'} → ${d.candidate.version}`);
  if (d.defaultAction) lines.push(`default action: ${d.defaultAction.before} → ${d.defaultAction.after}`);
  for (const p of d.policies.added) lines.push(`+ policy ${p}`);
  for (const p of d.policies.removed) lines.push(`- policy ${p}`);
  const c = d.counts;
  lines.push(`rules: ${c.added} added, ${c.removed} removed, ${c.changed} changed, ${c.unchanged} unchanged`);
  const at = (r: RuleRef) => (r.source ? ` (${r.source.file}:${r.source.line})` : '');
  for (const r of d.added) lines.push(`+ #${r.index} ${r.id} ${r.action}${at(r)}`);
  for (const r of d.removed) lines.push(`- #${r.index} ${r.id} ${r.action}${at(r)}`);
  for (const ch of d.changed) {
    lines.push(`~ ${ch.id}${at(ch.after)}`);
    for (const f of ch.changes) lines.push(`    ${f.field}: ${f.before} → ${f.after}`);
  }
  if (d.truncated) lines.push(`(lists cut at ${Math.max(d.added.length, d.removed.length, d.changed.length)} items)`);
  if (impact) {
    lines.push(
      `sessions: ${impact.total} cached, ${impact.compared} decided by the policy: ${impact.toDeny.count} would be cut (allow → deny), ${impact.toAllow.count} would be let through (deny → allow), ${impact.ruleChanged} keep their verdict under another rule`,
    );
    const np = impact.notPolicy;
    if (np.failsafe + np.noPolicy + np.other > 0) lines.push(`  not compared: ${np.failsafe} failsafe, ${np.noPolicy} from before any policy, ${np.other} other`);
    for (const f of impact.toDeny.first) lines.push(`  cut   ${f.flow}: ${f.now.ruleId} → ${f.candidate.ruleId}`);
    for (const f of impact.toAllow.first) lines.push(`  allow ${f.flow}: ${f.now.ruleId} → ${f.candidate.ruleId}`);
  }
  return lines;
}
