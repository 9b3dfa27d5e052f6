// SPDX-License-Identifier: Apache-2.0
// ds_flow_filter (issue 12, point 2): a flow whose bits are clear in both banks is classified
// without a probe of either session cache, so a flood of new flows pays no lookup in a large hash.
// The agent ages the banks in turn. What must hold whatever the filter says: a cached session
// that is touched keeps its bits; one idle across two agings is classified again when it resumes,
// and then finds its entry, which carries on (same traffic, same first packet, no second event);
// an entry from an older version is replaced as a re-classified session (moving to the other
// cache if its verdict changed). Verdicts never depend on the filter.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Action, EventKind, MapName } from '../../src/abi/generated.js';
import type { RawEvent } from '../../src/abi/records.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { PinnedMap } from '../../bench/lib/packet-flood.js';
import { addon } from '../../src/engine/native.js';
import { compileYaml, openTestEngine, sessionKeyOf, waitFor } from '../lib/datapath.js';
import { frame, type FrameSpec } from '../lib/packet.js';

const policy = (dnsAction: 'allow' | 'deny') => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: filter }
spec:
  defaultAction: deny
  rules:
    - { name: dns, action: ${dnsAction}, protocol: udp, ports: [53] }
    - { name: block, action: deny, protocol: udp, ports: [9999] }
`;

const allowed: FrameSpec = { src: '10.7.0.1', dst: '10.7.1.1', proto: 17, sport: 40001, dport: 53 };
const denied: FrameSpec = { src: '10.7.0.2', dst: '10.7.1.1', proto: 17, sport: 40002, dport: 9999 };

describe('datapath: the flow filter', () => {
  let engine: NativeEngine;
  const events: RawEvent[] = [];
  before(() => {
    engine = openTestEngine();
    engine.onEvents((batch) => events.push(...batch));
    engine.install(compileYaml(policy('allow')).image);
  });
  after(() => engine?.close());

  const send = (spec: FrameSpec) => engine.testRun(frame(spec)).verdict;
  const counters = () => engine.stats().counters;

  it('keeps a touched session a cache hit across agings', () => {
    for (const spec of [allowed, denied]) {
      assert.equal(send(spec), spec === allowed ? 'pass' : 'drop');
      for (let round = 0; round < 4; round++) {
        engine.ageFlowFilter();
        const before = counters();
        assert.equal(send(spec), spec === allowed ? 'pass' : 'drop');
        const after = counters();
        assert.deepEqual([after.CACHE_HITS - before.CACHE_HITS, after.CACHE_MISSES - before.CACHE_MISSES], [1, 0], `round ${round}`);
      }
      assert.equal(engine.lookupSession(sessionKeyOf(spec))?.packets, 5);
    }
  });

  it('classifies a session idle across two agings again, and its entry carries on: same traffic, no second event', async () => {
    for (const spec of [allowed, denied]) {
      const key = sessionKeyOf(spec);
      const was = engine.lookupSession(key);
      assert.ok(was);
      engine.ageFlowFilter();
      engine.ageFlowFilter();
      const seen = counters().EVENTS;
      const before = counters();
      assert.equal(send(spec), spec === allowed ? 'pass' : 'drop');
      const after = counters();
      assert.equal(after.CACHE_MISSES - before.CACHE_MISSES, 1, 'classified: its bits were gone');
      const now = engine.lookupSession(key);
      assert.deepEqual([now?.packets, now?.bytes, now?.firstSeenNs, now?.action], [was.packets + 1, was.bytes + frame(spec).length, was.firstSeenNs, was.action]);
      assert.equal(after.EVENTS, seen, 'no second session event');
      // and its bits are back: the next packet is a hit
      const hits = counters().CACHE_HITS;
      send(spec);
      assert.equal(counters().CACHE_HITS, hits + 1);
    }
    assert.ok(await waitFor(() => events.length === counters().EVENTS));
    assert.equal(events.filter((e) => e.sport === allowed.sport).length, 1, 'one event for the allowed session, ever');
  });

  it('ages the same way off the event loop (the agent\'s way)', async () => {
    assert.equal(send(allowed), 'pass');
    await engine.ageFlowFilterAsync();
    let before = counters();
    send(allowed);
    assert.equal(counters().CACHE_HITS - before.CACHE_HITS, 1, 'one aging: its bit stays in the other bank');
    await engine.ageFlowFilterAsync();
    await engine.ageFlowFilterAsync();
    before = counters();
    send(allowed);
    assert.equal(counters().CACHE_MISSES - before.CACHE_MISSES, 1, 'two agings with no packet between: classified again');
  });

  it('replaces an idle entry from an older version as a re-classified session', async () => {
    const key = sessionKeyOf(allowed);
    const was = engine.lookupSession(key);
    assert.equal(was?.action, Action.ALLOW);
    engine.ageFlowFilter();
    engine.ageFlowFilter();
    // a new version denies it; the flow resumes after both agings
    engine.install(compileYaml(policy('deny')).image);
    const seen = events.length;
    assert.equal(send(allowed), 'drop');
    const now = engine.lookupSession(key);
    assert.deepEqual([now?.action, now?.packets, now?.firstSeenNs], [Action.DENY, was.packets + 1, was.firstSeenNs], 'moved to the denied cache with its traffic');
    assert.equal(engine.sessions().filter((x) => x.key.sport === allowed.sport).length, 1, 'in one cache only');
    assert.ok(await waitFor(() => events.length === counters().EVENTS));
    const mine = events.slice(seen).filter((e) => e.sport === allowed.sport);
    assert.deepEqual(mine.map((e) => [e.kind, e.action]), [[EventKind.CHANGED, Action.DENY]], 'audited as a changed session');
    // back to allow: the cached deny is stale, and the session moves back with its traffic
    engine.install(compileYaml(policy('allow')).image);
    assert.equal(send(allowed), 'pass');
    assert.deepEqual([engine.lookupSession(key)?.action, engine.lookupSession(key)?.packets], [Action.ALLOW, was.packets + 2]);
    assert.equal(engine.sessions().filter((x) => x.key.sport === allowed.sport).length, 1, 'in one cache only');
  });

  it('lets an allowed flow resuming after both agings pass as new, and never lets a stale denied entry overwrite it', async () => {
    const key = sessionKeyOf(denied);
    assert.equal(engine.lookupSession(key)?.action, Action.DENY);
    engine.ageFlowFilter();
    engine.ageFlowFilter();
    const relaxed = policy('allow').replace('action: deny, protocol: udp, ports: [9999]', 'action: allow, protocol: udp, ports: [9999]');
    engine.install(compileYaml(relaxed).image);
    const seen = events.length;
    assert.equal(send(denied), 'pass');
    assert.equal(send(denied), 'pass');
    const live = engine.lookupSession(key);
    assert.deepEqual([live?.action, live?.packets], [Action.ALLOW, 2], 'a new allowed session');
    assert.ok(await waitFor(() => events.length === counters().EVENTS));
    assert.deepEqual(events.slice(seen).filter((e) => e.sport === denied.sport).map((e) => [e.kind, e.action]), [[EventKind.NEW, Action.ALLOW]]);
    // the idle denied entry stays behind under its old version; were a packet led to it, it would
    // be stale and the move would find the live entry and keep it (BPF_NOEXIST)
    const behind = engine.sessions().filter((x) => x.key.sport === denied.sport && x.value.action === Action.DENY);
    assert.ok(behind.every((x) => x.value.generation < (engine.activePolicy()?.generation ?? 0)));
    engine.install(compileYaml(policy('allow')).image);
  });

  it('admits a flood of new flows without an entry and keeps allowed ones passing', () => {
    engine.setDenyEventBudget(1);
    const before = counters();
    for (let i = 0; i < 2000; i++) assert.equal(send({ src: `10.8.${i >> 8}.${i & 255}`, dst: '10.7.1.1', proto: 17, sport: 1000 + i, dport: 9999 }), 'drop');
    const after = counters();
    assert.equal(after.CACHE_MISSES - before.CACHE_MISSES, 2000);
    assert.ok(after.STATELESS - before.STATELESS >= 2000 - 2 * 10, `stateless: ${after.STATELESS - before.STATELESS}`);
    assert.equal(send(allowed), 'pass');
    engine.setDenyEventBudget(0);
  });
});

describe('datapath: the flow filter cannot change a verdict', () => {
  it('decides the same flows alike whether every bit is set (a saturated filter) or none is (just aged)', () => {
    const pinRoot = `/sys/fs/bpf/doorstep-flowfilter-test-${process.pid}`;
    const engine = NativeEngine.open({ pinRoot, sessionEntries: 1 << 14 });
    const filter = PinnedMap.open(join(pinRoot, 'maps', MapName.FLOW_FILTER));
    const coarse = PinnedMap.open(join(pinRoot, 'maps', MapName.FLOW_COARSE));
    try {
      engine.install(compileYaml(policy('allow')).image);
      engine.setDenyEventBudget(1_000_000);
      const flows: FrameSpec[] = Array.from({ length: 300 }, (_, i) => ({
        src: `10.9.${i >> 8}.${i & 255}`, dst: '10.7.1.1', proto: 17, sport: 2000 + i, dport: [53, 9999, 7777][i % 3]!,
      }));
      const expected = flows.map((f) => (f.dport === 53 ? 'pass' : 'drop'));
      const fill = (map: PinnedMap, byte: number) => {
        const n = map.maxEntries();
        const keys = Buffer.alloc(4 * n);
        for (let i = 0; i < n; i++) keys.writeUInt32LE(i, 4 * i);
        map.updateBatch(keys, Buffer.alloc(map.valueSize * n, byte), n);
      };
      const saturate = () => {
        fill(filter, 0xff);
        fill(coarse, 0xff); // every entry may hold bits: each one is read
      };
      const coarseBits = () => {
        const { values } = addon().mapDump(coarse.fd, 4, 8, coarse.maxEntries());
        let bits = 0;
        for (const byte of values) for (let b = byte; b; b &= b - 1) bits++;
        return bits;
      };
      const run = () => flows.map((f) => engine.testRun(frame(f)).verdict);
      saturate(); // every flow looks cached: both caches probed, none holds it yet
      assert.deepEqual(run(), expected, 'first packets, filter saturated');
      assert.deepEqual(run(), expected, 'second packets, filter saturated');
      engine.ageFlowFilter();
      engine.ageFlowFilter(); // every flow looks new: classified, and the insert finds the entry
      assert.equal(coarseBits(), 0, 'the coarse level follows the filter: nothing left to read');
      const before = engine.stats().counters;
      assert.deepEqual(run(), expected, 'packets after the filter was cleared');
      const after = engine.stats().counters;
      assert.equal(after.EVENTS, before.EVENTS, 'no session became new again');
      const cached = engine.sessions().filter((s) => s.key.dst[15] === 1 && s.key.dst[14] === 1);
      assert.equal(cached.length, flows.length, 'one entry per flow, in one cache');
      assert.ok(cached.every((s) => s.value.packets === 3), 'each entry carried on: 3 packets');
      const marked = coarseBits();
      assert.ok(marked > 0 && marked <= flows.length, `the flows marked their entries' coarse bits again: ${marked}`);
      engine.ageFlowFilter();
      assert.equal(coarseBits(), marked, 'one aging: the other bank still holds their bits');
    } finally {
      coarse.close();
      filter.close();
      engine.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  });
});
