// SPDX-License-Identifier: Apache-2.0
// CompileWorker (src/controller/compile-worker.ts): the thread compiles exactly what the inline
// compile does (the same IR, version and image bytes; the same PolicyError problems), the IR
// crosses in slices with shared prefix lists still shared, jobs run in call order, and the
// controller still takes candidates one at a time through it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CompileWorker } from '../../src/controller/compile-worker.js';
import { NetworkController } from '../../src/controller/network-controller.js';
import { StateStore } from '../../src/host/state-store.js';
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { DoorstepError, PolicyError } from '../../src/errors.js';
import { compileSources } from '../../src/policy/compile.js';
import type { PolicySource } from '../../src/policy/parse/documents.js';
import { SLOT_TABLES as TABLE_NAMES } from '../../src/abi/generated.js';
import { buildImage, type PolicyImage } from '../../src/policy/tables/image.js';
import { prng, Random, randomPolicy } from '../lib/random-policy.js';

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

test('the thread compiles random policies to the same IR, version, warnings and image bytes as the inline compile', async () => {
  const worker = new CompileWorker();
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
      assert.equal(got.ir.version, want.ir.version);
      assert.deepEqual(got.ir, want.ir);
      assert.deepEqual(got.warnings, want.warnings);
      assertSameImage(got.image, want.image);
    }
  } finally {
    await worker.close();
  }
});

test('a large IR crosses in slices: the same rules, and a list rules shared is still one list', async () => {
  const worker = new CompileWorker();
  try {
    const sources = manyRules(3000);
    const want = inline(sources);
    const got = await worker.compile(sources);
    assert.equal(got.ir.version, want.ir.version);
    assert.deepEqual(got.ir, want.ir);
    assertSameImage(got.image, want.image);
    const fromFeed = got.ir.rules.filter((rule) => rule.src.length === 300);
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
  const worker = new CompileWorker();
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
    assert.equal((await worker.compile(manyRules(3))).ir.version, inline(manyRules(3)).ir.version);
  } finally {
    await worker.close();
  }
});

test('jobs given at once run one at a time, in call order; close() stops the thread', async () => {
  const worker = new CompileWorker();
  const done: number[] = [];
  const sets = [manyRules(1500, 1), manyRules(5, 2), [{ file: 'x.yaml', text: 'kind: [' }], manyRules(7, 3)];
  const results = await Promise.allSettled(sets.map((s, i) => worker.compile(s).finally(() => done.push(i))));
  assert.deepEqual(done, [0, 1, 2, 3]);
  assert.equal(results[2]!.status, 'rejected');
  for (const i of [0, 1, 3]) {
    const r = results[i]!;
    assert.ok(r.status === 'fulfilled');
    assert.equal(r.value.ir.version, inline(sets[i]!).ir.version);
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
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-compile-worker-'));
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
    assert.deepEqual(controller.current?.ir, inline(small).ir);
  } finally {
    await controller.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
