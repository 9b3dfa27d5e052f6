// SPDX-License-Identifier: Apache-2.0
// Flood records without a kernel: FloodAccounting turns readings of the per-rule counters into
// held-back deltas (the baseline, a version switch with its retired final counts, denies without a
// rule), and the pipeline writes them as `flood` records named after the rule's version.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FloodAccounting, type FloodReading, type RuleCounters } from '../../src/audit/flood-accounting.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import type { AuditRecord, AuditSink, FloodRecord } from '../../src/audit/records.js';
import type { EnrichContext } from '../../src/audit/session-record.js';
import { compileSources } from '../../src/policy/compile.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: edge }
spec:
  defaultAction: deny
  rules:
    - { name: block, action: deny, protocol: udp, ports: [9999] }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
`;
const { ir } = compileSources([{ file: 'edge.yaml', text: POLICY }]);

const rules = (...rows: [number, number, number, number][]) => new Map<number, RuleCounters>(rows.map(([rule, packets, bytes, held]) => [rule, { packets, bytes, held }]));
const reading = (over: Partial<FloodReading>): FloodReading => ({ generation: 1, rules: new Map(), heldWithoutRule: 0, retired: [], ...over });

describe('FloodAccounting', () => {
  it('reports nothing at the first reading (the baseline), then the deltas of rules that held sessions back', () => {
    const f = new FloodAccounting();
    assert.deepEqual(f.update(reading({ rules: rules([0, 10, 1000, 5], [1, 50, 5000, 40]) })), []);
    assert.deepEqual(f.update(reading({ rules: rules([0, 12, 1200, 5], [1, 150, 15000, 130]) })), [{ generation: 1, rule: 1, held: 90, packets: 100, bytes: 10000 }]);
    assert.deepEqual(f.update(reading({ rules: rules([0, 12, 1200, 5], [1, 150, 15000, 130]) })), [], 'nothing new');
  });

  it('counts a replaced version to its final counts, and the new one from zero', () => {
    const f = new FloodAccounting();
    f.update(reading({ generation: 1, rules: rules([1, 100, 1000, 10]) }));
    const deltas = f.update(reading({ generation: 2, rules: rules([1, 7, 70, 3]), retired: [{ generation: 1, rules: rules([1, 130, 1300, 25]) }] }));
    assert.deepEqual(deltas, [
      { generation: 1, rule: 1, held: 15, packets: 30, bytes: 300 },
      { generation: 2, rule: 1, held: 3, packets: 7, bytes: 70 },
    ]);
    // a version installed and replaced between two readings: all of it
    const more = f.update(reading({ generation: 4, rules: rules(), retired: [{ generation: 2, rules: rules([1, 9, 90, 3]) }, { generation: 3, rules: rules([0, 5, 50, 2]) }] }));
    assert.deepEqual(more, [{ generation: 3, rule: 0, held: 2, packets: 5, bytes: 50 }]);
  });

  it('reports denies without a counted rule apart (rule null)', () => {
    const f = new FloodAccounting();
    f.update(reading({ generation: 0, heldWithoutRule: 4 }));
    assert.deepEqual(f.update(reading({ generation: 0, heldWithoutRule: 10 })), [{ generation: 0, rule: null, held: 6, packets: 0, bytes: 0 }]);
  });
});

describe('AuditPipeline: flood records', () => {
  it('writes one flood record per rule with held-back sessions, named, with the interval, and a last one at close', async () => {
    const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map(), policies: new Map([[5, ir]]) };
    const written: AuditRecord[] = [];
    const sink: AuditSink = { write: (r) => void written.push(...r), close: async () => undefined };
    let current = reading({ generation: 5, rules: rules([1, 10, 100, 0]) });
    let t = Date.parse('2026-12-06T09:00:00.000Z');
    const pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, floods: () => current, now: () => new Date((t += 1000)) });
    current = reading({ generation: 5, rules: rules([1, 510, 5100, 480], [0, 3, 30, 1]), heldWithoutRule: 0 });
    pipeline.reportFloods();
    const floods = written.filter((r): r is FloodRecord => r.type === 'flood');
    assert.equal(floods.length, 2);
    const block = floods.find((r) => r.rule === 'edge/block');
    assert.ok(block, JSON.stringify(floods));
    assert.deepEqual(
      { heldBack: block.heldBack, packets: block.packets, bytes: block.bytes, policy: block.policy, generation: block.generation, policyVersion: block.policyVersion },
      { heldBack: 480, packets: 500, bytes: 5000, policy: 'edge', generation: 5, policyVersion: ir.version },
    );
    assert.ok(block.from < block.to, `${block.from} < ${block.to}`);
    assert.equal(floods.find((r) => r.rule !== 'edge/block')?.rule, 'edge/default');
    current = reading({ generation: 5, rules: rules([1, 600, 6000, 560], [0, 3, 30, 1]), heldWithoutRule: 2 });
    await pipeline.close();
    const last = written.filter((r): r is FloodRecord => r.type === 'flood').slice(2);
    assert.deepEqual(
      last.map((r) => [r.rule, r.heldBack]),
      [
        ['edge/block', 80],
        ['no-rule', 2],
      ],
    );
    assert.equal(pipeline.stats().floods, 4);
  });
});
