// SPDX-License-Identifier: Apache-2.0
// The NATS audit sink's write-ahead spool without a server (the connection never answers, as when
// NATS is down for the whole run): every record is in the spool folder as soon as write() returns,
// so a stop keeps them all at once (no close timeout spent on a server that is away), and the next
// sink on the folder takes them over first and keeps them again at its own close, with its new
// records after them; a message noted before its publish keeps its id; acknowledged records leave
// the folder a segment at a time; a write torn by a kill is counted exactly; without a folder the
// same records are counted as dropped, exactly. The e2e tier (nats-audit-spool.test.ts) kills real
// sinks under a real server.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import { NatsSpool, type SpoolSegment } from '../../src/audit/nats-spool.js';
import type { AgentRecord, AuditRecord } from '../../src/audit/records.js';

const never = (): Promise<NatsConnection> => new Promise(() => {});
const record = (i: number): AgentRecord => ({ time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(), type: 'agent', enforcer: 'edge-1', interface: '*', event: 'warning', message: `record ${i}` });
const records = (from: number, n: number): AuditRecord[] => Array.from({ length: n }, (_, i) => record(from + i));
const messages = (n: number, from = 0) => records(from, n).map((r) => (r as AgentRecord).message);
const text = (b: Buffer) => (JSON.parse(b.toString('latin1')) as AgentRecord).message;

/** What a sink started on `dir` would take over (reading is a recovery: it trims done segments). */
function pending(dir: string): { messages: { msgID: string; lines: (string | undefined)[] }[]; open: (string | undefined)[]; torn: number } {
  const r = new NatsSpool(dir).recover();
  return { messages: r.messages.map((m) => ({ msgID: m.msgID, lines: m.lines.map((l) => text(l.bytes)) })), open: r.open.map((l) => text(l.bytes)), torn: r.torn };
}
const segments = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.spool')).sort((a, b) => parseInt(a) - parseInt(b));

describe('NATS audit sink: the write-ahead spool', () => {
  const root = mkdtempSync(join(tmpdir(), 'doorstep-spool-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('holds every record once write() returns; the next sink takes them over first and keeps them with its own', async () => {
    const dir = join(root, 'A');
    const first = new NatsAuditSink({ connection: never, stream: 'A', enforcer: 'edge-1', spoolDir: dir, maxRecordsPerMessage: 100, closeTimeoutMs: 60_000 });
    first.write(records(0, 120));
    first.write(records(120, 130));
    assert.deepEqual(pending(dir).open, messages(250), 'in the folder before any close (a kill loses nothing)');
    const t0 = performance.now();
    await first.close();
    assert.ok(performance.now() - t0 < 30_000, 'not connected: no close timeout is spent');
    assert.deepEqual([first.stats().spooled, first.stats().dropped], [250, 0]);

    const second = new NatsAuditSink({ connection: never, stream: 'A', enforcer: 'edge-1', spoolDir: dir, maxRecordsPerMessage: 100 });
    assert.equal(second.stats().unspooled, 250);
    assert.equal(second.stats().buffered, 250);
    second.write(records(250, 30));
    await second.close();
    assert.deepEqual([second.stats().spooled, second.stats().dropped], [280, 0]);
    assert.deepEqual(pending(dir).open, messages(280), 'the new records after the kept ones, in order');
  });

  it('a message noted before its publish is sent again with the same id (JetStream drops a copy it stored)', async () => {
    const dir = join(root, 'B');
    const spool = new NatsSpool(dir);
    spool.recover();
    const bytes = Buffer.from(records(0, 3).map((r) => `${JSON.stringify(r)}\n`).join(''), 'latin1');
    spool.append(bytes, 1, 3);
    spool.mark([{ from: 1, to: 2, msgID: 'edge-1.abc.7' }]);
    spool.close();
    const sink = new NatsAuditSink({ connection: never, stream: 'B', enforcer: 'edge-1', spoolDir: dir });
    assert.equal(sink.stats().unspooled, 3);
    await sink.close();
    assert.deepEqual(pending(dir), { messages: [{ msgID: 'edge-1.abc.7', lines: messages(2) }], open: messages(1, 2), torn: 0 });
  });

  it('acknowledged records leave the folder a segment at a time, oldest first; a stop with nothing pending leaves no file', () => {
    const dir = join(root, 'C');
    const spool = new NatsSpool(dir, 4096);
    spool.recover();
    const line = Buffer.from(`${JSON.stringify(record(0))}\n`, 'latin1');
    const segs: SpoolSegment[] = [];
    for (let seq = 1; seq <= 100; seq++) segs.push(spool.append(line, seq, 1));
    const files = segments(dir);
    assert.ok(files.length >= 3, `several segments (${files.length})`);
    const before = files.map((f) => statSync(join(dir, f)).size);
    // acks in message order: one short line each, never a rewrite
    const done = (from: number, to: number) => {
      const parts = new Map<SpoolSegment, number>();
      for (let s = from; s <= to; s++) parts.set(segs[s - 1]!, (parts.get(segs[s - 1]!) ?? 0) + 1);
      spool.done(from, to, parts);
    };
    done(1, 10);
    assert.deepEqual(segments(dir), files, 'the first segment still holds records not done');
    const firstEnd = segs.findIndex((s) => s !== segs[0]);
    done(11, firstEnd);
    assert.deepEqual(segments(dir), files.slice(1), 'the first segment goes once all of it is done');
    assert.ok(statSync(join(dir, files[1]!)).size === before[1], 'the others are untouched');
    assert.equal(spool.pending(), 100 - firstEnd);
    done(firstEnd + 1, 100);
    spool.close();
    assert.deepEqual(segments(dir), [], 'all done: no file left');
  });

  it('a write torn by a kill: the whole lines before the cut are kept, the rest of that write is counted as lost', async () => {
    const dir = join(root, 'D');
    const first = new NatsAuditSink({ connection: never, stream: 'D', enforcer: 'edge-1', spoolDir: dir });
    first.write(records(0, 40));
    first.write(records(40, 60)); // the last write: cut inside its 25th record
    await first.close();
    const last = join(dir, segments(dir).at(-1)!);
    const content = readFileSync(last);
    const lines = content.toString('latin1').split('\n');
    const header = lines.map((l) => l.startsWith('b ')).lastIndexOf(true);
    const cut = lines.slice(0, header + 1 + 24).join('\n').length + 1 + 10;
    truncateSync(last, cut);
    const second = new NatsAuditSink({ connection: never, stream: 'D', enforcer: 'edge-1', spoolDir: dir });
    assert.deepEqual([second.stats().unspooled, second.torn, second.dropped], [64, 36, 36], '40 + 24 whole records kept; 1 cut and 35 never written: 36 lost');
    await second.close();
    assert.equal(readFileSync(last, 'latin1'), `${content.toString('latin1', 0, cut - 10)}t 36\n`, 'the torn line is cut off and the loss noted, so it is counted once');
    assert.deepEqual(pending(dir), { messages: [], open: messages(64), torn: 0 });
  });

  it('without a spool folder, what is left at close is counted as dropped, exactly', async () => {
    const errors: string[] = [];
    const sink = new NatsAuditSink({ connection: never, stream: 'E', enforcer: 'edge-1', closeTimeoutMs: 50, onError: (e) => errors.push(e.message) });
    sink.write(records(0, 123));
    await sink.close();
    assert.deepEqual([sink.stats().spooled, sink.dropped], [0, 123]);
    assert.match(errors.join('\n'), /123 audit records were still buffered after 50 ms and are lost/);
  });

  it('a spool folder it cannot make: the records are counted as dropped, and it says why', async () => {
    const errors: string[] = [];
    const sink = new NatsAuditSink({ connection: never, stream: 'F', enforcer: 'edge-1', spoolDir: join(root, 'no-such-dir', 'spool'), onError: (e) => errors.push(e.message) });
    sink.write(records(0, 7));
    await sink.close();
    assert.deepEqual([sink.stats().spooled, sink.dropped], [0, 7]);
    assert.match(errors.join('\n'), /cannot keep 7 undelivered audit records in .*no-such-dir/);
  });

  it('takes over the spool file of an earlier version, message by message with its ids', async () => {
    const dir = join(root, 'G');
    const legacy = join(root, 'G.jsonl');
    const data = (from: number, n: number) => records(from, n).map((r) => `${JSON.stringify(r)}\n`).join('');
    writeFileSync(legacy, [{ msgID: 'old.1', records: 2, control: 2, data: data(0, 2) }, { msgID: 'old.2', records: 3, control: 3, data: data(2, 3) }].map((m) => JSON.stringify(m)).join('\n') + '\n');
    const sink = new NatsAuditSink({ connection: never, stream: 'G', enforcer: 'edge-1', spoolDir: dir, legacySpoolFile: legacy });
    assert.equal(sink.stats().unspooled, 5);
    await sink.close();
    assert.throws(() => statSync(legacy), /ENOENT/, 'the old file is gone');
    assert.deepEqual(pending(dir).messages, [
      { msgID: 'old.1', lines: messages(2) },
      { msgID: 'old.2', lines: messages(3, 2) },
    ]);
  });
});
