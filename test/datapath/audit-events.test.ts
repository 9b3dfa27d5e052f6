// SPDX-License-Identifier: Apache-2.0
// Real events through the whole audit path: packets run through the XDP engine with
// BPF_PROG_TEST_RUN, the engine's ring-buffer reader, AuditPipeline. Records carry the right names,
// ports and counts; a flood on one session is one session record plus summaries of its packets;
// and when the ring buffer overflows, the lost records add up exactly to the kernel's counter,
// also for an engine whose sequence numbers did not start at 1.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { NativeEngine } from '../../src/engine/engine.js';
import { runEach } from '../../bench/lib/floor.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import { EngineSummaryMarks } from '../../src/engine/summary-marks.js';
import type { AuditRecord, AuditSink, LostRecord, SummaryRecord } from '../../src/audit/records.js';
import type { EnrichContext, SessionRecord } from '../../src/audit/session-record.js';
import type { PolicyIr } from '../../src/policy/ir/ir.js';
import { compileYaml, openTestEngine, TEST_IFINDEX, waitFor } from '../lib/datapath.js';
import { type FrameSpec, frame } from '../lib/packet.js';
import { ruleNamesOf } from '../../src/audit/rule-names.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: edge }
spec:
  defaultAction: deny
  rules:
    - { name: dns, action: allow, protocol: udp, ports: [53] }
    - { name: web, action: allow, to: [10.1.0.0/16, "fd00:1::/64"], protocol: tcp, ports: [443] }
    - { name: ping, action: allow, protocol: icmp }
`;

class MemorySink implements AuditSink {
  readonly records: AuditRecord[] = [];
  write(records: readonly AuditRecord[]): void {
    for (const r of records) this.records.push(r);
  }
  async close(): Promise<void> {}
  of<T extends AuditRecord['type']>(type: T): Extract<AuditRecord, { type: T }>[] {
    return this.records.filter((r): r is Extract<AuditRecord, { type: T }> => r.type === type);
  }
}

/** `count` frames of one size, flow `i` differing in its source address and port. */
function distinctFlows(base: FrameSpec, count: number): { frames: Buffer; size: number } {
  const one = frame(base);
  const frames = Buffer.alloc(one.length * count);
  for (let i = 0; i < count; i++) {
    const f = frames.subarray(i * one.length, (i + 1) * one.length);
    one.copy(f);
    f.writeUInt16BE(1024 + (i % 60000), 14 + 20); // source port
    f.writeUInt16BE(i >> 8 & 0xffff, 14 + 12 + 2); // source address, last two octets
    f.writeUInt8(i & 0xff, 14 + 12 + 3);
  }
  return { frames, size: one.length };
}

describe('datapath → audit pipeline', () => {
  let engine: NativeEngine;
  let ir: PolicyIr;
  let context: EnrichContext;
  let sink: MemorySink;
  let pipeline: AuditPipeline;

  beforeEach(() => {
    engine = openTestEngine();
    const compiled = compileYaml(POLICY, 'edge.yaml');
    ir = compiled.ir;
    const { generation } = engine.install(compiled.image);
    context = { enforcer: 'test-enforcer', interfaces: new Map([[TEST_IFINDEX, 'lo']]), policies: new Map([[generation, ruleNamesOf(ir)]]) };
    sink = new MemorySink();
  });
  afterEach(async () => {
    await pipeline?.close();
    engine.close();
  });

  const start = () => {
    pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: new EngineSummaryMarks(engine), kernelStats: () => engine.stats() });
    engine.onEvents((events) => pipeline.handleEvents(events));
  };

  it('turns every new session into one record with names, addresses, ports and sequence numbers', async () => {
    start();
    const flows: FrameSpec[] = [
      ...Array.from({ length: 40 }, (_, i): FrameSpec => ({ src: '10.9.0.1', dst: '10.1.0.53', proto: 17, sport: 5000 + i, dport: 53 })),
      ...Array.from({ length: 20 }, (_, i): FrameSpec => ({ src: `192.0.2.${i + 1}`, dst: '10.1.2.3', proto: 6, sport: 40000, dport: 25 })),
      ...Array.from({ length: 10 }, (_, i): FrameSpec => ({ src: `2001:db8::${i + 1}`, dst: 'fd00:1::7', proto: 6, sport: 41000, dport: 443 })),
      { src: '10.9.0.9', dst: '10.1.2.3', proto: 1, icmpType: 8, icmpCode: 0, icmpId: 7 },
      { src: '10.9.0.9', dst: '10.1.2.3', proto: 6, sport: 1, dport: 443, vlans: [100] },
    ];
    for (const f of flows) for (let k = 0; k < 3; k++) engine.testRun(frame(f)); // three packets each: one event each
    assert.ok(await waitFor(() => sink.of('session').length >= flows.length, 5000), `${sink.of('session').length} of ${flows.length} records`);
    pipeline.checkKernelLost(engine.stats());
    const sessions = sink.of('session');
    assert.equal(sessions.length, flows.length);
    assert.equal(sink.of('lost').length, 0);

    const byRule = (rule: string) => sessions.filter((s) => s.rule === rule);
    assert.equal(byRule('edge/dns').length, 40);
    assert.equal(byRule('edge/default').length, 20);
    assert.equal(byRule('edge/web').length, 10 + 1);
    assert.equal(byRule('edge/ping').length, 1);

    const dns = byRule('edge/dns')[0] as SessionRecord;
    assert.equal(dns.verdict, 'allow');
    assert.equal(dns.reason, 'policy');
    assert.equal(dns.protocol, 'udp');
    assert.equal(dns.src, '10.9.0.1');
    assert.equal(dns.dst, '10.1.0.53');
    assert.equal(dns.dport, 53);
    assert.equal(dns.policy, 'edge');
    assert.equal(dns.policyVersion, ir.version);
    assert.equal(dns.enforcer, 'test-enforcer');
    assert.equal(dns.interface, 'lo');
    assert.equal(dns.event, 'new');
    const denied = byRule('edge/default').find((s) => s.dport === 25) as SessionRecord;
    assert.equal(denied.verdict, 'deny');
    const v6 = byRule('edge/web').find((r) => r.src.includes(':')) as SessionRecord;
    assert.match(v6.src, /^2001:db8::\d+$/);
    assert.equal(v6.dst, 'fd00:1::7');
    const ping = byRule('edge/ping')[0] as SessionRecord;
    assert.deepEqual([ping.protocol, ping.icmpType, ping.icmpCode, ping.sport], ['icmp', 8, 0, undefined]);
    assert.deepEqual(sessions.find((s) => s.vlan)?.vlan, [100]);

    // per CPU, the sequence numbers run without a gap up to the engine's last one
    const stats = engine.stats();
    for (const [cpu, last] of stats.eventSeq.entries()) {
      const mine = sessions.filter((s) => s.cpu === cpu).map((s) => s.seq);
      if (mine.length === 0) continue;
      assert.equal(Math.max(...mine), last);
      assert.equal(new Set(mine).size, mine.length);
    }
    assert.equal(pipeline.stats().eventsRead, stats.counters.EVENTS);
  });

  it('floods one session: one session record, then summaries that add up to its packets', async () => {
    start();
    const flood = frame({ src: '192.0.2.66', dst: '10.1.2.3', proto: 6, sport: 6666, dport: 22 });
    for (let i = 0; i < 300; i++) engine.testRun(flood);
    assert.ok(await waitFor(() => sink.of('session').length === 1));
    await pipeline.summarize();
    for (let i = 0; i < 200; i++) engine.testRun(flood);
    await pipeline.summarize();
    await pipeline.summarize(); // nothing since: no record
    assert.equal(sink.of('session').length, 1, 'the kernel emits one event per session, not per packet');
    const summaries = sink.of('summary');
    assert.deepEqual(
      summaries.map((s: SummaryRecord) => [s.packets, s.totalPackets, s.bytes, s.totalBytes]),
      [
        [300, 300, 300 * flood.length, 300 * flood.length],
        [200, 500, 200 * flood.length, 500 * flood.length],
      ],
    );
    const s = summaries[1] as SummaryRecord;
    assert.deepEqual([s.verdict, s.rule, s.src, s.dport, s.interface], ['deny', 'edge/default', '192.0.2.66', 22, 'lo']);
    assert.ok(Date.parse(s.lastSeen) >= Date.parse(s.firstSeen));
  });

  it('when the ring buffer overflows, the lost records add up to the kernel counter, exactly', async () => {
    // an engine that has emitted before this pipeline starts: its sequence numbers are not at 1,
    // and those earlier events are still queued
    const before = distinctFlows({ src: '10.8.0.0', dst: '10.1.0.53', proto: 17, sport: 1, dport: 53 }, 1000);
    runEach(engine.programFd, before.frames, before.size, 1000);
    const lostAtStart = engine.stats().counters.EVENTS_LOST;
    pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => engine.stats() });

    // no reader yet: the 16 MiB ring holds ~174,000 events; offer more new sessions than that
    const total = 250_000;
    const flood = distinctFlows({ src: '10.7.0.0', dst: '10.1.0.53', proto: 17, sport: 1, dport: 53 }, total);
    const run = runEach(engine.programFd, flood.frames, flood.size, total);
    assert.equal(run.runs, total);
    const counters = engine.stats().counters;
    const kernelLost = counters.EVENTS_LOST - lostAtStart;
    assert.ok(kernelLost > 0, 'the ring buffer overflowed');

    engine.onEvents((events) => pipeline.handleEvents(events));
    assert.ok(await waitFor(() => pipeline.stats().eventsRead === counters.EVENTS, 20_000), `read ${pipeline.stats().eventsRead} of ${counters.EVENTS}`);
    pipeline.checkKernelLost(engine.stats());

    const lost = sink.of('lost') as LostRecord[];
    assert.ok(lost.length > 0);
    assert.ok(lost.every((r) => r.cause === 'ring-buffer' && r.cpu !== undefined && r.lastSeq! - r.firstSeq! + 1 === r.count));
    assert.equal(
      lost.reduce((n, r) => n + r.count, 0),
      kernelLost,
      'lost records = the kernel counter since the pipeline started',
    );
    assert.equal(pipeline.stats().eventsLost, kernelLost);
    assert.equal(pipeline.stats().eventsRead, 1000 + total - kernelLost, 'the earlier events are read too, and are not losses');
    assert.equal(pipeline.stats().lateEvents, 0);
    // every number a CPU used since the start is accounted for exactly once: read or lost
    const stats = engine.stats();
    const seen = new Map<number, Set<number>>();
    for (const r of sink.of('session')) {
      const set = seen.get(r.cpu) ?? new Set<number>();
      set.add(r.seq);
      seen.set(r.cpu, set);
    }
    for (const r of lost) for (let q = r.firstSeq!; q <= r.lastSeq!; q++) assert.ok(!seen.get(r.cpu!)?.has(q), `seq ${q} on cpu ${r.cpu} both read and lost`);
    const accounted = [...seen.values()].reduce((n, s) => n + s.size, 0) + kernelLost;
    assert.equal(accounted, stats.eventSeq.reduce((a, b) => a + b, 0));
  });
});
