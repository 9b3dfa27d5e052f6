// SPDX-License-Identifier: Apache-2.0
// Session semantics (DESIGN.md "Datapath semantics" 1–8) through BPF_PROG_TEST_RUN: default
// deny, failsafe, cached allows and denies, generations, events and their sequence numbers,
// fragments, ICMP errors, per-rule counters, and a full ring buffer.
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { EventKind, Reason } from '../../src/abi/generated.js';
import type { RawEvent } from '../../src/abi/records.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { allEventsRead, compileYaml, openTestEngine, sessionKeyOf, waitFor } from '../lib/datapath.js';
import { type FrameSpec, frame, ipPacket } from '../lib/packet.js';

const policy = (webAction: 'allow' | 'deny', log = true) => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: sessions }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: ${webAction}, to: [10.1.0.0/16], protocol: tcp, ports: [80], log: ${log} }
    - { name: quiet, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [8080], log: false }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
`;

const web: FrameSpec = { src: '10.9.0.1', dst: '10.1.2.3', proto: 6, sport: 40000, dport: 80 };

describe('datapath: sessions, generations and events', () => {
  let engine: NativeEngine;
  let events: RawEvent[];

  beforeEach(() => {
    engine = openTestEngine();
    events = [];
    engine.onEvents((batch) => events.push(...batch));
  });
  afterEach(() => engine.close());
  after(() => undefined);

  it('denies everything before a policy is installed, with reason no-policy, and audits it', async () => {
    assert.equal(engine.activePolicy(), null);
    assert.equal(engine.testRun(frame(web)).verdict, 'drop');
    const s = engine.lookupSession(sessionKeyOf(web));
    assert.equal(s?.reason, Reason.NO_POLICY);
    assert.equal(s?.generation, 0);
    assert.ok(await waitFor(() => events.length === 1));
    assert.equal(events[0]?.reason, Reason.NO_POLICY);
  });

  it('passes management prefixes (failsafe) before any policy', () => {
    const mgmt = parseCidr('10.9.0.0/24');
    assert.ok(!('problem' in mgmt));
    engine.setFailsafe([{ cidr: mgmt, protocol: 6, ports: { lo: 22, hi: 22 } }]);
    assert.equal(engine.testRun(frame({ ...web, dport: 22 })).verdict, 'pass');
    assert.equal(engine.testRun(frame({ ...web, dport: 23 })).verdict, 'drop');
    assert.equal(engine.lookupSession(sessionKeyOf({ ...web, dport: 22 }))?.reason, Reason.FAILSAFE);
    engine.setFailsafe([]);
    assert.equal(engine.testRun(frame({ ...web, sport: 1, dport: 22 })).verdict, 'drop');
  });

  it('caches an allow: one classification, one event, then cache hits with packet and byte counts', async () => {
    engine.install(compileYaml(policy('allow')).image);
    const f = frame(web);
    for (let i = 0; i < 50; i++) assert.equal(engine.testRun(f).verdict, 'pass');
    const c = engine.stats().counters;
    assert.equal(c.CACHE_MISSES, 1);
    assert.equal(c.CACHE_HITS, 49);
    const s = engine.lookupSession(sessionKeyOf(web));
    assert.equal(s?.packets, 50);
    assert.equal(s?.bytes, 50 * f.length);
    await allEventsRead(engine, events);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.kind, EventKind.NEW);
  });

  it('caches a deny: a flood costs one classification and one event', async () => {
    engine.install(compileYaml(policy('allow')).image);
    const denied = frame({ ...web, dport: 25 });
    for (let i = 0; i < 200; i++) assert.equal(engine.testRun(denied).verdict, 'drop');
    const c = engine.stats().counters;
    assert.equal(c.CACHE_MISSES, 1);
    assert.equal(c.CACHE_HITS, 199);
    assert.equal(c.DROP_PACKETS, 200);
    await allEventsRead(engine, events);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.action, 0);
  });

  it('cuts an allowed flow the moment a deny is installed, and lets it flow again once allowed', async () => {
    const first = engine.install(compileYaml(policy('allow')).image);
    const f = frame(web);
    assert.equal(engine.testRun(f).verdict, 'pass');
    const second = engine.install(compileYaml(policy('deny')).image);
    assert.equal(second.generation, first.generation + 1);
    assert.notEqual(second.slot, first.slot);
    assert.equal(engine.testRun(f).verdict, 'drop');
    let s = engine.lookupSession(sessionKeyOf(web));
    assert.equal(s?.generation, second.generation);
    assert.equal(s?.packets, 2);
    engine.install(compileYaml(policy('allow')).image);
    assert.equal(engine.testRun(f).verdict, 'pass');
    s = engine.lookupSession(sessionKeyOf(web));
    assert.equal(s?.packets, 3);
    const c = engine.stats().counters;
    assert.equal(c.CACHE_STALE, 2);
    assert.ok(await waitFor(() => events.length === 3));
    assert.deepEqual(
      events.map((e) => [e.kind, e.action]),
      [
        [EventKind.NEW, 1],
        [EventKind.CHANGED, 0],
        [EventKind.CHANGED, 1],
      ],
    );
  });

  it('re-classifies a stale session silently when the outcome does not change', async () => {
    engine.install(compileYaml(policy('allow')).image);
    engine.testRun(frame(web));
    engine.install(compileYaml(`${policy('allow')}    - { name: extra, action: allow, protocol: udp, ports: [123] }\n`).image);
    assert.equal(engine.testRun(frame(web)).verdict, 'pass');
    assert.equal(engine.stats().counters.CACHE_STALE, 1);
    await allEventsRead(engine, events);
    assert.equal(events.length, 1);
  });

  it('honours log: false (no event) and numbers events per CPU without gaps', async () => {
    engine.install(compileYaml(policy('allow')).image);
    engine.testRun(frame({ ...web, dport: 8080 }));
    for (let i = 0; i < 20; i++) engine.testRun(frame({ ...web, proto: 17, dport: 53, sport: 1000 + i }));
    await allEventsRead(engine, events);
    assert.equal(events.length, 20);
    const byCpu = new Map<number, number[]>();
    for (const e of events) byCpu.set(e.cpu, [...(byCpu.get(e.cpu) ?? []), e.seq]);
    for (const [cpu, seqs] of byCpu) {
      const sorted = [...seqs].sort((a, b) => a - b);
      sorted.forEach((seq, i) => assert.equal(seq, (sorted[0] ?? 0) + i, `cpu ${cpu} sequence has a gap`));
      assert.equal(engine.stats().eventSeq[cpu], sorted[sorted.length - 1]);
    }
    assert.equal(engine.stats().counters.EVENTS, 20);
  });

  it('counts packets and bytes per rule', () => {
    const { ir, image } = compileYaml(policy('allow'));
    engine.install(image);
    const f = frame(web);
    for (let i = 0; i < 7; i++) engine.testRun(f);
    engine.testRun(frame({ ...web, dport: 99 }));
    const stats = engine.ruleStats();
    const webIndex = ir.rules.find((r) => r.name === 'web')?.index ?? -1;
    assert.deepEqual(stats.get(webIndex), { packets: 7, bytes: 7 * f.length, held: 0, sketch: null });
    assert.equal(stats.get(0)?.packets, 1);
  });

  it('follows the first fragment: later fragments pass with it, unknown ones are denied', () => {
    engine.install(compileYaml(policy('allow')).image);
    const first = { ...web, proto: 17, dport: 53, fragment: { offset: 0, more: true, id: 4242 }, payload: 64 };
    const later = { ...first, fragment: { offset: 72, more: false, id: 4242 } };
    assert.equal(engine.testRun(frame(first)).verdict, 'pass');
    assert.equal(engine.testRun(frame(later)).verdict, 'pass');
    assert.equal(engine.lookupSession(sessionKeyOf({ ...web, proto: 17, dport: 53 }))?.packets, 2);

    // a dropped first fragment leaves no record: its later fragments drop as unknown
    const deniedFirst = { ...first, dport: 54, fragment: { offset: 0, more: true, id: 4343 } };
    assert.equal(engine.testRun(frame(deniedFirst)).verdict, 'drop');
    assert.equal(engine.testRun(frame({ ...deniedFirst, fragment: { offset: 72, more: false, id: 4343 } })).verdict, 'drop');

    const orphan = { ...later, fragment: { offset: 72, more: false, id: 999 } };
    assert.equal(engine.testRun(frame(orphan)).verdict, 'drop');
    const c = engine.stats();
    assert.equal(c.counters.FRAG_UNKNOWN, 2);
    assert.equal(c.byReason.FRAG_UNKNOWN.drop.packets, 2);
    assert.equal(c.counters.FRAGMENTS, 5);
  });

  it('tracks IPv6 fragments the same way', () => {
    engine.install(compileYaml(policy('allow')).image);
    const first = { src: 'fd00:9::1', dst: 'fd00:1::1', proto: 17, sport: 5000, dport: 53, fragment: { offset: 0, more: true, id: 0xabcdef }, payload: 64 };
    assert.equal(engine.testRun(frame(first)).verdict, 'pass');
    assert.equal(engine.testRun(frame({ ...first, fragment: { offset: 80, more: false, id: 0xabcdef } })).verdict, 'pass');
    assert.equal(engine.testRun(frame({ ...first, fragment: { offset: 80, more: false, id: 1 } })).verdict, 'drop');
    assert.equal(engine.stats().counters.FRAG_UNKNOWN, 1);
  });

  it('passes an ICMP error that quotes an allowed session; denies one quoting nothing known', () => {
    engine.install(compileYaml(policy('allow')).image);
    assert.equal(engine.testRun(frame(web)).verdict, 'pass');
    // A router on the source side reports that the reply (10.1.2.3:80 → 10.9.0.1:40000) needs fragmenting.
    const reply = ipPacket({ src: web.dst, dst: web.src, proto: 6, sport: 80, dport: 40000 }).subarray(0, 28);
    const tooBig = { src: '10.9.0.254', dst: '10.1.2.3', proto: 1, icmpType: 3, icmpCode: 4, quote: reply };
    assert.equal(engine.testRun(frame(tooBig)).verdict, 'pass');
    assert.equal(engine.stats().byReason.ICMP_RELATED.pass.packets, 1);

    const stranger = ipPacket({ src: '10.1.2.3', dst: '10.9.0.1', proto: 6, sport: 80, dport: 1 }).subarray(0, 28);
    assert.equal(engine.testRun(frame({ ...tooBig, quote: stranger })).verdict, 'drop');
    assert.equal(engine.stats().counters.ICMP_RELATED, 1);
  });

  it('passes an ICMPv6 packet-too-big quoting an allowed IPv6 session', () => {
    engine.install(compileYaml(policy('allow').replace('to: [10.1.0.0/16]', 'to: [10.1.0.0/16, "fd00:1::/64"]')).image);
    const flow = { src: 'fd00:9::1', dst: 'fd00:1::1', proto: 6, sport: 40000, dport: 80 };
    assert.equal(engine.testRun(frame(flow)).verdict, 'pass');
    const reply = ipPacket({ src: flow.dst, dst: flow.src, proto: 6, sport: 80, dport: 40000 }).subarray(0, 48);
    const ptb = { src: 'fd00:9::fe', dst: flow.dst, proto: 58, icmpType: 2, quote: reply };
    assert.equal(engine.testRun(frame(ptb)).verdict, 'pass');
    assert.equal(engine.stats().counters.ICMP_RELATED, 1);
  });
});

describe('datapath: a full ring buffer', () => {
  it('drops events, never verdicts; the lost count and the sequence gaps agree', async () => {
    const engine = openTestEngine();
    try {
      engine.install(compileYaml(policy('allow')).image);
      // no reader: the 16 MiB ring holds ~174k events of 96 bytes; send more new sessions than that
      const total = 200_000;
      const f = frame({ ...web, proto: 17, dport: 53 });
      let passed = 0;
      for (let i = 0; i < total; i++) {
        f.writeUInt16BE(i & 0xffff, 14 + 20); // source port
        f.writeUInt8(1 + (i >> 16), 14 + 12 + 3); // last octet of the source address
        if (engine.testRun(f).verdict === 'pass') passed++;
      }
      assert.equal(passed, total);
      const c = engine.stats().counters;
      assert.ok(c.EVENTS_LOST > 0, 'some events were lost');
      assert.equal(c.EVENTS + c.EVENTS_LOST, total);
      const events: RawEvent[] = [];
      engine.onEvents((b) => events.push(...b));
      assert.ok(await waitFor(() => events.length === c.EVENTS, 10_000), `read ${events.length} of ${c.EVENTS}`);
      // per CPU, sequence numbers run 1..eventSeq[cpu]; the numbers never read are the lost events
      const issued = engine.stats().eventSeq.reduce((a, b) => a + b, 0);
      const distinct = new Set(events.map((e) => `${e.cpu}:${e.seq}`)).size;
      assert.equal(distinct, events.length);
      assert.equal(issued - distinct, c.EVENTS_LOST, 'gaps in the sequence equal the lost count');
    } finally {
      engine.close();
    }
  });
});
