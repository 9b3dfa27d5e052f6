// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet observe` against a real JetStream stream filled by two enforcers' audit sinks:
// the last N records in stream order, per enforcer, filtered, since a time, followed; and the
// errors for a missing stream and an unreachable server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import type { AuditRecord, SessionRecord } from '../../src/audit/records.js';
import { fleetObserve, type FleetObserveOptions } from '../../src/cli/fleet-observe.js';
import { recordLine } from '../../src/cli/observe.js';
import { DoorstepError } from '../../src/errors.js';
import { NatsServer } from '../lib/nats-server.js';
import { until } from '../lib/until.js';

const STREAM = 'AUDIT_FLEET';
const E1 = 'edge-1.example.com';
const E2 = 'edge-2';

let counter = 0;
function session(enforcer: string, verdict: 'allow' | 'deny', time = new Date()): SessionRecord {
  const i = counter++;
  return {
    time: time.toISOString(),
    type: 'session',
    event: 'new',
    enforcer,
    interface: 'eth1',
    verdict,
    reason: 'policy',
    protocol: i % 5 === 0 ? 'udp' : 'tcp',
    src: `198.18.${(i >> 8) & 255}.${i & 255}`,
    dst: '10.20.3.7',
    sport: 40000 + i,
    dport: verdict === 'deny' ? 22 : 443,
    rule: verdict === 'deny' ? 'web-tier/default' : 'web-tier/https',
    policy: 'web-tier',
    generation: 2,
    cpu: 0,
    seq: i,
  };
}

/** Runs fleetObserve and returns its output lines. */
async function observe(o: Omit<FleetObserveOptions, 'write' | 'output'> & { output?: 'table' | 'json' }): Promise<string[]> {
  let text = '';
  const code = await fleetObserve({ output: 'json', ...o, write: (t) => (text += t) });
  assert.equal(code, 0);
  return text.split('\n').filter((l) => l !== '');
}

const parse = (lines: readonly string[]) => lines.map((l) => JSON.parse(l) as AuditRecord);

describe('doorstep fleet observe', () => {
  let server: NatsServer;
  let reader: NatsConnection;
  const conns: NatsConnection[] = [];
  const sinks: NatsAuditSink[] = [];
  /** Every stored line, in stream order. */
  let all: string[] = [];
  let url = '';
  let between = '';

  async function storedLines(): Promise<string[]> {
    const jsm = await jetstreamManager(reader);
    const info = await jsm.streams.info(STREAM);
    const out: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAM, { seq });
      if (m) out.push(...Buffer.from(m.data).toString('latin1').split('\n').filter((l) => l !== ''));
    }
    return out;
  }

  function sinkFor(enforcer: string): NatsAuditSink {
    const s = new NatsAuditSink({ connection: async () => { const nc = await connect({ servers: server.url }); conns.push(nc); return nc; }, stream: STREAM, enforcer, maxRecordsPerMessage: 10 });
    sinks.push(s);
    return s;
  }

  before(async () => {
    server = await NatsServer.start();
    url = `${server.url}/${STREAM}`;
    reader = await connect({ servers: server.url });
    const s1 = sinkFor(E1);
    const s2 = sinkFor(E2);
    // phase 1: many small messages from both, interleaved
    for (let round = 0; round < 30; round++) {
      s1.write(Array.from({ length: 10 }, (_, i) => session(E1, (round + i) % 4 === 0 ? 'deny' : 'allow')));
      s2.write(Array.from({ length: 7 }, (_, i) => session(E2, (round + i) % 3 === 0 ? 'deny' : 'allow')));
      if (round === 10) s1.write([{ time: new Date().toISOString(), type: 'agent', enforcer: E1, interface: '*', event: 'serving' }]);
      if (round === 20) s1.write([{ time: new Date().toISOString(), type: 'lost', enforcer: E1, interface: '*', cause: 'sink', sink: `nats:${STREAM}`, count: 4 }]);
      assert.equal(await s1.flush(10_000), true);
      assert.equal(await s2.flush(10_000), true);
    }
    // `between`: a millisecond past the last stored message (its records were made before it was
    // stored), and phase 2 starts once the clock has passed it
    const lastStored = Date.parse((await (await jetstreamManager(reader)).streams.info(STREAM)).state.last_ts);
    between = new Date(lastStored + 1).toISOString();
    await until(() => Date.now() > lastStored + 1, 'the clock past the last stored message');
    // phase 2: a few more, after `between`
    s2.write([session(E2, 'deny'), session(E2, 'allow')]);
    s1.write([session(E1, 'deny')]);
    assert.equal(await s1.flush(10_000), true);
    assert.equal(await s2.flush(10_000), true);
    all = await storedLines();
    assert.equal(all.length, 30 * 17 + 2 + 3);
  });

  after(async () => {
    await Promise.allSettled(sinks.map((s) => s.close()));
    await Promise.allSettled([reader, ...conns].map((c) => c?.close()));
    await server?.cleanup();
  });

  it('prints the last 100 stored records by default, oldest first, as stored', async () => {
    const got = await observe({ nats: url });
    assert.deepEqual(got, all.slice(-100));
  });

  it('--last N and --enforcer select in stream order', async () => {
    assert.deepEqual(await observe({ nats: url, last: '5' }), all.slice(-5));
    assert.deepEqual(await observe({ nats: url, last: '1000' }), all, 'more than stored: everything');
    const e2 = all.filter((l) => (JSON.parse(l) as AuditRecord).enforcer === E2);
    assert.deepEqual(await observe({ nats: url, enforcer: [E2], last: '50' }), e2.slice(-50));
    assert.deepEqual(await observe({ nats: url, enforcer: [E2], last: '0' }), []);
    // two enforcers: nats-server 2.9 takes one filter subject, the rest is checked here
    assert.deepEqual(await observe({ nats: url, enforcer: [E1, E2], last: '400' }), all.slice(-400));
    assert.deepEqual(await observe({ nats: url, enforcer: ['edge-9'] }), []);
  });

  it('--verdict keeps matching flows and lost records, never agent records', async () => {
    const want = all.filter((l) => {
      const r = JSON.parse(l) as AuditRecord;
      return r.enforcer === E1 && ((r.type === 'session' && r.verdict === 'deny') || r.type === 'lost');
    });
    const got = await observe({ nats: url, enforcer: [E1], verdict: 'deny', last: '30' });
    assert.deepEqual(got, want.slice(-30));
    assert.ok(parse(got).some((r) => r.type === 'lost'), 'the lost record is among them');
    assert.ok(parse(got).every((r) => r.enforcer === E1 && r.type !== 'agent'));
    const udpDeny = await observe({ nats: url, verdict: 'deny', protocol: 'udp', port: '22', last: '1000' });
    assert.deepEqual(udpDeny, all.filter((l) => {
      const r = JSON.parse(l) as AuditRecord;
      return r.type === 'lost' || (r.type === 'session' && r.verdict === 'deny' && r.protocol === 'udp' && r.dport === 22);
    }));
  });

  it('--since starts at that time and prints every record since', async () => {
    const got = await observe({ nats: url, since: between });
    assert.equal(got.length, 3, 'the three records written after it');
    assert.deepEqual(got, all.filter((l) => (JSON.parse(l) as AuditRecord).time >= between));
    assert.equal((await observe({ nats: url, since: between, last: '1' })).length, 1);
    assert.deepEqual(await observe({ nats: url, since: '1h', enforcer: [E2], last: '3' }), all.filter((l) => l.includes(`"enforcer":"${E2}"`)).slice(-3));
  });

  it('table lines: the enforcer, then the observe line', async () => {
    const got = await observe({ nats: url, last: '3', output: 'table' });
    const want = parse(all.slice(-3));
    const width = Math.max(...want.map((r) => r.enforcer.length));
    assert.deepEqual(got, want.map((r) => `${r.enforcer.padEnd(width)}  ${recordLine(r)}`));
  });

  it('--follow prints the last N, then new records until stopped', async () => {
    const stop = new AbortController();
    let text = '';
    const running = fleetObserve({ nats: url, output: 'json', follow: true, last: '2', enforcer: [E2], signal: stop.signal, write: (t) => (text += t) });
    const e2 = all.filter((l) => l.includes(`"enforcer":"${E2}"`));
    const printed = () => text.split('\n').filter(Boolean);
    await until(() => printed().length >= 2, 'the last 2 records');
    const s1 = sinks[0]!;
    const s2 = sinks[1]!;
    const fresh = [session(E2, 'allow'), session(E2, 'deny')];
    s1.write([session(E1, 'allow')]); // not selected, and stored before the fresh ones
    assert.equal(await s1.flush(10_000), true);
    s2.write(fresh);
    // the stream is read in order: once the last fresh record is out, the one not selected was passed over
    await until(() => printed().some((l) => (JSON.parse(l) as SessionRecord).seq === fresh[1]!.seq), 'the fresh records');
    stop.abort();
    assert.equal(await running, 0);
    const lines = printed();
    assert.equal(lines.length, 4, 'the last 2, then the 2 fresh ones, nothing else');
    assert.deepEqual(lines.slice(0, 2), e2.slice(-2));
    assert.deepEqual(parse(lines.slice(2)).map((r) => (r as SessionRecord).seq), fresh.map((r) => r.seq));
  });

  it('as a command: repeatable --enforcer, filters, -o json, exit codes', async () => {
    // a real process: commander parses the flags, the action prints to stdout and sets the exit code
    const module = fileURLToPath(new URL('../../src/cli/fleet-observe.js', import.meta.url));
    const script = `
      import { Command } from 'commander';
      import { registerFleetObserve } from ${JSON.stringify(module)};
      const program = new Command('doorstep').exitOverride();
      registerFleetObserve(program.command('fleet'));
      await program.parseAsync(process.argv.slice(1), { from: 'user' });`;
    const run = (...args: string[]) => spawnSync(process.execPath, ['--input-type=module', '-e', script, ...args], { cwd: process.cwd(), encoding: 'utf8', timeout: 30_000 });
    const ok = run('fleet', 'observe', '--nats', url, '--enforcer', E1, '--enforcer', E2, '--verdict', 'allow', '--last', '4', '-o', 'json');
    assert.equal(ok.status, 0, ok.stderr);
    const now = await storedLines(); // the follow test added records
    const want = now.filter((l) => (JSON.parse(l) as AuditRecord).type === 'lost' || l.includes('"verdict":"allow"')).slice(-4);
    assert.deepEqual(ok.stdout.split('\n').filter(Boolean), want);
    const missing = run('fleet', 'observe', '--nats', `${server.url}/NO_SUCH_STREAM`);
    assert.equal(missing.status, 6, 'exit code 6: fleet');
    assert.match(missing.stderr, /^doorstep: DS_E_NATS: the audit stream NO_SUCH_STREAM does not exist — start an agent with --audit nats:/);
    const usage = run('fleet', 'observe', '--nats', url, '--last', 'x');
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /DS_E_USAGE: --last "x"/);
  });

  it('errors: a missing stream, an unreachable server, a bad --last', async () => {
    await assert.rejects(fleetObserve({ nats: `${server.url}/NO_SUCH_STREAM`, output: 'json', write: () => undefined }), (err: unknown) => {
      assert.ok(err instanceof DoorstepError);
      assert.equal(err.code, 'DS_E_NATS');
      assert.match(err.message, /the audit stream NO_SUCH_STREAM does not exist/);
      assert.match(err.hint ?? '', /--audit nats:\/\/HOST:PORT\/STREAM/);
      return true;
    });
    await assert.rejects(fleetObserve({ nats: 'nats://127.0.0.1:1/X', output: 'json', write: () => undefined }), (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_NATS_UNREACHABLE');
    await assert.rejects(fleetObserve({ nats: url, last: 'ten', output: 'json', write: () => undefined }), (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_USAGE');
    await assert.rejects(fleetObserve({ nats: `${server.url}/bad.name`, output: 'json', write: () => undefined }), (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_USAGE');
  });
});
