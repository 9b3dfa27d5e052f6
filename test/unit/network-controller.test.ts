// SPDX-License-Identifier: Apache-2.0
// NetworkController (src/controller/network-controller.ts) on the in-memory engine
// (src/engine/memory-engine.ts), without root: default deny at attach, a rejected candidate
// (broken documents, a refused signature, an engine that fails the install) leaves the version in
// force enforcing, the state dir persists the last good set and restores it after a restart that
// lost the engine, a restart that finds the engine pinned adopts it untouched, candidates are
// installed one at a time in the order given, and fleet candidates keep their revisions. The
// expected verdicts are written from the policies' text, not computed by the evaluator.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AuditRecord, PolicyRecord } from '../../src/audit/records.js';
import { NetworkController, type ApplyOutcome } from '../../src/controller/network-controller.js';
import { StateStore } from '../../src/host/state-store.js';
import { MemoryEngine, type MemoryPacket, MemoryPins } from '../../src/engine/memory-engine.js';
import { parseIp } from '../../src/engine/frame.js';
import type { PolicyCandidate } from '../../src/watcher/source.js';

const IFACES = { src0: 3, src1: 4 };

/** Allow udp `open` from 10.1.0.0/16 to 10.2.0.0/16, deny udp `shut` explicitly, default deny. */
function policy(open: number, shut: number, name = 'web'): string {
  return `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: ${name} }
spec:
  defaultAction: deny
  rules:
    - { name: allow-${open}, action: allow, from: [10.1.0.0/16], to: [10.2.0.0/16], protocol: udp, ports: [${open}] }
    - { name: deny-${shut}, action: deny, from: [10.1.0.0/16], protocol: udp, ports: [${shut}] }
`;
}

const A = policy(7001, 7002);
const B = policy(7002, 7001);
const BROKEN = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: x, action: allow, protocol: udp, ports: [70000] }\n';

const candidate = (text: string, origin = 'file:/policy', extra: Partial<PolicyCandidate> = {}): PolicyCandidate => ({ origin, sources: [{ file: 'web.yaml', text }], ...extra });

/** A udp datagram from 10.1.0.7 to 10.2.0.9 on src0 towards `dport`. */
const udp = (dport: number, sport = 40000): MemoryPacket => ({ family: 4, src: parseIp('10.1.0.7'), dst: parseIp('10.2.0.9'), protocol: 17, sport, dport, ifindex: IFACES.src0, bytes: 100 });

/** One enforcer's run: an engine (on `pins`), a controller on `stateDir`, the records it emitted. */
class Run {
  readonly records: AuditRecord[] = [];
  readonly outcomes: ApplyOutcome[] = [];
  readonly installs: ('installed' | 'rejected')[] = [];
  readonly engine: MemoryEngine;
  readonly controller: NetworkController;

  constructor(stateDir: string, pins: MemoryPins = new MemoryPins()) {
    this.engine = MemoryEngine.open({ pins, interfaces: IFACES });
    this.controller = new NetworkController({
      engine: this.engine,
      store: new StateStore(stateDir),
      enforcer: 'enf-h19',
      emit: (r) => this.records.push(r),
      onInstall: (_ms, outcome) => this.installs.push(outcome),
      onOutcome: (o) => this.outcomes.push(o),
    });
  }

  policyRecords(): PolicyRecord[] {
    return this.records.filter((r): r is PolicyRecord => r.type === 'policy');
  }

  /** Stop as SIGKILL or --keep-on-exit would: the engine stays pinned. */
  async stopKeeping(): Promise<void> {
    await this.controller.close();
    this.engine.close({ keepAttached: true });
  }

  /** Stop as a clean SIGTERM does: detached, pins removed. */
  async stop(): Promise<void> {
    await this.controller.close();
    this.engine.close();
  }
}

function stateDir(): string {
  return mkdtempSync(join(tmpdir(), 'doorstep-h19-controller-'));
}

describe('controller on the in-memory engine', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = stateDir();
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('drops everything from attach until a policy is in, then decides by the version installed', async () => {
    const run = new Run(dir());
    try {
      const attached = run.controller.attach(['src0', 'src1'], 'auto');
      assert.deepEqual(attached.map((a) => [a.ifname, a.adopted]), [['src0', false], ['src1', false]]);
      assert.deepEqual(run.records.filter((r) => r.type === 'agent').map((r) => (r as { event: string }).event), ['attached', 'attached']);
      assert.deepEqual({ ...run.engine.packet(udp(7001)) }, { verdict: 'drop', reason: 'NO_POLICY', rule: 0, generation: 0, cached: false });
      await run.controller.resume(); // an empty state dir: nothing to restore
      assert.equal(run.engine.activePolicy(), null);
      assert.equal(run.policyRecords().length, 0);

      const outcome = await run.controller.apply(candidate(A));
      assert.equal(outcome.status, 'installed');
      assert.ok(outcome.status === 'installed');
      assert.equal(outcome.generation, 1);
      assert.equal(outcome.rules, 2);
      // the session denied under no policy is not trusted under generation 1
      assert.deepEqual({ ...run.engine.packet(udp(7001)) }, { verdict: 'pass', reason: 'POLICY', rule: 1, generation: 1, cached: false });
      assert.deepEqual({ ...run.engine.packet(udp(7001)) }, { verdict: 'pass', reason: 'POLICY', rule: 1, generation: 1, cached: true });
      assert.deepEqual({ ...run.engine.packet(udp(7002)) }, { verdict: 'drop', reason: 'POLICY', rule: 2, generation: 1, cached: false });
      assert.deepEqual({ ...run.engine.packet(udp(53)) }, { verdict: 'drop', reason: 'POLICY', rule: 0, generation: 1, cached: false });
      const [installed] = run.policyRecords();
      assert.equal(installed?.status, 'installed');
      assert.equal(installed?.source, 'file:/policy');
      assert.equal(installed?.generation, 1);
      assert.equal(installed?.policyVersion, run.controller.current?.version);
      assert.deepEqual(run.installs, ['installed']);
      // the rule counters the status and metrics read: two packets of rule 1, one of rule 2, one of the default
      assert.deepEqual([...run.engine.ruleStats('matched')].map(([rule, s]) => [rule, s.packets, s.bytes]), [[0, 1, 100], [1, 2, 200], [2, 1, 100]]);
    } finally {
      await run.stop();
    }
  });

  it('rejects broken documents, refused signatures and a failed install, and keeps the version in force enforcing', async () => {
    const run = new Run(dir());
    try {
      run.controller.attach(['src0'], 'auto');
      const first = await run.controller.apply(candidate(A));
      assert.ok(first.status === 'installed');
      assert.equal(run.engine.packet(udp(7001)).verdict, 'pass');

      const broken = await run.controller.apply(candidate(BROKEN, 'file:/policy'));
      assert.ok(broken.status === 'rejected');
      assert.equal(broken.inForce, first.version);
      assert.equal(broken.problems[0]?.file, 'web.yaml');
      assert.ok(broken.problems[0]!.line > 0, 'the problem names its line');
      assert.ok(/ports/.test(broken.problems[0]!.field), `the problem names the field: ${broken.problems[0]!.field}`);

      const refused = await run.controller.apply(candidate(B, 'nats:policies', { revision: 9, refusals: [{ code: 'DS_E_POLICY_SIGNATURE', file: 'web', message: 'signed by an untrusted key' }] }));
      assert.ok(refused.status === 'rejected');
      assert.deepEqual(refused.problems.map((p) => [p.code, p.field]), [['DS_E_POLICY_SIGNATURE', 'signature']]);
      assert.equal(run.controller.lastRejected?.revision, 9);

      run.engine.failNextInstall();
      const failed = await run.controller.apply(candidate(B));
      assert.ok(failed.status === 'rejected');
      assert.equal(failed.problems[0]?.code, 'DS_E_BPF_MAP');
      assert.equal(failed.inForce, first.version);

      // through all three: generation 1, the same verdicts, the cached session still a hit
      assert.equal(run.engine.activePolicy()?.generation, 1);
      assert.equal(run.controller.current?.version, first.version);
      assert.deepEqual({ ...run.engine.packet(udp(7001)) }, { verdict: 'pass', reason: 'POLICY', rule: 1, generation: 1, cached: true });
      assert.equal(run.engine.packet(udp(7002)).verdict, 'drop');
      const rejected = run.policyRecords().filter((r) => r.status === 'rejected');
      assert.equal(rejected.length, 3);
      assert.ok(rejected.every((r) => r.inForce === first.version));
      assert.deepEqual(run.installs, ['installed', 'rejected', 'rejected', 'rejected']);

      // the next good set goes in under generation 2 and clears the rejection; the flow it denies is cut at once
      const second = await run.controller.apply(candidate(B));
      assert.ok(second.status === 'installed');
      assert.equal(second.generation, 2);
      assert.equal(run.controller.lastRejected, null);
      assert.deepEqual({ ...run.engine.packet(udp(7001)) }, { verdict: 'drop', reason: 'POLICY', rule: 2, generation: 2, cached: false });
      assert.equal(run.engine.packet(udp(7002)).verdict, 'pass');
    } finally {
      await run.stop();
    }
  });

  it('persists the last installed set and restores it after a restart that lost the engine', async () => {
    const state = dir();
    const first = new Run(state);
    first.controller.attach(['src0'], 'auto');
    const installed = await first.controller.apply(candidate(A, 'file:/etc/doorstep/policy'));
    assert.ok(installed.status === 'installed');
    await first.controller.apply(candidate(BROKEN)); // a rejected set is never persisted
    const saved = JSON.parse(readFileSync(join(state, 'policy.json'), 'utf8')) as { version: string; generation: number; origin: string; sources: { text: string }[] };
    assert.deepEqual([saved.version, saved.generation, saved.origin, saved.sources[0]?.text], [installed.version, 1, 'file:/etc/doorstep/policy', A]);
    await first.stop(); // detached, pins gone: the next engine starts empty (a reboot does the same)

    const second = new Run(state);
    try {
      assert.equal(second.engine.adopted, false);
      second.controller.attach(['src0'], 'auto');
      await second.controller.resume();
      const [restored] = second.policyRecords();
      assert.equal(restored?.status, 'restored');
      assert.equal(restored?.source, 'state (file:/etc/doorstep/policy)');
      assert.equal(restored?.policyVersion, installed.version);
      assert.equal(second.controller.current?.origin, 'file:/etc/doorstep/policy');
      assert.equal(second.engine.activePolicy()?.generation, 1);
      assert.equal(second.engine.packet(udp(7001)).verdict, 'pass');
      assert.equal(second.engine.packet(udp(7002)).verdict, 'drop');
    } finally {
      await second.stop();
    }
  });

  it('a restart that finds the engine pinned adopts it untouched: the same generation, sessions and links', async () => {
    const state = dir();
    const pins = new MemoryPins();
    const first = new Run(state, pins);
    first.controller.attach(['src0'], 'auto');
    const installed = await first.controller.apply(candidate(A));
    assert.ok(installed.status === 'installed');
    assert.equal(first.engine.packet(udp(7001)).verdict, 'pass');
    await first.stopKeeping(); // SIGKILL: the engine keeps enforcing
    assert.equal(MemoryEngine.open({ pins: new MemoryPins() }).adopted, false, 'other pins hold nothing');

    const second = new Run(state, pins);
    try {
      assert.equal(second.engine.adopted, true);
      assert.deepEqual(second.controller.attach(['src0'], 'auto').map((a) => a.adopted), [true]);
      await second.controller.resume();
      assert.deepEqual(second.policyRecords().map((r) => [r.status, r.generation, r.policyVersion]), [['adopted', 1, installed.version]]);
      assert.equal(second.engine.activePolicy()?.generation, 1, 'nothing was installed again');
      assert.deepEqual({ ...second.engine.packet(udp(7001)) }, { verdict: 'pass', reason: 'POLICY', rule: 1, generation: 1, cached: true });
      // the next install carries on from the adopted generation
      const next = await second.controller.apply(candidate(B));
      assert.ok(next.status === 'installed');
      assert.equal(next.generation, 2);
    } finally {
      await second.stop();
    }
  });

  it('adopts a version it has no documents for, and reinstalls from the state dir when the engine enforces another generation', async () => {
    const pins = new MemoryPins();
    const first = new Run(dir(), pins);
    first.controller.attach(['src0'], 'auto');
    await first.controller.apply(candidate(A));
    await first.stopKeeping();

    const empty = new Run(dir(), pins); // another state dir: no documents
    empty.controller.attach(['src0'], 'auto');
    await empty.controller.resume();
    assert.deepEqual(empty.policyRecords().map((r) => [r.status, r.source, r.generation]), [['adopted', 'engine', 1]]);
    assert.equal(empty.controller.current, null);
    assert.equal(empty.engine.packet(udp(7001)).verdict, 'pass', 'the adopted version keeps enforcing');
    await empty.stopKeeping();

    // a state dir that recorded another generation (7, of B) than the engine enforces (1, of A)
    // is not believed to describe it: its set is installed again under a new generation
    const other = dir();
    writeFileSync(join(other, 'policy.json'), JSON.stringify({ format: 1, version: 'sha256:stale', generation: 7, origin: 'api', installedAt: new Date(0).toISOString(), sources: [{ file: 'web.yaml', text: B }] }));
    const third = new Run(other, pins);
    try {
      third.controller.attach(['src0'], 'auto');
      await third.controller.resume();
      assert.deepEqual(third.policyRecords().map((r) => [r.status, r.generation]), [['restored', 2]]);
      assert.equal(third.engine.packet(udp(7002)).verdict, 'pass');
      assert.equal(third.engine.packet(udp(7001)).verdict, 'drop');
    } finally {
      await third.stop();
    }
  });

  it('a damaged state file is reported and the engine stays in default deny', async () => {
    const state = dir();
    writeFileSync(join(state, 'policy.json'), '{ "format": 1, "version": ');
    const run = new Run(state);
    try {
      run.controller.attach(['src0'], 'auto');
      await run.controller.resume();
      const errors = run.records.filter((r) => r.type === 'agent' && (r as { event: string }).event === 'error');
      assert.equal(errors.length, 1);
      assert.match((errors[0] as { message: string }).message, /policy\.json is damaged and ignored/);
      assert.equal(run.engine.activePolicy(), null);
      assert.equal(run.engine.packet(udp(7001)).reason, 'NO_POLICY');
    } finally {
      await run.stop();
    }
  });

  it('installs candidates given at once one at a time, in order: the last one given is in force', async () => {
    const run = new Run(dir());
    try {
      run.controller.attach(['src0'], 'auto');
      const seen: number[] = [];
      run.engine.onEvents((events) => seen.push(...events.map((e) => e.generation)));
      const outcomes = await Promise.all([
        run.controller.apply(candidate(A, 'a')),
        run.controller.apply(candidate(B, 'b')),
        run.controller.apply(candidate(BROKEN, 'c')),
        run.controller.apply(candidate(B, 'd')), // the same set as the one in force
        run.controller.apply(candidate(A, 'e')),
      ]);
      assert.deepEqual(outcomes.map((o) => o.status), ['installed', 'installed', 'rejected', 'unchanged', 'installed']);
      assert.deepEqual(outcomes.map((o) => ('generation' in o ? o.generation : null)), [1, 2, null, 2, 3]);
      assert.deepEqual(run.outcomes.map((o) => o.status), outcomes.map((o) => o.status), 'onOutcome in the same order');
      const rejected = outcomes[2];
      assert.ok(rejected?.status === 'rejected');
      assert.equal(rejected.inForce, (outcomes[1] as { version: string }).version, 'each candidate sees the one before');
      assert.equal(run.controller.current?.origin, 'e');
      assert.equal(run.engine.activePolicy()?.generation, 3);
      assert.equal(run.engine.packet(udp(7001)).verdict, 'pass');
      assert.deepEqual(seen, [3], 'one event, of the version in force');
      // the audit names generations 1..3; a version given again under force (reclassify) takes a new one
      assert.deepEqual([...run.controller.context.policies.keys()], [1, 2, 3]);
      await run.controller.reclassify();
      assert.equal(run.engine.activePolicy()?.generation, 4);
      assert.equal(run.controller.current?.version, (outcomes[4] as { version: string }).version);
    } finally {
      await run.stop();
    }
  });

  it('fleet candidates: the revision is kept, the same set at a newer revision is unchanged and clears a rejection', async () => {
    const run = new Run(dir());
    try {
      run.controller.attach(['src0'], 'auto');
      const first = await run.controller.apply(candidate(A, 'nats:policies', { revision: 3 }));
      assert.ok(first.status === 'installed');
      assert.equal(run.controller.current?.revision, 3);
      await run.controller.apply(candidate(BROKEN, 'nats:policies', { revision: 4 }));
      assert.deepEqual([run.controller.lastRejected?.origin, run.controller.lastRejected?.revision], ['nats:policies', 4]);
      const again = await run.controller.apply(candidate(A, 'nats:policies', { revision: 5 }));
      assert.equal(again.status, 'unchanged');
      assert.equal(run.controller.lastRejected, null);
      assert.equal(run.controller.current?.revision, 5);
      assert.equal(run.engine.activePolicy()?.generation, 1, 'unchanged installs nothing');
      assert.deepEqual(run.outcomes.map((o) => o.status), ['installed', 'rejected', 'unchanged']);
    } finally {
      await run.stop();
    }
  });

  it('an attach that fails undoes this run\'s attachments and keeps adopted ones', async () => {
    const pins = new MemoryPins();
    const first = new Run(dir(), pins);
    first.controller.attach(['src1'], 'auto');
    await first.stopKeeping();
    const run = new Run(dir(), pins);
    try {
      assert.throws(() => run.controller.attach(['src1', 'src0', 'missing0'], 'auto'), { code: 'DS_E_NO_INTERFACE' });
      assert.deepEqual(run.engine.attachments().map((a) => [a.ifname, a.adopted]), [['src1', true]]);
    } finally {
      await run.stop();
    }
  });
});
