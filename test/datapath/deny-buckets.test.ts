// SPDX-License-Identifier: Apache-2.0
// ds_denies keeps a denied session in one of the two ways of a bucket chosen by its flow's digest,
// with the flow itself beside the value (struct ds_deny_entry); the datapath compares that flow
// with the packet's on every lookup. Checked here against the documented arithmetic, written out
// again from docs/datapath.md in test/lib/reference/deny-buckets.ts rather than imported:
// - a denied session sits in its flow's bucket, and user space finds it there;
// - a way that holds another flow of the bucket never decides the flow or takes its traffic, even
//   forged to say "allow" with traffic of its own;
// - a third flow of a full bucket takes the way seen least recently; the other stays cached.
// The engine's ds_denies has 8 ways (4 buckets), so flows of one bucket are found by trying ports.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { offsetOf } from '../../src/abi/codec.js';
import { Action, MapName, MapTypes } from '../../src/abi/generated.js';
import { encodeSessionKey, SESSION_KEY_SIZE } from '../../src/abi/records.js';
import { runToken } from '../../src/demo/topology.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { addon } from '../../src/engine/native.js';
import { compileYaml, sessionKeyOf, TEST_IFINDEX } from '../lib/datapath.js';
import { bucketOf, digestOf } from '../lib/reference/deny-buckets.js';
import { type FrameSpec, frame } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: buckets }
spec:
  defaultAction: deny
  rules:
    - { name: app, action: allow, from: [any], protocol: udp, ports: [7777] }
    - { name: flood, action: deny, from: [any], protocol: udp, ports: [9999] }
`;
const WAYS = 8;
const WAY_KEY = MapTypes.ds_denies.keySize;
const ENTRY = MapTypes.ds_denies.valueSize;
const KEY_AT = offsetOf('ds_deny_entry', 'key');
const VALUE_AT = offsetOf('ds_deny_entry', 'value');
const PACKETS_AT = VALUE_AT + offsetOf('ds_session_value', 'packets');
const ACTION_AT = VALUE_AT + offsetOf('ds_session_value', 'action');

/** The documented bucket of a flow in this test's ds_denies. */
const bucketOfSpec = (spec: FrameSpec): number => bucketOf(sessionKeyOf(spec), WAYS);

describe('datapath: the denied-session cache in 2-way buckets', () => {
  const pinRoot = `/sys/fs/bpf/doorstep-test-${runToken()}`;
  let engine: NativeEngine;
  let denies: number;

  before(() => {
    engine = NativeEngine.open({ pinRoot, denyEntries: WAYS });
    engine.install(compileYaml(POLICY).image);
    denies = addon().objGet(join(pinRoot, 'maps', MapName.DENIES));
  });
  after(() => {
    if (denies !== undefined) addon().closeFd(denies);
    engine?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  /** ds_denies' used ways: index, entry bytes, flow bytes, packets, action. */
  const ways = () => {
    const dump = addon().mapDump(denies, WAY_KEY, ENTRY, WAYS);
    return Array.from({ length: dump.count }, (_, i) => {
      const v = Buffer.from(dump.values.subarray(i * ENTRY, (i + 1) * ENTRY));
      return { way: dump.keys.readUInt32LE(i * WAY_KEY), entry: v, flow: v.subarray(KEY_AT, KEY_AT + SESSION_KEY_SIZE), packets: Number(v.readBigUInt64LE(PACKETS_AT)), action: v[ACTION_AT] };
    }).filter((w) => w.flow[offsetOf('ds_session_key', 'family')] !== 0);
  };
  const wayOf = (spec: FrameSpec) => ways().find((w) => w.flow.equals(encodeSessionKey(sessionKeyOf(spec))));
  const send = (spec: FrameSpec) => engine.testRun(frame(spec), { ingressIfindex: TEST_IFINDEX }).verdict;
  const counters = () => engine.stats().counters;
  const denied = (sport: number, src = '10.64.1.1'): FrameSpec => ({ src, dst: '10.1.0.2', proto: 17, sport, dport: 9999 });
  /** Flows of bucket `bucket`, from source ports upward of `from`. */
  const ofBucket = (bucket: number, n: number, from = 40000): FrameSpec[] => {
    const out: FrameSpec[] = [];
    for (let p = from; out.length < n; p++) if (bucketOfSpec(denied(p)) === bucket) out.push(denied(p));
    return out;
  };

  it('keeps a denied session in a way of its flow\'s bucket, and finds it again', async () => {
    engine.clearFlowState();
    assert.equal(ways().length, 0, 'cleared: every way empty');
    const spec = denied(40000);
    const hits = counters().CACHE_HITS;
    for (let i = 0; i < 5; i++) assert.equal(send(spec), 'drop');
    const [w, ...rest] = ways();
    assert.equal(rest.length, 0, 'one denied session');
    assert.ok(w && w.flow.equals(encodeSessionKey(sessionKeyOf(spec))), 'the way holds the flow');
    assert.equal(w.way >> 1, bucketOfSpec(spec), 'in the bucket of its digest');
    assert.equal(w.packets, 5);
    assert.equal(w.action, Action.DENY);
    assert.equal(counters().CACHE_HITS - hits, 4, 'packets 2 to 5 met the cached session');
    assert.equal(engine.lookupSession(sessionKeyOf(spec))?.packets, 5, 'user space finds it by its flow');
    assert.equal(engine.sessionCount(), 1, 'counted once: empty ways are no sessions');
    assert.equal(await engine.sessionCountAsync(), 1, 'and on the addon\'s threads');
  });

  it('finds a marked denied session from the digest of its ds_dirty record', () => {
    engine.clearFlowState();
    const spec = denied(40100);
    engine.setSummaryEpoch(engine.summaryEpoch() + 1);
    assert.equal(send(spec), 'drop');
    assert.equal(send(spec), 'drop', 'the second packet marks the session');
    const { records, count } = engine.drainDirty(1024);
    const key = encodeSessionKey(sessionKeyOf(spec));
    const at = Array.from({ length: count }, (_, i) => i * 64).find((o) => records.subarray(o, o + SESSION_KEY_SIZE).equals(key));
    assert.ok(at !== undefined, 'marked');
    const digest = records.subarray(at + offsetOf('ds_dirty', 'digest'), at + offsetOf('ds_dirty', 'digest') + 8);
    assert.equal(digest.readBigUInt64LE(0), digestOf(key), 'the datapath\'s digest is the documented one');
    const { values, found } = engine.lookupSessions(key, Buffer.from(digest), 1);
    assert.equal(found[0], 2, 'found in the denied cache');
    assert.equal(values.readBigUInt64LE(offsetOf('ds_session_value', 'packets')), 2n);
    engine.setSummaryEpoch(0);
  });

  it('never lets a way that holds another flow decide the flow, or take its traffic', () => {
    engine.clearFlowState();
    const spec = denied(40200);
    const other = encodeSessionKey(sessionKeyOf(denied(40200, '10.64.3.3')));
    assert.equal(send(spec), 'drop');
    const cached = wayOf(spec);
    assert.ok(cached);
    // the way now holds another flow, cached as allowed, with traffic of its own
    const forged = Buffer.from(cached.entry);
    other.copy(forged, KEY_AT);
    forged.writeBigUInt64LE(1000n, PACKETS_AT);
    forged[ACTION_AT] = Action.ALLOW;
    const way = Buffer.alloc(4);
    way.writeUInt32LE(cached.way);
    addon().mapUpdate(denies, way, forged);
    const { CACHE_HITS: hits, CACHE_MISSES: misses } = counters();

    assert.equal(send(spec), 'drop', 'the flow is classified again, not passed by the other flow\'s way');
    const now = counters();
    assert.equal(now.CACHE_HITS - hits, 0, 'no cache hit');
    assert.equal(now.CACHE_MISSES - misses, 1, 'a new session');
    const mine = wayOf(spec);
    assert.ok(mine && mine.way >> 1 === cached.way >> 1 && mine.way !== cached.way, 'the flow took the bucket\'s empty way');
    assert.equal(mine.packets, 1, 'its own traffic only: not counted into the other flow\'s 1000');
    assert.equal(mine.action, Action.DENY);
    assert.equal(ways().find((w) => w.way === cached.way)?.packets, 1000, 'the other way untouched');
    assert.equal(send(spec), 'drop');
    assert.equal(wayOf(spec)?.packets, 2, 'and it is cached again');
  });

  it('gives a third flow of a full bucket the way seen least recently; the other stays cached', () => {
    engine.clearFlowState();
    const [a, b, c] = ofBucket(1, 3);
    assert.ok(a && b && c);
    assert.equal(send(a), 'drop');
    assert.equal(send(b), 'drop');
    // a seen again until its last packet is later than b's by the datapath's clock (a coarse one:
    // it moves once a tick), so b is the least recent
    const lastSeen = (spec: FrameSpec) => wayOf(spec)!.entry.readBigUInt64LE(VALUE_AT + offsetOf('ds_session_value', 'last_seen'));
    const until = Date.now() + 5000;
    do assert.equal(send(a), 'drop');
    while (lastSeen(a) <= lastSeen(b) && Date.now() < until);
    assert.ok(lastSeen(a) > lastSeen(b), 'a seen after b');
    const aPackets = wayOf(a)!.packets;
    const misses = counters().CACHE_MISSES;
    assert.equal(send(c), 'drop');
    assert.equal(counters().CACHE_MISSES - misses, 1);
    assert.ok(wayOf(c), 'c cached');
    assert.equal(wayOf(b), undefined, 'in b\'s way');
    assert.equal(wayOf(a)?.packets, aPackets, 'a kept, with its traffic');
    const hits = counters().CACHE_HITS;
    assert.equal(send(a), 'drop');
    assert.equal(counters().CACHE_HITS - hits, 1, 'a still meets its cached session');
  });

  it('refuses a denied-session cache that is not a power of two', () => {
    assert.throws(() => NativeEngine.open({ pinRoot: null, denyEntries: 12 }), { code: 'DS_E_USAGE' });
  });
});
