// SPDX-License-Identifier: Apache-2.0
// The audit sink `nats` against a real JetStream server: the bytes the file sink would write, in
// order, on the enforcer's subject; nothing lost or repeated across a server restart below the
// bound; exact drop counts past it and at close, and a close that waits for NATS within its time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DiscardPolicy, jetstreamManager, type JetStreamManager, StorageType } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { encodeRecords } from '../../src/audit/record-json-fast.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import { NatsAuditSink, type NatsAuditSinkOptions, RECORDS_HEADER } from '../../src/audit/nats-sink.js';
import type { AuditRecord, SessionRecord, SummaryRecord } from '../../src/audit/records.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { numberedSession } from '../lib/audit-fixtures.js';
import { NatsServer } from '../lib/nats-server.js';
import { until } from '../lib/until.js';

const ENFORCER = 'edge-1.example.com';
const TOKEN = 'edge-1_example_com';

const session = (i: number, enforcer = ENFORCER): SessionRecord => numberedSession(i, enforcer);

function summary(i: number): SummaryRecord {
  return {
    time: '2025-06-01T12:00:10.000Z',
    type: 'summary',
    enforcer: ENFORCER,
    interface: 'eth1',
    verdict: 'allow',
    protocol: 'udp',
    src: '2001:db8::1',
    dst: '2001:db8::2',
    sport: 5353,
    dport: 53,
    rule: 'dns/allow',
    policy: 'dns',
    generation: 3,
    packets: i,
    bytes: i * 100,
    totalPackets: i,
    totalBytes: i * 100,
    firstSeen: '2025-06-01T12:00:00.000Z',
    lastSeen: '2025-06-01T12:00:09.000Z',
  };
}

const agent = (message: string): AuditRecord => ({ time: '2025-06-01T12:00:00.000Z', type: 'agent', enforcer: ENFORCER, interface: '*', event: 'error', message });
const policy = (n: number): AuditRecord => ({ time: '2025-06-01T12:00:00.000Z', type: 'policy', enforcer: ENFORCER, interface: '*', status: 'installed', source: 'api', policyVersion: `sha256:${n}`, generation: n, rules: 3 });

interface Stored {
  subject: string;
  count: number;
  msgId: string;
  data: Buffer;
}

/** Every message of `stream`, in order. */
async function readStream(jsm: JetStreamManager, stream: string): Promise<Stored[]> {
  const info = await jsm.streams.info(stream);
  const out: Stored[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (!m) continue;
    out.push({ subject: m.subject, count: Number(m.header.get(RECORDS_HEADER)), msgId: m.header.get('Nats-Msg-Id'), data: Buffer.from(m.data) });
  }
  return out;
}

const lines = (msgs: readonly Stored[]) => msgs.flatMap((m) => m.data.toString('latin1').split('\n').filter((l) => l !== ''));
const seqs = (msgs: readonly Stored[]) => lines(msgs).map((l) => JSON.parse(l) as AuditRecord).map((r) => (r.type === 'session' ? r.seq : r.type));

async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)));
  await new Promise((r) => probe.close(r));
  return port;
}

/** Resolves at the connection's next status event of `type` (call it before causing the event). */
async function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const status of nc.status()) if (status.type === type) return;
}

/**
 * A TCP proxy in front of a NATS server that can lose what the server sends back (the acks of
 * messages the server did store) and cut the connection, as a network that fails mid-publish does.
 */
class LossyProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Drop the server's bytes instead of passing them on. */
  holdReplies = false;

  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  static async start(target: number): Promise<LossyProxy> {
    const p = new LossyProxy(await freePort(), target);
    await p.listen();
    return p;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => {
        if (!this.holdReplies) client.write(d);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
  }

  /** Cut every connection and stop accepting new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

describe('audit sink: nats stream', () => {
  const servers: NatsServer[] = [];
  const conns: NatsConnection[] = [];
  const sinks: NatsAuditSink[] = [];
  after(async () => {
    await Promise.allSettled(sinks.map((s) => s.close()));
    await Promise.allSettled(conns.map((c) => c.close()));
    await Promise.allSettled(servers.map((s) => s.cleanup()));
  });

  async function server(): Promise<NatsServer> {
    const s = await NatsServer.start();
    servers.push(s);
    return s;
  }

  /** A daemon-style connection (waits for the first connect, reconnects for ever). */
  function background(s: NatsServer, stream: string): Promise<NatsConnection> {
    const c = connectNats(parseNatsUrl(`${s.url}/${stream}`, 'STREAM'), {}, { name: 'test-sink', background: true });
    void c.then((nc) => conns.push(nc));
    return c;
  }

  function sink(options: NatsAuditSinkOptions): NatsAuditSink {
    const s = new NatsAuditSink(options);
    sinks.push(s);
    return s;
  }

  it('publishes the JSON lines the file sink writes, in order, on the enforcer subject', async () => {
    const s = await server();
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const jsm = await jetstreamManager(reader);
    const errors: string[] = [];
    const connection = background(s, 'AUDIT_A');
    const out = sink({ connection: () => connection, stream: 'AUDIT_A', enforcer: ENFORCER, maxRecordsPerMessage: 7, onError: (e) => errors.push(e.message) });
    assert.equal(out.name, 'nats:AUDIT_A');
    assert.equal(out.subject, `AUDIT_A.${TOKEN}`);

    const records: AuditRecord[] = [agent('started — “ünïcode” \u2028 and "quotes"'), policy(1)];
    for (let i = 0; i < 40; i++) records.push(i % 10 === 9 ? summary(i) : session(i));
    records.push({ time: '2025-06-01T12:00:11.000Z', type: 'lost', enforcer: ENFORCER, interface: '*', cause: 'ring-buffer', count: 3, cpu: 0, firstSeq: 5, lastSeq: 7 });
    out.write(records.slice(0, 5));
    out.write(records.slice(5, 30));
    out.write(records.slice(30));
    assert.equal(await out.flush(10_000), true, 'flushed');

    const msgs = await readStream(jsm, 'AUDIT_A');
    assert.ok(msgs.length >= Math.ceil(records.length / 7), `${msgs.length} messages`);
    assert.deepEqual([...new Set(msgs.map((m) => m.subject))], [`AUDIT_A.${TOKEN}`]);
    assert.ok(msgs.every((m) => m.count > 0 && m.count <= 7), 'at most 7 records per message');
    assert.deepEqual(Buffer.concat(msgs.map((m) => m.data)), encodeRecords(records), 'byte-identical JSON lines, in order');
    let at = 0;
    for (const m of msgs) {
      assert.equal(m.data.toString('latin1').split('\n').length - 1, m.count, 'header count = lines');
      assert.deepEqual(m.data, encodeRecords(records.slice(at, at + m.count)));
      at += m.count;
    }
    assert.equal(at, records.length);
    const ids = msgs.map((m) => /^edge-1_example_com\.([0-9a-f]{12})\.(\d+)$/.exec(m.msgId));
    assert.ok(ids.every((x) => x !== null), `message ids ${msgs.map((m) => m.msgId).join(' ')}`);
    assert.deepEqual(ids.map((x) => Number(x![2])), msgs.map((_, i) => i + 1));
    assert.equal(new Set(ids.map((x) => x![1])).size, 1, 'one boot id');

    const cfg = (await jsm.streams.info('AUDIT_A')).config;
    assert.deepEqual(cfg.subjects, ['AUDIT_A.>']);
    assert.equal(cfg.storage, StorageType.File);
    assert.equal(cfg.discard, DiscardPolicy.Old);
    assert.equal(cfg.max_age, nanos(7 * 24 * 3600 * 1000));
    assert.equal(cfg.max_bytes, 1024 ** 3);
    assert.equal(cfg.duplicate_window, nanos(120_000));
    assert.deepEqual(out.stats(), { publishedRecords: records.length, publishedMessages: msgs.length, buffered: 0, dropped: 0, inFlight: 0, duplicates: 0, unspooled: 0, spooled: 0 });
    assert.deepEqual(errors, []);

    // a large batch: split by bytes (256 KiB) and by count (500)
    const many = Array.from({ length: 3000 }, (_, i) => session(i));
    const before = msgs.length;
    out.write(many);
    assert.equal(await out.flush(10_000), true);
    const after = (await readStream(jsm, 'AUDIT_A')).slice(before);
    assert.deepEqual(Buffer.concat(after.map((m) => m.data)), encodeRecords(many));
    assert.ok(after.every((m) => m.count <= 500 && m.data.length <= 256 * 1024));
    assert.equal(after.reduce((n, m) => n + m.count, 0), 3000);
  });

  it('uses an existing stream as it is', async () => {
    const s = await server();
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const jsm = await jetstreamManager(reader);
    await jsm.streams.add({ name: 'AUDIT_OPS', subjects: ['AUDIT_OPS.>'], max_bytes: 10 * 1024 * 1024, max_age: nanos(3600_000) });
    const connection = background(s, 'AUDIT_OPS');
    const out = sink({ connection: () => connection, stream: 'AUDIT_OPS', enforcer: 'edge-2' });
    out.write([session(1, 'edge-2'), session(2, 'edge-2')]);
    assert.equal(await out.flush(10_000), true);
    const info = await jsm.streams.info('AUDIT_OPS');
    assert.equal(info.config.max_bytes, 10 * 1024 * 1024, 'the operator sizing stays');
    assert.equal(info.config.max_age, nanos(3600_000));
    assert.equal(info.state.messages, 1);
    assert.deepEqual(seqs(await readStream(jsm, 'AUDIT_OPS')), [1, 2]);
  });

  it('keeps records while NATS is down and delivers each exactly once, in order, after it is back', async () => {
    const s = await server();
    const errors: string[] = [];
    const connection = background(s, 'AUDIT_B');
    const out = sink({ connection: () => connection, stream: 'AUDIT_B', enforcer: ENFORCER, maxBufferedRecords: 20_000, onError: (e) => errors.push(e.message) });
    let next = 0;
    const batch = (n: number) => Array.from({ length: n }, () => session(next++));
    out.write(batch(100));
    assert.equal(await out.flush(10_000), true);

    // 1: the server goes away between writes: records written before the sink noticed, and after
    const outages = () => errors.filter((e) => /lost the connection to NATS/.test(e)).length;
    await s.stop();
    for (let i = 0; i < 10; i++) out.write(batch(100));
    await until(() => outages() === 1, 'the sink noticing the outage');
    for (let i = 0; i < 10; i++) out.write(batch(100));
    assert.equal(out.stats().buffered, 2000);
    await s.start();
    assert.equal(await out.flush(30_000), true, 'flushed after the restart');

    // 2: the server goes away while messages await their acks
    out.write(batch(5000));
    await new Promise((r) => setImmediate(r));
    await s.stop();
    out.write(batch(1000));
    await until(() => outages() === 2, 'the sink noticing the second outage (reported again once records went through)');
    await s.start();
    assert.equal(await out.flush(30_000), true, 'flushed after the second restart');

    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const got = seqs(await readStream(await jetstreamManager(reader), 'AUDIT_B'));
    assert.equal(got.length, next, `every record once: ${got.length} of ${next}`);
    assert.deepEqual(got, Array.from({ length: next }, (_, i) => i), 'in order, no duplicates');
    assert.equal(out.dropped, 0);
    assert.equal(out.stats().publishedRecords, next);
    assert.ok(errors.length <= 6, `problems reported once per kind and outage: ${errors.join(' | ')}`);
  });

  it('a retry after a lost ack is stored once (the message id)', async () => {
    const s = await server();
    const proxy = await LossyProxy.start(s.port);
    try {
      const reader = await connect({ servers: s.url });
      conns.push(reader);
      const jsm = await jetstreamManager(reader);
      const nc = await connect({ servers: proxy.url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
      conns.push(nc);
      const out = sink({ connection: async () => nc, stream: 'AUDIT_F', enforcer: ENFORCER });
      out.write(Array.from({ length: 10 }, (_, i) => session(i)));
      assert.equal(await out.flush(10_000), true);
      // the server stores what comes next, but its acks never arrive
      proxy.holdReplies = true;
      out.write(Array.from({ length: 1500 }, (_, i) => session(10 + i)));
      const stored = async () => (await jsm.streams.info('AUDIT_F')).state.messages;
      await until(async () => (await stored()) >= 4, 'the server storing the messages in flight');
      assert.equal(out.stats().publishedRecords, 10, 'no ack came back');
      const disconnected = nextStatus(nc, 'disconnect');
      await proxy.cut();
      proxy.holdReplies = false;
      await disconnected; // the client saw the cut: what awaits an ack goes again after the reconnect
      await proxy.listen();
      assert.equal(await out.flush(20_000), true);
      assert.ok(out.stats().duplicates >= 1, `retries recognised as duplicates: ${JSON.stringify(out.stats())}`);
      assert.deepEqual(seqs(await readStream(jsm, 'AUDIT_F')), Array.from({ length: 1510 }, (_, i) => i), 'each record once, in order');
      assert.equal(out.dropped, 0);
    } finally {
      await proxy.cut();
    }
  });

  it('publishes although it may not create the stream, once an operator made it', async () => {
    // a server with users: the agent may publish and look at its stream, not create streams
    const dir = mkdtempSync(join(tmpdir(), 'doorstep-nats-perm-'));
    const port = await freePort();
    writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${port}
jetstream { store_dir: "${join(dir, 'js')}" }
accounts { A { jetstream: enabled, users: [
  { user: admin, password: admin },
  { user: agent, password: agent, permissions: { publish: { allow: ["AUDIT_P.>", "$JS.API.STREAM.INFO.AUDIT_P"] }, subscribe: { allow: ["_INBOX.>"] } } }
] } }
`);
    const child = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let log = '';
        const timer = setTimeout(() => reject(new Error(`nats-server not ready: ${log}`)), 15_000);
        const onData = (d: Buffer) => {
          log += d.toString();
          if (log.includes('Server is ready')) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
      });
      const nc = await connect({ servers: `nats://127.0.0.1:${port}`, user: 'agent', pass: 'agent' });
      conns.push(nc);
      const errors: string[] = [];
      const out = sink({ connection: async () => nc, stream: 'AUDIT_P', enforcer: ENFORCER, onError: (e) => errors.push(e.message) });
      out.write([agent('started'), session(1)]);
      assert.equal(await out.flush(1500), false, 'no stream yet: kept');
      assert.equal(out.stats().buffered, 2);
      assert.match(errors.join('\n'), /nats:AUDIT_P: cannot create the stream AUDIT_P: Permissions Violation .*; publishing to AUDIT_P\.edge-1_example_com anyway/);
      assert.match(errors.join('\n'), /publishing to AUDIT_P\.edge-1_example_com failed \(no stream takes the subject, or JetStream is off\)/);
      const admin = await connect({ servers: `nats://127.0.0.1:${port}`, user: 'admin', pass: 'admin' });
      conns.push(admin);
      const jsm = await jetstreamManager(admin);
      await jsm.streams.add({ name: 'AUDIT_P', subjects: ['AUDIT_P.>'] });
      assert.equal(await out.flush(10_000), true);
      assert.deepEqual(seqs(await readStream(jsm, 'AUDIT_P')), ['agent', 1]);
      assert.equal(out.dropped, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('past the bound drops session records and counts them, never the control records', async () => {
    const s = await server();
    await s.stop();
    const connection = background(s, 'AUDIT_C'); // NATS down at boot
    const out = sink({ connection: () => connection, stream: 'AUDIT_C', enforcer: ENFORCER, maxBufferedRecords: 50 });
    out.write([agent('c0'), ...Array.from({ length: 40 }, (_, i) => session(i))]);
    out.write([policy(1), ...Array.from({ length: 40 }, (_, i) => session(40 + i))]);
    out.write([agent('c2')]);
    assert.equal(out.dropped, 30);
    assert.deepEqual(out.stats(), { publishedRecords: 0, publishedMessages: 0, buffered: 53, dropped: 30, inFlight: 0, duplicates: 0, unspooled: 0, spooled: 0 });
    await s.start();
    assert.equal(await out.flush(30_000), true);
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const got = seqs(await readStream(await jetstreamManager(reader), 'AUDIT_C'));
    assert.deepEqual(got, ['agent', ...Array.from({ length: 40 }, (_, i) => i), 'policy', ...Array.from({ length: 10 }, (_, i) => 40 + i), 'agent']);
    assert.equal(out.dropped, 30, 'monotonic, nothing more');
  });

  it('the pipeline reports what it dropped as a lost record naming the sink, delivered once NATS is back', async () => {
    const s = await server();
    await s.stop();
    const connection = background(s, 'AUDIT_G');
    const out = sink({ connection: () => connection, stream: 'AUDIT_G', enforcer: ENFORCER, maxBufferedRecords: 5 });
    const pipeline = new AuditPipeline({ context: { enforcer: ENFORCER, interfaces: new Map(), policies: new Map() }, sinks: [out], summaryIntervalMs: 0 });
    for (let i = 0; i < 8; i++) pipeline.emit(session(i));
    pipeline.checkKernelLost({ eventSeq: [], counters: { EVENTS_LOST: 0 } });
    assert.equal(pipeline.stats().sinkDropped, 3);
    await s.start();
    assert.equal(await out.flush(30_000), true);
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const got = lines(await readStream(await jetstreamManager(reader), 'AUDIT_G')).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(got.slice(0, 5).map((r) => (r as SessionRecord).seq), [0, 1, 2, 3, 4]);
    assert.equal(got.length, 6);
    assert.deepEqual({ ...got[5], time: undefined }, { time: undefined, type: 'lost', enforcer: ENFORCER, interface: '*', cause: 'sink', sink: 'nats:AUDIT_G', count: 3 });
  });

  it('fits its messages to a stream an operator made with a smaller max_msg_size', async () => {
    const s = await server();
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    const jsm = await jetstreamManager(reader);
    await jsm.streams.add({ name: 'AUDIT_S', subjects: ['AUDIT_S.>'], max_msg_size: 16 * 1024 });
    const errors: string[] = [];
    const connection = background(s, 'AUDIT_S');
    const out = sink({ connection: () => connection, stream: 'AUDIT_S', enforcer: ENFORCER, onError: (e) => errors.push(e.message) });
    const records = Array.from({ length: 2000 }, (_, i) => session(i));
    out.write(records);
    out.write([agent('x'.repeat(20_000))]); // larger than any message the stream takes
    assert.equal(await out.flush(10_000), true);
    const msgs = await readStream(jsm, 'AUDIT_S');
    assert.ok(msgs.every((m) => m.data.length <= 16 * 1024 - 1024), `largest ${Math.max(...msgs.map((m) => m.data.length))}`);
    assert.deepEqual(Buffer.concat(msgs.map((m) => m.data)), encodeRecords(records));
    assert.equal(out.dropped, 1);
    assert.match(errors.join('\n'), /a record \(type agent\) of 20\d\d\d bytes is larger than the largest message the server or the stream takes \(16384 bytes\); dropped/);
  });

  it('close() with NATS down counts what is buffered as dropped and says so', async () => {
    const s = await server();
    const connection = background(s, 'AUDIT_D');
    const errors: Error[] = [];
    const out = sink({ connection: () => connection, stream: 'AUDIT_D', enforcer: ENFORCER, closeTimeoutMs: 300, onError: (e) => errors.push(e) });
    out.write([session(0)]);
    assert.equal(await out.flush(10_000), true);
    await s.stop();
    out.write(Array.from({ length: 25 }, (_, i) => session(i)));
    out.write([agent('stopping')]);
    await out.close(); // resolves: NATS stays down past its 300 ms
    assert.equal(out.dropped, 26);
    assert.deepEqual(out.stats(), { publishedRecords: 1, publishedMessages: 1, buffered: 0, dropped: 26, inFlight: 0, duplicates: 0, unspooled: 0, spooled: 0 });
    assert.equal(errors.filter((e) => /still buffered/.test(e.message)).length, 1, errors.map((e) => e.message).join(' | '));
    errors.splice(0, errors.length - 1);
    assert.match(errors[0]!.message, /nats:AUDIT_D: 26 audit records were still buffered after 300 ms and are lost/);
    out.write([session(99)]);
    assert.equal(out.dropped, 27, 'after close, records are counted as dropped');
    await out.close(); // idempotent
  });

  it('close() gives buffered records its whole time: NATS back within it, nothing is lost', async () => {
    const s = await server();
    const connection = background(s, 'AUDIT_H');
    const errors: string[] = [];
    // the time is a deadline here, never reached: NATS comes back well before it
    const out = sink({ connection: () => connection, stream: 'AUDIT_H', enforcer: ENFORCER, closeTimeoutMs: 120_000, onError: (e) => errors.push(e.message) });
    out.write([session(0)]);
    assert.equal(await out.flush(10_000), true);
    await s.stop();
    out.write(Array.from({ length: 25 }, (_, i) => session(1 + i)));
    out.write([agent('stopping')]);
    let closed = false;
    const closing = out.close().then(() => (closed = true));
    await until(() => errors.some((e) => /lost the connection to NATS/.test(e)), 'the sink noticing the outage');
    assert.equal(closed, false, 'close() waits for NATS rather than dropping what is buffered');
    await s.start();
    await closing;
    assert.equal(out.dropped, 0);
    assert.equal(out.stats().publishedRecords, 27);
    assert.equal(out.stats().buffered, 0);
    assert.deepEqual(errors.filter((e) => /lost$/.test(e)), [], 'no loss reported');
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    assert.deepEqual(seqs(await readStream(await jetstreamManager(reader), 'AUDIT_H')), [...Array.from({ length: 26 }, (_, i) => i), 'agent']);
  });

  it('close() flushes what is buffered when NATS is up', async () => {
    const s = await server();
    const connection = background(s, 'AUDIT_E');
    const out = sink({ connection: () => connection, stream: 'AUDIT_E', enforcer: ENFORCER });
    out.write(Array.from({ length: 1234 }, (_, i) => session(i)));
    await out.close();
    assert.equal(out.dropped, 0);
    const reader = await connect({ servers: s.url });
    conns.push(reader);
    assert.deepEqual(seqs(await readStream(await jetstreamManager(reader), 'AUDIT_E')), Array.from({ length: 1234 }, (_, i) => i));
  });
});
