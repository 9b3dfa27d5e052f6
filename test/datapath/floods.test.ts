// SPDX-License-Identifier: Apache-2.0
// Floods of denied traffic never evict allowed state (issue 12, point 1; DESIGN.md semantics 4):
// fill the allowed-session cache, leave expected replies on a fabric and an allowed datagram's
// fragment record, then flood with several times the caches' capacity of spoofed denied frames
// (new sessions, first fragments, unsolicited packets on the fabric). Every allowed session,
// expected reply and fragment record present before the flood is there after it, and its traffic
// and replies still pass.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeSessionKey } from '../../src/abi/records.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { compileYaml, sessionKeyOf, TestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame } from '../lib/packet.js';

const SESSIONS = 4096;
const DENIES = 4096;
const FRAGS = 16384; // ds_frags is fixed-size (abi.h DS_FRAGS_MAX)
const FLOOD = 4 * FRAGS;

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: flood }
spec:
  defaultAction: deny
  rules:
    - { name: dns-out, action: allow, from: [10.1.0.0/16], to: [198.51.100.0/24], protocol: udp, ports: [53] }
`;

/** The i-th spoofed source: 10.200.0.0/13 walked address by address. */
const spoofed = (i: number) => `10.${200 + ((i >> 16) & 7)}.${(i >> 8) & 255}.${i & 255}`;

describe('datapath: a flood of denied traffic evicts no allowed state', () => {
  let engine: NativeEngine | undefined;
  let ifaces: TestInterfaces | undefined;
  before(() => {
    ifaces = new TestInterfaces('fld', 2);
    engine = NativeEngine.open({ pinRoot: null, sessionEntries: SESSIONS, denyEntries: DENIES });
  });
  after(() => {
    engine?.close();
    ifaces?.remove();
  });

  it(`keeps every allowed session, expected reply and fragment record through ${FLOOD.toLocaleString('en')} denied frames`, () => {
    const e = engine as NativeEngine;
    const [source, fabric] = ifaces?.ifindex as [number, number];
    e.install(compileYaml(POLICY).image);
    e.setInterfaceRoles([
      { ifindex: source, role: 'source' },
      { ifindex: fabric, role: 'fabric' },
    ]);

    // allowed sessions: as many distinct flows as the cache holds
    const flows: FrameSpec[] = [];
    for (let i = 0; i < SESSIONS; i++) flows.push({ src: `10.1.${i >> 8}.${i & 255}`, dst: '198.51.100.7', proto: 17, sport: 20000 + (i % 1000), dport: 53 });
    for (const f of flows) assert.equal(e.testRun(frame(f), { ingressIfindex: source }).verdict, 'pass');
    // an allowed datagram in fragments: the first passes and leaves its record
    const first: FrameSpec = { src: '10.1.200.1', dst: '198.51.100.9', proto: 17, sport: 5353, dport: 53, fragment: { offset: 0, more: true, id: 0xf1a9 }, payload: 64 };
    const later: FrameSpec = { ...first, fragment: { offset: 72, more: false, id: 0xf1a9 } };
    assert.equal(e.testRun(frame(first), { ingressIfindex: source }).verdict, 'pass');

    const present = flows.filter((f) => e.lookupSession(sessionKeyOf(f, source)) !== null);
    assert.ok(present.length > SESSIONS / 2, `the allowed cache holds ${present.length} of ${SESSIONS} flows`);
    const sessionsBefore = e.stats().counters;

    // the flood: spoofed denied new sessions, denied first fragments, unsolicited frames on the fabric
    let dropped = 0;
    for (let i = 0; i < FLOOD; i++) {
      const src = spoofed(i);
      const spec: FrameSpec =
        i % 3 === 0
          ? { src, dst: '198.51.100.7', proto: 17, sport: 1024 + (i % 50000), dport: 9999 }
          : i % 3 === 1
            ? { src, dst: '198.51.100.7', proto: 17, sport: 1024, dport: 9999, fragment: { offset: 0, more: true, id: i & 0xffff }, payload: 16 }
            : { src: '198.51.100.7', dst: src, proto: 17, sport: 53, dport: 1024 + (i % 50000) };
      if (e.testRun(frame(spec), { ingressIfindex: i % 3 === 2 ? fabric : source }).verdict === 'drop') dropped++;
    }
    assert.equal(dropped, FLOOD, 'every flood frame is denied');
    const c = e.stats().counters;
    assert.ok(c.CACHE_MISSES - sessionsBefore.CACHE_MISSES >= FLOOD / 3, 'the flood made new denied sessions');

    // every allowed session present before is still there, passes, and its reply passes on the fabric
    const missing = present.filter((f) => e.lookupSession(sessionKeyOf(f, source)) === null);
    assert.equal(missing.length, 0, `${missing.length} allowed sessions evicted, e.g. ${JSON.stringify(missing[0])}`);
    let passed = 0;
    let replies = 0;
    for (const f of present) {
      if (e.testRun(frame(f), { ingressIfindex: source }).verdict === 'pass') passed++;
      const reply = { src: f.dst, dst: f.src, proto: 17, sport: f.dport, dport: f.sport };
      if (e.testRun(frame(reply), { ingressIfindex: fabric }).verdict === 'pass') replies++;
    }
    assert.equal(passed, present.length);
    assert.equal(replies, present.length, 'every expected reply passes on the fabric');
    // and the allowed datagram's later fragment still finds its first
    assert.equal(e.testRun(frame(later), { ingressIfindex: source }).verdict, 'pass');
    assert.equal(e.stats().counters.FRAG_UNKNOWN - c.FRAG_UNKNOWN, 0);
  });

  it('moves a session between the caches when a new version changes its verdict', () => {
    const e = engine as NativeEngine;
    const [source] = ifaces?.ifindex as [number];
    const f: FrameSpec = { src: '10.1.9.9', dst: '198.51.100.7', proto: 17, sport: 40404, dport: 53 };
    e.install(compileYaml(POLICY).image);
    assert.equal(e.testRun(frame(f), { ingressIfindex: source }).verdict, 'pass');
    const deny = POLICY.replace('action: allow', 'action: deny');
    e.install(compileYaml(deny).image);
    assert.equal(e.testRun(frame(f), { ingressIfindex: source }).verdict, 'drop');
    const key = encodeSessionKey(sessionKeyOf(f, source));
    // NativeEngine.sessions() reads both caches: one entry, with the current verdict, means it moved
    const entries = () => e.sessions().filter((s) => encodeSessionKey(s.key).equals(key)).map((s) => s.value.action);
    assert.deepEqual(entries(), [0], 'denied now: one entry, a deny');
    assert.equal(e.lookupSession(sessionKeyOf(f, source))?.packets, 2, 'its traffic carries on');
    e.install(compileYaml(POLICY).image);
    assert.equal(e.testRun(frame(f), { ingressIfindex: source }).verdict, 'pass');
    assert.deepEqual(entries(), [1], 'allowed again: one entry, an allow');
    assert.equal(e.lookupSession(sessionKeyOf(f, source))?.packets, 3);
  });
});
