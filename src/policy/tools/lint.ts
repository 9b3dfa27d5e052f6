// SPDX-License-Identifier: Apache-2.0
// Policy analysis (`doorstep lint`, and `validate`'s warnings), exact rather than heuristic: it
// reasons on the compiler's equivalence classes, where every flow of a cell (source class ×
// target class, in one IP family) meets the same rules, so the first two rules of a cell say what
// decides it and what would if that rule were gone. Findings:
// - unmatchable: no flow meets the rule at all;
// - shadowed: flows meet it, but an earlier rule decides every one of them;
// - redundant: it decides flows, but removing it changes no verdict (what comes next, a rule or the
//   default, has the same action). Each finding assumes every other rule stays;
// - overlap: an allow and a deny both match some flows and only their order decides them (the
//   later one is next in a cell the earlier one decides);
// - dead ports: one of a rule's port (or ICMP type/code) ranges decides no flow;
// - dead addresses: one of a rule's `from` or `to` entries (an AddressGroup, or a CIDR) decides
//   no flow: empty, of the other family, or every flow from (to) it is decided earlier. Needs the
//   validated model (the IR merges a rule's entries).
// Every finding carries an example flow from the cell that shows it. The work is that of the
// compiler's verdict table (per source class, its own rules' targets), plus one pass over the
// targets for the cells that only "any"-source rules decide: never source × target.
// Pure: no I/O.

import type { Action, Cidr, FlowTuple, IrRule, PolicyIr, PrefixClass } from '../ir/ir.js';
import { SVC_KIND, SVC_SPAN } from '../ir/ir.js';
import { formatAddress } from '../ir/cidr.js';
import { protocolLabel } from '../ir/protocols.js';
import { buildClassTables, invert, type ClassAnalysis } from '../tables/tables.js';
import type { PolicyModel } from '../parse/validate.js';

export type LintKind = 'unmatchable' | 'shadowed' | 'redundant' | 'overlap' | 'dead-ports' | 'dead-address';

export interface LintRuleRef {
  index: number;
  id: string;
  action: Action;
  file: string;
  line: number;
}

export interface LintFinding {
  kind: LintKind;
  /** The rule the finding is about first; for an overlap, the earlier rule then (up to three of) the later ones, the one its example meets first; for a shadowed rule, then the earlier rule deciding the example. */
  rules: LintRuleRef[];
  message: string;
  /** A flow showing it (absent for an unmatchable rule): it meets every rule named. */
  example?: FlowTuple;
  /** For an overlap: how many cells (classes of flows) only the order decides. */
  cells?: number;
  /** For an overlap: how many later rules of the other action are next in those cells (`rules` names the first three). */
  later?: number;
  /** For a dead address: which side, and the entry's prefixes. */
  side?: 'from' | 'to';
  addresses?: string[];
}

export interface LintReport {
  findings: LintFinding[];
  /** Per rule that is needed (removing it would change a verdict): a flow whose verdict it decides and whose verdict would change. */
  needed: { rule: number; example: FlowTuple }[];
  stats: { rules: number; cells: number };
}

const FAMILIES = [4, 6] as const;

/** A cell as one number: source class × contexts + context (the family is the context's); -1 = none. */
type Cell = number;

/** Where a target class is reached: a destination address, a service index and a tenant, in one family. */
interface Context {
  target: number;
  family: 4 | 6;
  dst: Uint8Array;
  svc: number;
  tenant: number;
}

/** A rule's `from` and `to` entries as written (group names, CIDRs), by rule id: what `dead-address` checks. */
export type RuleEntries = Map<string, { from: readonly AddressEntry[]; to: readonly AddressEntry[] }>;
export interface AddressEntry {
  /** How the entry is named in a finding: `group partners`, `10.0.0.0/8`. */
  label: string;
  cidrs: readonly Cidr[];
}

/** Lint a compiled IR: the report and how long it took (ms, tables included). */
export function lintIr(ir: PolicyIr, model?: PolicyModel): { report: LintReport; ms: number } {
  const started = performance.now();
  const report = lintPolicy(ir, buildClassTables(ir), model && ruleEntries(model));
  return { report, ms: performance.now() - started };
}

export function lintPolicy(ir: PolicyIr, analysis: ClassAnalysis, entries?: RuleEntries): LintReport {
  const { tables, srcSets, targetSets, anySource } = analysis;
  const rules = ir.rules;
  const ruleCount = rules.length;
  const action = (r: number): Action => (r === 0 ? ir.defaultAction : rules[r - 1]!.action);

  // ---- which classes are real (some address or service has them), with one member each ----
  const srcIndex = { 4: prefixIndex(tables.src4, 4), 6: prefixIndex(tables.src6, 6) };
  const dstIndex = { 4: prefixIndex(tables.dst4, 4), 6: prefixIndex(tables.dst6, 6) };
  const srcWitness = { 4: witnessesOf(srcIndex[4], 4), 6: witnessesOf(srcIndex[6], 6) };
  const dstWitness = { 4: witnessesOf(dstIndex[4], 4), 6: witnessesOf(dstIndex[6], 6) };
  const svcWitness = new Map<number, number>();
  const svcRunsOf = new Map<number, { lo: number; hi: number }[]>();
  for (const run of tables.svc) {
    if (run.cls === 0) continue;
    const lo = reachableService(run.lo, run.hi);
    if (lo === undefined) continue;
    if (!svcWitness.has(run.cls)) svcWitness.set(run.cls, lo);
    const list = svcRunsOf.get(run.cls);
    if (list) list.push(run);
    else svcRunsOf.set(run.cls, [run]);
  }

  // ---- contexts: (target class, family) with a witness, and the service classes reaching each target ----
  const contexts: Context[] = [];
  const contextOf = new Map<number, number>(); // target * 2 + family bit → context
  const servicesOf = new Map<number, Set<number>>(); // target → service classes of its (dst, svc) entries
  const addContext = (target: number, dst: number, svc: number, tenant: number) => {
    if (target === 0) return;
    const svcAt = svcWitness.get(svc);
    if (svcAt === undefined) return;
    for (const family of FAMILIES) {
      const dstAt = dstWitness[family].get(dst);
      if (!dstAt) continue;
      addTo(servicesOf, target, svc);
      const key = target * 2 + (family === 4 ? 0 : 1);
      if (contextOf.has(key)) continue;
      contextOf.set(key, contexts.length);
      contexts.push({ target, family, dst: dstAt, svc: svcAt, tenant });
    }
  };
  const pairsByScoped = new Map<number, { dst: number; svc: number }[]>();
  // target → the destination classes (class * 2 + family bit) of its (dst, svc) entries: what a rule deciding in it reaches
  const dstClassesOf = new Map<number, Set<number>>();
  const reaches = (target: number, dst: number) => {
    if (target === 0) return;
    for (const family of FAMILIES) if (dstWitness[family].has(dst)) addTo(dstClassesOf, target, dst * 2 + (family === 4 ? 0 : 1));
  };
  for (const e of tables.target) {
    addContext(e.target, e.dst, e.svc, 0); // tenant 0 is in no tenant class: the rules for every tenant
    reaches(e.target, e.dst);
    if (e.scoped === 0) continue;
    const list = pairsByScoped.get(e.scoped);
    if (list) list.push(e);
    else pairsByScoped.set(e.scoped, [e]);
  }
  const tenantOfClass = new Map<number, number>();
  for (const t of tables.tenants) if (!tenantOfClass.has(t.cls)) tenantOfClass.set(t.cls, t.id);
  for (const e of tables.tenantTarget) {
    const tenant = tenantOfClass.get(e.tenant);
    if (tenant === undefined) continue;
    for (const pair of pairsByScoped.get(e.scoped) ?? []) {
      addContext(e.target, pair.dst, pair.svc, tenant);
      reaches(e.target, pair.dst);
    }
  }

  // ---- the two lowest any-source rules of each target ----
  const targetCount = targetSets.length;
  const wild1 = new Int32Array(targetCount);
  const wild2 = new Int32Array(targetCount);
  for (let t = 1; t < targetCount; t++) {
    for (const r of targetSets[t]!) {
      if (!anySource[r]) continue;
      if (wild1[t] === 0) wild1[t] = r;
      else {
        wild2[t] = r;
        break;
      }
    }
  }

  // ---- what each cell's first two rules say ----
  const decides = new Uint8Array(ruleCount + 1);
  const appearsIn = new Float64Array(ruleCount + 1).fill(-1);
  const decidedIn = new Float64Array(ruleCount + 1).fill(-1);
  const flipsIn = new Float64Array(ruleCount + 1).fill(-1);
  const C = contexts.length;
  const fallbackOf: (number | undefined)[] = new Array(ruleCount + 1);
  // per earlier rule: the later rules of the other action that are next where it decides (a
  // 100,000-rule blocklist in front of a few allows is 100,000 findings, not one per pair)
  const overlaps = new Map<number, { later: Set<number>; cells: number; example: Cell; exampleLater: number; last: number }>();
  // per rule with several port ranges or checked address lists: the (target * 2 + family bit) it decides in
  const decidedTargets = new Map<number, Set<number>>();
  const multiRange = new Uint8Array(ruleCount + 1);
  for (const r of rules) if (r.ports !== null && r.ports.length > 1) multiRange[r.index] = 1;
  // rules whose address entries are checked: their decided targets, and (own rules) source classes by family
  const checked = new Uint8Array(ruleCount + 1);
  const decidedSources = new Map<number, Set<number>>(); // rule → source class * 2 + family bit
  if (entries) {
    for (const r of rules) {
      const e = entries.get(r.id);
      // one entry on a side cannot be dead while the rule decides anything: only lists are checked
      if (e && (e.from.length > 1 || e.to.length > 1)) checked[r.index] = 1;
    }
  }
  let cellCount = 0;

  const visit = (first: number, second: number, src: number, ctx: number) => {
    cellCount++;
    if (first === 0) return;
    decides[first] = 1;
    const cell = src * C + ctx;
    if (decidedIn[first] === -1) decidedIn[first] = cell;
    const bit = contexts[ctx]!.family === 4 ? 0 : 1;
    if (multiRange[first] || checked[first]) addTo(decidedTargets, first, contexts[ctx]!.target * 2 + bit);
    if (checked[first] && !anySource[first]) addTo(decidedSources, first, src * 2 + bit);
    if (action(second) === action(first)) {
      if (fallbackOf[first] === undefined) fallbackOf[first] = second;
      return;
    }
    if (flipsIn[first] === -1) flipsIn[first] = cell;
    if (second === 0) return;
    const o = overlaps.get(first);
    if (o) {
      o.cells++;
      if (o.last !== second) o.later.add((o.last = second));
    } else overlaps.set(first, { later: new Set([second]), cells: 1, example: cell, exampleLater: second, last: second });
  };

  const targetsOf = invert(targetSets, ruleCount);
  // context of (target, family) as arrays for the hot loop; -1 = the target is not reached in that family
  const contextIn = [new Int32Array(targetCount).fill(-1), new Int32Array(targetCount).fill(-1)] as const;
  for (const [key, ctx] of contextOf) contextIn[(key & 1) as 0 | 1][key >> 1] = ctx;
  const seenFor = new Int32Array(targetCount); // the stamp of the last source that touched each target
  let stamp = 0;
  const own1 = new Int32Array(targetCount);
  const own2 = new Int32Array(targetCount);
  for (const family of FAMILIES) {
    const bit = family === 4 ? 0 : 1;
    const ctxOf = contextIn[bit];
    const sources = [...srcWitness[family].keys()];
    // per target: how many sources in a row, from the first, have own rules in it; sources[run]
    // is then the first without (the cell only any-source rules reach)
    const run = new Int32Array(targetCount);
    const touched: number[] = [];
    for (let i = 0; i < sources.length; i++) {
      const s = sources[i]!;
      stamp++;
      touched.length = 0;
      for (const r of srcSets[s]!) {
        if (anySource[r]) continue;
        for (let k = targetsOf.start[r]!; k < targetsOf.start[r + 1]!; k++) {
          const t = targetsOf.list[k]!;
          const ctx = ctxOf[t]!;
          if (ctx === -1) continue;
          if (appearsIn[r] === -1) appearsIn[r] = s * C + ctx;
          if (seenFor[t] !== stamp) {
            seenFor[t] = stamp;
            own1[t] = r;
            own2[t] = 0;
            touched.push(t);
          } else if (own2[t] === 0) own2[t] = r;
        }
      }
      for (const t of touched) {
        if (run[t] === i) run[t] = i + 1;
        // the cell's first two rules: of its own two lowest and the target's two lowest any-source ones
        const a = own1[t]!;
        const b = own2[t]!;
        const w = wild1[t]!;
        const w2 = wild2[t]!;
        let first = a;
        let second = b;
        if (w !== 0 && w < a) {
          first = w;
          second = w2 !== 0 && w2 < a ? w2 : a;
        } else if (w !== 0 && (b === 0 || w < b)) second = w;
        visit(first, second, s, ctxOf[t]!);
      }
    }
    for (const [key, ctx] of contextOf) {
      if ((key & 1) !== bit) continue;
      const t = key >> 1;
      const w = wild1[t]!;
      for (const r of targetSets[t]!) if (anySource[r] && sources.length > 0 && appearsIn[r] === -1) appearsIn[r] = sources[0]! * C + ctx;
      if (run[t]! < sources.length) visit(w, wild2[t]!, sources[run[t]!]!, ctx);
    }
  }

  // ---- findings ----
  const ref = (r: number): LintRuleRef => {
    const rule = rules[r - 1]!;
    return { index: r, id: rule.id, action: rule.action, file: rule.source.file, line: rule.source.line };
  };
  const flowOf = (cell: Cell): FlowTuple => {
    const ctx = contexts[cell % C]!;
    return { family: ctx.family, src: srcWitness[ctx.family].get(Math.floor(cell / C))!, dst: ctx.dst, tenant: ctx.tenant, ...serviceFields(ctx.svc) };
  };
  const deciderOf = (cell: Cell): number => {
    const t = contexts[cell % C]!.target;
    const own = firstCommon(srcSets[Math.floor(cell / C)]!, targetSets[t]!, anySource);
    const w = wild1[t]!;
    return own === 0 ? w : w === 0 ? own : Math.min(own, w);
  };
  const findings: LintFinding[] = [];
  const needed: LintReport['needed'] = [];
  for (const rule of rules) {
    const r = rule.index;
    const where = `${rule.id} (${rule.source.file}:${rule.source.line})`;
    const seen = appearsIn[r]!;
    if (seen === -1) {
      findings.push({ kind: 'unmatchable', rules: [ref(r)], message: `rule ${where} can never match: no flow meets its addresses, protocol, ports and tenants together` });
      continue;
    }
    if (!decides[r]) {
      const flow = flowOf(seen);
      const by = deciderOf(seen);
      findings.push({
        kind: 'shadowed',
        rules: [ref(r), ref(by)],
        message: `rule ${where} is shadowed: earlier rules decide every flow it matches; e.g. ${flowText(flow)} is decided by ${rules[by - 1]!.id} (${rules[by - 1]!.source.file}:${rules[by - 1]!.source.line})`,
        example: flow,
      });
      continue;
    }
    const flips = flipsIn[r]!;
    if (flips !== -1) {
      needed.push({ rule: r, example: flowOf(flips) });
    } else {
      const flow = flowOf(decidedIn[r]!);
      const next = fallbackOf[r] ?? 0;
      const instead = next === 0 ? `the default (${ir.defaultAction})` : `${rules[next - 1]!.id} (${rules[next - 1]!.source.file}:${rules[next - 1]!.source.line})`;
      findings.push({
        kind: 'redundant',
        rules: next === 0 ? [ref(r)] : [ref(r), ref(next)],
        message: `rule ${where} is redundant: removing it changes no verdict; every flow it decides would meet the same action (${rule.action}) next; e.g. ${flowText(flow)} would fall to ${instead}`,
        example: flow,
      });
    }
    const targetsIn = decidedTargets.get(r);
    deadRanges(rule, targetsIn && new Set([...targetsIn].map((tf) => tf >> 1)), servicesOf, svcRunsOf, findings, ref(r), where);
    const e = entries?.get(rule.id);
    if (e) {
      const dsts = new Set<number>();
      for (const tf of targetsIn ?? []) for (const d of dstClassesOf.get(tf >> 1) ?? []) if ((d & 1) === (tf & 1)) dsts.add(d);
      const sides = [
        ['from', e.from, anySource[r] ? undefined : decidedSources.get(r) ?? new Set<number>(), srcIndex] as const,
        ['to', e.to, dsts, dstIndex] as const,
      ];
      for (const [side, list, decided, index] of sides) {
        if (!decided || list.length < 2) continue;
        for (const entry of list) {
          const live = entry.cidrs.some((c) => {
            const bit = c.family === 4 ? 0 : 1;
            return classesWithin(index[c.family], c).some((cls) => decided.has(cls * 2 + bit));
          });
          if (!live) findings.push({ kind: 'dead-address', rules: [ref(r)], side, addresses: entry.cidrs.map((c) => c.text), message: `rule ${where}: its ${side} entry ${entry.label} never decides a flow: ${entry.cidrs.length === 0 ? 'it holds no address' : 'no flow it matches reaches this rule (another family, or earlier rules decide them all)'}` });
        }
      }
    }
  }
  for (const [earlier, o] of [...overlaps].sort((x, y) => x[0] - y[0])) {
    const a = rules[earlier - 1]!;
    // the later rule the example meets first, then the lowest others
    const later = [o.exampleLater, ...[...o.later].filter((x) => x !== o.exampleLater).sort((x, y) => x - y)];
    const first = rules[o.exampleLater - 1]!;
    const flow = flowOf(o.example);
    const others = later.length > 1 ? ` and ${later.length - 1} later ${first.action} rule${later.length > 2 ? 's' : ''} more` : '';
    findings.push({
      kind: 'overlap',
      rules: [ref(earlier), ...later.slice(0, 3).map(ref)],
      message:
        `rules ${a.id} (${a.action}, ${a.source.file}:${a.source.line}) and ${first.id} (${first.action}, ${first.source.file}:${first.source.line})${others} ` +
        `both match ${o.cells === 1 ? 'a class' : `${o.cells} classes`} of flows where only their order decides; e.g. ${flowText(flow)} is ${a.action === 'deny' ? 'denied' : 'allowed'} by ${a.id} because it comes first`,
      example: flow,
      cells: o.cells,
      later: later.length,
    });
  }
  return { findings, needed, stats: { rules: ruleCount, cells: cellCount } };
}

/** The lowest rule in both sorted sets, any-source rules left out; 0 when none. */
function firstCommon(a: Int32Array, b: Int32Array, anySource: Uint8Array): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y && !anySource[x]) return x;
    if (x <= y) i++;
    else j++;
  }
  return 0;
}

/** A rule's port (or ICMP type/code) ranges none of whose service indexes meets a flow it decides. */
function deadRanges(
  rule: IrRule,
  targets: Set<number> | undefined,
  servicesOf: Map<number, Set<number>>,
  svcRunsOf: Map<number, { lo: number; hi: number }[]>,
  findings: LintFinding[],
  self: LintRuleRef,
  where: string,
): void {
  if (!targets || rule.ports === null || rule.protocol === 'any') return;
  const base = serviceBase(rule.protocol);
  if (base === undefined) return;
  const live = new Uint8Array(rule.ports.length);
  for (const t of targets) {
    for (const svc of servicesOf.get(t) ?? []) {
      for (const run of svcRunsOf.get(svc) ?? []) {
        rule.ports.forEach((p, i) => {
          if (run.lo <= base + p.hi && base + p.lo <= run.hi) live[i] = 1;
        });
      }
    }
  }
  rule.ports.forEach((p, i) => {
    if (live[i]) return;
    const text = p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`;
    findings.push({ kind: 'dead-ports', rules: [self], message: `rule ${where}: its ${rule.protocol === 1 || rule.protocol === 58 ? 'ICMP type/code (type << 8 | code)' : 'port'} range ${text} never decides a flow: earlier rules decide all of it` });
  });
}

function serviceBase(protocol: number): number | undefined {
  const kind = protocol === 6 ? SVC_KIND.tcp : protocol === 17 ? SVC_KIND.udp : protocol === 132 ? SVC_KIND.sctp : protocol === 1 ? SVC_KIND.icmp : protocol === 58 ? SVC_KIND.icmpv6 : undefined;
  return kind === undefined ? undefined : kind * SVC_SPAN;
}

/** The first service index in [lo, hi] a packet can have (the "other" kind holds only protocol numbers, 0–255). */
function reachableService(lo: number, hi: number): number | undefined {
  const otherBase = SVC_KIND.other * SVC_SPAN;
  if (lo < otherBase) return lo;
  return lo <= otherBase + 255 && lo <= hi ? lo : undefined;
}

/** A flow's protocol fields for service index `svc`. */
function serviceFields(svc: number): Pick<FlowTuple, 'protocol' | 'dport' | 'icmpType' | 'icmpCode'> {
  const kind = Math.floor(svc / SVC_SPAN);
  const value = svc % SVC_SPAN;
  switch (kind) {
    case SVC_KIND.tcp:
      return { protocol: 6, dport: value };
    case SVC_KIND.udp:
      return { protocol: 17, dport: value };
    case SVC_KIND.sctp:
      return { protocol: 132, dport: value };
    case SVC_KIND.icmp:
      return { protocol: 1, icmpType: value >> 8, icmpCode: value & 0xff };
    case SVC_KIND.icmpv6:
      return { protocol: 58, icmpType: value >> 8, icmpCode: value & 0xff };
    default:
      return { protocol: value }; // a protocol's packets without a known port or type
  }
}

/** One line for a flow: `10.0.0.1 → 10.0.0.2 tcp/443 (tenant 0x…)`. */
export function flowText(f: FlowTuple): string {
  const label = protocolLabel(f.protocol);
  const detail = f.dport !== undefined ? `/${f.dport}` : f.icmpType !== undefined ? ` type ${f.icmpType} code ${f.icmpCode}` : '';
  const tenant = f.tenant ? ` from tenant id ${f.tenant}` : '';
  return `${formatAddress(f.family, f.src)} → ${formatAddress(f.family, f.dst)} ${label}${detail}${tenant}`;
}

/** A listed prefix of an address dimension, as a range, with one address of its own (not under a longer listed prefix), if it has one. */
interface PrefixItem {
  start: bigint;
  end: bigint;
  cls: number;
  own: bigint | undefined;
}

/** The dimension's prefixes sorted by (start, longest first), each with its own address if any: one sweep with a stack of enclosing prefixes. */
function prefixIndex(entries: readonly PrefixClass[], family: 4 | 6): PrefixItem[] {
  const bits = family === 4 ? 32 : 128;
  const items: PrefixItem[] = entries.map((e) => {
    const start = toBig(e.cidr.addr);
    return { start, end: start + (1n << BigInt(bits - e.cidr.len)) - 1n, cls: e.cls, own: undefined };
  });
  items.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.end > b.end ? -1 : a.end < b.end ? 1 : 0));
  const stack: { item: PrefixItem; cursor: bigint }[] = [];
  const close = () => {
    const top = stack.pop()!;
    if (top.item.own === undefined && top.cursor <= top.item.end) top.item.own = top.cursor;
  };
  for (const item of items) {
    while (stack.length > 0 && stack[stack.length - 1]!.item.end < item.end) close();
    const parent = stack[stack.length - 1];
    if (parent) {
      if (parent.item.own === undefined && item.start > parent.cursor) parent.item.own = parent.cursor;
      parent.cursor = item.end + 1n;
    }
    stack.push({ item, cursor: item.start });
  }
  while (stack.length > 0) close();
  return items;
}

/**
 * Class → one address that has it: the address of a listed prefix that no longer listed prefix
 * covers (longest prefix wins). A class whose prefixes are all tiled by longer ones has no address
 * and is left out.
 */
function witnessesOf(items: readonly PrefixItem[], family: 4 | 6): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (const item of items) {
    if (item.own !== undefined && item.cls !== 0 && !out.has(item.cls)) out.set(item.cls, fromBig(item.own, family === 4 ? 4 : 16));
  }
  return out;
}

/** The classes some address inside `c` has, in a dimension's prefix index (class 0, no rule, left out). */
function classesWithin(items: readonly PrefixItem[], c: Cidr): number[] {
  const bits = c.family === 4 ? 32 : 128;
  const start = toBig(c.addr);
  const end = start + (1n << BigInt(bits - c.len)) - 1n;
  const found = new Set<number>();
  // the first prefix starting at or after c's start
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid]!.start < start) lo = mid + 1;
    else hi = mid;
  }
  let cursor = start;
  let gap = false;
  let exact = false;
  let deepest: PrefixItem | undefined; // the deepest prefix containing c
  for (let k = lo; k < items.length && items[k]!.start <= end; k++) {
    const item = items[k]!;
    if (item.end > end) {
      deepest = item; // it starts where c does and contains it (larger ones come first)
      continue;
    }
    if (item.start === start && item.end === end) exact = true;
    if (item.own !== undefined && item.cls !== 0) found.add(item.cls);
    if (item.start > cursor) gap = true;
    if (item.end >= cursor) cursor = item.end + 1n;
  }
  if (!exact && (gap || cursor <= end)) {
    // what no prefix inside c covers has the class of the deepest prefix containing c: one
    // starting where c does (above), or else the first before c (scanning back) that reaches past it
    for (let k = lo - 1; !deepest && k >= 0; k--) if (items[k]!.end >= end) deepest = items[k];
    if (deepest && deepest.cls !== 0) found.add(deepest.cls);
  }
  return [...found];
}

function toBig(addr: Uint8Array): bigint {
  let n = 0n;
  for (const b of addr) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBig(n: bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** Each rule's `from` and `to` entries as written in the validated model ("any" left out), by rule id. */
export function ruleEntries(model: PolicyModel): RuleEntries {
  const out: RuleEntries = new Map();
  const list = (refs: PolicyModel['policies'][number]['rules'][number]['from']): AddressEntry[] =>
    (refs ?? []).flatMap((ref): AddressEntry[] => {
      if (ref.kind === 'any') return [];
      if (ref.kind === 'group') return [{ label: `group ${ref.name}`, cidrs: model.groups.get(ref.name)?.cidrs ?? [] }];
      return [{ label: ref.cidr.text, cidrs: [ref.cidr] }];
    });
  for (const p of model.policies) for (const r of p.rules) out.set(`${p.name}/${r.name}`, { from: list(r.from), to: list(r.to) });
  return out;
}

/** Add `value` to the set of `key` in `map`. */
function addTo(map: Map<number, Set<number>>, key: number, value: number): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}
