// SPDX-License-Identifier: Apache-2.0
// `npm run bench:history` (issue 16): the flow history's costs on a day of recorded traffic. A
// day of session and summary records (HISTORY_FLOWS distinct flows, default 20,000, each with a
// session record and summaries through the day; seeded) goes into a DuckDB file through the
// agent's path (RowAggregator, HistoryStore.append); then `report` over the day, and `diff
// --history 24h` (the recorded flows read, replayed through a candidate of 10,000 rules). Prints
// records/s ingested, the database's size, and the times.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord } from '../src/audit/records.js';
import { compileSources } from '../src/policy/compile.js';
import { historyReport, recordedFlows } from '../src/history/queries.js';
import { replayHistory } from '../src/history/replay.js';
import { MINUTE_MS, RowAggregator } from '../src/history/rows.js';
import { HistoryStore } from '../src/history/store.js';

const FLOWS = Number(process.env.HISTORY_FLOWS ?? 20_000);
const DAY_MS = 86_400_000;

function* dayOfRecords(t0: number): Generator<AuditRecord[]> {
  let seed = 0x1157;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const flows = Array.from({ length: FLOWS }, (_, i) => ({
    src: `10.${64 + (i % 64)}.${(i >> 6) & 255}.${1 + rnd(250)}`,
    dst: `10.1.${rnd(4)}.${1 + rnd(20)}`,
    dport: [22, 53, 80, 443, 8080, 9999][rnd(6)]!,
    start: rnd(1440),
  }));
  for (let minute = 0; minute < 1440; minute++) {
    const batch: AuditRecord[] = [];
    const time = new Date(t0 + minute * MINUTE_MS + 500).toISOString();
    for (const f of flows) {
      const verdict = f.dport === 22 || f.dport === 9999 ? 'deny' : 'allow';
      const rule = verdict === 'deny' ? 'edge/block' : 'edge/web';
      const base = { time, enforcer: 'e1', interface: 'eth1', verdict, protocol: 'tcp', src: f.src, dst: f.dst, sport: 40000, dport: f.dport, rule, generation: 1 } as const;
      if (minute === f.start) batch.push({ ...base, type: 'session', event: 'new', reason: 'policy', cpu: 0, seq: 1 } as AuditRecord);
      // a summary every 10 minutes of the flow's life
      else if (minute > f.start && (minute - f.start) % 10 === 0) batch.push({ ...base, type: 'summary', packets: 10, bytes: 1500, totalPackets: 0, totalBytes: 0, firstSeen: time, lastSeen: time } as unknown as AuditRecord);
    }
    yield batch;
  }
}

function candidate(): ReturnType<typeof compileSources> {
  const feed = Array.from({ length: 10_000 }, (_, i) => ({ name: `feed-${i}`, action: 'deny', from: [`172.16.${i >> 8}.${i & 255}/32`], protocol: 'tcp' }));
  const rules = [...feed, { name: 'web', action: 'allow', from: ['any'], to: ['10.1.0.0/16'], protocol: 'tcp', ports: [53, 80, 443, 8080, 22] }];
  const text = JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'edge' }, spec: { defaultAction: 'deny', rules } });
  return compileSources([{ file: 'candidate.json', text }]);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-bench-history-'));
  try {
    const path = join(dir, 'flows.duckdb');
    const store = await HistoryStore.open(path, { maxAgeMs: 30 * DAY_MS, maxBytes: 64 * 1024 ** 3 });
    const t0 = Date.now() - DAY_MS;
    let records = 0;
    let rowsWritten = 0;
    let t = performance.now();
    const rows = new RowAggregator();
    let minute = 0;
    for (const batch of dayOfRecords(t0)) {
      for (const r of batch) rows.add(r);
      records += batch.length;
      // the agent flushes every 5 s; a day of minutes, flushed every 5 minutes here
      if (++minute % 5 === 0) {
        const taken = rows.take();
        rowsWritten += taken.flows.length;
        await store.append(taken);
      }
    }
    const taken = rows.take();
    rowsWritten += taken.flows.length;
    await store.append(taken);
    await store.retain();
    const ingestMs = performance.now() - t;
    const size = statSync(path).size;
    t = performance.now();
    const report = await historyReport(store, { since: t0, limit: 10 });
    const reportMs = performance.now() - t;
    const c = candidate();
    t = performance.now();
    const flows = await recordedFlows(store, t0);
    const readMs = performance.now() - t;
    t = performance.now();
    const d = replayHistory(flows, c);
    const replayMs = performance.now() - t;
    store.close();
    const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
    console.log(`bench:history — a day of recorded traffic, ${fmt(FLOWS)} flows\n`);
    console.log(`ingest      ${fmt(records)} records → ${fmt(rowsWritten)} rows in ${fmt(ingestMs)} ms (${fmt(records / (ingestMs / 1000))} records/s); database ${(size / 1024 / 1024).toFixed(1)} MiB`);
    console.log(`report      24 h: ${fmt(reportMs)} ms (${fmt(report.totals.allowSessions + report.totals.denySessions)} sessions, ${fmt(report.totals.packets)} packets)`);
    console.log(`diff        --history 24h against 10,001 rules: read ${fmt(flows.length)} flows in ${fmt(readMs)} ms, replayed in ${fmt(replayMs)} ms; ${fmt(d.flippedFlows)} flows (${fmt(d.flippedSessions)} sessions) would flip`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
