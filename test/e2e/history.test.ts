// SPDX-License-Identifier: Apache-2.0
// The flow history end to end: an agent with --history enforcing real traffic in namespaces, read
// back by `doorstep report` and replayed by `doorstep diff --history`, the figures checked against
// what the senders sent; an agent whose history cannot be opened enforces all the same, says so
// in a record and a metric, and `report` says why; and the fleet's audit stream (records published
// by the real NATS sink) read by `fleet report --nats` and `diff --history --nats`; a history
// whose disk fills up (a 2 MiB tmpfs) becomes no history, its loss counted exactly.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import { HistorySink } from '../../src/history/sink.js';
import { execIn } from '../../src/demo/topology.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import type { HistoryReport } from '../../src/history/queries.js';
import type { HistoryDiff } from '../../src/history/replay.js';
import { AgentRig, type Rec, twoPortPolicy } from '../lib/agent-rig.js';
import { KNOWN_POLICY, knownTraffic, MINUTE_MS } from '../lib/history-traffic.js';
import { NatsServer } from '../lib/nats-server.js';

const ALLOWED = 7101;
const DENIED = 7102;

const policy = (open: number, shut: number) => twoPortPolicy(open, shut, '    - { name: dns, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [53] }\n');

/** Poll `what` until `done` holds of it (the history takes rows every 5 s), at most `ms`. */
async function until<T>(what: () => T, done: (v: T) => boolean, ms: number, label: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = what();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`${label}: still ${JSON.stringify(v)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('history: an agent with --history', () => {
  const rig = new AgentRig('dsh');
  let agent: ReturnType<AgentRig['startAgent']>;
  let sent: number[] = [];
  after(async () => {
    await agent?.terminate();
    rig.cleanup();
  });

  it('records real traffic, and `report` gives its exact figures', async () => {
    rig.writePolicy('web.yaml', policy(ALLOWED, DENIED));
    agent = rig.startAgent(['--history', join(rig.dir, 'flows.duckdb'), '--summary-interval', '1s']);
    await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
    const sink = await rig.sink(ALLOWED, 30);
    const streams = [rig.stream(ALLOWED, 200, 0.5), rig.stream(DENIED, 100, 0.5)];
    sent = (await Promise.all(streams.map((s) => s.done))).map((r) => r.sent);
    const summarized = (port: number) => agent.records.filter((r: Rec) => r.type === 'summary' && r.dport === port).reduce((n, r) => n + (r.packets as number), 0);
    await agent.waitFor(() => summarized(ALLOWED) === sent[0] && summarized(DENIED) === sent[1], 'summaries of both streams', 15_000);
    assert.equal((await sink.stop()).length, sent[0]);

    // the namespace's own chatter (IPv6 router solicitations, MLD) meets the default deny too, with
    // summaries of its own: each stream's packets are read from its rule's trend
    const packetsOf = (x: HistoryReport, rule: string) => x.ruleTrends.find((t) => t.rule === rule)?.packets.reduce((n, p) => n + p, 0) ?? 0;
    const r = await until(
      () => rig.cliJson<HistoryReport>(['report', '--since', '1h']),
      (x) => packetsOf(x, `web/allow-${ALLOWED}`) === sent[0] && packetsOf(x, `web/deny-${DENIED}`) === sent[1],
      20_000,
      'the history holds every summarized packet of both streams',
    );
    // (the chatter goes on while the report is read: the totals hold at least the streams)
    assert.equal(r.totals.allowSessions, 1, 'one allowed session: the allowed stream');
    assert.equal(r.totals.heldBack, 0);
    assert.ok(r.totals.denySessions >= 1 && r.totals.packets >= sent[0]! + sent[1]! && r.totals.bytes > 0, JSON.stringify(r.totals));
    const client = rig.topo.client.v4;
    assert.deepEqual(r.topDeniedSources.find((x) => x.source === client), { source: client, sessions: 1, packets: sent[1] });
    assert.deepEqual(r.topDeniedPorts.find((x) => x.port === DENIED), { protocol: 17, port: DENIED, sessions: 1 });
    assert.deepEqual(r.topDeniedRules.find((x) => x.rule === `web/deny-${DENIED}`), { rule: `web/deny-${DENIED}`, sessions: 1, heldBack: 0 });
    assert.ok(r.quietRules.includes('web/dns') && !r.quietRules.some((q) => /allow-|deny-/.test(q)), JSON.stringify(r.quietRules));
    assert.deepEqual(r.newTalkers.find((t) => t.source === client)?.verdicts, 'allow,deny');
    const table = rig.cli(['report', '--since', '1h']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /rules with no hits since .*: web\/dns/);
  });

  it('`diff --history` replays the recorded flows through a candidate: both flows flip', () => {
    const candidate = join(rig.dir, 'candidate.yaml');
    writeFileSync(candidate, policy(DENIED, ALLOWED));
    const d = rig.cliJson<HistoryDiff & { window: string }>(['diff', '--history', '1h', candidate]);
    // the two streams' flows flip; the namespace's chatter stays denied by the default
    assert.deepEqual(
      d.groups.filter((g) => g.was !== 'web/default').map((g) => [g.verdict, g.rule, g.was, g.flows, g.sessions]).sort(),
      [
        ['allow', `web/allow-${DENIED}`, `web/deny-${DENIED}`, 1, 1],
        ['deny', `web/deny-${ALLOWED}`, `web/allow-${ALLOWED}`, 1, 1],
      ],
    );
    const same = rig.cliJson<HistoryDiff>(['diff', '--history', '1h', join(rig.policyDir, 'web.yaml')]);
    assert.equal(same.flippedFlows, 0, 'the policy in force flips nothing');
  });
});

describe('history: one that cannot be opened', () => {
  const rig = new AgentRig('dsn');
  let agent: ReturnType<AgentRig['startAgent']>;
  after(async () => {
    await agent?.terminate();
    rig.cleanup();
  });

  it('is no history: a record, a metric, a clear `report` error, and enforcement as ever', async () => {
    rig.writePolicy('web.yaml', policy(ALLOWED, DENIED));
    agent = rig.startAgent(['--history', join(rig.dir, 'no-such-folder', 'flows.duckdb'), '--metrics', '127.0.0.1:0']);
    await agent.waitFor((r) => r.type === 'agent' && r.event === 'warning' && /no flow history: DS_E_HISTORY/.test(String(r.message)), 'the no-history record');
    await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
    const serving = await agent.waitFor((r) => r.type === 'agent' && r.event === 'serving', 'the metrics address');
    const url = /http:\/\/\S+\/metrics/.exec(String(serving.message))![0];
    const metrics = execIn(rig.topo.server.ns, process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
    assert.match(metrics, /^doorstep_history_available\{enforcer="test"\} 0$/m);
    const sinks = [await rig.sink(ALLOWED, 30), await rig.sink(DENIED, 30)];
    const streams = [rig.stream(ALLOWED, 100, 0.3), rig.stream(DENIED, 100, 0.3)];
    const sent = (await Promise.all(streams.map((s) => s.done))).map((r) => r.sent);
    await agent.waitFor((r) => r.type === 'session' && r.dport === DENIED, 'the denied session');
    const got = await Promise.all(sinks.map((s) => s.stop()));
    assert.deepEqual(got.map((g) => g.length), [sent[0], 0]);
    const report = rig.cli(['report']);
    assert.equal(report.code, 5, report.stderr);
    assert.match(report.stderr, /DS_E_HISTORY: cannot open the flow history at .*no-such-folder/);
    // what the history could not take is counted like any sink's loss, exactly: every session,
    // summary, flood and policy record of the JSON trail
    const owed = () => agent.records.filter((x: Rec) => ['session', 'summary', 'flood', 'policy'].includes(String(x.type))).length;
    const reported = () => agent.records.filter((x: Rec) => x.type === 'lost' && x.sink === 'history').reduce((n, x) => n + (x.count as number), 0);
    await agent.waitFor(() => reported() === owed() && owed() >= 2, 'lost records for every record the history could not take', 10_000);
  });
});

describe('history: the fleet stream', () => {
  let server: NatsServer | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-fleet-history-'));
  after(async () => {
    await server?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('`fleet report --nats` and `diff --history --nats` read what the NATS sink published', async () => {
    server = await NatsServer.start();
    const url = `${server.url}/DS_HISTORY_TEST`;
    const nc = await connectNats(parseNatsUrl(url, 'STREAM'), {}, { name: 'test-publisher' });
    // 90 minutes of known traffic ending now, published by the real sink
    const t0 = Date.now() - 95 * MINUTE_MS;
    const records = knownTraffic(t0);
    const sink = new NatsAuditSink({ connection: async () => nc, stream: 'DS_HISTORY_TEST', enforcer: 'e1' });
    sink.write(records);
    await sink.close();
    await nc.close();
    const policyFile = join(dir, 'p.yaml');
    writeFileSync(policyFile, KNOWN_POLICY);

    const main = join(import.meta.dirname, '../../src/cli/main.js');
    const cli = (args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });
    const r = cli(['fleet', 'report', '--nats', url, '--since', '2h', '--policy', policyFile, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as HistoryReport;
    const sessions = records.filter((x) => x.type === 'session');
    assert.equal(rep.totals.allowSessions + rep.totals.denySessions, sessions.length);
    assert.equal(rep.totals.denySessions, sessions.filter((x) => x.verdict === 'deny').length);
    assert.equal(rep.totals.heldBack, 12_000);
    assert.deepEqual(rep.quietRules, ['p/never', 'p/default']);

    const candidate = join(dir, 'c.yaml');
    writeFileSync(candidate, KNOWN_POLICY.replace('ports: [80, 443]', 'ports: [443]'));
    const d = cli(['diff', '--history', '2h', '--nats', url, candidate, '-o', 'json']);
    assert.equal(d.status, 0, d.stderr);
    const diff = JSON.parse(d.stdout) as HistoryDiff;
    const port80 = sessions.filter((x) => x.type === 'session' && x.dport === 80);
    assert.equal(diff.flippedSessions, port80.length);
    assert.deepEqual([...new Set(diff.groups.map((g) => `${g.verdict} ${g.rule} was ${g.was}`))], ['deny p/default was p/web']);
  });
});

describe('history: a disk that fills up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-history-full-'));
  let mounted = false;
  after(() => {
    if (mounted) spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('turns into no history: one DS_E_HISTORY error, every record it could not store counted, none twice', async () => {
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]).status, 0);
    mounted = true;
    const errors: string[] = [];
    const sink = await HistorySink.open({ path: join(dir, 'flows.duckdb'), flushMs: 1e9, onError: (e) => errors.push(e.code) });
    assert.equal(sink.available, true);
    let given = 0;
    // distinct flows until a flush fails (2 MiB hold far fewer than 400,000 rows)
    for (let round = 0; round < 20 && sink.available; round++) {
      const records = knownTraffic(Date.now() - 95 * MINUTE_MS).map((r, i) => ({ ...r, src: `10.${round}.${(i >> 8) & 255}.${i & 255}` }) as typeof r);
      for (let k = 0; k < 30 && sink.available; k++) {
        const batch = records.map((r) => ({ ...r, dst: `10.200.${round}.${k}` }) as typeof r);
        sink.write(batch);
        given += batch.length;
        await sink.flush();
      }
    }
    assert.equal(sink.available, false, 'the disk never filled');
    assert.deepEqual(errors, ['DS_E_HISTORY']);
    assert.equal(sink.stored + sink.dropped, given, 'every record stored or counted as dropped');
    sink.write(knownTraffic(Date.now()));
    assert.equal(sink.stored + sink.dropped, given + knownTraffic(Date.now()).length, 'afterwards, every record is counted as dropped');
    await sink.close();
  });
});
