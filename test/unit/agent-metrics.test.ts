// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics of the agent (src/audit/metrics.ts) against a fake MetricsSource: names,
// labels and values in the exposition, the HTTP endpoint, and a port already in use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Reason } from '../../src/abi/generated.js';
import type { ReasonName } from '../../src/abi/records.js';
import { AgentMetrics } from '../../src/audit/metrics.js';
import { fakeSource, fakeStats } from '../lib/fake-metrics-source.js';
import { DoorstepError } from '../../src/errors.js';

/** The value of one sample line `name{labels} value`, labels in the order the registry prints them. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function typeOf(text: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
}

test('datapath counters appear by action and reason, with lowercase-dashed reason labels', async () => {
  const m = new AgentMetrics(fakeSource());
  const text = await m.text();
  const stats = fakeStats();
  assert.equal(typeOf(text, 'doorstep_packets_total'), 'counter');
  assert.equal(typeOf(text, 'doorstep_bytes_total'), 'counter');
  for (const reason of Object.keys(Reason).filter((k) => k !== 'COUNT') as ReasonName[]) {
    const label = reason.toLowerCase().replaceAll('_', '-');
    for (const action of ['pass', 'drop'] as const) {
      const want = stats.byReason[reason][action];
      assert.equal(sample(text, 'doorstep_packets_total', { action, reason: label, enforcer: 'edge-1' }), want.packets, `${action}/${label}`);
      assert.equal(sample(text, 'doorstep_bytes_total', { action, reason: label }), want.bytes, `${action}/${label} bytes`);
    }
  }
  assert.ok(text.includes('reason="no-policy"'));
  assert.ok(text.includes('reason="frag-unknown"'));
});

test('global counters, rules, sessions, events, policy and interfaces have their names and labels', async () => {
  const m = new AgentMetrics(fakeSource());
  const text = await m.text();
  const c = fakeStats().counters;
  const counters: [string, number][] = [
    ['doorstep_session_cache_hits_total', c.CACHE_HITS],
    ['doorstep_session_cache_misses_total', c.CACHE_MISSES],
    ['doorstep_session_cache_stale_total', c.CACHE_STALE],
    ['doorstep_parse_errors_total', c.PARSE_ERRORS],
    ['doorstep_datapath_events_total', c.EVENTS],
    ['doorstep_datapath_events_lost_total', c.EVENTS_LOST],
    ['doorstep_received_packets_total', c.RX_PACKETS],
    ['doorstep_session_insert_failures_total', c.SESSION_FULL],
    ['doorstep_rule_packets_total', 42],
    ['doorstep_events_read_total', 99],
    ['doorstep_events_lost_total', 3],
  ];
  for (const [name, value] of counters) {
    assert.equal(typeOf(text, name), 'counter', name);
    const labels: Record<string, string> = name.startsWith('doorstep_rule_') ? { rule: 'web-tier/corp-https' } : {};
    assert.equal(sample(text, name, { ...labels, enforcer: 'edge-1' }), value, name);
  }
  assert.equal(sample(text, 'doorstep_rule_bytes_total', { rule: 'web-tier/default' }), 700);
  assert.equal(typeOf(text, 'doorstep_sessions'), 'gauge');
  assert.equal(sample(text, 'doorstep_sessions', {}), 12);
  assert.equal(sample(text, 'doorstep_policy_generation', {}), 5);
  assert.equal(sample(text, 'doorstep_policy_info', { version: 'sha256:abc' }), 1);
  assert.equal(sample(text, 'doorstep_interface_info', { interface: 'eth1', mode: 'native' }), 1);
  assert.equal(sample(text, 'doorstep_interface_info', { interface: 'veth0', mode: 'generic' }), 1);
  // PASS_*/DROP_* are the sums of doorstep_packets_total; they are not exposed twice
  assert.ok(!/^doorstep_pass/m.test(text));
});

test('values are read at scrape time, once per scrape; rules that left the version disappear', async () => {
  let rules = new Map([['p/a', { packets: 1, bytes: 10 }]]);
  let version: string | null = 'v1';
  const source = fakeSource({ ruleStats: () => rules, policy: () => ({ generation: version ? 1 : 0, version }) });
  const m = new AgentMetrics(source);
  assert.equal(sample(await m.text(), 'doorstep_rule_packets_total', { rule: 'p/a' }), 1);
  assert.equal(source.calls, 1);
  rules = new Map([['p/b', { packets: 5, bytes: 50 }]]);
  version = null;
  const text = await m.text();
  assert.equal(source.calls, 2);
  assert.equal(sample(text, 'doorstep_rule_packets_total', { rule: 'p/a' }), undefined);
  assert.equal(sample(text, 'doorstep_rule_packets_total', { rule: 'p/b' }), 5);
  assert.equal(sample(text, 'doorstep_policy_info', {}), undefined);
  assert.equal(sample(text, 'doorstep_policy_generation', {}), 0);
});

test('observeInstall feeds the install histogram and the outcome counter', async () => {
  const m = new AgentMetrics(fakeSource());
  let text = await m.text();
  assert.equal(sample(text, 'doorstep_policy_installs_total', { outcome: 'rejected' }), 0);
  m.observeInstall(30, 'installed');
  m.observeInstall(2000, 'installed');
  m.observeInstall(5, 'rejected');
  text = await m.text();
  assert.equal(typeOf(text, 'doorstep_policy_install_seconds'), 'histogram');
  assert.equal(sample(text, 'doorstep_policy_install_seconds_count', { outcome: 'installed' }), 2);
  assert.equal(sample(text, 'doorstep_policy_install_seconds_sum', { outcome: 'installed' }), 2.03);
  assert.equal(sample(text, 'doorstep_policy_install_seconds_bucket', { outcome: 'installed', le: '0.05' }), 1);
  assert.equal(sample(text, 'doorstep_policy_installs_total', { outcome: 'installed' }), 2);
  assert.equal(sample(text, 'doorstep_policy_installs_total', { outcome: 'rejected' }), 1);
});

test('two agents keep separate registries', async () => {
  const a = new AgentMetrics(fakeSource());
  const b = new AgentMetrics(fakeSource({ sessionCount: () => 1 }));
  a.observeInstall(1, 'installed');
  assert.equal(sample(await a.text(), 'doorstep_sessions', {}), 12);
  const tb = await b.text();
  assert.equal(sample(tb, 'doorstep_sessions', {}), 1);
  assert.equal(sample(tb, 'doorstep_policy_installs_total', { outcome: 'installed' }), 0);
});

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serve() answers GET /metrics with the registry content type and 404 elsewhere', async () => {
  const m = new AgentMetrics(fakeSource());
  const server = await m.serve('127.0.0.1', 0);
  try {
    assert.equal(server.address, '127.0.0.1');
    assert.ok(server.port > 0);
    const ok = await get(server.port, '/metrics');
    assert.equal(ok.status, 200);
    assert.equal(ok.type, m.registry.contentType);
    assert.equal(sample(ok.body, 'doorstep_sessions', { enforcer: 'edge-1' }), 12);
    assert.equal((await get(server.port, '/metrics?x=1')).status, 200);
    assert.equal((await get(server.port, '/')).status, 404);
    assert.equal((await get(server.port, '/metrics/extra')).status, 404);
    assert.equal((await get(server.port, '/metrics', 'POST')).status, 405);
  } finally {
    await server.close();
  }
});

test('a scrape whose source fails answers 500 and the next scrape works', async () => {
  let fail = true;
  const m = new AgentMetrics(
    fakeSource({
      sessionCount: () => {
        if (fail) throw new Error('engine closed');
        return 3;
      },
    }),
  );
  const server = await m.serve('127.0.0.1', 0);
  try {
    const bad = await get(server.port, '/metrics');
    assert.equal(bad.status, 500);
    assert.match(bad.body, /engine closed/);
    fail = false;
    assert.equal(sample((await get(server.port, '/metrics')).body, 'doorstep_sessions', {}), 3);
  } finally {
    await server.close();
  }
});

test('a second serve() on a port in use rejects with DS_E_METRICS_LISTEN naming the address', async () => {
  const m = new AgentMetrics(fakeSource());
  const first = await m.serve('127.0.0.1', 0);
  try {
    await assert.rejects(m.serve('127.0.0.1', first.port), (err: unknown) => {
      assert.ok(err instanceof DoorstepError);
      assert.equal(err.code, 'DS_E_METRICS_LISTEN');
      assert.ok(err.message.includes(`127.0.0.1:${first.port}`), err.message);
      assert.match(err.message, /in use/);
      assert.match(err.hint ?? '', /another metrics port/);
      return true;
    });
    // the first listener still serves
    assert.equal((await get(first.port, '/metrics')).status, 200);
  } finally {
    await first.close();
  }
});

test('buffering audit destinations: published, buffered and dropped per sink', async () => {
  const without = await new AgentMetrics(fakeSource()).text();
  assert.equal(sample(without, 'doorstep_audit_records_buffered', { sink: 'nats:AUDIT' }), undefined, 'no NATS sink, no sample');
  const m = new AgentMetrics(fakeSource({ auditSinks: () => [{ sink: 'nats:AUDIT', published: 1500, buffered: 20, dropped: 3 }] }));
  const text = await m.text();
  assert.equal(typeOf(text, 'doorstep_audit_records_published_total'), 'counter');
  assert.equal(typeOf(text, 'doorstep_audit_records_buffered'), 'gauge');
  assert.equal(sample(text, 'doorstep_audit_records_published_total', { sink: 'nats:AUDIT' }), 1500);
  assert.equal(sample(text, 'doorstep_audit_records_buffered', { sink: 'nats:AUDIT' }), 20);
  assert.equal(sample(text, 'doorstep_audit_records_dropped_total', { sink: 'nats:AUDIT' }), 3);
});

test('the agent event-loop stalls and a session count that resolves later are exposed', async () => {
  const m = new AgentMetrics(
    fakeSource({ sessionCount: () => Promise.resolve(524_288), eventLoop: () => ({ maxStallMs: 37.5, maxStallSinceLastReadMs: 12 }) }),
  );
  const text = await m.text();
  assert.equal(typeOf(text, 'doorstep_agent_event_loop_stall_max_seconds'), 'gauge');
  assert.equal(sample(text, 'doorstep_agent_event_loop_stall_max_seconds', {}), 0.0375);
  assert.equal(sample(text, 'doorstep_agent_event_loop_stall_recent_max_seconds', {}), 0.012);
  assert.equal(sample(text, 'doorstep_sessions', {}), 524_288);
  assert.equal(sample(text, 'doorstep_summary_marks_lost_total', {}), fakeStats().counters.DIRTY_LOST);
});
