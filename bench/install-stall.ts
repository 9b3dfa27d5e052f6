// SPDX-License-Identifier: Apache-2.0
// `npm run bench:install` (issue 12, point 4): the longest event-loop stall while the agent
// installs a 10,000-rule policy (bench:flood's), before and now. Before: compileSources,
// buildImage and engine.install on the event loop, as NetworkController.applyNow ran them. Now:
// NetworkController.apply, which compiles on its policy thread (controller/policy-worker.ts)
// and installs with NativeEngine.installAsync (the map-in-map writes, which wait for RCU grace periods,
// on a thread of the addon's; the inner maps are still filled on the event loop). A 1 ms interval
// timer measures the stall (its longest gap, less the 1 ms); the install's own time is printed
// beside it. Needs root (a real engine, unattached). INSTALL_ROUNDS overrides the rounds (default 4).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetworkController } from '../src/controller/network-controller.js';
import { StateStore } from '../src/host/state-store.js';
import { NativeEngine } from '../src/engine/engine.js';
import { compileSources } from '../src/policy/compile.js';
import { buildImage, type PolicyImage } from '../src/policy/tables/image.js';
import { feedSources } from './flood-rig.js';

const ROUNDS = Number(process.env.INSTALL_ROUNDS ?? 4);
const RULES = 10_000;

/** bench:flood's 10,000-rule policy; `port` makes each round's a new version. */
function policyText(port: number): string {
  const feed = feedSources(RULES).map((a, i) => ({ name: `feed-${i}`, action: 'deny', from: [`${a}/32`], protocol: 'udp', ports: [port] }));
  const rules = [
    { name: 'allow-app', action: 'allow', from: ['any'], protocol: 'udp', ports: [5000] },
    ...feed,
    { name: 'deny-flood', action: 'deny', from: ['any'], protocol: 'udp', ports: [port] },
  ];
  return JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'flood' }, spec: { defaultAction: 'deny', rules } });
}

/** The longest gap between ticks of a 1 ms interval while `work` runs, less the 1 ms. */
async function stallDuring(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - 1);
    last = now;
  }, 1);
  await sleep(20);
  max = 0;
  last = performance.now();
  try {
    await work();
    await sleep(20); // a stall at the very end shows in the next tick
  } finally {
    clearInterval(timer);
  }
  return max;
}

const fmt = (n: number) => n.toFixed(1).padStart(8);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-bench-install-'));
  const engine = NativeEngine.open({ pinRoot: null });
  const installMs: number[] = [];
  const timedInstall = engine.install.bind(engine);
  engine.install = (image: PolicyImage) => {
    const t = performance.now();
    try {
      return timedInstall(image);
    } finally {
      installMs.push(performance.now() - t);
    }
  };
  const timedInstallAsync = engine.installAsync.bind(engine);
  engine.installAsync = async (version, beforeSwitch) => {
    const t = performance.now();
    try {
      return await timedInstallAsync(version, beforeSwitch);
    } finally {
      installMs.push(performance.now() - t);
    }
  };
  const controller = new NetworkController({ engine, store: new StateStore(dir), enforcer: 'bench', emit: () => undefined });
  const rows: { path: string; stall: number; total: number; install: number }[] = [];
  let port = 10_000;
  try {
    await controller.apply({ origin: 'warm-up', sources: [{ file: 'flood.json', text: policyText(port++) }] }); // the thread is up
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of ['before: inline', 'now: worker+async'] as const) {
        const text = policyText(port++);
        const t = performance.now();
        const stall = await stallDuring(async () => {
          if (path === 'now: worker+async') {
            const outcome = await controller.apply({ origin: 'bench', sources: [{ file: 'flood.json', text }] });
            if (outcome.status !== 'installed') throw new Error(`not installed: ${JSON.stringify(outcome)}`);
          } else {
            await new Promise<void>((resolve) =>
              setImmediate(() => {
                const compiled = compileSources([{ file: 'flood.json', text }]);
                engine.install(buildImage(compiled.ir, compiled.tables));
                resolve();
              }),
            );
          }
        });
        rows.push({ path, stall, total: performance.now() - t - 20, install: installMs.at(-1)! });
      }
    }
  } finally {
    await controller.close();
    engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`a ${RULES.toLocaleString('en-US')}-rule policy installed ${ROUNDS} times each way (ms)`);
  console.log('path              longest stall   install total   engine.install');
  for (const r of rows) console.log(`${r.path.padEnd(16)}  ${fmt(r.stall)}        ${fmt(r.total)}        ${fmt(r.install)}`);
  for (const path of ['before: inline', 'now: worker+async']) {
    const of = rows.filter((r) => r.path === path);
    console.log(`median ${path.padEnd(16)} stall ${fmt(median(of.map((r) => r.stall)))}   engine.install ${fmt(median(of.map((r) => r.install)))}`);
  }
}

await main();
