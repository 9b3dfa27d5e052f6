// SPDX-License-Identifier: Apache-2.0
// The flow history (src/history/): known records in, exact figures out. Records are aggregated per
// minute and flow; the report's top lists, totals, trends, quiet rules and new talkers are
// checked against counts computed here from the same records; a candidate policy replayed over
// them flips exactly the flows the reference evaluator decides differently; retention by age and
// by size; a history that cannot be opened is "no history", counted, never a throw from write().
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AuditRecord, SummaryRecord } from '../../src/audit/records.js';
import type { SessionRecord } from '../../src/audit/session-record.js';
import { compileSources } from '../../src/policy/compile.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { deniedSources, historyReport, policyHistory, recordedFlows, verdictsOverTime } from '../../src/history/queries.js';
import { replayHistory } from '../../src/history/replay.js';
import { MINUTE_MS, RowAggregator } from '../../src/history/rows.js';
import { KNOWN_POLICY, knownTraffic } from '../lib/history-traffic.js';
import { HistorySink } from '../../src/history/sink.js';
import { HistoryStore } from '../../src/history/store.js';
import { historyViews } from '../../src/ui/history-views.js';

const T0 = Date.parse('2026-12-01T10:00:00Z');
const dir = mkdtempSync(join(tmpdir(), 'doorstep-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function filled(records: AuditRecord[], path = ':memory:'): Promise<HistoryStore> {
  const store = await HistoryStore.open(path, { maxAgeMs: 1e15 });
  const rows = new RowAggregator();
  for (const r of records) rows.add(r);
  await store.append(rows.take());
  return store;
}

describe('flow history', () => {
  it('reports exactly what the records say', async () => {
    const records = knownTraffic(T0);
    const sessions = records.filter((r): r is SessionRecord => r.type === 'session');
    const store = await filled(records);
    try {
      const r = await historyReport(store, { since: T0, until: T0 + 90 * MINUTE_MS, limit: 5, buckets: 3, rules: ['p/no-ssh', 'p/web', 'p/never', 'p/default'] });
      const denied = sessions.filter((s) => s.verdict === 'deny');
      assert.equal(r.totals.denySessions, denied.length);
      assert.equal(r.totals.allowSessions, sessions.length - denied.length);
      assert.equal(r.totals.heldBack, 12_000);
      const packets = records.filter((x): x is SummaryRecord => x.type === 'summary').reduce((n, x) => n + x.packets, 0);
      assert.equal(r.totals.packets, packets);
      // top denied sources: counted here
      const bySource = new Map<string, number>();
      for (const s of denied) bySource.set(s.src, (bySource.get(s.src) ?? 0) + 1);
      const expected = [...bySource].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5);
      assert.deepEqual(r.topDeniedSources.map((s) => [s.source, s.sessions]), expected);
      assert.deepEqual(r.topDeniedPorts, [{ protocol: 6, port: 22, sessions: denied.length }]);
      assert.deepEqual(r.topDeniedRules, [{ rule: 'p/no-ssh', sessions: denied.length, heldBack: 12_000 }]);
      // trends: 3 buckets of 30 minutes, sessions per bucket
      const web = r.ruleTrends.find((x) => x.rule === 'p/web')!;
      const perBucket = [0, 0, 0];
      for (const s of sessions) if (s.rule === 'p/web') perBucket[Math.floor((Date.parse(s.time) - T0) / (30 * MINUTE_MS))]!++;
      assert.deepEqual(web.sessions, perBucket);
      assert.deepEqual(r.quietRules, ['p/never', 'p/default']);
      // new talkers since minute 45: sources never seen before it
      const mid = T0 + 45 * MINUTE_MS;
      const late = await historyReport(store, { since: mid, until: T0 + 90 * MINUTE_MS, limit: 100 });
      const firstSeen = new Map<string, number>();
      for (const s of sessions) firstSeen.set(s.src, Math.min(firstSeen.get(s.src) ?? Infinity, Date.parse(s.time)));
      const fresh = [...firstSeen].filter(([, t]) => t >= mid).map(([src]) => src).sort();
      assert.deepEqual(late.newTalkers.map((n) => n.source).sort(), fresh);
      assert.equal((await policyHistory(store, T0))[0]!.version, 'sha256:aa');
      // the UI's chart and list: per-interval sums add up to the totals, held-back denies included
      const chart = await verdictsOverTime(store, T0, 15 * MINUTE_MS, T0 + 90 * MINUTE_MS);
      assert.equal(chart.length, 6);
      assert.equal(chart.reduce((n, b) => n + b.allowed, 0), r.totals.allowSessions);
      assert.equal(chart.reduce((n, b) => n + b.denied, 0), r.totals.denySessions + 12_000);
      assert.equal(chart[2]!.denied - sessions.filter((x) => x.verdict === 'deny' && Date.parse(x.time) >= T0 + 30 * MINUTE_MS && Date.parse(x.time) < T0 + 45 * MINUTE_MS).length, 12_000);
      assert.deepEqual((await deniedSources(store, T0, 5)).map((x) => [x.source, x.sessions]), expected);
    } finally {
      store.close();
    }
  });

  it('replays recorded flows through a candidate: exactly the flows the reference evaluator flips', async () => {
    const records = knownTraffic(T0);
    const store = await filled(records);
    try {
      const flows = await recordedFlows(store, T0, T0 + 90 * MINUTE_MS);
      // the candidate allows ssh from 10.9.0.0/24 only, and drops port 80
      const candidate = compileSources([{ file: 'c.yaml', text: KNOWN_POLICY.replace('- { name: no-ssh,', '- { name: ssh-ops, action: allow, from: [10.9.0.0/24], to: [10.1.0.0/24], protocol: tcp, ports: [22] }\n    - { name: no-ssh,').replace('ports: [80, 443]', 'ports: [443]') }]);
      const d = replayHistory(flows, candidate);
      let expectFlows = 0;
      let expectSessions = 0;
      const seen = new Set<string>();
      for (const s of records.filter((r): r is SessionRecord => r.type === 'session')) {
        const t = { family: 4 as const, src: (parseCidr(`${s.src}/32`) as { addr: Uint8Array }).addr, dst: (parseCidr(`${s.dst}/32`) as { addr: Uint8Array }).addr, protocol: 6, dport: s.dport! };
        if (evaluate(candidate.ir, t).action === s.verdict) continue;
        expectSessions++;
        const key = `${s.src}|${s.dport}|${s.rule}`;
        if (!seen.has(key)) expectFlows++;
        seen.add(key);
      }
      assert.ok(expectSessions > 0);
      assert.equal(d.flippedSessions, expectSessions);
      assert.equal(d.flippedFlows, expectFlows);
      const rules = new Set(d.groups.map((g) => `${g.verdict} ${g.rule} (was ${g.was})`));
      assert.deepEqual([...rules].sort(), ['allow c/ssh-ops (was p/no-ssh)', 'deny p/default (was p/web)'].map((x) => x.replace('c/', 'p/')).sort());
    } finally {
      store.close();
    }
  });

  it('keeps rows by age and by size', async () => {
    const path = join(dir, 'retain.duckdb');
    const store = await HistoryStore.open(path, { maxAgeMs: 30 * MINUTE_MS, maxBytes: 1 << 40 });
    try {
      const rows = new RowAggregator();
      for (const r of knownTraffic(T0)) rows.add(r);
      await store.append(rows.take());
      await store.retain(T0 + 90 * MINUTE_MS);
      const [oldest] = await store.query<{ m: number }>('SELECT min(minute) AS m FROM flows');
      assert.ok(oldest!.m >= T0 + 60 * MINUTE_MS, `a row of minute ${(oldest!.m - T0) / MINUTE_MS} outlived 30 minutes`);
    } finally {
      store.close();
    }
    // by size: a bound below what the rows take leaves fewer minutes, never none
    const small = await HistoryStore.open(join(dir, 'small.duckdb'), { maxAgeMs: 1e15, maxBytes: 1 });
    try {
      for (let k = 0; k < 3; k++) {
        const rows = new RowAggregator();
        for (const r of knownTraffic(T0)) rows.add(r);
        await small.append(rows.take());
      }
      const [before] = await small.query<{ n: number }>('SELECT count(DISTINCT minute) AS n FROM flows');
      await small.retain(T0 + 90 * MINUTE_MS);
      const [left] = await small.query<{ n: number }>('SELECT count(DISTINCT minute) AS n FROM flows');
      assert.ok(left!.n < before!.n && left!.n >= 1, `minutes ${before!.n} → ${left!.n}`);
    } finally {
      small.close();
    }
  });

  it('a history that cannot be opened is no history: records counted as dropped, one error, queries refused', async () => {
    const errors: string[] = [];
    const sink = await HistorySink.open({ path: join(dir, 'no-such-folder', 'h.duckdb'), onError: (e) => errors.push(e.code) });
    assert.equal(sink.available, false);
    assert.deepEqual(errors, ['DS_E_HISTORY']);
    const records = knownTraffic(T0);
    sink.write(records);
    assert.equal(sink.dropped, records.length);
    assert.throws(() => sink.history(), /DS_E_HISTORY|cannot open/);
    await sink.close();

    const ok = await HistorySink.open({ path: join(dir, 'sink.duckdb'), flushMs: 1e9 });
    ok.write(records);
    await ok.flush();
    assert.equal(ok.stored, records.length);
    assert.equal(ok.dropped, 0);
    const r = await historyReport(ok.history(), { since: T0, until: T0 + 90 * MINUTE_MS });
    assert.equal(r.totals.heldBack, 12_000);
    await ok.close();
  });

  it('feeds the web UI\'s chart and list when the agent keeps a history', async () => {
    const now = Date.now();
    const t0 = now - now % MINUTE_MS - 50 * MINUTE_MS; // the last 50 minutes: inside the chart's hour
    const sink = await HistorySink.open({ path: join(dir, 'ui.duckdb'), flushMs: 1e9 });
    const records = knownTraffic(t0).filter((r) => Date.parse(r.time) < now);
    sink.write(records);
    await sink.flush();
    const views = historyViews(() => sink);
    assert.match(views.verdicts.read().history.message, /reading the flow history/);
    let chart = views.verdicts.read();
    for (let i = 0; i < 200 && !/from the flow history/.test(chart.history.message); i++) {
      await new Promise((r) => setTimeout(r, 25));
      chart = views.verdicts.read();
    }
    assert.equal(chart.history.kind, 'history');
    assert.equal(chart.intervalMs, MINUTE_MS);
    const sessions = records.filter((r) => r.type === 'session');
    assert.equal(chart.buckets.reduce((n, b) => n + b.allowed, 0), sessions.filter((r) => r.verdict === 'allow').length);
    const held = records.reduce((n, r) => n + (r.type === 'flood' ? r.heldBack : 0), 0);
    assert.equal(chart.buckets.reduce((n, b) => n + b.denied, 0), sessions.filter((r) => r.verdict === 'deny').length + held);
    await sink.close();
  });
});
