// SPDX-License-Identifier: Apache-2.0
// A NATS audit sink in a process of its own, for tests that kill it: `node nats-spool-child.js
// URL STREAM SPOOL_DIR TOTAL BATCH` writes session records numbered 0…TOTAL-1 (seq = number) in
// writes of BATCH records, one write per turn of the event loop, printing `wrote N` after each and
// `done N` after the last, then waits to be killed. Its connection waits for NATS however long it
// is away. Owns nothing but its sink.
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import type { SessionRecord } from '../../src/audit/records.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';

export function numberedSession(i: number, enforcer = 'edge-1'): SessionRecord {
  return {
    time: new Date(Date.UTC(2025, 5, 1, 12, 0, 0, i % 1000)).toISOString(),
    type: 'session',
    event: 'new',
    enforcer,
    interface: 'eth1',
    verdict: i % 3 === 0 ? 'deny' : 'allow',
    reason: 'policy',
    protocol: 'tcp',
    src: `198.18.${(i >> 8) & 255}.${i & 255}`,
    dst: '10.20.3.7',
    sport: 40000 + (i % 20000),
    dport: 443,
    rule: 'web-tier/https',
    policy: 'web-tier',
    policyVersion: 'sha256:6c1f',
    generation: 3,
    cpu: 1,
    seq: i,
  };
}

async function main(): Promise<void> {
  const [url, stream, spoolDir, total, batch] = process.argv.slice(2);
  const sink = new NatsAuditSink({
    connection: () => connectNats(parseNatsUrl(`${url}/${stream}`, 'STREAM'), {}, { name: 'spool-child', background: true }),
    stream: stream!,
    enforcer: 'edge-1',
    spoolDir: spoolDir!,
    maxBufferedRecords: 1_000_000,
  });
  const n = Number(total);
  const b = Number(batch);
  for (let i = 0; i < n; i += b) {
    sink.write(Array.from({ length: Math.min(b, n - i) }, (_, k) => numberedSession(i + k)));
    process.stdout.write(`wrote ${Math.min(n, i + b)}\n`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  process.stdout.write(`done ${n}\n`);
  setInterval(() => undefined, 60_000);
}

if (process.argv[1]?.endsWith('nats-spool-child.js')) void main();
