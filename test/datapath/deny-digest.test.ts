// SPDX-License-Identifier: Apache-2.0
// ds_denies keeps a denied session under its flow's 64-bit digest, with the flow itself beside the
// value (struct ds_deny_entry), and the datapath compares that flow with the packet's on every
// lookup. Two flows of one digest must never share a session: not its verdict, not its traffic.
// The digest is the datapath's own (only its ds_dirty records carry it to user space), so the
// collision is made by rewriting the entry of a cached flow's digest in the pinned map to hold
// another flow, whose value says "allow": a datapath that trusted the digest alone would pass the
// cached flow's next packet, or count it into the other flow's session.
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
import { type FrameSpec, frame } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: digest }
spec:
  defaultAction: deny
  rules:
    - { name: app, action: allow, from: [any], protocol: udp, ports: [7777] }
    - { name: flood, action: deny, from: [any], protocol: udp, ports: [9999] }
`;
const DIGEST = MapTypes.ds_denies.keySize;
const ENTRY = MapTypes.ds_denies.valueSize;
const KEY_AT = offsetOf('ds_deny_entry', 'key');
const VALUE_AT = offsetOf('ds_deny_entry', 'value');
const PACKETS_AT = VALUE_AT + offsetOf('ds_session_value', 'packets');
const ACTION_AT = VALUE_AT + offsetOf('ds_session_value', 'action');

describe('datapath: the denied-session cache by digest', () => {
  const pinRoot = `/sys/fs/bpf/doorstep-test-${runToken()}`;
  let engine: NativeEngine;
  let denies: number;

  before(() => {
    engine = NativeEngine.open({ pinRoot });
    engine.install(compileYaml(POLICY).image);
    denies = addon().objGet(join(pinRoot, 'maps', MapName.DENIES));
  });
  after(() => {
    if (denies !== undefined) addon().closeFd(denies);
    engine?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  /** ds_denies' entries: digest, flow bytes, packets, action. */
  const entries = () => {
    const dump = addon().mapDump(denies, DIGEST, ENTRY, 1024);
    return Array.from({ length: dump.count }, (_, i) => {
      const v = dump.values.subarray(i * ENTRY, (i + 1) * ENTRY);
      return { digest: Buffer.from(dump.keys.subarray(i * DIGEST, (i + 1) * DIGEST)), entry: Buffer.from(v), flow: Buffer.from(v.subarray(KEY_AT, KEY_AT + SESSION_KEY_SIZE)), packets: Number(v.readBigUInt64LE(PACKETS_AT)), action: v[ACTION_AT] };
    });
  };
  const send = (spec: FrameSpec) => engine.testRun(frame(spec), { ingressIfindex: TEST_IFINDEX }).verdict;
  const counters = () => engine.stats().counters;

  it('keeps a denied session under a digest with its own flow beside it, and finds it again', () => {
    engine.clearFlowState();
    const spec: FrameSpec = { src: '10.64.1.1', dst: '10.1.0.2', proto: 17, sport: 40000, dport: 9999 };
    const hits = counters().CACHE_HITS;
    for (let i = 0; i < 5; i++) assert.equal(send(spec), 'drop');
    const [e, ...rest] = entries();
    assert.equal(rest.length, 0, 'one denied session');
    assert.ok(e && e.flow.equals(encodeSessionKey(sessionKeyOf(spec))), 'the entry holds the flow');
    assert.ok(!e.digest.equals(Buffer.alloc(DIGEST)), 'under a digest');
    assert.equal(e.packets, 5);
    assert.equal(e.action, Action.DENY);
    assert.equal(counters().CACHE_HITS - hits, 4, 'packets 2 to 5 met the cached session');
    assert.equal(engine.lookupSession(sessionKeyOf(spec))?.packets, 5, 'user space finds it by its flow');
  });

  it('never lets the entry of a flow\'s digest that holds another flow decide the flow, or take its traffic', () => {
    engine.clearFlowState();
    const spec: FrameSpec = { src: '10.64.2.2', dst: '10.1.0.2', proto: 17, sport: 40001, dport: 9999 };
    const other = encodeSessionKey(sessionKeyOf({ ...spec, src: '10.64.3.3' }));
    assert.equal(send(spec), 'drop');
    const [cached] = entries();
    assert.ok(cached);
    // the collision: the digest's entry now holds another flow, cached as allowed, with traffic of its own
    const forged = Buffer.from(cached.entry);
    other.copy(forged, KEY_AT);
    forged.writeBigUInt64LE(1000n, PACKETS_AT);
    forged[ACTION_AT] = Action.ALLOW;
    addon().mapUpdate(denies, cached.digest, forged);
    const { CACHE_HITS: hits, CACHE_MISSES: misses } = counters();

    assert.equal(send(spec), 'drop', 'the flow is classified again, not passed by the other flow\'s entry');
    const after = counters();
    assert.equal(after.CACHE_HITS - hits, 0, 'no cache hit');
    assert.equal(after.CACHE_MISSES - misses, 1, 'a new session');
    const [e, ...rest] = entries();
    assert.equal(rest.length, 0);
    assert.ok(e && e.digest.equals(cached.digest) && e.flow.equals(encodeSessionKey(sessionKeyOf(spec))), 'the flow took its digest\'s entry back');
    assert.equal(e.packets, 1, 'its own traffic only: not counted into the other flow\'s 1000');
    assert.equal(e.action, Action.DENY);
    assert.equal(send(spec), 'drop');
    assert.equal(entries()[0]?.packets, 2, 'and it is cached again');
  });
});
