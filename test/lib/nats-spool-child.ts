// SPDX-License-Identifier: Apache-2.0
// A NATS audit sink in a process of its own, for tests that kill it: `node nats-spool-child.js
// URL STREAM SPOOL_DIR TOTAL BATCH` writes session records numbered 0…TOTAL-1 (seq = number) in
// writes of BATCH records, one write per turn of the event loop, printing `wrote N` after each and
// `done N` after the last, then waits to be killed (TOTAL 0: it writes until it is killed). Its
// connection waits for NATS however long it is away. Owns nothing but its sink.
import { NatsAuditSink } from '../../src/audit/nats-sink.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { numberedSession } from './audit-fixtures.js';

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
  for (let i = 0; n === 0 || i < n; i += b) {
    const count = n === 0 ? b : Math.min(b, n - i);
    sink.write(Array.from({ length: count }, (_, k) => numberedSession(i + k, 'edge-1')));
    process.stdout.write(`wrote ${i + count}\n`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  process.stdout.write(`done ${n}\n`);
  setInterval(() => undefined, 60_000);
}

if (process.argv[1]?.endsWith('nats-spool-child.js')) void main();
