// SPDX-License-Identifier: Apache-2.0
// ControlRecordsSink: only the records about the enforcer itself reach its inner sink.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlRecordsSink } from '../../src/audit/control-sink.js';
import type { AuditRecord, AuditSink } from '../../src/audit/records.js';

describe('ControlRecordsSink', () => {
  it('passes policy, agent, lost and flood records and nothing else, and closes its inner sink', async () => {
    const got: AuditRecord[] = [];
    let closed = false;
    const inner: AuditSink & { dropped: number } = { name: 'file', dropped: 3, write: (r) => void got.push(...r), close: async () => void (closed = true) };
    const sink = new ControlRecordsSink(inner);
    const base = { time: '2026-12-06T09:00:00.000Z', enforcer: 'e', interface: '*' };
    const flow = { verdict: 'deny', protocol: 'udp', src: '10.0.0.1', dst: '10.0.0.2', rule: 'p/r', generation: 1 } as const;
    sink.write([
      { ...base, type: 'session', ...flow } as unknown as AuditRecord,
      { ...base, type: 'agent', event: 'started' },
      { ...base, type: 'summary', ...flow, packets: 1, bytes: 1, totalPackets: 1, totalBytes: 1, firstSeen: base.time, lastSeen: base.time },
      { ...base, type: 'policy', status: 'rejected', source: 'api' },
      { ...base, type: 'lost', cause: 'sink', count: 1 },
      { ...base, type: 'flood', rule: 'p/r', generation: 1, from: base.time, to: base.time, heldBack: 9, packets: 9, bytes: 9 },
    ]);
    assert.deepEqual(got.map((r) => r.type), ['agent', 'policy', 'lost', 'flood']);
    sink.write([{ ...base, type: 'session', ...flow } as unknown as AuditRecord]);
    assert.equal(got.length, 4, 'a batch of flows only writes nothing');
    assert.equal(sink.name, 'file:control');
    assert.equal(sink.dropped, 3);
    await sink.close();
    assert.ok(closed);
  });
});
