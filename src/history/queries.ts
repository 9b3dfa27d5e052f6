// SPDX-License-Identifier: Apache-2.0
// What the flow history answers: the report (`doorstep report`, `fleet report`: top denied
// sources, ports and rules, per-rule trends, rules with no hits, new talkers) and the flows a
// candidate policy is replayed against (`diff --history`). Plain SQL over store.ts's tables.
import { MINUTE_MS as MINUTE, type FlowRow } from './rows.js';
import type { HistoryStore } from './store.js';

export interface ReportOptions {
  /** Start of the window (ms since the epoch). */
  since: number;
  /** End of the window (ms); default now. */
  until?: number;
  /** Rows per top list. */
  limit?: number;
  /** The rule ids (`policy/rule`) of the policy in force, to name those with no hits in the window. */
  rules?: readonly string[];
  /** Buckets of the per-rule trends (default 12 over the window, at least a minute each). */
  buckets?: number;
}

export interface HistoryReport {
  since: string;
  until: string;
  totals: { allowSessions: number; denySessions: number; heldBack: number; packets: number; bytes: number };
  topDeniedSources: { source: string; sessions: number; packets: number }[];
  topDeniedPorts: { protocol: number; port: number; sessions: number }[];
  /** Denied sessions by rule: with a record (`sessions`) and held back by the flood budgets (`heldBack`). */
  topDeniedRules: { rule: string; sessions: number; heldBack: number }[];
  /** Per rule with hits: sessions and packets per bucket, oldest first. */
  ruleTrends: { rule: string; sessions: number[]; packets: number[] }[];
  bucketMs: number;
  /** Rules of `rules` with no session, packet or held-back session in the window. */
  quietRules: string[];
  /** Sources first seen in the window (never before it in the history), with their first minute. */
  newTalkers: { source: string; firstSeen: string; sessions: number; verdicts: string }[];
}

export async function historyReport(store: HistoryStore, o: ReportOptions): Promise<HistoryReport> {
  const until = o.until ?? Date.now();
  const limit = o.limit ?? 10;
  const window = [BigInt(o.since), BigInt(until)];
  const [totals] = await store.query<{ allow: number | null; deny: number | null; packets: number | null; bytes: number | null }>(
    `SELECT sum(sessions) FILTER (WHERE verdict = 'allow') AS allow, sum(sessions) FILTER (WHERE verdict = 'deny') AS deny, sum(packets) AS packets, sum(bytes) AS bytes
     FROM flows WHERE minute >= $1 AND minute < $2`,
    window,
  );
  const [held] = await store.query<{ held: number | null }>('SELECT sum(held) AS held FROM floods WHERE minute >= $1 AND minute < $2', window);
  const topDeniedSources = await store.query<{ source: string; sessions: number; packets: number }>(
    `SELECT src AS source, sum(sessions) AS sessions, sum(packets) AS packets FROM flows
     WHERE verdict = 'deny' AND minute >= $1 AND minute < $2 GROUP BY src HAVING sum(sessions) > 0 ORDER BY sessions DESC, source LIMIT ${limit}`,
    window,
  );
  const topDeniedPorts = await store.query<{ protocol: number; port: number; sessions: number }>(
    `SELECT proto AS protocol, port, sum(sessions) AS sessions FROM flows
     WHERE verdict = 'deny' AND minute >= $1 AND minute < $2 GROUP BY proto, port HAVING sum(sessions) > 0 ORDER BY sessions DESC, protocol, port LIMIT ${limit}`,
    window,
  );
  const topDeniedRules = await store.query<{ rule: string; sessions: number; heldBack: number }>(
    `SELECT rule, sum(sessions) AS sessions, sum(held) AS "heldBack" FROM (
       SELECT rule, sessions, 0 AS held FROM flows WHERE verdict = 'deny' AND minute >= $1 AND minute < $2
       UNION ALL SELECT rule, 0, held FROM floods WHERE minute >= $1 AND minute < $2)
     GROUP BY rule ORDER BY sum(sessions) + sum(held) DESC, rule LIMIT ${limit}`,
    window,
  );
  const buckets = Math.max(1, o.buckets ?? 12);
  const bucketMs = Math.max(60_000, Math.ceil((until - o.since) / buckets / 60_000) * 60_000);
  const trendRows = await store.query<{ rule: string; bucket: number; sessions: number; packets: number }>(
    `SELECT rule, (minute - $1) // ${bucketMs} AS bucket, sum(sessions) AS sessions, sum(packets) AS packets FROM flows
     WHERE minute >= $1 AND minute < $2 GROUP BY rule, bucket ORDER BY rule, bucket`,
    window,
  );
  const count = Math.max(1, Math.ceil((until - o.since) / bucketMs));
  const trends = new Map<string, { rule: string; sessions: number[]; packets: number[] }>();
  for (const r of trendRows) {
    let t = trends.get(r.rule);
    if (!t) trends.set(r.rule, (t = { rule: r.rule, sessions: new Array<number>(count).fill(0), packets: new Array<number>(count).fill(0) }));
    const i = Math.min(count - 1, Math.max(0, r.bucket));
    t.sessions[i] = t.sessions[i]! + r.sessions;
    t.packets[i] = t.packets[i]! + r.packets;
  }
  const hit = new Set(
    (
      await store.query<{ rule: string }>(
        `SELECT DISTINCT rule FROM (SELECT rule FROM flows WHERE minute >= $1 AND minute < $2 AND (sessions > 0 OR packets > 0)
         UNION ALL SELECT rule FROM floods WHERE minute >= $1 AND minute < $2 AND held + packets > 0)`,
        window,
      )
    ).map((r) => r.rule),
  );
  const newTalkers = await store.query<{ source: string; first: number; sessions: number; verdicts: string }>(
    `SELECT src AS source, min(minute) AS first, sum(sessions) AS sessions, string_agg(DISTINCT verdict, ',' ORDER BY verdict) AS verdicts
     FROM flows WHERE minute < $2 GROUP BY src HAVING min(minute) >= $1 ORDER BY first, source LIMIT ${limit}`,
    window,
  );
  return {
    since: new Date(o.since).toISOString(),
    until: new Date(until).toISOString(),
    totals: { allowSessions: totals?.allow ?? 0, denySessions: totals?.deny ?? 0, heldBack: held?.held ?? 0, packets: totals?.packets ?? 0, bytes: totals?.bytes ?? 0 },
    topDeniedSources,
    topDeniedPorts,
    topDeniedRules,
    ruleTrends: [...trends.values()],
    bucketMs,
    quietRules: (o.rules ?? []).filter((r) => !hit.has(r)),
    newTalkers: newTalkers.map((t) => ({ source: t.source, firstSeen: new Date(t.first).toISOString(), sessions: t.sessions, verdicts: t.verdicts })),
  };
}

/** A recorded flow, summed over the window: what a candidate is replayed against. */
export type RecordedFlow = Omit<FlowRow, 'minute' | 'bytes'>;

/** The flows decided by policy in [since, until), each with its recorded verdict and rule. */
export async function recordedFlows(store: HistoryStore, since: number, until = Date.now()): Promise<RecordedFlow[]> {
  return store.query<RecordedFlow>(
    `SELECT enforcer, iface, max(tenant) AS tenant, verdict, reason, rule, proto, src, dst, port, sum(sessions) AS sessions, sum(packets) AS packets
     FROM flows WHERE minute >= $1 AND minute < $2 AND reason IN ('policy', 'no-policy')
     GROUP BY enforcer, iface, verdict, reason, rule, proto, src, dst, port ORDER BY enforcer, src, dst, proto, port`,
    [BigInt(since), BigInt(until)],
  );
}

/** The policy records of the window, newest first: the version history. */
export async function policyHistory(store: HistoryStore, since: number, limit = 50): Promise<{ time: string; enforcer: string; status: string; version: string; generation: number; rules: number; source: string }[]> {
  const rows = await store.query<{ time: number; enforcer: string; status: string; version: string; generation: number; rules: number; source: string }>(
    `SELECT * FROM policies WHERE time >= $1 ORDER BY time DESC LIMIT ${limit}`,
    [BigInt(since)],
  );
  return rows.map((r) => ({ ...r, time: new Date(r.time).toISOString() }));
}

/** Sessions allowed and denied per interval of `intervalMs` from `since` (denied: with held-back ones), oldest first: the UI's chart. */
export async function verdictsOverTime(store: HistoryStore, since: number, intervalMs: number, until = Date.now()): Promise<{ at: string; allowed: number; denied: number }[]> {
  const step = Math.max(MINUTE, Math.ceil(intervalMs / MINUTE) * MINUTE);
  const rows = await store.query<{ bucket: number; allowed: number; denied: number }>(
    `SELECT bucket, sum(allowed) AS allowed, sum(denied) AS denied FROM (
       SELECT (minute - $1) // ${step} AS bucket, sum(sessions) FILTER (WHERE verdict = 'allow') AS allowed, sum(sessions) FILTER (WHERE verdict = 'deny') AS denied
       FROM flows WHERE minute >= $1 AND minute < $2 GROUP BY bucket
       UNION ALL SELECT (minute - $1) // ${step}, 0, sum(held) FROM floods WHERE minute >= $1 AND minute < $2 GROUP BY 1)
     GROUP BY bucket ORDER BY bucket`,
    [BigInt(since), BigInt(until)],
  );
  const count = Math.max(1, Math.ceil((until - since) / step));
  const out = Array.from({ length: count }, (_, i) => ({ at: new Date(since + i * step).toISOString(), allowed: 0, denied: 0 }));
  for (const r of rows) {
    const b = out[Math.min(count - 1, Math.max(0, r.bucket))]!;
    b.allowed += r.allowed ?? 0;
    b.denied += r.denied ?? 0;
  }
  return out;
}

/** The sources with the most denied sessions since `since`, with the last minute each was seen: the UI's list. */
export async function deniedSources(store: HistoryStore, since: number, limit: number): Promise<{ source: string; sessions: number; lastSeen: string }[]> {
  const rows = await store.query<{ source: string; sessions: number; last: number }>(
    `SELECT src AS source, sum(sessions) AS sessions, max(minute) AS last FROM flows
     WHERE verdict = 'deny' AND minute >= $1 GROUP BY src HAVING sum(sessions) > 0 ORDER BY sessions DESC, source LIMIT ${Math.max(1, Math.floor(limit))}`,
    [BigInt(since)],
  );
  return rows.map((r) => ({ source: r.source, sessions: r.sessions, lastSeen: new Date(r.last).toISOString() }));
}
