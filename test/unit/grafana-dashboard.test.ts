// SPDX-License-Identifier: Apache-2.0
// The Grafana dashboard (examples/grafana/doorstep-dashboard.json) against Grafana's dashboard
// model and against our metrics: its structure is importable as is (uid, title, schemaVersion,
// panels with ids, grid positions and targets, the variables its queries use), every metric an
// expr names is documented in docs/metrics.md and exported by the agent, and every documented
// metric has a panel. The example Prometheus config scrapes /metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { AgentMetrics } from '../../src/audit/metrics.js';
import { packageRoot } from '../../src/paths.js';
import { fakeSource } from '../lib/fake-metrics-source.js';

interface Target { refId: string; expr: string; datasource?: { uid?: string } }
interface Panel { id: number; type: string; title: string; gridPos: { h: number; w: number; x: number; y: number }; datasource?: { type?: string; uid?: string }; targets: Target[] }
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
  time: { from: string; to: string };
}

const dashboard = JSON.parse(readFileSync(join(packageRoot, 'examples/grafana/doorstep-dashboard.json'), 'utf8')) as Dashboard;
const metricsDoc = readFileSync(join(packageRoot, 'docs/metrics.md'), 'utf8');
/** The names in the first column of docs/metrics.md's table. */
const documented = new Set([...metricsDoc.matchAll(/^\| `(doorstep_[a-z_]+)` \|/gm)].map((m) => m[1]!));
/** Grafana's own variables a query may use. */
const BUILTINS = new Set(['__rate_interval', '__interval', '__range', '__all']);
/** Panel types a stock Grafana ships. */
const PANEL_TYPES = new Set(['timeseries', 'stat', 'table', 'gauge', 'bargauge', 'text', 'row']);

const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
/** A metric name an expr names: histogram series (_bucket, _sum, _count) belong to their histogram. */
const metricOf = (series: string) => (documented.has(series) ? series : series.replace(/_(bucket|sum|count)$/, ''));
const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\bdoorstep_[a-z_]+\b/g)].map((m) => metricOf(m[0]))));

describe('Grafana dashboard', () => {
  it('has the structure Grafana imports: uid, title, schemaVersion, panels with ids, positions and targets', () => {
    assert.match(dashboard.uid, /^[A-Za-z0-9_-]{1,40}$/);
    assert.ok(dashboard.title.length > 0);
    assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36, 'a current schema');
    assert.ok(dashboard.time.from && dashboard.time.to);
    assert.ok(dashboard.panels.length > 0);
    assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, 'panel ids unique');
    for (const p of dashboard.panels) {
      assert.ok(Number.isInteger(p.id) && p.id > 0, p.title);
      assert.ok(PANEL_TYPES.has(p.type), `${p.title}: ${p.type}`);
      const g = p.gridPos;
      assert.ok([g.h, g.w, g.x, g.y].every((n) => Number.isInteger(n) && n >= 0) && g.x + g.w <= 24 && g.w > 0 && g.h > 0, `${p.title}: gridPos`);
      assert.ok(p.targets.length > 0, `${p.title}: targets`);
      assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: refIds unique`);
      for (const t of p.targets) assert.ok(typeof t.expr === 'string' && t.expr.includes('doorstep_'), `${p.title}: ${t.expr}`);
      assert.equal(p.datasource?.type, 'prometheus', p.title);
    }
  });

  it('uses only variables it defines (and Grafana builtins); the data source is a variable, so it imports anywhere', () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('datasource')?.type, 'datasource');
    assert.equal(vars.get('datasource')?.query, 'prometheus');
    const uids = dashboard.panels.flatMap((p) => [p.datasource?.uid, ...p.targets.map((t) => t.datasource?.uid)]);
    assert.ok(uids.every((u) => u === '${datasource}'), 'every panel and target reads the chosen data source');
    for (const e of exprs) {
      for (const [, name] of e.matchAll(/\$\{?(\w+)/g)) assert.ok(vars.has(name!) || BUILTINS.has(name!), `${e}: $${name}`);
    }
  });

  it('names only metrics docs/metrics.md documents and the agent exports, and charts every one of them', async () => {
    assert.ok(documented.size >= 30, `docs/metrics.md's table read (${documented.size} names)`);
    const exposition = await new AgentMetrics(fakeSource()).text();
    const exported = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    for (const name of named) {
      assert.ok(documented.has(name), `${name} is not documented in docs/metrics.md`);
      assert.ok(exported.has(name), `${name} is not exported by the agent`);
    }
    assert.deepEqual([...documented].filter((n) => !named.has(n)), [], 'documented metrics without a panel');
  });

  it('comes with a Prometheus scrape config for the agents\' /metrics', () => {
    const config = parseYaml(readFileSync(join(packageRoot, 'examples/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
    const job = config.scrape_configs.find((j) => j.job_name === 'doorstep');
    assert.equal(job?.metrics_path, '/metrics');
    assert.ok(job.static_configs.every((s) => s.targets.every((t) => /^[^:]+:\d+$/.test(t))));
  });
});
