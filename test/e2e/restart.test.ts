// SPDX-License-Identifier: Apache-2.0
// Restarts as a service manager makes them (SIGTERM, wait for the exit, start again with the same
// config and state dir) under a bounded flood of allowed and denied datagrams: once with NATS up
// (the agent's audit goes to a NATS stream too) and once with NATS down. The oracle is what the
// receiving namespace got: no denied datagram at all, every allowed one in order; the engine's
// own rule counters show every denied datagram dropped at XDP (so the unenforced window is 0
// datagrams); the new agent's records say it adopted the engine and its policy. Then audit
// exactness: what the NATS sink could not deliver before a stop is kept in the state dir and
// sent by the next agent, so once NATS is back the stream holds exactly the records the local
// JSON file holds (the same bytes, none missing, none twice), but for the `spooled` records
// that are written after the NATS sink closed. Last, an agent killed with SIGKILL while NATS is
// down: its NATS sink's records were in its spool, and the next agent delivers every one of them
// once (the stream holds every line of the file, and what the killed file sink had not written).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { execIn } from '../../src/demo/topology.js';
import { packageRoot } from '../../src/paths.js';
import type { StatusReport } from '../../src/controller/routes.js';
import { type AgentProcess, AgentRig, sequenceRuns, twoPortPolicy } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const ALLOWED = 7101;
const DENIED = 7102;
const STREAM = 'RESTART_AUDIT';
/** Datagrams a second per flow, and the flood's length: bounded in count and time. */
const RATE = 400;
const SECONDS = 8;
/** Denied sessions made while NATS is down (one datagram each, from consecutive source ports). */
const SCATTER = 400;
const SCATTER_PORT = 21000;

const POLICY = twoPortPolicy(ALLOWED, DENIED);

describe('agent: SIGTERM restarts under traffic, with NATS up and down, and a SIGKILL; audit exact across them', { timeout: 240_000 }, () => {
  const rig = new AgentRig('dsr');
  let nats: NatsServer | undefined;
  const auditFile = join(rig.dir, 'audit.jsonl');
  const agents: AgentProcess[] = [];
  after(async () => {
    for (const a of agents) await a.terminate();
    await nats?.cleanup();
    rig.detach();
    rig.cleanup();
  });

  const start = (): AgentProcess => {
    // every denied session gets its record (no budget): the records the NATS outage holds back are many
    const a = rig.startAgent(['--audit', '-', '--audit', auditFile, '--audit', `${nats!.url}/${STREAM}`, '--summary-interval', '0', '--deny-event-budget', '0', '--deny-event-cap', '0']);
    agents.push(a);
    return a;
  };
  /** The local file's lines, but for the records about the spool itself (written once the NATS sink had closed). */
  const fileLines = () => readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '' && !/"event":"spooled"/.test(l));
  /** The audit stream's lines. */
  const streamLines = () => {
    const r = spawnSync('nsenter', [`--net=/run/netns/${rig.topo.server.ns}`, process.execPath, join(packageRoot, 'dist/test/lib/stream-tool.js'), nats!.url, STREAM], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '');
  };
  /** Denied sessions from `count` new source ports from `port` on (one datagram each). */
  const scatter = (port: number, count: number) =>
    execIn(rig.topo.client.ns, 'python3', ['-c', `import socket\nfor p in range(${port}, ${port + count}):\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n  s.bind(('0.0.0.0', p))\n  s.sendto(b'x', ('10.231.0.2', ${DENIED}))\n  s.close()`]);
  const deniedDrops = (): number => rig.cliJson<StatusReport>(['status']).rules[`web/deny-${DENIED}`]?.packets ?? 0;

  /** A flood through the enforcer, the agent restarted (SIGTERM) in the middle of it. */
  async function restartUnderTraffic(first: AgentProcess, t: { diagnostic: (s: string) => void }, label: string): Promise<AgentProcess> {
    const generation = (await first.waitFor((r) => r.type === 'policy' && r.status !== 'rejected', 'the policy')).generation;
    const dropsBefore = deniedDrops();
    const sinks = [await rig.sink(ALLOWED, 60), await rig.sink(DENIED, 60)] as const;
    const from = first.records.length;
    const streams = [rig.stream(ALLOWED, RATE, SECONDS), rig.stream(DENIED, RATE, SECONDS)] as const;
    // the flood is on: the agent saw both flows
    await first.waitFor((r) => r.type === 'session' && r.dport === DENIED, 'the denied flow', 10_000, from);
    await first.waitFor((r) => r.type === 'session' && r.dport === ALLOWED, 'the allowed flow', 10_000, from);
    const t0 = performance.now();
    assert.equal(await first.terminate(), 0, 'a clean stop');
    const stoppedMs = performance.now() - t0;
    const next = start();
    const attached = await next.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
    const adopted = await next.waitFor((r) => r.type === 'policy', 'the policy record');
    const upMs = performance.now() - t0;
    assert.equal(attached.adopted, true, 'the new agent adopted the attached engine');
    assert.deepEqual([adopted.status, adopted.generation], ['adopted', generation], 'and its policy: nothing reinstalled');
    const [sentAllowed, sentDenied] = [(await streams[0].done).sent, (await streams[1].done).sent];
    // the last datagrams are on their way: the allowed sink has them once it holds the last number
    const [gotAllowed, gotDenied] = [await sinks[0].stop(), await sinks[1].stop()];
    const dropped = deniedDrops() - dropsBefore;
    t.diagnostic(
      `${label}: stop took ${stoppedMs.toFixed(0)} ms, the next agent enforced its adopted policy ${upMs.toFixed(0)} ms after the SIGTERM; ` +
        `denied ${sentDenied} sent, ${gotDenied.length} delivered, ${dropped} dropped at XDP; allowed ${sentAllowed} sent, ${gotAllowed.length} delivered; unenforced window: ${sentDenied - Math.min(dropped, sentDenied)} datagrams`,
    );
    assert.ok(sentDenied >= RATE && sentAllowed >= RATE, 'the flood ran');
    assert.equal(gotDenied.length, 0, `none of ${sentDenied} denied datagrams arrived`);
    assert.ok(dropped >= sentDenied, `every denied datagram was dropped at XDP (${dropped} of ${sentDenied}): the unenforced window is 0`);
    assert.deepEqual(sequenceRuns(gotAllowed), [[0, sentAllowed - 1]], 'every allowed datagram arrived, across the restart');
    assert.equal(gotAllowed.length, sentAllowed, 'each once');
    return next;
  }

  it('NATS up: no denied datagram passes, the next agent adopts, the stream gets every record of the stopped agent', async (t) => {
    execIn(rig.topo.server.ns, 'ip', ['link', 'set', 'lo', 'up']);
    nats = await NatsServer.startIn(rig.topo.server.ns, '127.0.0.1');
    rig.writePolicy('web.yaml', POLICY);
    const first = start();
    const next = await restartUnderTraffic(first, t, 'NATS up');
    assert.equal(first.records.filter((r) => r.event === 'spooled').length, 0, 'NATS took everything at the stop: nothing kept');
    agents.push(next);
  });

  it('NATS down: the same, and what the stream could not get is kept in the state dir, then delivered exactly once', async (t) => {
    const first = agents.at(-1)!;
    await nats!.stop();
    await first.waitFor((r) => r.type === 'agent' && r.event === 'error' && /nats:/.test(String(r.message)), 'the NATS sink noticing the outage');
    // SCATTER new denied sessions (one datagram from each of as many source ports) while NATS is away
    const from = first.records.length;
    scatter(SCATTER_PORT, SCATTER);
    const scattered = (r: { type: string; sport?: unknown }) => r.type === 'session' && (r.sport as number) >= SCATTER_PORT && (r.sport as number) < SCATTER_PORT + SCATTER;
    await first.waitFor(() => first.records.slice(from).filter(scattered).length >= SCATTER, `${SCATTER} session records`);
    const second = await restartUnderTraffic(first, t, 'NATS down');
    const kept = first.records.find((r) => r.type === 'agent' && r.event === 'spooled');
    assert.ok(kept && (kept.count as number) > SCATTER, `the stopped agent kept its undelivered records (${kept?.count})`);
    const taken = await second.waitFor((r) => r.type === 'agent' && r.event === 'unspooled', 'the next agent taking them over');
    assert.equal(taken.count, kept.count, 'all of them');

    // a second stop while NATS is still away: the kept records and the new ones are kept again
    assert.equal(await second.terminate(), 0);
    const keptAgain = second.records.find((r) => r.type === 'agent' && r.event === 'spooled');
    assert.ok((keptAgain?.count as number) > (kept.count as number));
    await nats!.start();
    const third = start();
    await third.waitFor((r) => r.type === 'agent' && r.event === 'unspooled' && r.count === keptAgain?.count, 'the third agent taking them over');

    // NATS is up: the third agent's stop delivers everything, its own records included, and keeps nothing
    assert.equal(await third.terminate(), 0);
    assert.equal(third.records.filter((r) => r.event === 'spooled').length, 0, 'nothing left to keep');

    // the oracle: the local file, every line, but for the records about the spool itself (written
    // once the NATS sink had closed)
    const [file, stream] = [fileLines(), streamLines()];
    t.diagnostic(`audit: ${file.length} records in the file (first agent kept ${kept.count}, second ${keptAgain?.count}); ${stream.length} in the stream`);
    assert.equal(file.filter((l) => /"type":"lost"/.test(l)).length, 0, 'nothing reported lost');
    assert.deepEqual([...stream].sort(), [...file].sort(), 'the stream holds exactly the file\'s records: none lost, none twice');
  });

  it('NATS down, SIGKILL: the killed agent\'s records are in its spool, and the next agent delivers each once', async (t) => {
    // NATS is up and no agent runs (the test before ended so)
    const first = start();
    await first.waitFor((r) => r.type === 'policy', 'the policy');
    await nats!.stop();
    await first.waitFor((r) => r.type === 'agent' && r.event === 'error' && /nats:/.test(String(r.message)), 'the NATS sink noticing the outage');
    const from = first.records.length;
    const port = SCATTER_PORT + SCATTER; // new sessions: the earlier ones are cached
    scatter(port, SCATTER);
    const ours = (r: { type: string; sport?: unknown }) => r.type === 'session' && (r.sport as number) >= port && (r.sport as number) < port + SCATTER;
    await first.waitFor(() => first.records.slice(from).filter(ours).length >= SCATTER, `${SCATTER} session records`);
    await first.terminate('SIGKILL');
    await nats!.start();
    const next = start();
    const taken = await next.waitFor((r) => r.type === 'agent' && r.event === 'unspooled', 'the next agent taking over the killed one\'s spool');
    assert.ok((taken.count as number) >= SCATTER, `the killed agent's undelivered records were in its spool (${taken.count})`);
    assert.equal(await next.terminate(), 0);
    assert.equal(next.records.filter((r) => r.event === 'spooled').length, 0, 'NATS took everything at the stop');

    // the oracle: every line of the file is in the stream as often as in the file; the stream may
    // hold more: what the killed agent's file sink had not yet written (its last slab), each once
    const count = (lines: string[]) => lines.reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());
    const [file, stream] = [count(fileLines()), count(streamLines())];
    for (const [line, n] of file) assert.equal(stream.get(line), n, `in the stream as often as in the file: ${line}`);
    const extra = [...stream].filter(([line]) => !file.has(line));
    assert.deepEqual(extra.filter(([, n]) => n > 1), [], 'none twice');
    assert.ok(extra.every(([line]) => !/"type":"lost"/.test(line)), 'nothing reported lost (no write torn)');
    t.diagnostic(`SIGKILL: ${taken.count} records taken over from the spool; the stream has ${extra.length} records the killed agent's file had not got`);
  });
});
