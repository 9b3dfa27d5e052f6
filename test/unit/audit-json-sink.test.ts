// SPDX-License-Identifier: Apache-2.0
// JsonLinesSink and its encoder: the specialised encoder gives the same JSON values as
// JSON.stringify for every record shape (escapes, Unicode, big numbers included) and writes only
// ASCII; rotation by size keeps N files of whole, valid lines, in order; a writer that cannot keep
// up makes whole batches drop and be counted; stdout works; a bad path is a clear error.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeRecords, JsonLineEncoder, JsonLinesSink, recordJson, serializeRecords } from '../../src/audit/json-lines-sink.js';
import type { AuditRecord, SummaryRecord } from '../../src/audit/records.js';
import type { SessionRecord } from '../../src/audit/session-record.js';
import { DoorstepError } from '../../src/errors.js';
import { prng, Random } from '../lib/random-policy.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-audit-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const session = (seq: number, extra: Partial<SessionRecord> = {}): SessionRecord => ({
  time: '2025-06-01T12:00:00.123Z',
  type: 'session',
  event: 'new',
  enforcer: 'edge-1',
  interface: 'eth1',
  verdict: 'deny',
  reason: 'policy',
  protocol: 'tcp',
  src: '192.0.2.10',
  dst: '10.1.2.3',
  sport: 40000,
  dport: 443,
  rule: 'web/https',
  policy: 'web',
  policyVersion: `sha256:${'ab'.repeat(32)}`,
  generation: 3,
  cpu: 1,
  seq,
  ...extra,
});

const ODD = ['a "quoted" name', 'back\\slash', 'tab\there', 'new\nline', '\u0000nul', 'ünïcødé', '日本', 'emoji 😀', 'lone \ud800 surrogate', '\u007f del', '', 'x'.repeat(300)];

function randomRecords(count: number, seed: number): AuditRecord[] {
  const r = new Random(prng(seed));
  const text = () => (r.chance(0.25) ? r.pick(ODD) : `name-${r.int(0, 99)}`);
  const out: AuditRecord[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.int(0, 9);
    if (kind <= 5) {
      const s = session(r.chance(0.1) ? 2 ** 40 + i : i, {
        time: r.chance(0.05) ? text() : new Date(1_750_000_000_000 + r.int(0, 1e9)).toISOString(),
        event: r.pick(['new', 'changed'] as const),
        enforcer: r.chance(0.1) ? text() : 'edge-1',
        interface: r.chance(0.1) ? text() : r.pick(['eth0', 'eth1', 'bond0.100']),
        verdict: r.pick(['allow', 'deny'] as const),
        protocol: r.pick(['tcp', 'udp', 'icmp', 'protocol 250']),
        src: r.chance(0.05) ? text() : r.pick(['192.0.2.1', '2001:db8::1', '198.18.255.255']),
        rule: text(),
        cpu: r.int(0, 63),
        generation: r.int(0, 2 ** 32 - 1),
      });
      if (r.chance(0.3)) {
        delete s.sport;
        delete s.dport;
        if (r.chance(0.5)) {
          s.icmpType = r.int(0, 255);
          s.icmpCode = r.int(0, 255);
        }
      }
      if (r.chance(0.2)) s.vlan = r.chance(0.5) ? [r.int(1, 4094)] : [r.int(1, 4094), r.int(1, 4094)];
      if (r.chance(0.2)) delete s.policy;
      if (r.chance(0.2)) delete s.policyVersion;
      out.push(s);
    } else if (kind <= 7) {
      const s: SummaryRecord = {
        time: new Date(1_750_000_000_000 + i).toISOString(),
        type: 'summary',
        enforcer: 'edge-1',
        interface: text(),
        verdict: 'allow',
        protocol: 'udp',
        src: '192.0.2.1',
        dst: '10.0.0.1',
        sport: 53,
        dport: r.int(0, 65535),
        rule: text(),
        policy: text(),
        generation: 1,
        packets: r.int(2, 1e6),
        bytes: 2 ** 45 + r.int(0, 1e6),
        totalPackets: 2 ** 33,
        totalBytes: 2 ** 52,
        firstSeen: '2025-06-01T12:00:00.000Z',
        lastSeen: '2025-06-01T12:00:10.000Z',
      };
      out.push(s);
    } else if (kind === 8) {
      out.push({ time: '2025-06-01T12:00:00.000Z', type: 'lost', enforcer: 'edge-1', interface: '*', cause: 'ring-buffer', count: r.int(1, 1e9), cpu: 1, firstSeq: 5, lastSeq: 9 });
    } else {
      out.push({
        time: '2025-06-01T12:00:00.000Z',
        type: 'policy',
        enforcer: 'edge-1',
        interface: '*',
        status: 'rejected',
        source: 'file:/etc/doorstep/policy',
        problems: [{ code: 'DS_E_POLICY_INVALID', file: 'p.yaml', line: 3, column: 7, field: 'spec.rules[0].ports[0]', message: text() }],
      });
    }
  }
  return out;
}

describe('JSON-lines encoding', () => {
  it('gives the same values as JSON.stringify for every record shape, in ASCII only', () => {
    const records = randomRecords(3000, 0xa11);
    const bytes = encodeRecords(records);
    for (const b of bytes) assert.ok(b < 0x80, 'ASCII only');
    const lines = bytes.toString('latin1').split('\n');
    assert.equal(lines.pop(), '', 'every line ends in a newline');
    assert.equal(lines.length, records.length);
    lines.forEach((line, i) => assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(records[i])), `record ${i}: ${line}`));
  });

  it('writes the same bytes through its caches as without them', () => {
    const records = randomRecords(2000, 0xb22);
    const reference = serializeRecords(records);
    assert.equal(encodeRecords(records).toString('latin1'), reference);
    // one encoder over several buffers, as the sink uses it (caches warm across calls)
    const encoder = new JsonLineEncoder();
    const out = Buffer.alloc(4 * 1024 * 1024);
    let o = 0;
    for (const r of [...records, ...records]) o = encoder.encode(r, out, o);
    assert.equal(out.subarray(0, o).toString('latin1'), reference + reference);
  });

  it('writes session fields in the documented order', () => {
    assert.equal(
      recordJson(session(9, { vlan: [100] })),
      `{"time":"2025-06-01T12:00:00.123Z","type":"session","event":"new","enforcer":"edge-1","interface":"eth1","verdict":"deny","reason":"policy","protocol":"tcp","src":"192.0.2.10","dst":"10.1.2.3","sport":40000,"dport":443,"vlan":[100],"rule":"web/https","policy":"web","policyVersion":"sha256:${'ab'.repeat(32)}","generation":3,"cpu":1,"seq":9}`,
    );
  });

  it('reports a buffer too short instead of writing past it', () => {
    const encoder = new JsonLineEncoder();
    const out = Buffer.alloc(100);
    assert.equal(encoder.encode(session(1), out, 0), -1);
    assert.equal(encoder.encode(randomRecords(1, 5)[0] as AuditRecord, Buffer.alloc(10), 0), -1);
  });
});

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
