// SPDX-License-Identifier: Apache-2.0
// record-json-fast.ts (JsonLineEncoder, the bytes the audit sinks write) against its
// specification, record-json.ts (recordJson): the same bytes on thousands of random records of
// every shape (escapes, Unicode, big numbers included), through warm caches too, only ASCII, and
// the same JSON values as JSON.stringify.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordJson, serializeRecords } from '../../src/audit/record-json.js';
import { encodeRecords, JsonLineEncoder } from '../../src/audit/record-json-fast.js';
import type { AuditRecord, SummaryRecord } from '../../src/audit/records.js';
import { sampleSession } from '../lib/audit-fixtures.js';
import { prng, Random } from '../lib/random-policy.js';

const session = sampleSession;

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
