// SPDX-License-Identifier: Apache-2.0
// JsonLinesSink (its encoder: record-json-fast.equivalence.test.ts): rotation by size keeps N files of whole, valid lines, in order; a writer that cannot keep
// up makes whole batches drop and be counted; stdout works; a bad path is a clear error.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JsonLinesSink } from '../../src/audit/json-lines-sink.js';
import { DoorstepError } from '../../src/errors.js';
import type { SessionRecord } from '../../src/audit/session-record.js';
import { sampleSession } from '../lib/audit-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-audit-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const session = sampleSession;

/** Every file of a rotated set, oldest first, as lines. */
function rotatedLines(path: string, keep: number): string[][] {
  const files = [...Array.from({ length: keep }, (_, i) => `${path}.${keep - i}`), path].filter(existsSync);
  return files.map((f) => readFileSync(f, 'latin1').split('\n').slice(0, -1));
}

describe('JsonLinesSink', () => {
  it('rotates by size: keeps N files of whole, valid lines, none larger than maxBytes, in order', async () => {
    const path = join(dir, 'rotate.jsonl');
    const sink = new JsonLinesSink({ path, maxBytes: 4096, keep: 3 });
    const total = 600;
    for (let i = 0; i < total; i += 7) sink.write(Array.from({ length: Math.min(7, total - i) }, (_, k) => session(i + k)));
    await sink.close();
    assert.ok(sink.stats().rotations > 3);
    assert.ok(!existsSync(`${path}.4`), 'only `keep` rotated files are kept');
    for (const f of [path, `${path}.1`, `${path}.2`, `${path}.3`]) assert.ok(statSync(f).size <= 4096, `${f} is within maxBytes`);
    const seqs = rotatedLines(path, 3)
      .flat()
      .map((line) => (JSON.parse(line) as SessionRecord).seq);
    assert.ok(seqs.length > 20);
    seqs.forEach((seq, i) => assert.equal(seq, total - seqs.length + i, 'the kept lines are the newest, in order'));
    assert.deepEqual(sink.stats().written, total);
    assert.equal(sink.dropped, 0);
  });

  it('gives a line longer than maxBytes a file of its own', async () => {
    const path = join(dir, 'long.jsonl');
    const sink = new JsonLinesSink({ path, maxBytes: 300, keep: 5 });
    sink.write([session(1, { rule: 'r'.repeat(1000) }), session(2), session(3)]);
    await sink.close();
    const files = rotatedLines(path, 5);
    assert.deepEqual(
      files.map((lines) => lines.map((l) => (JSON.parse(l) as SessionRecord).seq)),
      [[1], [2], [3]],
    );
  });

  it('appends to an existing file and counts its size towards rotation', async () => {
    const path = join(dir, 'append.jsonl');
    const first = new JsonLinesSink({ path, maxBytes: 500, keep: 1 });
    first.write([session(1)]);
    await first.close();
    const second = new JsonLinesSink({ path, maxBytes: 500, keep: 1 }); // one line (~380 bytes) fits, two do not
    second.write([session(2)]);
    await second.close();
    assert.deepEqual(
      rotatedLines(path, 1).map((lines) => lines.length),
      [1, 1],
    );
  });

  it('drops whole batches and counts them when the writer cannot keep up, without blocking', async () => {
    const fifo = join(dir, 'stalled.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, 'r+'); // a reader that never reads: the writer blocks once the pipe is full
    const sink = new JsonLinesSink({ path: fifo, maxBufferBytes: 1, maxWaitMs: 0 });
    const batch = Array.from({ length: 1000 }, (_, i) => session(i));
    const batches = 60; // ~24 MiB: far more than two 4 MiB buffers and the pipe hold
    for (let i = 0; i < batches; i++) sink.write(batch);
    assert.ok(sink.dropped > 0, 'batches were dropped');
    assert.equal(sink.dropped % 1000, 0, 'whole batches');
    closeSync(reader); // the writer now fails with EPIPE: what it still holds is dropped too
    await sink.close();
    const s = sink.stats();
    assert.equal(s.written + s.dropped, batches * 1000, 'every record is written or counted as dropped');
  });

  it('writes to standard output', () => {
    const module = fileURLToPath(new URL('../../src/audit/json-lines-sink.js', import.meta.url));
    const script = `
      const { JsonLinesSink } = await import(${JSON.stringify(module)});
      const sink = new JsonLinesSink({ stdout: true });
      for (let i = 0; i < 5; i++) sink.write([{ time: '2025-06-01T12:00:00.000Z', type: 'agent', enforcer: 'e', interface: '*', event: 'started', message: 'n' + i }]);
      await sink.close();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { message: string }).message),
      ['n0', 'n1', 'n2', 'n3', 'n4'],
    );
  });

  it('refuses a path it cannot open with DS_E_AUDIT_SINK and a hint', () => {
    assert.throws(
      () => new JsonLinesSink({ path: join(dir, 'no-such-dir', 'audit.jsonl') }),
      (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_AUDIT_SINK' && /audit file/.test(err.message) && !!err.hint,
    );
  });

  it('counts records written after close as dropped', async () => {
    const sink = new JsonLinesSink({ path: join(dir, 'closed.jsonl') });
    await sink.close();
    sink.write([session(1)]);
    assert.equal(sink.dropped, 1);
  });
});
