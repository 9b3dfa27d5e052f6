// SPDX-License-Identifier: Apache-2.0
// The event budget of denied sessions (issue 12, point 3): at most N events a second per CPU and
// per rule; the sessions past it emit no event and are counted per rule (or per CPU when no
// counted rule decided), so events plus held back equal the denied sessions exactly. Allowed
// sessions are never held back, and the per-rule and per-reason packet counters stay exact.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Action, Limits } from '../../src/abi/generated.js';
import type { RawEvent } from '../../src/abi/records.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { estimateDistinct } from '../../src/audit/flood-sources.js';
import { compileYaml, openTestEngine, sessionKeyOf, waitFor } from '../lib/datapath.js';
import { frame, type FrameSpec } from '../lib/packet.js';

const POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: budget }
spec:
  defaultAction: deny
  rules:
    - { name: block, action: deny, protocol: udp, ports: [9999] }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
    - { name: quiet, action: deny, protocol: tcp, ports: [1] }
`;
const BUDGET = 10;
const BLOCKED = 1000;
const DEFAULTED = 500;
const ALLOWED = 300;
const UNPOLICED = 200;

/** The i-th flow from a spoofed source to `dport`. */
const floodSpec = (i: number, dport: number): FrameSpec => ({ src: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, dst: '10.1.0.1', proto: 17, sport: 1000 + dport, dport });
const flood = (i: number, dport: number) => frame(floodSpec(i, dport));

describe('datapath: the admission budget of denied sessions', () => {
  let engine: NativeEngine;
  const events: RawEvent[] = [];
  before(() => {
    engine = openTestEngine();
    engine.onEvents((batch) => events.push(...batch));
  });
  after(() => engine?.close());

  it(`holds back denied sessions' events past ${BUDGET} a second per CPU and rule, and counts every one`, async () => {
    const { ir, image } = compileYaml(POLICY);
    engine.install(image);
    engine.setDenyEventBudget(BUDGET);
    const block = ir.rules.find((r) => r.name === 'block')?.index ?? -1;
    const dns = ir.rules.find((r) => r.name === 'dns')?.index ?? -1;

    let dropped = 0;
    let passed = 0;
    for (let i = 0; i < BLOCKED; i++) if (engine.testRun(flood(i, 9999)).verdict === 'drop') dropped++;
    for (let i = 0; i < DEFAULTED; i++) if (engine.testRun(flood(i, 7777)).verdict === 'drop') dropped++;
    for (let i = 0; i < ALLOWED; i++) if (engine.testRun(flood(i, 53)).verdict === 'pass') passed++;
    assert.deepEqual([dropped, passed], [BLOCKED + DEFAULTED, ALLOWED]);

    const c = engine.stats().counters;
    assert.ok(await waitFor(() => events.length === c.EVENTS, 5000), `read ${events.length} of ${c.EVENTS} events`);
    const rules = engine.ruleStats();
    const eventsOf = (rule: number, action: number) => events.filter((e) => e.rule === rule && e.action === action).length;
    // exact: events plus held back equal the sessions, per rule
    assert.equal(eventsOf(block, Action.DENY) + (rules.get(block)?.held ?? 0), BLOCKED);
    assert.equal(eventsOf(0, Action.DENY) + (rules.get(0)?.held ?? 0), DEFAULTED);
    assert.equal(c.EVENTS_HELD, (rules.get(block)?.held ?? 0) + (rules.get(0)?.held ?? 0));
    // the budget held most of them back (a few seconds and both CPUs at the most)
    assert.ok((rules.get(block)?.held ?? 0) >= BLOCKED - BUDGET * 2 * 10, `held back for block: ${rules.get(block)?.held}`);
    // allowed sessions are never held back
    assert.equal(eventsOf(dns, Action.ALLOW), ALLOWED);
    assert.equal(rules.get(dns)?.held, 0);
    // the packet counters stay exact
    assert.equal(rules.get(block)?.packets, BLOCKED);
    assert.equal(rules.get(0)?.packets, DEFAULTED);
    assert.equal(engine.stats().byReason.POLICY.drop.packets, BLOCKED + DEFAULTED);
    assert.equal(c.EVENTS_LOST, 0, 'nothing lost');
    // the readers that take only some rules get exactly those, with the same counters
    const only = (keep: (r: { packets: number; held: number }) => boolean) => new Map([...rules].filter(([, r]) => keep(r)));
    assert.ok(rules.size > 3, 'the policy has rules that matched nothing');
    assert.deepEqual(engine.ruleStats('matched'), only((r) => r.packets > 0));
    assert.deepEqual(engine.ruleStats('held'), only((r) => r.held > 0));
    assert.deepEqual([...engine.ruleStats('held').keys()].sort(), [0, block].sort());
    // read on the addon's threads: the same rows, the same sums
    const generation = engine.activePolicy()?.generation;
    for (const which of ['all', 'matched', 'held'] as const) assert.deepEqual(await engine.ruleStatsAsync(which), { generation, rules: engine.ruleStats(which) }, which);
  });

  it('keeps a replaced version\'s final counters of held-back sessions, read after the switch by either install', async () => {
    const { ir, image } = compileYaml(POLICY);
    const block = ir.rules.find((r) => r.name === 'block')?.index ?? -1;
    engine.takeRetiredRuleStats();
    for (const [k, install] of [(i: typeof image) => engine.install(i), (i: typeof image) => engine.installAsync({ image: i })].entries()) {
      if (k > 0) for (let i = 0; i < BLOCKED; i++) engine.testRun(flood(i, 9999)); // this round's held-back sessions
      const held = engine.ruleStats('held');
      const generation = engine.activePolicy()?.generation;
      assert.ok((held.get(block)?.held ?? 0) > 0, 'the version held sessions back');
      await install(image);
      assert.deepEqual(engine.takeRetiredRuleStats(), [{ generation, rules: held }]);
      assert.deepEqual(engine.ruleStats('held'), new Map(), 'the new version starts at zero');
    }
    assert.ok(await waitFor(() => events.length === engine.stats().counters.EVENTS, 5000), 'every event read');
  });

  it('counts the held-back denies no rule decided (no policy) per CPU', async () => {
    engine.uninstall();
    const before = engine.stats();
    const seen = events.length;
    for (let i = 0; i < UNPOLICED; i++) assert.equal(engine.testRun(flood(i, 4444)).verdict, 'drop');
    const after = engine.stats();
    const emitted = after.counters.EVENTS - before.counters.EVENTS;
    assert.ok(await waitFor(() => events.length - seen === emitted, 5000));
    assert.equal(emitted + (after.heldWithoutRule - before.heldWithoutRule), UNPOLICED);
    assert.ok(after.heldWithoutRule - before.heldWithoutRule > 0, 'the budget held some back');
  });

  it('emits every event again when the budget is 0 (no limit)', async () => {
    engine.setDenyEventBudget(0);
    const before = engine.stats();
    for (let i = 0; i < 300; i++) engine.testRun(flood(i, 5555));
    const after = engine.stats();
    assert.equal(after.counters.EVENTS - before.counters.EVENTS, 300);
    assert.equal(after.counters.EVENTS_HELD, before.counters.EVENTS_HELD);
  });

  it('caches only the admitted denied sessions, decides the rest without an entry, and sketches and samples their sources', async () => {
    const { ir, image } = compileYaml(POLICY);
    engine.install(image);
    engine.clearFlowState();
    engine.setDenyEventBudget(BUDGET);
    const block = ir.rules.find((r) => r.name === 'block')?.index ?? -1;
    const epoch = engine.advanceFloodEpoch();
    const before = engine.stats();
    const sources = 3000;
    for (let i = 0; i < sources; i++) assert.equal(engine.testRun(flood(i, 9999)).verdict, 'drop');
    const after = engine.stats();
    const admitted = after.counters.CACHE_MISSES - before.counters.CACHE_MISSES - (after.counters.STATELESS - before.counters.STATELESS);
    const held = engine.ruleStats().get(block)?.held ?? 0;
    // every session past the budget is stateless and, its rule logging, held back; the rest cached
    assert.equal(after.counters.STATELESS - before.counters.STATELESS, held);
    assert.ok(held >= sources - BUDGET * 2 * 10, `held back ${held} of ${sources}`);
    assert.equal(engine.sessions().filter((s) => s.value.rule === block).length, admitted, 'only admitted sessions are cached');
    for (let i = 0; i < sources; i++) {
      const cached = engine.lookupSession(sessionKeyOf(floodSpec(i, 9999)));
      if (cached) assert.equal(cached.action, Action.DENY);
    }
    // a stateless deny's next packet is decided (and counted) again, still dropped
    const lastHeld = engine.stats().counters.STATELESS;
    const again = [...Array(sources).keys()].find((i) => !engine.lookupSession(sessionKeyOf(floodSpec(i, 9999)))) ?? -1;
    assert.equal(engine.testRun(flood(again, 9999)).verdict, 'drop');
    // decided statelessly again, or (a new second's budget) admitted and cached now: one or the other
    const cachedNow = engine.lookupSession(sessionKeyOf(floodSpec(again, 9999))) !== null;
    assert.equal(engine.stats().counters.STATELESS - lastHeld + (cachedNow ? 1 : 0), 1);
    assert.equal(engine.ruleStats().get(block)?.packets, sources + 1, 'packets stay exact');
    // allowed traffic is unaffected
    assert.equal(engine.testRun(flood(1, 53)).verdict, 'pass');
    assert.equal(engine.testRun(flood(1, 53)).verdict, 'pass');

    // the sketch of this interval estimates the distinct sources (held + 1 sessions from `held` sources)
    assert.equal(engine.floodEpoch(), epoch);
    const sketch = engine.ruleStats().get(block)?.sketch;
    assert.ok(sketch, 'the rule has a sketch in this interval');
    const estimate = estimateDistinct(sketch);
    assert.ok(Math.abs(estimate - held) <= 0.55 * held, `${held} distinct sources estimated as ${estimate.toFixed(0)}`);
    // the samples are this flood's sources, under this rule and version
    const samples = engine.floodSamples();
    assert.ok(samples.length >= 100 && samples.length <= Limits.FLOOD_SAMPLES * 2, `${samples.length} samples`);
    const flooded = new Set(Array.from({ length: sources }, (_, i) => sessionKeyOf(floodSpec(i, 9999)).src.join('.')));
    for (const s of samples) {
      assert.deepEqual([s.rule, s.generation, s.family], [block, engine.activePolicy()?.generation, 4]);
      assert.ok(flooded.has([...s.src].join('.')), 'a sampled source is one of the flood');
    }
    // the next interval starts empty
    engine.advanceFloodEpoch();
    assert.equal(engine.ruleStats().get(block)?.sketch, null);
    assert.deepEqual(engine.floodSamples(), []);
  });

  it('caps the admitted denied sessions of all rules together per CPU (deny event cap)', () => {
    engine.clearFlowState();
    engine.setDenyEventBudget(1_000_000);
    engine.setDenyEventCap(4); // 2 per CPU on two CPUs, at least 1 on more
    const before = engine.stats();
    for (let i = 0; i < 200; i++) engine.testRun(flood(10_000 + i, i % 2 ? 9999 : 7777));
    const after = engine.stats();
    const admitted = after.counters.CACHE_MISSES - before.counters.CACHE_MISSES - (after.counters.STATELESS - before.counters.STATELESS);
    assert.ok(admitted >= 1 && admitted <= 4 * 10, `admitted ${admitted} of 200 (a few seconds at most)`);
    assert.equal(after.counters.EVENTS - before.counters.EVENTS, admitted, 'only admitted sessions emit events');
    assert.equal(after.counters.EVENTS_HELD - before.counters.EVENTS_HELD, 200 - admitted);
    engine.setDenyEventCap(0);
  });
});
