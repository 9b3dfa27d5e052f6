// SPDX-License-Identifier: Apache-2.0
// Summary marks through BPF_PROG_TEST_RUN: the datapath marks a session with traffic once per
// summary epoch (its key in ds_dirty, its counters at the epoch's start kept), never on a new
// session's first packet, and carries the marks across a re-classification; the kernel's marks
// and the in-memory model (MemorySessionCache) agree, so the pipeline's deltas are exact across
// epochs, for a session touched after the epoch turned too; a full ring counts its lost marks.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MarkFlag } from '../../src/abi/generated.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import type { AuditRecord, AuditSink, SummaryRecord } from '../../src/audit/records.js';
import { epochTraffic, MemorySessionCache } from '../../src/audit/summary-source.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { EngineSummaryMarks } from '../../src/engine/summary-marks.js';
import { compileYaml, openTestEngine, sessionKeyOf, TEST_IFINDEX } from '../lib/datapath.js';
import { type FrameSpec, frame } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: marks }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [80] }
`;
const flow = (i: number): FrameSpec => ({ src: '10.9.0.1', dst: '10.1.2.3', proto: 6, sport: 40000 + i, dport: i % 2 ? 80 : 22 });

class Sink implements AuditSink {
  readonly records: AuditRecord[] = [];
  write(r: readonly AuditRecord[]): void {
    this.records.push(...r);
  }
  async close(): Promise<void> {}
  summaries(): SummaryRecord[] {
    return this.records.filter((r): r is SummaryRecord => r.type === 'summary');
  }
}

describe('datapath: summary marks', () => {
  let engine: NativeEngine;
  let marks: EngineSummaryMarks;

  beforeEach(() => {
    engine = openTestEngine();
    engine.install(compileYaml(POLICY).image);
    marks = new EngineSummaryMarks(engine);
  });
  afterEach(() => engine.close());

  const send = (f: FrameSpec, n: number) => {
    for (let i = 0; i < n; i++) engine.testRun(frame(f));
  };

  it('marks a session with traffic once per epoch, never on its first packet, and keeps its bases', () => {
    marks.advance(); // epoch 1
    const f = flow(1);
    send(f, 1);
    assert.equal(marks.drain(100).length, 0, 'a new session is not marked');
    assert.equal(engine.lookupSession(sessionKeyOf(f))?.mark, 0);
    send(f, 4);
    const first = marks.drain(100);
    assert.deepEqual(first.map((r) => [r.epoch, r.key.sport]), [[1, f.sport]], 'marked once in epoch 1');
    let v = engine.lookupSession(sessionKeyOf(f))!;
    assert.deepEqual([v.mark, v.basePackets, v.packets], [1, 0, 5], 'first mark: counts from the first packet');
    marks.advance(); // epoch 2
    send(f, 3);
    assert.deepEqual(marks.drain(100).map((r) => r.epoch), [2]);
    v = engine.lookupSession(sessionKeyOf(f))!;
    assert.deepEqual([v.mark, v.basePackets, v.prevPackets, v.markFlags, v.packets], [2, 5, 0, MarkFlag.ADJACENT, 8]);
    assert.deepEqual(epochTraffic(v, 1)?.packets, 5, 'epoch 1, read after the session was marked in epoch 2');
    assert.deepEqual(epochTraffic(v, 2)?.packets, 3);
    marks.advance(); // epoch 3: idle
    marks.advance(); // epoch 4
    send(f, 2);
    v = engine.lookupSession(sessionKeyOf(f))!;
    assert.deepEqual([v.mark, v.basePackets, v.markFlags], [4, 8, 0], 'not adjacent: epoch 2 cannot be read back any more');
    assert.equal(epochTraffic(v, 4)?.packets, 2);
    assert.equal(epochTraffic(v, 2), null);
    assert.equal(engine.stats().counters.DIRTY_LOST, 0);
  });

  it('carries the marks of a re-classified session into its new value', () => {
    marks.advance();
    const f = flow(1);
    send(f, 3);
    marks.advance();
    send(f, 2);
    engine.install(compileYaml(POLICY.replace('ports: [80]', 'ports: [80, 81]')).image); // a new generation
    send(f, 1); // re-classified: still allowed, same cache, marks carried
    const v = engine.lookupSession(sessionKeyOf(f))!;
    assert.deepEqual([v.packets, v.mark, v.basePackets], [6, 2, 3]);
    assert.equal(epochTraffic(v, 2)?.packets, 3);
    assert.equal(marks.drain(100).filter((r) => r.epoch === 2).length, 1, 'marked once in epoch 2');
  });

  it('gives the pipeline exact deltas across epochs, like the in-memory model, a session touched during the drain included', async () => {
    const run = async (source: 'kernel' | 'model') => {
      const sink = new Sink();
      const model = new MemorySessionCache();
      const packets = (i: number, n: number) => {
        if (source === 'kernel') send(flow(i), n);
        else if (model.get(sessionKeyOf(flow(i)))) model.touch(sessionKeyOf(flow(i)), n, frame(flow(i)).length);
        else {
          model.create(sessionKeyOf(flow(i)), { firstSeenNs: process.hrtime.bigint() + 10_000_000_000n, generation: 1 }, frame(flow(i)).length);
          if (n > 1) model.touch(sessionKeyOf(flow(i)), n - 1, frame(flow(i)).length);
        }
      };
      const base = source === 'kernel' ? marks : model;
      let during: (() => void) | undefined;
      const summaries = {
        advance: () => base.advance(),
        lost: () => base.lost(),
        drain: (max: number) => {
          during?.();
          during = undefined;
          return base.drain(max);
        },
        lookup: base.lookup.bind(base),
        scan: () => base.scan(),
      };
      const p = new AuditPipeline({ context: { enforcer: 't', interfaces: new Map([[TEST_IFINDEX, 'lo']]), policies: new Map() }, sinks: [sink], summaryIntervalMs: 0, summaries });
      for (let i = 0; i < 8; i++) packets(i, 1 + i);
      await p.summarize();
      for (let i = 0; i < 8; i += 2) packets(i, 3);
      during = () => packets(2, 5); // after the epoch turned, before its records are read
      await p.summarize();
      packets(2, 1);
      await p.summarize();
      await p.summarize();
      await p.close();
      return sink
        .summaries()
        .map((s) => [s.sport, s.packets, s.totalPackets, s.bytes, s.totalBytes])
        .sort((a, b) => a[0]! - b[0]! || a[2]! - b[2]!);
    };
    const kernel = await run('kernel');
    engine.clearFlowState();
    const model = await run('model');
    assert.deepEqual(kernel, model);
    const two = kernel.filter((r) => r[0] === flow(2).sport);
    assert.deepEqual(two.map((r) => [r[1], r[2]]), [[3, 3], [3, 6], [6, 12]], 'flow 2: 3 packets, then 3, then 5 during the drain + 1');
  });

  it('counts the marks a full ring could not take', () => {
    marks.advance();
    const n = 200_000; // twice this is more than ds_dirty holds (16 MiB / 64 bytes a record)
    const frames = Array.from({ length: n }, (_, i) => frame({ src: `10.${8 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, dst: '10.1.2.3', proto: 6, sport: 1000, dport: 80 }));
    for (const f of frames) engine.testRun(f);
    for (const f of frames) engine.testRun(f); // second packets: marked in epoch 1
    marks.advance();
    for (const f of frames) engine.testRun(f); // marked again in epoch 2, nothing drained
    const lost = marks.lost();
    let drained = 0;
    for (let got = marks.drain(65536).length; got > 0; got = marks.drain(65536).length) drained += got;
    assert.ok(lost > 0, 'some marks were lost');
    assert.equal(drained + lost, 2 * n, 'every mark queued or counted');
  });
});
