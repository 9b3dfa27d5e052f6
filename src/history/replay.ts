// SPDX-License-Identifier: Apache-2.0
// `doorstep diff --history`: the recorded flows of a window (queries.ts recordedFlows: the flows
// policy decided) replayed through a candidate policy, through the candidate's own class tables
// (the datapath's decision, tested against the reference evaluator elsewhere). A flow flips when
// the candidate's verdict differs from the recorded one. Flips are grouped per enforcer and per
// rule (the candidate's deciding rule, and the rule that decided it then), with flow, session and
// packet counts and a few example flows each. Applies nothing. Pure.
import type { ClassTables, FlowTuple, PolicyIr } from '../policy/ir/ir.js';
import { parseCidr } from '../policy/ir/cidr.js';
import { protocolLabel } from '../policy/ir/protocols.js';
import { ruleName, ruleNamesOf } from '../audit/rule-names.js';
import { lookupTables } from '../policy/tables/evaluate-fast.js';
import { tenantId } from '../policy/ir/tenants.js';
import type { RecordedFlow } from './queries.js';
import { portText } from './rows.js';

export interface FlipGroup {
  enforcer: string;
  /** The verdict the candidate gives these flows. */
  verdict: 'allow' | 'deny';
  /** The candidate's deciding rule (`policy/rule`, `policy/default`). */
  rule: string;
  /** The rule that decided them when they were recorded. */
  was: string;
  flows: number;
  sessions: number;
  packets: number;
  /** Up to three flows, as `src → dst proto/port`. */
  examples: string[];
}

export interface HistoryDiff {
  /** Distinct flows replayed, and their sessions. */
  flows: number;
  sessions: number;
  /** Of those, how many flip. */
  flippedFlows: number;
  flippedSessions: number;
  groups: FlipGroup[];
}

const EXAMPLES = 3;

export function replayHistory(flows: readonly RecordedFlow[], candidate: { ir: PolicyIr; tables: ClassTables }): HistoryDiff {
  const groups = new Map<string, FlipGroup>();
  let sessions = 0;
  let flippedFlows = 0;
  let flippedSessions = 0;
  const names = ruleNamesOf(candidate.ir);
  for (const f of flows) {
    sessions += f.sessions;
    const tuple = tupleOf(f);
    if (!tuple) continue;
    const d = lookupTables(candidate.ir, candidate.tables, tuple);
    if (d.action === f.verdict) continue;
    flippedFlows++;
    flippedSessions += f.sessions;
    const rule = ruleName(names, d.rule);
    const key = `${f.enforcer}|${rule}|${f.rule}|${d.action}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { enforcer: f.enforcer, verdict: d.action, rule, was: f.rule, flows: 0, sessions: 0, packets: 0, examples: [] }));
    g.flows++;
    g.sessions += f.sessions;
    g.packets += f.packets;
    if (g.examples.length < EXAMPLES) g.examples.push(flowLabel(f));
  }
  const ordered = [...groups.values()].sort((a, b) => a.enforcer.localeCompare(b.enforcer) || b.sessions - a.sessions || b.flows - a.flows || a.rule.localeCompare(b.rule));
  return { flows: flows.length, sessions, flippedFlows, flippedSessions, groups: ordered };
}

/** Lines for a terminal: one per group, its examples below it. */
export function formatHistoryDiff(d: HistoryDiff, window: string): string[] {
  const lines = [`replayed ${d.flows} recorded flows (${d.sessions} sessions) of the last ${window}: ${d.flippedFlows} flows (${d.flippedSessions} sessions) would flip`];
  for (const g of d.groups) {
    lines.push(`  ${g.enforcer}: ${g.flows} flows, ${g.sessions} sessions, ${g.packets} packets → ${g.verdict} by ${g.rule} (were decided by ${g.was})`);
    for (const e of g.examples) lines.push(`      ${e}`);
  }
  return lines;
}

function flowLabel(f: RecordedFlow): string {
  const text = portText(f.proto, f.port);
  const port = text === '' ? '' : f.proto === 1 || f.proto === 58 ? ` ${text}` : `/${text}`;
  return `${f.src} → ${f.dst} ${protocolLabel(f.proto)}${port}${f.tenant ? ` from ${f.tenant}` : ''} on ${f.iface}`;
}

/** The flow as the classifier sees it; undefined when an address does not parse. */
function tupleOf(f: RecordedFlow): FlowTuple | undefined {
  const v6 = f.src.includes(':');
  const src = parseCidr(`${f.src}/${v6 ? 128 : 32}`);
  const dst = parseCidr(`${f.dst}/${v6 ? 128 : 32}`);
  if ('problem' in src || 'problem' in dst) return undefined;
  const t: FlowTuple = { family: v6 ? 6 : 4, src: src.addr, dst: dst.addr, protocol: f.proto, tenant: f.tenant ? tenantId(f.tenant) : 0 };
  if (f.port >= 0) {
    if (f.proto === 1 || f.proto === 58) {
      t.icmpType = f.port >> 8;
      t.icmpCode = f.port & 0xff;
    } else t.dport = f.port;
  }
  return t;
}
