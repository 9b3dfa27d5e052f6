// SPDX-License-Identifier: Apache-2.0
// What the local API answers: one route per CLI command. Reads the controller, the engine and
// the audit pipeline; changes nothing except through NetworkController.apply.
import { compileFilter, parseFilterOptions } from '../audit/record-filter.js';
import type { AuditPipeline } from '../audit/pipeline.js';
import type { RecentRecords } from '../audit/recent-records.js';
import type { AuditRecord, AuditSink } from '../audit/records.js';
import type { Engine } from '../engine/engine-interface.js';
import { ruleIds, ruleName, type RuleNames } from '../audit/rule-names.js';
import { sessionView, type SessionView } from './session-view.js';
import { ApiError, type Query, type Routes } from './local-api.js';
import type { AgentConfig } from './config.js';
import type { NetworkController } from './network-controller.js';
import type { PolicyText } from '../watcher/source.js';
import { explainRoute, diffRoute } from './explain-diff.js';
import type { StallMonitor } from './stall-monitor.js';
import type { TunnelStatus } from '../placement/tunnel-status.js';
import type { SourceSync } from '../watcher/nats-source.js';
import type { HistorySink } from '../history/sink.js';
import { historyReport, policyHistory, recordedFlows } from '../history/queries.js';
import { DoorstepError } from '../errors.js';

export interface RouteDeps {
  config: AgentConfig;
  controller: NetworkController;
  engine: Engine;
  pipeline: AuditPipeline;
  recent: RecentRecords;
  startedAt: Date;
  toWall: (ns: bigint) => Date;
  /** Entries in the session caches, counted on a thread of the addon's (Engine.sessionCountAsync). */
  sessionCount: () => Promise<number>;
  /** The agent's event-loop stalls (read as the reader `status`). */
  stalls?: StallMonitor;
  /** A placement's tunnels to the edge, read now (WireGuard: from `wg show`). */
  tunnels?: () => TunnelStatus[];
  /** The fleet policy watch: live or stale since when, its revision against the bucket's (none without --policy nats://…). */
  policySync?: () => SourceSync | undefined;
  /** The flow history (with --history). */
  history?: HistorySink | undefined;
}

const withSync = (sync: SourceSync | undefined): { sync?: SourceSync } => (sync ? { sync } : {});

export interface StatusReport {
  enforcer: string;
  pid: number;
  startedAt: string;
  policy: { version: string | null; generation: number; rules: number; origin: string | null; installedAt: string | null } | null;
  interfaces: { name: string; ifindex: number; mode: 'native' | 'generic'; adopted: boolean }[];
  counters: Record<string, number>;
  byReason: Record<string, { pass: { packets: number; bytes: number }; drop: { packets: number; bytes: number } }>;
  /** Per-rule hits of the version in force, by rule id (`policy/rule`, `policy/default`): the rules
   *  that matched at least one packet (a blocklist of 10,000 rules mostly did not). */
  rules: Record<string, { packets: number; bytes: number }>;
  /** The version's rules (and default) that matched no packet yet, left out of `rules`. */
  quietRules: number;
  events: { read: number; lost: number };
  sessions: number;
  /** The agent process: its longest event-loop stalls (target: at most 50 ms) and memory. */
  agent: { maxStallMs: number; maxStallSinceLastReadMs: number; rssBytes: number; summaryScans: number };
  /** A placement's tunnels to the edge (none without a placement). */
  tunnels: TunnelStatus[];
  /** The fleet policy watch (with --policy nats://…): live, or stale since when, and how far behind. */
  sync?: SourceSync;
}

/** Filter options as the CLI sends them: the same names as the flags. */
const FILTER_KEYS = ['verdict', 'from', 'to', 'port', 'protocol', 'rule', 'since'] as const;

function filterOf(query: Query): (record: { [k: string]: unknown }) => boolean {
  const options: Partial<Record<(typeof FILTER_KEYS)[number], string>> = {};
  for (const k of FILTER_KEYS) {
    const v = query.get(k);
    if (v !== null) options[k] = v;
  }
  return compileFilter(parseFilterOptions(options)) as (record: { [k: string]: unknown }) => boolean;
}

function sourcesOf(body: unknown): PolicyText[] {
  const sources = (body as { sources?: unknown } | undefined)?.sources;
  if (!Array.isArray(sources) || sources.length === 0 || !sources.every((s) => typeof s?.file === 'string' && typeof s?.text === 'string')) {
    throw new ApiError(400, { code: 'DS_E_AGENT_API', message: 'the body must be { sources: [{ file, text }, …] }' });
  }
  return sources as PolicyText[];
}

/** The rules that matched packets, by id, and how many did not. */
function rulesWithHits(matched: ReadonlyMap<number, { packets: number; bytes: number }>, active: { ruleCount: number } | null, names: RuleNames | undefined): Pick<StatusReport, 'rules' | 'quietRules'> {
  const rules: StatusReport['rules'] = {};
  for (const [index, { packets, bytes }] of matched) rules[ruleName(names, index)] = { packets, bytes };
  return { rules, quietRules: active ? active.ruleCount + 1 - matched.size : 0 };
}

export function agentRoutes(d: RouteDeps): Routes {
  const status = async (): Promise<StatusReport> => {
    const sessions = await d.sessionCount();
    // the per-rule counters read off the event loop (a 10,000-rule version's are ~20,000 rows)
    const { rules: matched } = await d.engine.ruleStatsAsync('matched');
    const active = d.engine.activePolicy();
    const current = d.controller.current;
    const stats = d.engine.stats();
    const events = d.pipeline.stats();
    return {
      enforcer: d.config.enforcerId,
      pid: process.pid,
      startedAt: d.startedAt.toISOString(),
      policy: active
        ? {
            version: current?.generation === active.generation ? current.version : null,
            generation: active.generation,
            rules: active.ruleCount,
            origin: current?.origin ?? null,
            installedAt: current?.installedAt ?? null,
          }
        : null,
      interfaces: d.engine.attachments().map((a) => ({ name: a.ifname, ifindex: a.ifindex, mode: a.mode, adopted: a.adopted })),
      counters: stats.counters,
      byReason: stats.byReason,
      ...rulesWithHits(matched, active, active ? d.controller.context.policies.get(active.generation) : undefined),
      events: { read: events.eventsRead, lost: events.eventsLost },
      sessions,
      tunnels: d.tunnels?.() ?? [],
      ...withSync(d.policySync?.()),
      agent: {
        ...(d.stalls?.read('status') ?? { maxStallMs: 0, maxStallSinceLastReadMs: 0 }),
        rssBytes: process.memoryUsage.rss(),
        summaryScans: events.summaryScans,
      },
    };
  };

  return {
    'GET /v1/status': { kind: 'json', handle: () => status() },

    'POST /v1/apply': {
      kind: 'json',
      handle: async (_q, body) => {
        const outcome = await d.controller.apply({ origin: 'api', sources: sourcesOf(body) });
        if (outcome.status === 'rejected') throw new ApiError(422, { code: 'DS_E_POLICY_INVALID', message: 'policy rejected', problems: outcome.problems, inForce: outcome.inForce });
        return outcome;
      },
    },

    'GET /v1/sessions': {
      kind: 'json',
      handle: async (query) => {
        const keep = filterOf(query);
        const limit = Number(query.get('limit') ?? 1000);
        const all: SessionView[] = [];
        let matched = 0;
        const active = d.engine.activePolicy()?.generation ?? 0;
        // a slice at a time: the agent's event loop runs between slices
        for await (const slice of d.engine.sessionSlices()) {
          for (const s of slice) {
            const view = sessionView(s, d.controller.context, d.toWall, active);
            if (!keep(view as unknown as { [k: string]: unknown })) continue;
            matched++;
            if (all.length < limit) all.push(view);
          }
        }
        return { matched, sessions: all };
      },
    },

    'GET /v1/observe': {
      kind: 'stream',
      handle: (query, line, end) => {
        const keep = filterOf(query);
        const last = query.has('last') ? Number(query.get('last')) : query.has('since') ? Infinity : 0;
        for (const r of d.recent.select((rec) => keep(rec as unknown as { [k: string]: unknown }), last)) line(r);
        if (query.get('follow') !== '1') {
          end();
          return () => {};
        }
        const observer: AuditSink = {
          write: (records: readonly AuditRecord[]) => {
            for (const r of records) if (keep(r as unknown as { [k: string]: unknown })) line(r);
          },
          close: async () => end(),
        };
        d.pipeline.addSink(observer);
        return () => d.pipeline.removeSink(observer);
      },
    },

    // the flow history: `doorstep report` and `diff --history` (the CLI replays the flows itself)
    'GET /v1/history/report': {
      kind: 'json',
      handle: (query) => {
        const names = d.controller.current?.names;
        return historyReport(historyOf(d), {
          since: timeParam(query, 'since'),
          ...(query.has('limit') && { limit: Number(query.get('limit')) }),
          ...(names && { rules: ruleIds(names) }),
        });
      },
    },
    'GET /v1/history/flows': { kind: 'json', handle: (query) => recordedFlows(historyOf(d), timeParam(query, 'since')) },
    'GET /v1/history/policies': { kind: 'json', handle: (query) => policyHistory(historyOf(d), timeParam(query, 'since')) },

    'POST /v1/explain': { kind: 'json', handle: (_q, body) => explainRoute(d, body) },
    'POST /v1/diff': { kind: 'json', handle: (_q, body) => diffRoute(d, sourcesOf(body)) },
  };
}

/** The agent's flow history, or a 404 saying why there is none. */
function historyOf(d: RouteDeps) {
  try {
    if (!d.history) throw new DoorstepError('DS_E_HISTORY', 'this agent keeps no flow history', { hint: 'start it with --history FILE' });
    return d.history.history();
  } catch (err) {
    const e = err as DoorstepError;
    throw new ApiError(404, { code: e.code, message: e.toLine() });
  }
}

/** A time parameter in ms since the epoch; 0 when absent. */
function timeParam(query: Query, name: string): number {
  const v = Number(query.get(name) ?? 0);
  if (!Number.isFinite(v) || v < 0) throw new ApiError(400, { code: 'DS_E_USAGE', message: `${name}: not a time in ms since the epoch` });
  return v;
}
