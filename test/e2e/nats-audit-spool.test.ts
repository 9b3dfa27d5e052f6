// SPDX-License-Identifier: Apache-2.0
// The NATS audit sink's write-ahead spool against a real JetStream server and real kills: a sink in
// a child process (test/lib/nats-spool-child.ts) writes numbered session records, with NATS down
// or up, and is killed with SIGKILL; the next sink on its spool folder, with NATS up, sends what no
// ack covered. Every record reaches the stream exactly once (the stream's records are counted and
// their numbers checked against what the child produced), and a write torn by a kill leaves a
// `lost` record with its exact count.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import type { AuditRecord, LostRecord } from '../../src/audit/records.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { NatsServer } from '../lib/nats-server.js';
import { until } from '../lib/until.js';

const CHILD = fileURLToPath(new URL('../lib/nats-spool-child.js', import.meta.url));

/** A sink in a child process; `wrote` is the count of records its last finished write() held. */
class SinkChild {
  wrote = 0;
  done = false;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private out = '';

  constructor(url: string, stream: string, spoolDir: string, total: number, batch: number) {
    this.child = spawn(process.execPath, [CHILD, url, stream, spoolDir, String(total), String(batch)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString();
      const lines = this.out.split('\n');
      this.out = lines.pop()!;
      for (const l of lines) {
        const [what, n] = l.split(' ');
        this.wrote = Number(n);
        if (what === 'done') this.done = true;
      }
    });
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Every record in `stream`, in order. */
async function streamRecords(nc: NatsConnection, stream: string): Promise<AuditRecord[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: AuditRecord[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    for (const l of Buffer.from(m!.data).toString('latin1').split('\n')) if (l) out.push(JSON.parse(l) as AuditRecord);
  }
  return out;
}

/** The session records' numbers must be exactly 0…n-1, each once. */
function assertExactlyOnce(records: readonly AuditRecord[], n: number): void {
  const seqs = records.flatMap((r) => (r.type === 'session' ? [r.seq] : []));
  const seen = new Set(seqs);
  assert.equal(seen.size, seqs.length, `no record twice (${seqs.length - seen.size} duplicates)`);
  assert.equal(seqs.length, n, `the stream holds ${seqs.length} records of the ${n} produced`);
  for (let i = 0; i < n; i++) if (!seen.has(i)) assert.fail(`record ${i} is missing`);
}

describe('NATS audit sink: the write-ahead spool across SIGKILL', () => {
  const root = mkdtempSync(join(tmpdir(), 'doorstep-spool-e2e-'));
  const servers: NatsServer[] = [];
  const children: SinkChild[] = [];
  const sinks: NatsAuditSink[] = [];
  const conns: NatsConnection[] = [];
  after(async () => {
    await Promise.allSettled(children.map((c) => c.kill()));
    await Promise.allSettled(sinks.map((s) => s.close()));
    await Promise.allSettled(conns.map((c) => c.close()));
    await Promise.allSettled(servers.map((s) => s.cleanup()));
    rmSync(root, { recursive: true, force: true });
  });

  const unique = () => `SPOOL_${randomBytes(4).toString('hex').toUpperCase()}`;
  async function server(running: boolean): Promise<NatsServer> {
    const s = await NatsServer.start();
    servers.push(s);
    if (!running) await s.stop(); // its port is known: the child waits for it
    return s;
  }
  function child(s: NatsServer, stream: string, dir: string, total: number, batch: number): SinkChild {
    const c = new SinkChild(s.url, stream, dir, total, batch);
    children.push(c);
    return c;
  }
  /** The next sink on the spool, NATS up: resolves once it delivered everything it holds. */
  async function nextSink(s: NatsServer, stream: string, dir: string, pipeline = false): Promise<NatsAuditSink> {
    const sink = new NatsAuditSink({
      connection: () => connectNats(parseNatsUrl(`${s.url}/${stream}`, 'STREAM'), {}, { name: 'spool-next', background: true }).then((nc) => (conns.push(nc), nc)),
      stream,
      enforcer: 'edge-1',
      spoolDir: dir,
      maxBufferedRecords: 1_000_000,
    });
    sinks.push(sink);
    if (pipeline) {
      // the agent's path: what the sink counts as dropped becomes a `lost` record, sent to the sink
      const p = new AuditPipeline({ context: { enforcer: 'edge-1', interfaces: new Map(), policies: new Map() }, sinks: [sink], summaryIntervalMs: 0 });
      p.checkKernelLost({ eventSeq: [], counters: { EVENTS_LOST: 0 } });
    }
    assert.equal(await sink.flush(60_000), true, 'the next sink delivers what the spool held');
    return sink;
  }
  /** NATS down: a child writes `total` records, in writes of `batch`, and is killed after the last. */
  async function killedAfterWriting(name: string, total: number, batch: number): Promise<{ s: NatsServer; stream: string; dir: string }> {
    const s = await server(false);
    const stream = unique();
    const dir = join(root, name);
    const c = child(s, stream, dir, total, batch);
    await until(() => c.done, `the child writing ${total} records`, 60_000);
    await c.kill();
    return { s, stream, dir };
  }
  async function reader(s: NatsServer): Promise<NatsConnection> {
    const nc = await connect({ servers: s.url });
    conns.push(nc);
    return nc;
  }

  it('NATS down, killed after its last write: the next sink delivers every record exactly once', async () => {
    const { s, stream, dir } = await killedAfterWriting('down', 20_000, 250);
    await s.start();
    const next = await nextSink(s, stream, dir);
    assert.deepEqual([next.stats().unspooled, next.torn], [20_000, 0]);
    assertExactlyOnce(await streamRecords(await reader(s), stream), 20_000);
    await next.close();
    assert.deepEqual([next.stats().spooled, readdirSync(dir).filter((f) => f.endsWith('.spool'))], [0, []], 'everything acknowledged: a stop leaves no spool');
  });

  it('NATS up, killed while it publishes: what was stored is not stored again, the rest is, once', async (t) => {
    const s = await server(true);
    const stream = unique();
    const dir = join(root, 'up');
    const nc = await reader(s);
    const c = child(s, stream, dir, 0, 100); // writes until it is killed
    // killed once the stream has taken some of its messages: others are in flight, most still queued
    await until(async () => {
      try {
        return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages >= 3;
      } catch {
        return false; // the stream is not made yet
      }
    }, 'the first messages stored', 60_000);
    await c.kill();
    const wrote = c.wrote;
    const next = await nextSink(s, stream, dir);
    const records = await streamRecords(nc, stream);
    const produced = records.filter((r) => r.type === 'session').length + next.torn;
    // the write in progress at the kill is in the spool whole, or not at all, or torn (counted)
    assert.ok(produced === wrote || produced === wrote + 100, `produced ${produced}: the ${wrote} written before the last "wrote" line, or one write more`);
    assertExactlyOnce(records, produced - next.torn);
    t.diagnostic(`killed after ${wrote} records; the next sink took over ${next.stats().unspooled} and JetStream dropped ${next.stats().duplicates} messages it had stored already`);
  });

  it('a write torn by the kill: the whole records before the cut are delivered, the rest is one `lost` record with the exact count', async () => {
    const { s, stream, dir } = await killedAfterWriting('torn', 10_000, 100);
    // as if the kill had come inside the last write(2): cut in the middle of its 41st record
    const last = join(dir, readdirSync(dir).filter((f) => f.endsWith('.spool')).sort((a, b) => parseInt(a) - parseInt(b)).at(-1)!);
    const lines = readFileSync(last, 'latin1').split('\n');
    const header = lines.map((l) => l.startsWith('b ')).lastIndexOf(true);
    truncateSync(last, lines.slice(0, header + 1 + 40).join('\n').length + 1 + 17);
    await s.start();
    const next = await nextSink(s, stream, dir, true);
    assert.deepEqual([next.stats().unspooled, next.torn, next.dropped], [9_940, 60, 60]);
    const records = await streamRecords(await reader(s), stream);
    assertExactlyOnce(records, 9_940);
    const lost = records.filter((r): r is LostRecord => r.type === 'lost');
    assert.deepEqual(lost.map((r) => [r.cause, r.sink, r.count]), [['sink', `nats:${stream}`, 60]]);
    assert.equal(records.filter((r) => r.type === 'session').length + lost[0]!.count, 10_000, 'delivered + counted lost = produced');
  });
});
