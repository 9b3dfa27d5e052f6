// SPDX-License-Identifier: Apache-2.0
// PolicyWorker (src/controller/policy-worker.ts, policy-thread.ts): the thread compiles exactly
// what the inline compile does (the same version, rule names, image bytes; the same PolicyError
// problems) and keeps the IR, which the event loop receives only when it asks (the in-memory
// engine), with shared prefix lists still shared; jobs run in call order; the controller takes
// candidates one at a time through it and holds no IR; explain, the rule list, lint and diff
// answered by the thread are what the inline tools give; and a thread that stops fails its calls
// clearly, and the next call starts one that answers about the installed version again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker as WorkerThread } from 'node:worker_threads';
import { PolicyWorker } from '../../src/controller/policy-worker.js';
import { diffRoute, explainRoute } from '../../src/controller/explain-diff.js';
import type { RouteDeps } from '../../src/controller/routes.js';
import { ruleNamesOf } from '../../src/audit/rule-names.js';
import type { Engine } from '../../src/engine/engine-interface.js';
import { tupleOf, type FrameSpec } from '../../src/engine/frame.js';
import { Action as AbiAction, Reason } from '../../src/abi/generated.js';
import { type CachedSession, diffPolicies, formatDiff, sessionImpact } from '../../src/policy/tools/diff.js';
import { explain, formatExplanation } from '../../src/policy/tools/explain.js';
import { lintFindings } from '../../src/controller/lint-worker.js';
import { NetworkController } from '../../src/controller/network-controller.js';
import { StateStore } from '../../src/host/state-store.js';
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { DoorstepError, PolicyError } from '../../src/errors.js';
import { until } from '../lib/until.js';
import { compileIr, compileSources } from '../../src/policy/compile.js';
import type { PolicyIr } from '../../src/policy/ir/ir.js';
import type { PolicySource } from '../../src/policy/parse/documents.js';
import { SLOT_TABLES as TABLE_NAMES } from '../../src/abi/generated.js';
import { buildImage, type PolicyImage } from '../../src/policy/tables/image.js';
import { addr16 } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy } from '../lib/random-policy.js';

function inline(sources: PolicySource[]) {
  const compiled = compileSources(sources);
  return { ir: compiled.ir, image: buildImage(compiled.ir, compiled.tables), warnings: compiled.warnings };
}

function assertSameImage(got: PolicyImage, want: PolicyImage): void {
  const { tables: gotTables, ...gotHead } = got;
  const { tables: wantTables, ...wantHead } = want;
  assert.deepEqual(gotHead, wantHead);
  for (const name of TABLE_NAMES) {
    const [g, w] = [gotTables[name], wantTables[name]];
    assert.ok(Buffer.isBuffer(g.keys) && Buffer.isBuffer(g.values), `${name}: Buffers`);
    assert.deepEqual({ ...g, keys: null, values: null }, { ...w, keys: null, values: null }, name);
    assert.ok(g.keys.equals(w.keys), `${name}: the same key bytes`);
    assert.ok(g.values.equals(w.values), `${name}: the same value bytes`);
  }
}

/** A policy of `n` rules, half of them from one AddressGroup (a prefix list the rules share). */
function manyRules(n: number, port = 9999): PolicySource[] {
  const rules = Array.from({ length: n }, (_, i) => ({
    name: `r${i}`,
    action: i % 3 ? 'deny' : 'allow',
    from: i % 2 ? ['feed'] : [`172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`],
    to: i % 5 ? ['any'] : ['2001:db8::/32', '10.0.0.0/8'],
    protocol: 'udp',
    ports: [port, 10_000 + i], // no two rules alike: none dropped
  }));
  const feed = Array.from({ length: 300 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/28`); // none adjacent: 300 prefixes
  return [
    { file: 'p.json', text: JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'p' }, spec: { defaultAction: 'deny', rules } }) },
    { file: 'g.json', text: JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'AddressGroup', metadata: { name: 'feed' }, spec: { cidrs: feed } }) },
  ];
}

test('the thread compiles random policies to the same version, rule names, warnings, image bytes (and IR, when asked) as the inline compile', async () => {
  const worker = new PolicyWorker();
  try {
    const r = new Random(prng(0xc0de));
    for (let i = 0; i < 40; i++) {
      const sources = [{ file: `random-${i}.yaml`, text: randomPolicy(r, 24, { tenants: r.chance(0.5) }).yaml }];
      let want: ReturnType<typeof inline>;
      try {
        want = inline(sources);
      } catch {
        continue; // an invalid random set: the error cases are below
      }
      const got = await worker.compile(sources);
      assert.equal(got.version, want.ir.version);
      assert.deepEqual(got.names, ruleNamesOf(want.ir));
      assert.deepEqual(got.warnings, want.warnings);
      assertSameImage(got.image, want.image);
      assert.equal(new TextDecoder().decode(got.sourcesJson), JSON.stringify(sources), 'the sources as the state file holds them');
      assert.deepEqual(await worker.ir(got.version), want.ir, 'the thread keeps the IR it compiled');
    }
  } finally {
    await worker.close();
  }
});

test('a large compile crosses as its image, names (flat) and encoded sources only; the IR, asked for, has a list rules shared as one list', async () => {
  const worker = new PolicyWorker();
  try {
    const sources = manyRules(3000);
    const want = inline(sources);
    const got = await worker.compile(sources);
    assert.deepEqual(Object.keys(got).sort(), ['image', 'names', 'sourcesJson', 'version', 'warnings']);
    assert.ok(got.sourcesJson instanceof Uint8Array && got.sourcesJson.byteLength === got.sourcesJson.buffer.byteLength, 'moved as a buffer of its own');
    assert.deepEqual(Object.values(got.names).map((v) => (v instanceof Uint32Array ? 'Uint32Array' : Array.isArray(v) ? 'array' : typeof v)), ['string', 'array', 'string', 'Uint32Array', 'Uint32Array']);
    assert.equal(got.names.policies.length, 1);
    assertSameImage(got.image, want.image);
    const ir = await worker.ir(got.version);
    assert.deepEqual(ir, want.ir);
    const fromFeed = ir.rules.filter((rule) => rule.src.length === 300);
    assert.equal(fromFeed.length, 1500);
    assert.ok(fromFeed.every((rule) => rule.src === fromFeed[0]!.src), 'one array, as the inline IR has it');
    // the thread's shared array-map keys moved with the first image: the next compile builds them again
    const again = await worker.compile(manyRules(10, 53));
    assertSameImage(again.image, inline(manyRules(10, 53)).image);
  } finally {
    await worker.close();
  }
});

/** Rules whose port ranges overlap pairwise: a verdict table over its budget (DS_E_TABLE_BUDGET). */
function overBudget(): PolicySource[] {
  const rules = Array.from({ length: 2100 }, (_, i) => ({ name: `r${i}`, action: 'deny', from: [`172.16.${i >> 8}.${i & 255}/32`], protocol: 'udp', ports: [`${1000 + i}-${30_000 + i}`] }));
  return [{ file: 'b.json', text: JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'p' }, spec: { defaultAction: 'deny', rules } }) }];
}

test('a broken policy rejects with the PolicyError (or the DoorstepError) the inline compile throws', async () => {
  const worker = new PolicyWorker();
  try {
    const broken: PolicySource[][] = [
      [{ file: 'parse.yaml', text: 'apiVersion: doorstep/v1\nkind: [' }],
      [{ file: 'ref.yaml', text: 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: a, action: allow, from: [nowhere] }\n    - { name: a, action: deny, protocol: tcp, ports: [70000] }\n' }],
      [],
    ];
    for (const sources of broken) {
      let want: unknown;
      try {
        inline(sources);
      } catch (err) {
        want = err;
      }
      assert.ok(want instanceof PolicyError);
      const got = await worker.compile(sources).then(
        () => assert.fail('compiled a broken policy'),
        (err: unknown) => err,
      );
      assert.ok(got instanceof PolicyError && got instanceof DoorstepError);
      assert.equal(got.code, want.code);
      assert.equal(got.message, want.message);
      assert.equal(got.hint, want.hint);
      assert.equal(got.toLine(), want.toLine());
      assert.deepEqual(got.problems, want.problems);
    }
    const budget = overBudget();
    let want: unknown;
    try {
      inline(budget);
    } catch (err) {
      want = err;
    }
    assert.ok(want instanceof DoorstepError && !(want instanceof PolicyError));
    const got = await worker.compile(budget).then(
      () => assert.fail('compiled a policy over budget'),
      (err: unknown) => err,
    );
    assert.ok(got instanceof DoorstepError && !(got instanceof PolicyError));
    assert.equal(got.code, 'DS_E_TABLE_BUDGET');
    assert.equal(got.toLine(), want.toLine());
    // and the thread carries on
    assert.equal((await worker.compile(manyRules(3))).version, inline(manyRules(3)).ir.version);
  } finally {
    await worker.close();
  }
});

test('jobs given at once run one at a time, in call order; close() stops the thread', async () => {
  const worker = new PolicyWorker();
  const done: number[] = [];
  const sets = [manyRules(1500, 1), manyRules(5, 2), [{ file: 'x.yaml', text: 'kind: [' }], manyRules(7, 3)];
  const results = await Promise.allSettled(sets.map((s, i) => worker.compile(s).finally(() => done.push(i))));
  assert.deepEqual(done, [0, 1, 2, 3]);
  assert.equal(results[2]!.status, 'rejected');
  for (const i of [0, 1, 3]) {
    const r = results[i]!;
    assert.ok(r.status === 'fulfilled');
    assert.equal(r.value.version, inline(sets[i]!).ir.version);
  }
  await worker.close();
  await assert.rejects(worker.compile(manyRules(1)), /closed/);
});

/** The in-memory engine, noting the version of every install it is given. */
function notingEngine(installs: string[]): MemoryEngine {
  const engine = MemoryEngine.open();
  const installAsync = engine.installAsync.bind(engine);
  engine.installAsync = (version, beforeSwitch) => {
    installs.push(version.image.version);
    return installAsync(version, beforeSwitch);
  };
  return engine;
}

test('the controller takes a second candidate only once the first is in: the same set given twice is unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-policy-worker-'));
  const installs: string[] = [];
  const controller = new NetworkController({ engine: notingEngine(installs), store: new StateStore(dir), enforcer: 'test', emit: () => undefined });
  try {
    const big = manyRules(2000);
    const small = manyRules(4, 53);
    const outcomes = await Promise.all([
      controller.apply({ origin: 'a', sources: big }),
      controller.apply({ origin: 'b', sources: big }), // given while the first still compiles
      controller.apply({ origin: 'c', sources: [{ file: 'bad.yaml', text: 'kind: [' }] }),
      controller.apply({ origin: 'd', sources: small }),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status), ['installed', 'unchanged', 'rejected', 'installed']);
    const [first, second, rejected, last] = outcomes;
    assert.ok(first?.status === 'installed' && second?.status === 'unchanged' && last?.status === 'installed');
    assert.equal(second.version, first.version);
    assert.equal(second.installMs, 0);
    assert.ok(first.installMs > 0);
    assert.ok(rejected?.status === 'rejected');
    assert.equal(rejected.inForce, first.version);
    assert.equal(rejected.problems[0]?.code, 'DS_E_POLICY_PARSE');
    assert.deepEqual(installs, [first.version, last.version]);
    assert.deepEqual(controller.current?.names, ruleNamesOf(inline(small).ir));
    assert.ok(!('ir' in controller.current!), 'the controller keeps the names, not the IR');
    assert.deepEqual(await controller.policyThread.ir(last.version), inline(small).ir, 'the thread holds the installed IR');
  } finally {
    await controller.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A cached session for the flow `spec`: a verdict by some rule of generation 1, now and then stale or not the policy's. */
function cachedSession(r: Random, spec: FrameSpec): CachedSession {
  const t = tupleOf(spec);
  const icmp = t.protocol === 1 || t.protocol === 58;
  return {
    key: {
      family: t.family,
      src: addr16(spec.src),
      dst: addr16(spec.dst),
      ifindex: 1,
      vlanOuter: 0,
      vlanInner: 0,
      proto: t.protocol,
      sport: t.sport ?? 0,
      dport: icmp ? ((t.icmpType ?? 0) << 8) | (t.icmpCode ?? 0) : (t.dport ?? 0),
    },
    value: {
      firstSeenNs: 1n,
      lastSeenNs: 2n,
      packets: r.int(1, 9),
      bytes: r.int(60, 9000),
      rule: r.int(0, 8),
      generation: r.chance(0.2) ? 0 : 1,
      action: r.chance(0.5) ? AbiAction.ALLOW : AbiAction.DENY,
      reason: r.chance(0.9) ? Reason.POLICY : Reason.FAILSAFE,
      flags: 1,
    },
  };
}

async function* slicesOf<T>(items: readonly T[], size: number): AsyncGenerator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

const ruleList = (ir: PolicyIr) => [...ir.rules.map((rule) => ({ id: rule.id, action: rule.action })), { id: `${ir.policies.join('+')}/default`, action: ir.defaultAction }];

test('explain, the rule list, lint and diff, asked of the thread, are what the inline tools give for its IRs', async () => {
  const worker = new PolicyWorker();
  try {
    const r = new Random(prng(0xe4a1));
    let checked = 0;
    for (let i = 0; i < 12; i++) {
      const a = randomPolicy(r, 16);
      const b = randomPolicy(r, 16);
      const sa = [{ file: 'a.yaml', text: a.yaml }];
      const sb = [{ file: 'b.yaml', text: b.yaml }];
      let irA: PolicyIr;
      let irB: PolicyIr;
      try {
        irA = inline(sa).ir;
        irB = compileIr(sb).ir;
      } catch {
        continue; // an invalid random set
      }
      const { version } = await worker.compile(sa);
      await worker.installed(version, sa);
      for (let k = 0; k < 20; k++) {
        const tuple = tupleOf(randomPacket(r, a));
        const e = explain(irA, tuple);
        assert.deepEqual(await worker.explain(version, tuple), { action: e.action, rule: e.decidedBy.id, index: e.rule, why: formatExplanation(e) });
      }
      assert.deepEqual(await worker.rules(version), ruleList(irA));
      assert.deepEqual(await worker.lint(version), lintFindings(irA));
      const sessions = Array.from({ length: 200 }, () => cachedSession(r, randomPacket(r, r.chance(0.5) ? a : b)));
      const report = await worker.diff(version, sb, 1, slicesOf(sessions, 64));
      const impact = sessionImpact(irA, irB, sessions, { generation: 1 });
      assert.deepEqual(report.lines, formatDiff(diffPolicies(irA, irB), impact));
      assert.deepEqual(report.flipCounts, { toDeny: impact.toDeny.count, toAllow: impact.toAllow.count });
      assert.deepEqual(report.flips.map((f) => `${f.from}>${f.to} ${f.ruleNow}>${f.ruleCandidate}`), [...impact.toDeny.first, ...impact.toAllow.first].map((f) => `${f.now.action}>${f.candidate.action} ${f.now.ruleId}>${f.candidate.ruleId}`));
      const none = await worker.diff(null, sb, 0, slicesOf([], 1));
      assert.deepEqual(none.lines, formatDiff(diffPolicies(null, irB), sessionImpact(null, irB, [], { generation: 0 })));
      checked++;
    }
    assert.ok(checked >= 6, `${checked} random pairs compiled`);
    // a candidate that does not compile: the same PolicyError as inline, and the thread carries on
    await assert.rejects(worker.diff(null, [{ file: 'x.yaml', text: 'kind: [' }], 0, slicesOf([], 1)), (err: unknown) => err instanceof PolicyError && err.code === 'DS_E_POLICY_PARSE');
    await assert.rejects(worker.explain('sha256:none', tupleOf({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, dport: 53 })), (err: unknown) => err instanceof DoorstepError && /does not hold version sha256:none/.test(err.message));
  } finally {
    await worker.close();
  }
});

/** An engine that decides by the image alone (as the native one): installs, and notes what it was given. */
function imageOnlyEngine(given: object[]): Engine {
  let active: { generation: number; slot: number; ruleCount: number } | null = null;
  const engine: Partial<Engine> = {
    adopted: false,
    decidesByIr: false,
    activePolicy: () => active,
    installAsync: async (version, beforeSwitch) => {
      given.push(version);
      const generation = (active?.generation ?? 0) + 1;
      beforeSwitch?.(generation);
      active = { generation, slot: generation & 1, ruleCount: version.image.ruleCount };
      return { generation, slot: active.slot, ruleCount: active.ruleCount, version: version.image.version, durationMs: 0, countedRules: active.ruleCount + 1 };
    },
  };
  return engine as Engine;
}

/** Objects reachable from `root` through properties, Map and Set entries (not into typed arrays, nor into a Worker's internals). */
function reachableObjects(root: object): number {
  const seen = new Set<object>();
  const stack: object[] = [root];
  while (stack.length > 0) {
    const o = stack.pop()!;
    if (seen.has(o) || o instanceof WorkerThread) continue;
    seen.add(o);
    if (ArrayBuffer.isView(o)) continue;
    const next = o instanceof Map ? [...o.keys(), ...o.values()] : o instanceof Set ? [...o] : Object.values(o);
    for (const v of next) if (v !== null && typeof v === 'object') stack.push(v);
  }
  return seen.size;
}

test('on an engine that decides by the image, the controller installs 10,000 rules holding no IR: a few objects, whatever the rule count', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-policy-worker-'));
  const given: object[] = [];
  const controller = new NetworkController({ engine: imageOnlyEngine(given), store: new StateStore(dir), enforcer: 'test', emit: () => undefined });
  try {
    const outcome = await controller.apply({ origin: 'a', sources: manyRules(10_000) });
    assert.equal(outcome.status, 'installed');
    assert.ok(outcome.status === 'installed' && outcome.rules === 10_000);
    assert.deepEqual(given.map((v) => Object.keys(v)), [['image']], 'the engine is given the image, no IR');
    const names = controller.context.policies.get(1)!;
    assert.equal(names, controller.current?.names);
    assert.ok(names.idStarts instanceof Uint32Array && names.policyOf instanceof Uint32Array && typeof names.ids === 'string');
    const objects = reachableObjects(controller);
    assert.ok(objects < 100, `${objects} objects reachable from the controller`);
    // and what needs the IR asks the thread
    assert.equal((await controller.policyThread.rules(outcome.version)).length, 10_001);
  } finally {
    await controller.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('explain and diff through the agent routes ask the thread; after the thread stops (failing what was pending) the next ones start another, which compiles the installed version again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-policy-worker-'));
  const engine = MemoryEngine.open({ interfaces: { src0: 3 } });
  const controller = new NetworkController({ engine, store: new StateStore(dir), enforcer: 'test', emit: () => undefined });
  const deps = { engine, controller } as unknown as RouteDeps;
  const request = { from: '172.16.0.0', to: '10.0.0.1', protocol: 'udp', port: '9999' };
  try {
    controller.attach(['src0'], 'auto');
    const installed = await controller.apply({ origin: 'a', sources: manyRules(200) });
    assert.ok(installed.status === 'installed');
    const before = await explainRoute(deps, request);
    assert.equal(before.rule, 'p/r0');
    assert.equal(before.agree, true);
    const diffBefore = await diffRoute(deps, manyRules(3, 53));
    assert.match(diffBefore.lines[0]!, /→/);

    const thread = controller.policyThread;
    const running = (thread as unknown as { worker: WorkerThread | undefined }).worker;
    assert.ok(running, 'the thread runs');
    const pending = thread.compile(manyRules(3000, 7));
    const applying = controller.apply({ origin: 'c', sources: manyRules(3000, 11) });
    const pendingCalls = () => (thread as unknown as { pending: Map<number, unknown> }).pending.size;
    await until(() => pendingCalls() === 2, 'the apply\'s compile is with the thread');
    await running.terminate(); // as a crash would: the thread is gone mid-compile
    await assert.rejects(pending, (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_POLICY_THREAD' && /the policy thread stopped \(exit code 1\); the next request starts it again/.test(e.message));
    // an apply whose compile the thread took down with it is rejected as that, not as a map failure
    const refused = await applying;
    assert.equal(refused.status, 'rejected');
    assert.deepEqual(refused.status === 'rejected' && [refused.problems.map((p) => p.code), refused.inForce], [['DS_E_POLICY_THREAD'], installed.version]);

    assert.deepEqual(await explainRoute(deps, request), before, 'the same answer from a new thread');
    assert.deepEqual(await diffRoute(deps, manyRules(3, 53)), diffBefore);
    assert.notEqual((thread as unknown as { worker: WorkerThread | undefined }).worker, running);
    assert.deepEqual(await thread.rules(installed.version), ruleList(inline(manyRules(200)).ir));
    const next = await controller.apply({ origin: 'b', sources: manyRules(5, 53) });
    assert.equal(next.status, 'installed');
    assert.equal((await explainRoute(deps, { ...request, port: '53' })).rule, 'p/r0');
  } finally {
    await controller.close();
    engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the thread runs nicer than the event loop, which keeps its own priority (Linux: a nice value is a thread\'s)', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
  const main = niceOf(String(process.pid));
  const worker = new PolicyWorker();
  try {
    await worker.compile(manyRules(3));
    const nices = readdirSync('/proc/self/task').map(niceOf);
    assert.ok(nices.includes(Math.min(19, main + 10)), `a thread at nice ${Math.min(19, main + 10)}: ${nices.join(' ')}`);
    assert.equal(niceOf(String(process.pid)), main, 'the event loop\'s thread keeps its nice value');
  } finally {
    await worker.close();
  }
});
