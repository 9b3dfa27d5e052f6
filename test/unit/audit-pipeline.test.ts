// SPDX-License-Identifier: Apache-2.0
// AuditPipeline without a kernel: enrichment (the same records as sessionRecord(), from plain and
// batch-decoded events), lost accounting (sequence gaps, trailing losses reconciled with the
// kernel's counters, the baseline of an agent that adopts a running engine, sink drops),
// summaries from the marks of sessions with traffic (deltas and totals, the first summary, idle
// sessions, a session touched during the drain, lost marks, sessions from before the start),
// and the sink set.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, EventKind, Reason } from '../../src/abi/generated.js';
import type { RawEvent, SessionKey } from '../../src/abi/records.js';
import { decodeEventBatch } from '../../src/abi/records-fast.js';
import { AuditPipeline, type KernelEventStats } from '../../src/audit/pipeline.js';
import { MemorySessionCache } from '../../src/audit/summary-source.js';
import type { AuditRecord, AuditSink, LostRecord, SummaryRecord } from '../../src/audit/records.js';
import { type EnrichContext, monotonicToWall, type SessionRecord, sessionRecord } from '../../src/audit/session-record.js';
import { compileSources } from '../../src/policy/compile.js';
import { batchOf, WEB_POLICY } from '../lib/audit-fixtures.js';
import { addr16 } from '../lib/packet.js';
import { ruleNamesOf } from '../../src/audit/rule-names.js';

const { ir } = compileSources([{ file: 'web.yaml', text: WEB_POLICY }]);
const GEN = 7;
const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map([[3, 'eth1']]), policies: new Map([[GEN, ruleNamesOf(ir)]]) };

class MemorySink implements AuditSink {
  readonly batches: AuditRecord[][] = [];
  closed = false;
  write(records: readonly AuditRecord[]): void {
    this.batches.push([...records]);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  get records(): AuditRecord[] {
    return this.batches.flat();
  }
  of<T extends AuditRecord['type']>(type: T): Extract<AuditRecord, { type: T }>[] {
    return this.records.filter((r): r is Extract<AuditRecord, { type: T }> => r.type === type);
  }
}

let clock = 0n;
function event(fields: Partial<RawEvent> = {}): RawEvent {
  clock += 1_000_000n;
  return {
    family: 4,
    src: addr16('192.0.2.10'),
    dst: addr16('10.1.2.3'),
    ifindex: 3,
    vlanOuter: 0,
    vlanInner: 0,
    proto: 6,
    sport: 40000,
    dport: 443,
    timeNs: process.hrtime.bigint() + clock,
    seq: 1,
    rule: 1,
    generation: GEN,
    cpu: 0,
    len: 60,
    action: Action.ALLOW,
    reason: Reason.POLICY,
    kind: EventKind.NEW,
    ...fields,
  };
}

/** Events on one CPU with the given sequence numbers. */
const seqs = (cpu: number, ...numbers: number[]) => numbers.map((seq) => event({ cpu, seq, sport: 1000 + seq }));

const kernel = (eventSeq: number[], lost: number): KernelEventStats => ({ eventSeq, counters: { EVENTS_LOST: lost } });
const lostCount = (sink: MemorySink) => sink.of('lost').reduce((n, r) => n + r.count, 0);
const withoutTime = ({ time: _t, ...rest }: SessionRecord) => rest;

describe('audit pipeline: session records', () => {
  it('gives the same records as sessionRecord(), for plain and batch-decoded events', () => {
    const events = [
      event(),
      event({ seq: 2, proto: 17, dport: 53, sport: 5353, rule: 2 }),
      event({ seq: 3, proto: 1, dport: (8 << 8) | 0, sport: 77, rule: 3 }),
      event({ seq: 4, family: 6, src: addr16('2001:db8::7'), dst: addr16('fd00:1::1'), rule: 0, action: Action.DENY, dport: 22 }),
      event({ seq: 5, vlanOuter: 100, vlanInner: 200, kind: EventKind.CHANGED }),
      event({ seq: 6, reason: Reason.NO_POLICY, generation: 0, rule: 0, action: Action.DENY }),
      event({ seq: 7, generation: 99, rule: 2 }), // a generation the context does not know
      event({ seq: 8, ifindex: 42, proto: 250, dport: 0, sport: 0 }),
    ];
    const plain = new MemorySink();
    new AuditPipeline({ context, sinks: [plain], summaryIntervalMs: 0 }).handleEvents(events);
    const reference = events.map((e) => sessionRecord(e, context, monotonicToWall()));
    assert.deepEqual(plain.of('session').map(withoutTime), reference.map(withoutTime));

    // the same events as the native reader delivers them
    const batch = batchOf(events);
    const decoded = new MemorySink();
    new AuditPipeline({ context, sinks: [decoded], summaryIntervalMs: 0 }).handleEvents(decodeEventBatch(batch, events.length));
    assert.deepEqual(decoded.of('session').map(withoutTime), reference.map(withoutTime));
  });

  it('names rules, policies and versions from the context, and reasons when no rule decided', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    p.handleEvents([event({ rule: 2 }), event({ seq: 2, rule: 0 }), event({ seq: 3, reason: Reason.NO_POLICY, generation: 0, rule: 0 }), event({ seq: 4, ifindex: 9 })]);
    const [named, fallback, noPolicy, unknownIf] = sink.of('session');
    assert.equal(named?.rule, 'web/dns');
    assert.equal(named?.policy, 'web');
    assert.equal(named?.policyVersion, ir.version);
    assert.equal(named?.interface, 'eth1');
    assert.equal(fallback?.rule, 'web/default');
    assert.equal(noPolicy?.rule, 'no-policy');
    assert.equal(noPolicy?.policy, undefined);
    assert.equal(noPolicy?.policyVersion, undefined);
    assert.equal(unknownIf?.interface, 'if9');
  });

  it('writes RFC 3339 times at millisecond precision that keep the events\' spacing', () => {
    const sink = new MemorySink();
    const t = process.hrtime.bigint();
    new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 }).handleEvents([event({ timeNs: t }), event({ seq: 2, timeNs: t + 5_000_000n })]);
    const [a, b] = sink.of('session');
    assert.match(a?.time ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.equal(Date.parse(b?.time ?? '') - Date.parse(a?.time ?? ''), 5);
  });

  it('writes each delivered batch to every sink in one write', () => {
    const a = new MemorySink();
    const b = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [a, b], summaryIntervalMs: 0 });
    p.handleEvents(seqs(0, 1, 2, 3));
    assert.equal(a.batches.length, 1);
    assert.equal(b.batches.length, 1);
    assert.equal(a.batches[0]?.length, 3);
    assert.equal(p.stats().eventsRead, 3);
    assert.equal(p.stats().recordsWritten, 3);
  });
});

describe('audit pipeline: lost events', () => {
  it('reports a sequence gap as one lost record with exact count, CPU and range, before the batch', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    p.handleEvents([...seqs(0, 1, 2, 5), ...seqs(1, 1)]);
    p.handleEvents(seqs(0, 6, 10));
    const lost = sink.of('lost');
    assert.deepEqual(
      lost.map(({ time: _t, ...r }) => r),
      [
        { type: 'lost', enforcer: 'edge-1', interface: '*', cause: 'ring-buffer', count: 2, cpu: 0, firstSeq: 3, lastSeq: 4 },
        { type: 'lost', enforcer: 'edge-1', interface: '*', cause: 'ring-buffer', count: 3, cpu: 0, firstSeq: 7, lastSeq: 9 },
      ],
    );
    assert.equal(sink.batches[0]?.[0]?.type, 'lost');
    assert.equal(p.stats().eventsLost, 5);
    assert.equal(p.stats().lostRecords, 2);
  });

  it('takes the first event per CPU as the baseline: adopting a running engine loses nothing', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    p.handleEvents([...seqs(0, 1_000_001, 1_000_002), ...seqs(1, 999_999)]);
    assert.equal(sink.of('lost').length, 0);
    p.handleEvents(seqs(0, 1_000_004));
    assert.equal(lostCount(sink), 1);
  });

  it('with the kernel counters at the start, counts exactly what is lost from then on', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => kernel([1_000_000, 500], 1234) });
    // still queued from before the start: no gap, nothing lost, nothing late
    p.handleEvents(seqs(0, 999_998, 1_000_000));
    // the first numbers after the start
    p.handleEvents([...seqs(0, 1_000_001), ...seqs(1, 503)]);
    assert.deepEqual(
      sink.of('lost').map((r) => [r.cpu, r.firstSeq, r.lastSeq, r.count]),
      [[1, 501, 502, 2]],
    );
    assert.equal(p.stats().lateEvents, 0);
  });

  it('reports trailing losses (no later event shows the gap) once the kernel counter proves them', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => kernel([10, 20], 0) });
    p.handleEvents([...seqs(0, 11, 12), ...seqs(1, 21, 23)]); // cpu 1: 22 lost (a gap)
    assert.equal(lostCount(sink), 1);
    // cpu 0 used 13..15 and cpu 1 24: four numbers nobody has read. Only three are lost so far:
    // one may still be queued, so nothing is reported yet
    p.checkKernelLost(kernel([15, 24], 1 + 3));
    assert.equal(lostCount(sink), 1);
    // the queued one arrives; now the counter accounts for every missing number
    p.handleEvents(seqs(1, 24));
    p.checkKernelLost(kernel([15, 24], 1 + 3));
    assert.deepEqual(
      sink.of('lost').map((r) => [r.cpu, r.firstSeq, r.lastSeq, r.count]),
      [
        [1, 22, 22, 1],
        [0, 13, 15, 3],
      ],
    );
    // the sum of the lost records equals the kernel's delta, and nothing is counted twice
    p.checkKernelLost(kernel([15, 24], 4));
    p.handleEvents(seqs(0, 16));
    assert.equal(lostCount(sink), 4);
    assert.equal(p.stats().eventsLost, 4);
    assert.equal(p.stats().lateEvents, 0);
  });

  it('starts the reconciliation at the first check when it had no counters at the start', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    p.handleEvents(seqs(0, 51, 52));
    p.checkKernelLost(kernel([52, 7], 100)); // the baseline: 100 lost before, none since
    assert.equal(lostCount(sink), 0);
    p.checkKernelLost(kernel([55, 7], 103)); // cpu 0: 53..55 lost after the baseline
    assert.deepEqual(
      sink.of('lost').map((r) => [r.cpu, r.firstSeq, r.lastSeq, r.count]),
      [[0, 53, 55, 3]],
    );
  });

  it('starts over when the engine\'s counters go back (its maps were recreated)', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => kernel([5000], 10) });
    p.handleEvents(seqs(0, 5001, 5002));
    p.checkKernelLost(kernel([3], 0));
    p.handleEvents(seqs(0, 4, 5));
    p.checkKernelLost(kernel([7], 2));
    assert.deepEqual(
      sink.of('lost').map((r) => [r.cpu, r.firstSeq, r.lastSeq, r.count]),
      [[0, 6, 7, 2]],
    );
  });

  it('counts an event whose number was already reported lost as late', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => kernel([0], 0) });
    p.handleEvents(seqs(0, 1, 3));
    p.handleEvents(seqs(0, 2));
    assert.equal(p.stats().lateEvents, 1);
  });

  it('reports what a sink dropped as a lost record with cause sink', () => {
    const sink = new MemorySink();
    const dropping = Object.assign(new MemorySink(), { dropped: 0 });
    const p = new AuditPipeline({ context, sinks: [sink, dropping], summaryIntervalMs: 0 });
    dropping.dropped = 17;
    p.checkKernelLost(kernel([0], 0));
    dropping.dropped = 20;
    p.checkKernelLost(kernel([0], 0));
    assert.deepEqual(
      sink.of('lost').map((r) => [r.cause, r.count]),
      [
        ['sink', 17],
        ['sink', 3],
      ],
    );
    assert.equal(p.stats().sinkDropped, 20);
  });

  it('closeSink: what the sink dropped at its close is reported at once to the sinks that stay, and it gets nothing more', async () => {
    const file = new MemorySink();
    const nats = Object.assign(new MemorySink(), { dropped: 0 });
    nats.close = async () => {
      nats.closed = true;
      nats.dropped += 42; // what it still held
    };
    const p = new AuditPipeline({ context, sinks: [file, nats], summaryIntervalMs: 0 });
    await p.closeSink(nats);
    assert.equal(nats.closed, true);
    assert.deepEqual(file.of('lost').map((r) => [r.cause, r.count, r.sink]), [['sink', 42, undefined]]);
    assert.equal(nats.records.length, 0, 'the lost record does not go to the closed sink');
    await p.close();
    assert.equal(file.of('lost').length, 1, 'reported once');
    assert.equal(p.stats().sinkDropped, 42);
  });
});

describe('audit pipeline: summaries', () => {
  const key = (sport: number): SessionKey => ({ family: 4, src: addr16('192.0.2.10'), dst: addr16('10.1.2.3'), ifindex: 3, vlanOuter: 0, vlanInner: 0, proto: 6, sport, dport: 443 });
  const fields = { rule: 1, generation: GEN, action: Action.ALLOW, reason: Reason.POLICY, flags: 1 };
  const rows = (sink: MemorySink) => sink.of('summary').map((s) => [s.sport, s.packets, s.bytes, s.totalPackets, s.totalBytes]);

  it('a flood on one session: one session record, then one summary per interval with deltas and totals', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n; // after the pipeline started
    const cache = new MemorySessionCache();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    p.handleEvents([event({ sport: 1 })]); // the kernel emits one event per new session
    cache.create(key(1), { ...fields, firstSeenNs: born });
    cache.touch(key(1), 999);
    await p.summarize();
    cache.touch(key(1), 500);
    await p.summarize();
    await p.summarize(); // no traffic since: no record
    assert.equal(sink.of('session').length, 1);
    assert.deepEqual(rows(sink), [
      [1, 1000, 100_000, 1000, 100_000],
      [1, 500, 50_000, 1500, 150_000],
    ]);
    const s = sink.of('summary')[1] as SummaryRecord;
    assert.equal(s.rule, 'web/https');
    assert.equal(s.policy, 'web');
    assert.equal(s.policyVersion, ir.version);
    assert.equal(s.verdict, 'allow');
    assert.equal(s.protocol, 'tcp');
    assert.equal(s.src, '192.0.2.10');
    assert.equal(s.dst, '10.1.2.3');
    assert.equal(s.dport, 443);
    assert.equal(s.interface, 'eth1');
    assert.ok(Date.parse(s.lastSeen) >= Date.parse(s.firstSeen));
    assert.equal(p.stats().summaries, 2);
  });

  it('needs no summary for a one-packet session, and counts a later one from its first packet', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const cache = new MemorySessionCache();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    cache.create(key(2), { ...fields, firstSeenNs: born });
    await p.summarize();
    await p.summarize();
    assert.equal(sink.of('summary').length, 0);
    cache.touch(key(2), 3);
    await p.summarize();
    assert.deepEqual(rows(sink), [[2, 4, 400, 4, 400]]);
  });

  it('an idle session writes no summary and costs no lookup', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const cache = new MemorySessionCache();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    for (let i = 0; i < 1000; i++) {
      cache.create(key(i), { ...fields, firstSeenNs: born });
      cache.touch(key(i), 2);
    }
    await p.summarize();
    assert.equal(sink.of('summary').length, 1000);
    assert.equal(cache.lookups.keys, 1000);
    cache.touch(key(7), 5);
    await p.summarize();
    await p.summarize();
    assert.deepEqual(rows(sink).slice(1000), [[7, 5, 500, 8, 800]]);
    assert.equal(cache.lookups.keys, 1001, 'only the session with traffic was looked up');
  });

  it('counts a session touched after the epoch turned, before its record was read, exactly', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const cache = new MemorySessionCache();
    // the cache's kernel keeps marking while the pipeline drains: touch between advance and drain
    let touchDuringDrain = 0;
    const source = {
      advance: () => cache.advance(),
      lost: () => cache.lost(),
      drain: (max: number) => {
        if (touchDuringDrain > 0) {
          cache.touch(key(1), touchDuringDrain);
          touchDuringDrain = 0;
        }
        return cache.drain(max);
      },
      lookup: (records: Parameters<MemorySessionCache['lookup']>[0]) => cache.lookup(records),
      scan: () => cache.scan(),
    };
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: source });
    cache.create(key(1), { ...fields, firstSeenNs: born });
    cache.touch(key(1), 9); // 10 packets in epoch 1
    touchDuringDrain = 7; // 7 more in epoch 2, before epoch 1's record is read
    await p.summarize();
    cache.touch(key(1), 3); // 3 more in epoch 2
    await p.summarize();
    await p.summarize();
    assert.deepEqual(rows(sink), [
      [1, 10, 1000, 10, 1000],
      [1, 10, 1000, 20, 2000],
    ]);
  });

  it('marks a session once per epoch and the deltas add up to its totals over many epochs', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const cache = new MemorySessionCache();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    for (let i = 0; i < 50; i++) cache.create(key(i), { ...fields, firstSeenNs: born });
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let epoch = 0; epoch < 20; epoch++) {
      for (let t = 0; t < 100; t++) cache.touch(key(rand(50)), 1 + rand(3), 60 + rand(1000));
      await p.summarize();
    }
    const total = new Map<number, [number, number]>();
    for (const s of sink.of('summary')) {
      const [pk, b] = total.get(s.sport!) ?? [0, 0];
      total.set(s.sport!, [pk + s.packets, b + s.bytes]);
      assert.deepEqual(total.get(s.sport!), [s.totalPackets, s.totalBytes], 'deltas add up to the totals');
    }
    const final = [...total.keys()].map((sport) => cache.get(key(sport)));
    assert.deepEqual([...total.values()], final.map((v) => [v!.packets, v!.bytes]));
  });

  it('after lost marks (the ring was full) one walk of the cache gives the same summaries', async () => {
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const run = async (capacity: number) => {
      const sink = new MemorySink();
      const cache = new MemorySessionCache(capacity);
      const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
      for (let i = 0; i < 40; i++) cache.create(key(i), { ...fields, firstSeenNs: born });
      for (let epoch = 0; epoch < 4; epoch++) {
        for (let i = epoch; i < 40; i += 1 + epoch) cache.touch(key(i), 1 + epoch, 100 + i);
        await p.summarize();
      }
      return { rows: rows(sink).sort((a, b) => a[0]! - b[0]! || a[3]! - b[3]!), scans: p.stats().summaryScans, lost: cache.lost() };
    };
    const whole = await run(Infinity);
    const overflowing = await run(5);
    assert.equal(whole.scans, 0);
    assert.ok(overflowing.lost > 0 && overflowing.scans > 0, `${overflowing.lost} lost, ${overflowing.scans} scans`);
    assert.deepEqual(overflowing.rows, whole.rows);
  });

  it('counts sessions older than the pipeline from their next epoch on', async () => {
    const sink = new MemorySink();
    const old = process.hrtime.bigint() - 60_000_000_000n;
    const cache = new MemorySessionCache();
    cache.advance(); // an earlier agent's epoch
    cache.create(key(3), { ...fields, firstSeenNs: old });
    cache.touch(key(3), 9_999);
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    cache.create(key(4), { ...fields, firstSeenNs: old }); // never marked before the start
    cache.touch(key(3), 5);
    cache.touch(key(4), 5);
    await p.summarize();
    assert.deepEqual(rows(sink), [[3, 5, 500, 10_005, 1_000_500]], 'the earlier agent\'s epoch is not ours; key 4 counts from its next epoch');
    cache.touch(key(3), 20);
    cache.touch(key(4), 20);
    await p.summarize();
    assert.deepEqual(rows(sink).slice(1), [
      [3, 20, 2000, 10_025, 1_002_500],
      [4, 20, 2000, 26, 2600],
    ]);
  });

  it('starts over for a new session under a known key, and keeps nothing per session', async () => {
    const sink = new MemorySink();
    const born = process.hrtime.bigint() + 1_000_000_000n;
    const cache = new MemorySessionCache();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, summaries: cache });
    for (const i of [1, 2, 3]) {
      cache.create(key(i), { ...fields, firstSeenNs: born });
      cache.touch(key(i), 9);
    }
    await p.summarize();
    assert.equal(p.stats().trackedSessions, 0);
    for (const i of [1, 2, 3]) cache.remove(key(i));
    cache.create(key(1), { ...fields, firstSeenNs: born + 5_000_000_000n });
    cache.touch(key(1), 2);
    await p.summarize();
    assert.deepEqual(
      rows(sink).map((r) => [r[0], r[1], r[3]]),
      [
        [1, 10, 10],
        [2, 10, 10],
        [3, 10, 10],
        [1, 3, 3],
      ],
    );
  });

  it('reports a failing session read to onError from its timer', async () => {
    const errors: unknown[] = [];
    const cache = new MemorySessionCache();
    let fail = false;
    const p = new AuditPipeline({
      context,
      sinks: [],
      summaryIntervalMs: 1,
      summaries: {
        advance: () => cache.advance(),
        lost: () => cache.lost(),
        drain: () => {
          if (fail) throw new Error('engine closed');
          return [];
        },
        lookup: () => [],
        scan: () => cache.scan(),
      },
      onError: (err) => errors.push(err),
    });
    fail = true;
    while (errors.length === 0) await new Promise((r) => setTimeout(r, 5));
    await p.close();
    assert.match(String(errors[0]), /engine closed/);
  });
});

describe('audit pipeline: sinks', () => {
  it('adds and removes live sinks, emits controller records, and closes its sinks', async () => {
    const main = new MemorySink();
    const observer = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [main], summaryIntervalMs: 0 });
    p.addSink(observer);
    p.addSink(observer);
    p.emit({ time: new Date().toISOString(), type: 'agent', enforcer: 'edge-1', interface: '*', event: 'started' });
    p.handleEvents(seqs(0, 1));
    p.removeSink(observer);
    p.handleEvents(seqs(0, 2));
    assert.equal(main.records.length, 3);
    assert.equal(observer.records.length, 2);
    const failing: AuditSink = {
      write: () => {
        throw new Error('broken sink');
      },
      close: async () => undefined,
    };
    p.addSink(failing);
    p.handleEvents(seqs(0, 3));
    assert.equal(main.records.length, 4, 'a failing sink does not stop the others');
    await p.close();
    assert.ok(main.closed);
    assert.ok(!observer.closed, 'a removed sink belongs to whoever added it');
    await p.close();
  });

  it('keeps lost records exact alongside the session records they precede', () => {
    const sink = new MemorySink();
    const p = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    p.handleEvents(seqs(0, 1, 4));
    const [first, second, third] = sink.batches[0] as AuditRecord[];
    assert.equal((first as LostRecord).count, 2);
    assert.equal(second?.type, 'session');
    assert.equal(third?.type, 'session');
  });
});
