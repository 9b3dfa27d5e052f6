// SPDX-License-Identifier: Apache-2.0
// The NATS audit sink's spool file without a server (the connection never answers, as when NATS is
// down for the whole run): close() keeps every buffered record there, message by message with its
// id, at once (no close timeout spent on a server that is away); the next sink on the file takes
// them over first and keeps them again at its own close, with its new records after them; without
// a spool file the same records are counted as dropped, exactly.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import type { AgentRecord, AuditRecord } from '../../src/audit/records.js';

const never = (): Promise<NatsConnection> => new Promise(() => {});
const record = (i: number): AgentRecord => ({ time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString(), type: 'agent', enforcer: 'edge-1', interface: '*', event: 'warning', message: `record ${i}` });
const records = (from: number, n: number): AuditRecord[] => Array.from({ length: n }, (_, i) => record(from + i));

/** The spool file's messages: id and the records' messages, in order. */
function spooled(path: string): { msgID: string; lines: string[] }[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msgID: string; data: string })
    .map((m) => ({ msgID: m.msgID, lines: m.data.split('\n').filter(Boolean).map((x) => (JSON.parse(x) as AgentRecord).message ?? '') }));
}

describe('NATS audit sink: the spool file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-spool-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps what it could not deliver, in order, and the next sink sends it first', async () => {
    const spoolPath = join(dir, 'audit-spool.A.jsonl');
    const first = new NatsAuditSink({ connection: never, stream: 'A', enforcer: 'edge-1', spoolPath, maxRecordsPerMessage: 100, closeTimeoutMs: 60_000 });
    first.write(records(0, 250));
    const t0 = performance.now();
    await first.close();
    assert.ok(performance.now() - t0 < 30_000, 'not connected: no close timeout is spent');
    assert.deepEqual([first.stats().spooled, first.stats().dropped], [250, 0]);
    const kept = spooled(spoolPath);
    assert.deepEqual(kept.map((m) => m.lines.length), [100, 100, 50]);
    assert.deepEqual(kept.flatMap((m) => m.lines), records(0, 250).map((r) => (r as AgentRecord).message));

    const second = new NatsAuditSink({ connection: never, stream: 'A', enforcer: 'edge-1', spoolPath, maxRecordsPerMessage: 100 });
    assert.equal(second.stats().unspooled, 250);
    assert.equal(second.stats().buffered, 250);
    second.write(records(250, 30));
    await second.close();
    assert.deepEqual([second.stats().spooled, second.stats().dropped], [280, 0]);
    const again = spooled(spoolPath);
    assert.deepEqual(again.slice(0, 3).map((m) => m.msgID), kept.map((m) => m.msgID), 'the kept messages keep their ids (JetStream drops a copy it already stored)');
    assert.deepEqual(again.flatMap((m) => m.lines), records(0, 280).map((r) => (r as AgentRecord).message), 'the new records after the kept ones');
  });

  it('without a spool file, what is left at close is counted as dropped, exactly', async () => {
    const errors: string[] = [];
    const sink = new NatsAuditSink({ connection: never, stream: 'B', enforcer: 'edge-1', closeTimeoutMs: 50, onError: (e) => errors.push(e.message) });
    sink.write(records(0, 123));
    await sink.close();
    assert.deepEqual([sink.stats().spooled, sink.dropped], [0, 123]);
    assert.match(errors.join('\n'), /123 audit records were still buffered after 50 ms and are lost/);
  });

  it('a spool file it cannot write: the records are counted as dropped, and it says why', async () => {
    const errors: string[] = [];
    const sink = new NatsAuditSink({ connection: never, stream: 'C', enforcer: 'edge-1', spoolPath: join(dir, 'no-such-dir', 'spool.jsonl'), onError: (e) => errors.push(e.message) });
    sink.write(records(0, 7));
    await sink.close();
    assert.deepEqual([sink.stats().spooled, sink.dropped], [0, 7]);
    assert.match(errors.join('\n'), /cannot keep 7 undelivered audit records in .*no-such-dir/);
  });
});
