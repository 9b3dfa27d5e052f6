// SPDX-License-Identifier: Apache-2.0
// The flow history's commands: `doorstep report` (the agent's history, through its local API),
// `doorstep fleet report --nats URL` (the fleet's audit stream read into a history in memory),
// and `doorstep diff --history DURATION` (recorded flows replayed through a candidate, from the
// agent or, with --nats, the stream). Nothing here changes an enforcer.
import { parseSince } from '../audit/record-filter.js';
import { DoorstepError } from '../errors.js';
import { connectNats, parseNatsUrl } from '../fleet/nats-connection.js';
import { historyReport, recordedFlows, type HistoryReport, type RecordedFlow } from '../history/queries.js';
import { formatHistoryDiff, replayHistory } from '../history/replay.js';
import { portText, RowAggregator } from '../history/rows.js';
import { HistoryStore } from '../history/store.js';
import { ruleIds, ruleNamesOf } from '../audit/rule-names.js';
import { compileSources } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import { protocolLabel } from '../policy/ir/protocols.js';
import { parseDuration } from '../units.js';
import { AgentClient } from '../controller/agent-client.js';
import { readStreamSince } from './fleet-observe.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';
import { table as renderTable, type OutputFormat } from './table.js';

export interface ReportFlags {
  since?: string;
  limit?: string;
  output: OutputFormat;
}

/** `--since` as ms since the epoch (default: the last 24 hours). */
function sinceMs(text: string | undefined, now = new Date()): number {
  return parseSince(text ?? '24h', now).getTime();
}

function limitOf(text: string | undefined): number {
  const n = Number(text ?? 10);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new DoorstepError('DS_E_USAGE', `--limit "${text}" is not a number from 1 to 10000`);
  return n;
}

export async function report(o: ReportFlags & { socket: string }): Promise<number> {
  const r = await new AgentClient(o.socket).call<HistoryReport>('GET', `/v1/history/report?since=${sinceMs(o.since)}&limit=${limitOf(o.limit)}`);
  printReport(r, o.output);
  return ExitCode.OK;
}

export async function fleetReport(o: ReportFlags & NatsFlags & { policy?: string[] }): Promise<number> {
  const since = sinceMs(o.since);
  const rules = o.policy?.length ? policyRules(await readPolicySources(o.policy)) : undefined;
  const store = await fleetHistory(o, since);
  try {
    printReport(await historyReport(store, { since, limit: limitOf(o.limit), ...(rules && { rules }) }), o.output);
  } finally {
    store.close();
  }
  return ExitCode.OK;
}

export async function historyDiff(paths: string[], o: { history: string; socket: string; output: OutputFormat } & Partial<NatsFlags>): Promise<number> {
  const back = parseDuration(o.history.trim());
  if (back === undefined || back <= 0) throw new DoorstepError('DS_E_USAGE', `--history "${o.history}" is not a duration`, { hint: 'write e.g. --history 24h (units s, m, h, d)' });
  const since = Date.now() - back;
  const candidate = compileSources(await readPolicySources(paths));
  let flows: RecordedFlow[];
  if (o.nats) {
    const store = await fleetHistory({ ...o, nats: o.nats }, since);
    try {
      flows = await recordedFlows(store, since);
    } finally {
      store.close();
    }
  } else {
    flows = await new AgentClient(o.socket).call<RecordedFlow[]>('GET', `/v1/history/flows?since=${since}`);
  }
  const d = replayHistory(flows, candidate);
  if (o.output === 'json') console.log(JSON.stringify({ window: o.history, version: candidate.ir.version, ...d }));
  else for (const line of formatHistoryDiff(d, o.history)) console.log(line);
  return ExitCode.OK;
}

/** The fleet's audit stream from `since` on, in a history in memory. */
async function fleetHistory(o: NatsFlags, since: number): Promise<HistoryStore> {
  const target = parseNatsUrl(o.nats, 'STREAM');
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep fleet report' });
  const store = await HistoryStore.open(':memory:', { maxAgeMs: Number.MAX_SAFE_INTEGER / 2 });
  try {
    const rows = new RowAggregator();
    await readStreamSince(nc, target.name, new Date(since), (records) => {
      for (const r of records) rows.add(r);
    });
    await store.append(rows.take());
    return store;
  } catch (err) {
    store.close();
    throw err;
  } finally {
    await nc.close();
  }
}

/** The rule ids of a policy set (and its default), to name those without hits. */
function policyRules(sources: Awaited<ReturnType<typeof readPolicySources>>): string[] {
  const { ir } = compileSources(sources);
  return ruleIds(ruleNamesOf(ir));
}

function printReport(r: HistoryReport, output: OutputFormat): void {
  if (output === 'json') {
    console.log(JSON.stringify(r));
    return;
  }
  const t = r.totals;
  const lines = [
    `flow history ${r.since} → ${r.until}: ${t.allowSessions} allowed and ${t.denySessions} denied sessions recorded, ${t.heldBack} denied sessions held back by the flood budgets, ${t.packets} packets in summaries`,
    '',
    'top denied sources',
    renderTable(['source', 'sessions', 'packets'], r.topDeniedSources.map((s) => [s.source, String(s.sessions), String(s.packets)])),
    '',
    'top denied ports',
    renderTable(['protocol', 'port', 'sessions'], r.topDeniedPorts.map((p) => [protocolLabel(p.protocol), portText(p.protocol, p.port) || '-', String(p.sessions)])),
    '',
    'top denied rules',
    renderTable(['rule', 'sessions', 'held back'], r.topDeniedRules.map((x) => [x.rule, String(x.sessions), String(x.heldBack)])),
    '',
    `per-rule trends (sessions per ${Math.round(r.bucketMs / 60_000)} min, oldest first)`,
    renderTable(['rule', 'sessions'], r.ruleTrends.map((x) => [x.rule, x.sessions.join(' ')])),
    '',
    `rules with no hits since ${r.since}: ${r.quietRules.length === 0 ? 'none' : r.quietRules.join(', ')}`,
    '',
    `new talkers since ${r.since}`,
    renderTable(['source', 'first seen', 'sessions', 'verdicts'], r.newTalkers.map((n) => [n.source, n.firstSeen, String(n.sessions), n.verdicts])),
  ];
  console.log(lines.join('\n'));
}
