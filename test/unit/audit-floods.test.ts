// SPDX-License-Identifier: Apache-2.0
// Flood records without a kernel: FloodAccounting turns readings of the per-rule counters into
// held-back deltas (the baseline, a version switch with its retired final counts, denies without a
// rule), and the pipeline writes them as `flood` records named after the rule's version.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Limits } from '../../src/abi/generated.js';
import type { FloodSample } from '../../src/abi/records.js';
import { FloodAccounting, type FloodReading, type RuleCounters } from '../../src/audit/flood-accounting.js';
import { estimateDistinct, topSources } from '../../src/audit/flood-sources.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import type { AuditRecord, AuditSink, FloodRecord } from '../../src/audit/records.js';
import type { EnrichContext } from '../../src/audit/session-record.js';
import { compileSources } from '../../src/policy/compile.js';
import { ruleNamesOf } from '../../src/audit/rule-names.js';

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
    assert.deepEqual(f.update(reading({ rules: rules([0, 12, 1200, 5], [1, 150, 15000, 130]) })), [{ generation: 1, rule: 1, held: 90, packets: 100, bytes: 10000, sketch: null }]);
    assert.deepEqual(f.update(reading({ rules: rules([0, 12, 1200, 5], [1, 150, 15000, 130]) })), [], 'nothing new');
  });

  it('counts a replaced version to its final counts, and the new one from zero', () => {
    const f = new FloodAccounting();
    f.update(reading({ generation: 1, rules: rules([1, 100, 1000, 10]) }));
    const deltas = f.update(reading({ generation: 2, rules: rules([1, 7, 70, 3]), retired: [{ generation: 1, rules: rules([1, 130, 1300, 25]) }] }));
    assert.deepEqual(deltas, [
      { generation: 1, rule: 1, held: 15, packets: 30, bytes: 300, sketch: null },
      { generation: 2, rule: 1, held: 3, packets: 7, bytes: 70, sketch: null },
    ]);
    // a version installed and replaced between two readings: all of it
    const more = f.update(reading({ generation: 4, rules: rules(), retired: [{ generation: 2, rules: rules([1, 9, 90, 3]) }, { generation: 3, rules: rules([0, 5, 50, 2]) }] }));
    assert.deepEqual(more, [{ generation: 3, rule: 0, held: 2, packets: 5, bytes: 50, sketch: null }]);
  });

  it('counts a replaced version from where it was last seen when a reading sees the next one before its final counts', () => {
    const f = new FloodAccounting();
    f.update(reading({ generation: 1, rules: rules([1, 100, 1000, 10]) }));
    // generation 2 is switched in, generation 1's final counters are not yet read: nothing of 1 now
    assert.deepEqual(f.update(reading({ generation: 2, rules: rules([1, 4, 40, 1]) })), [{ generation: 2, rule: 1, held: 1, packets: 4, bytes: 40, sketch: null }]);
    // they arrive: what 1 held back since it was last seen, not all of it again
    assert.deepEqual(f.update(reading({ generation: 2, rules: rules([1, 4, 40, 1]), retired: [{ generation: 1, rules: rules([1, 130, 1300, 25]) }] })), [
      { generation: 1, rule: 1, held: 15, packets: 30, bytes: 300, sketch: null },
    ]);
    // and nothing more of it after that
    assert.deepEqual(f.update(reading({ generation: 3, rules: rules(), retired: [{ generation: 2, rules: rules([1, 4, 40, 1]) }] })), []);
  });

  it('reports denies without a counted rule apart (rule null)', () => {
    const f = new FloodAccounting();
    f.update(reading({ generation: 0, heldWithoutRule: 4 }));
    assert.deepEqual(f.update(reading({ generation: 0, heldWithoutRule: 10 })), [{ generation: 0, rule: null, held: 6, packets: 0, bytes: 0, sketch: null }]);
  });
});

describe('AuditPipeline: flood records', () => {
  it('writes one flood record per rule with held-back sessions, named, with the interval, and a last one at close', async () => {
    const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map(), policies: new Map([[5, ruleNamesOf(ir)]]) };
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

describe('AuditPipeline: flood readings that settle later', () => {
  it('joins a reading in flight, writes its records when it settles, and reads once more at close', async () => {
    const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map(), policies: new Map([[5, ruleNamesOf(ir)]]) };
    const written: AuditRecord[] = [];
    const sink: AuditSink = { write: (r) => void written.push(...r), close: async () => undefined };
    let current = reading({ generation: 5, rules: rules([1, 10, 100, 0]) });
    let calls = 0;
    const pending: (() => void)[] = [];
    const floods = () => {
      calls++;
      const r = current;
      return new Promise<FloodReading>((resolve) => pending.push(() => resolve(r)));
    };
    const pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, floods });
    pending.shift()!(); // the baseline
    await new Promise((r) => setImmediate(r));
    current = reading({ generation: 5, rules: rules([1, 110, 1100, 90]) });
    const a = pipeline.reportFloods();
    const b = pipeline.reportFloods();
    assert.equal(calls, 2, 'the second report joined the first');
    assert.equal(written.filter((r) => r.type === 'flood').length, 0, 'nothing before the reading settles');
    current = reading({ generation: 5, rules: rules([1, 150, 1500, 120]) }); // after the read began: the next reading's
    pending.shift()!();
    await Promise.all([a, b]);
    assert.deepEqual(written.filter((r): r is FloodRecord => r.type === 'flood').map((r) => [r.rule, r.heldBack]), [['edge/block', 90]]);
    const closing = pipeline.close();
    await new Promise((r) => setImmediate(r));
    pending.shift()!();
    await closing;
    assert.deepEqual(written.filter((r): r is FloodRecord => r.type === 'flood').map((r) => [r.rule, r.heldBack]), [['edge/block', 90], ['edge/block', 30]]);
    assert.equal(calls, 3);
  });
});

describe('flood sources', () => {
  // registers filled the way docs/datapath.md describes the datapath's sketch, from an independent
  // hash (SHA-256), so the estimator is judged on its own
  const sketchOf = (count: number, salt: string): Uint8Array => {
    const regs = new Uint8Array(Limits.SKETCH_REGISTERS);
    for (let i = 0; i < count; i++) {
      const h = createHash('sha256').update(`${salt}:${i}`).digest().readUInt32LE(0);
      const rest = h & ~(Limits.SKETCH_REGISTERS - 1);
      const rank = rest === 0 ? 28 : Math.clz32(rest) + 1;
      const r = h & (Limits.SKETCH_REGISTERS - 1);
      regs[r] = Math.max(regs[r]!, rank);
    }
    return regs;
  };

  it('estimates distinct sources within three standard errors (HyperLogLog, 32 registers: ~18 %)', () => {
    assert.equal(estimateDistinct(new Uint8Array(Limits.SKETCH_REGISTERS)), 0);
    for (const n of [1, 5, 30, 200, 5_000, 100_000]) {
      for (const salt of ['a', 'b', 'c']) {
        const e = estimateDistinct(sketchOf(n, salt));
        assert.ok(Math.abs(e - n) <= Math.max(1, 0.55 * n), `${n} distinct (${salt}) estimated as ${e.toFixed(1)}`);
      }
    }
  });

  it('names the top sources and prefixes of one rule from the samples, scaled to the held-back sessions', () => {
    const v4 = (a: number, b: number, c: number, d: number) => Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]);
    const samples: FloodSample[] = [
      ...Array.from({ length: 6 }, () => ({ family: 4, src: v4(10, 64, 1, 7), generation: 5, rule: 1 })),
      ...Array.from({ length: 2 }, (_, i) => ({ family: 4, src: v4(10, 64, 1, 20 + i), generation: 5, rule: 1 })),
      ...Array.from({ length: 2 }, (_, i) => ({ family: 4, src: v4(192, 0, 2, i), generation: 5, rule: 1 })),
      { family: 4, src: v4(10, 64, 1, 7), generation: 5, rule: 2 }, // another rule
      { family: 4, src: v4(10, 64, 1, 7), generation: 4, rule: 1 }, // another version
      { family: 6, src: Uint8Array.from([0xfd, 0, 0, 9, 0, 1, 0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 1]), generation: 5, rule: 1 },
    ];
    const s = topSources(samples, 5, 1, 1100, 3);
    assert.equal(s.sampled, 11);
    assert.deepEqual(s.topSources, [
      { source: '10.64.1.7', sessions: 600 },
      { source: '10.64.1.20', sessions: 100 },
      { source: '10.64.1.21', sessions: 100 },
    ]);
    assert.deepEqual(s.topPrefixes, [
      { source: '10.64.1.0/24', sessions: 800 },
      { source: '192.0.2.0/24', sessions: 200 },
      { source: 'fd00:9:1::/48', sessions: 100 },
    ]);
    assert.deepEqual(topSources(samples, 5, 3, 10), { sampled: 0, topSources: [], topPrefixes: [] });
  });

  it('puts the estimate and the top sources into the flood record', () => {
    const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map(), policies: new Map([[5, ruleNamesOf(ir)]]) };
    const written: AuditRecord[] = [];
    const sink: AuditSink = { write: (r) => void written.push(...r), close: async () => undefined };
    const sketch = sketchOf(40, 'record');
    const src = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 64, 3, 3]);
    let current = reading({ generation: 5, rules: rules([1, 0, 0, 0]) });
    const pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, floods: () => current });
    current = reading({ generation: 5, rules: new Map([[1, { packets: 60, bytes: 600, held: 50, sketch }]]), samples: [{ family: 4, src, generation: 5, rule: 1 }] });
    pipeline.reportFloods();
    const [r] = written.filter((x): x is FloodRecord => x.type === 'flood');
    assert.ok(r);
    assert.equal(r.distinctSources, Math.min(50, Math.round(estimateDistinct(sketch))));
    assert.ok(r.distinctSources! >= 20 && r.distinctSources! <= 50, `estimate ${r.distinctSources}`);
    assert.deepEqual([r.sampled, r.topSources, r.topPrefixes], [1, [{ source: '10.64.3.3', sessions: 50 }], [{ prefix: '10.64.3.0/24', sessions: 50 }]]);
  });
});
