// SPDX-License-Identifier: Apache-2.0
// `npm run bench:fleet`: how fast a policy published to the fleet is enforced, and what one
// update costs NATS per enforcer. Figures only, no thresholds.
//
// 1. Three real agents (test/lib/fleet-rig.ts: each enforcing its own veth, reaching a real
//    nats-server over a management bridge). BENCH_ROUNDS rounds (default 10) of
//    `doorstep apply --nats … --wait -o json` with a new version each round (a port changes):
//    allMs is the CLI's figure, from the publish to the last agent's status report showing the
//    new version; each agent's installMs comes from its own `policy` record. Then
//    BENCH_SIGNED_ROUNDS rounds (default 3; 0 = none) with the agents restarted with
//    --policy-pubkey and the set signed with --sign-key.
// 2. BENCH_WATCHERS (default 1,000) simulated enforcers on one nats-server on loopback, in
//    BENCH_WORKERS processes (default 2, bench/fleet-watchers.ts): each the real NatsSource,
//    compileIr and the real StatusReporter on a connection of its own. Per round: publish (in
//    process) a set selecting all of them and follow the status bucket until every enforcer
//    reports the new version: first, p50, p99 and last enforcer; the nats-server's CPU time
//    (/proc/PID/stat) per enforcer per update; the round's wall time per enforcer.
// 3. The floor: one bare KV put → one watcher on another connection receiving it, median of 50,
//    on the same loopback server (and, for reference, on the fleet's management network); the
//    figures of 1 and 2 as multiples of it.
// 4. Faults on a 3-node JetStream cluster (bench/fleet-faults.ts): BENCH_FAULT_ROUNDS rounds
//    (default 3; 0 = none) of kill -9 of the server holding the watch consumers, and of a full
//    outage (one agent restarted during it, the others staying up): time to JetStream answering
//    (probed), then to every agent enforcing the publish made at once, and to `fleet status`
//    saying converged; min / median / max, stayed-up and restarted agents apart.
// BENCH_PARTS (default agents,watchers,faults) runs only the parts named.
// Every round is bounded (60 s: reported as incomplete). Cleans up its namespaces, processes
// and files, also on failure and on SIGINT/SIGTERM.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_STATUS_BUCKET, type EnforcerStatus, ExpectedVersions } from '../src/fleet/enforcer-status.js';
import { createPolicyBucket, publishEnvelope, watchStatuses } from '../src/fleet/fleet-client.js';
import { connectNats, parseNatsUrl } from '../src/fleet/nats-connection.js';
import { openStatusBucket } from '../src/fleet/status-reporter.js';
import { buildEnvelope } from '../src/fleet/policy-envelope.js';
import { type AgentProcess, mainJs } from '../test/lib/agent-rig.js';
import { FleetRig } from '../test/lib/fleet-rig.js';
import { NatsServer } from '../test/lib/nats-server.js';
import { clusterFaults, type FaultRound, POLICY_BUCKET } from './fleet-faults.js';
import { SIM_STATUS_TTL_MS } from './fleet-watchers.js';
import { JsonLineChild } from './json-line-child.js';

const SCRIPT = fileURLToPath(import.meta.url);
const WORKER = join(dirname(SCRIPT), 'fleet-watchers.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const SIGNED_ROUNDS = Number(process.env.BENCH_SIGNED_ROUNDS ?? 3);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 1000);
const WORKERS = Math.max(1, Math.min(WATCHERS, Number(process.env.BENCH_WORKERS ?? 2)));
const FAULT_ROUNDS = Number(process.env.BENCH_FAULT_ROUNDS ?? 3);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'agents,watchers,faults').split(',').map((p) => p.trim()));
const FLOOR_SAMPLES = 50;
const FLOOR_WARMUP = 5;
const ROUND_TIMEOUT_MS = 60_000;
const FLOOR_BUCKET = 'bench-floor';
/** The agents' --status-ttl (a report every 2 s, stale entries gone in 6 s), as in test/e2e/fleet.test.ts. */
const AGENT_STATUS_TTL = '6s';
/** NatsSource's default quiet time before a burst of changes becomes one candidate. */
const DEBOUNCE_MS = 100;
/** StatusReporter.poke(): changes within this many ms make one report. */
const POKE_MS = 20;
/** Quiet time before the rounds of part 2 in which the server's background CPU is measured. */
const IDLE_SECONDS = 3;

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Nearest-rank percentile (q in 0..1); NaN for no samples. */
function pct(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}
const median = (xs: readonly number[]) => pct(xs, 0.5);
const summary = (xs: readonly number[], digits = 0) => `median ${fmt(median(xs), digits)}, p90 ${fmt(pct(xs, 0.9), digits)}, max ${fmt(Math.max(...xs), digits)} ms (n=${xs.length})`;

/** A small valid policy; `port` makes each round a new version. */
function policy(port: number): string {
  return (
    'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules:\n' +
    `    - { name: allow-web, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [${port}] }\n` +
    `    - { name: deny-admin, action: deny, from: [10.231.0.0/24], protocol: udp, ports: [${port + 1}] }\n`
  );
}

// ---- cleanup: a stack run once, in reverse, on success, failure or a signal ----

const cleanups: (() => unknown)[] = [];
let cleaning: Promise<void> | undefined;
function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    await stopRunning();
    while (cleanups.length > 0) {
      const c = cleanups.pop() as () => unknown;
      try {
        await c();
      } catch (err) {
        console.error(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return cleaning;
}

// ---- CPU time of a process, from /proc ----

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of `pid`, in ms (resolution 1000/CLK_TCK ms); NaN when it is gone. */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** The nats-server running with `-sd storeDir` (NatsServer does not expose its child). */
function natsServerPid(storeDir: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if ((argv[0] ?? '').endsWith('nats-server') && argv.includes(storeDir)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

// ---- child processes ----

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Commands under way (the CLI): stopped first when cleaning up. */
const running = new Set<ChildProcess>();
async function stopRunning(): Promise<void> {
  for (const c of running) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

/** Run a command to its end (killed after `timeoutMs`), without blocking the event loop. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The last JSON line of a command's output, if any. */
function lastJson<T>(text: string): T | undefined {
  const line = text.trim().split('\n').pop();
  try {
    return line ? (JSON.parse(line) as T) : undefined;
  } catch {
    return undefined;
  }
}

/** A worker (bench/fleet-watchers.ts): JSON lines on stdout, commands on stdin. */
class Worker extends JsonLineChild {
  constructor(proc: ChildProcess) {
    super(proc, 'a watcher worker');
  }

  send(line: string): void {
    this.sendLine(line);
  }

  /** Ask it to close (its enforcers leave the status bucket); SIGTERM after 15 s, SIGKILL after 5 more. */
  override stop(): Promise<void> {
    return super.stop(15_000);
  }
}

// ---- 3. the floor: one KV put → one watcher ----

/** `samples` times: put a new value, wait until a watcher on another connection has it; ms each. */
async function floor(url: string, samples: number): Promise<number[]> {
  const target = parseNatsUrl(`${url}/${FLOOR_BUCKET}`);
  const putNc = await connectNats(target, {}, { name: 'doorstep-bench-floor-put' });
  let watchNc: NatsConnection | undefined;
  try {
    watchNc = await connectNats(target, {}, { name: 'doorstep-bench-floor-watch' });
    const kv = await new Kvm(putNc).create(FLOOR_BUCKET, { history: 1 });
    const wkv = await new Kvm(watchNc).open(FLOOR_BUCKET);
    const waiting = new Map<string, (t: number) => void>();
    const watch = await wkv.watch({ key: 'floor' });
    void (async () => {
      for await (const e of watch) {
        const t = nowMs();
        if (e.operation === 'PUT') waiting.get(e.string())?.(t);
      }
    })();
    const out: number[] = [];
    try {
      for (let i = 0; i < samples + FLOOR_WARMUP; i++) {
        const value = `v${i}`;
        const arrived = new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('floor: the watcher did not receive a put within 5 s')), 5000);
          waiting.set(value, (t) => {
            clearTimeout(timer);
            resolve(t);
          });
        });
        const t0 = nowMs();
        await kv.put('floor', value);
        const t1 = await arrived;
        waiting.delete(value);
        if (i >= FLOOR_WARMUP) out.push(t1 - t0);
        await sleep(10);
      }
    } finally {
      watch.stop();
    }
    return out;
  } finally {
    await putNc.close();
    await watchNc?.close();
  }
}

// ---- 1. three real agents ----

interface AgentRoundResult {
  round: number;
  signed: boolean;
  complete: boolean;
  allMs: number | null;
  selected: number;
  installed: number;
  enforcers: { enforcer: string; ms: number | null; installMs: number | null }[];
  serverCpuMs: number;
  problem?: string;
}

interface ApplyJson {
  version: string;
  selected: number;
  installed: number;
  allMs: number | null;
  enforcers: { enforcer: string; outcome: string; ms?: number }[];
}

interface FleetStatusJson {
  enforcers: EnforcerStatus[];
}

interface ThreeAgents {
  rounds: AgentRoundResult[];
  netFloor: number[];
  netFloorProblem?: string;
}

async function threeAgents(tmp: string): Promise<ThreeAgents> {
  const fleet = new FleetRig(3);
  cleanups.push(() => fleet.cleanup());
  const agents: AgentProcess[] = [];
  cleanups.push(async () => {
    for (const a of agents) await a.terminate();
  });
  await fleet.create();
  const natsPid = natsServerPid((fleet.nats as NatsServer).storeDir);
  const url = fleet.url(POLICY_BUCKET);
  const cli = (args: string[], timeoutMs = 90_000) => run('nsenter', [`--net=/run/netns/${fleet.mgmtNs}`, process.execPath, mainJs, ...args], timeoutMs);
  const labels = (i: number) => ['--label', `region=${i < 2 ? 'eu' : 'us'}`, '--label', 'cloud=lab'];
  const start = (i: number, pub?: string) =>
    fleet.agents[i]!.startAgent(
      ['--policy', url, ...labels(i), ...(pub ? ['--policy-pubkey', pub] : []), '--audit', '-', '--status-ttl', AGENT_STATUS_TTL, '--summary-interval', '0'],
      { folder: false, enforcerId: `edge-${i}` },
    );
  /** Poll `doorstep fleet status` until `ok` holds for the reports (bounded). */
  const waitStatus = async (ok: (s: EnforcerStatus[]) => boolean, what: string, ms = 30_000): Promise<void> => {
    const until = Date.now() + ms;
    for (;;) {
      const r = await cli(['fleet', 'status', '--nats', url, '-o', 'json'], 20_000);
      const s = r.code === 0 ? lastJson<FleetStatusJson>(r.stdout) : undefined;
      if (s && ok(s.enforcers)) return;
      if (Date.now() > until) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
      await sleep(200);
    }
  };

  console.log(`1. three agents (FleetRig: nats-server at ${url}, pid ${natsPid ?? '?'})`);
  for (let i = 0; i < 3; i++) agents.push(start(i));
  for (const a of agents) await a.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach', 30_000);
  await waitStatus((s) => s.length === 3, 'all three agents in the status bucket');
  console.log('   all three agents attached and reported (default deny)');

  const rounds: AgentRoundResult[] = [];
  const round = async (n: number, signed: boolean, key?: string): Promise<void> => {
    const file = join(tmp, `web-${n}.yaml`);
    writeFileSync(file, policy(7000 + 2 * n));
    const from = agents.map((a) => a.records.length);
    const cpu0 = cpuMs(natsPid);
    const r = await cli(['apply', '--nats', url, '--name', 'web', ...(signed && key ? ['--sign-key', key] : []), '--wait', '--timeout', `${ROUND_TIMEOUT_MS / 1000}s`, '-o', 'json', file], ROUND_TIMEOUT_MS + 15_000);
    const serverCpuMs = cpuMs(natsPid) - cpu0;
    const out = lastJson<ApplyJson>(r.stdout);
    const installs = await Promise.all(
      agents.map((a, i) =>
        out
          ? a
              .waitFor((x) => x.type === 'policy' && x.status === 'installed' && x.policyVersion === out.version, 'the install record', 5_000, from[i])
              .then((x) => x.installMs as number)
              .catch(() => null)
          : Promise.resolve(null),
      ),
    );
    const res: AgentRoundResult = {
      round: n,
      signed,
      complete: r.code === 0 && out !== undefined && out.allMs !== null && out.selected === 3,
      allMs: out?.allMs ?? null,
      selected: out?.selected ?? 0,
      installed: out?.installed ?? 0,
      enforcers: [0, 1, 2].map((i) => ({ enforcer: `edge-${i}`, ms: out?.enforcers.find((e) => e.enforcer === `edge-${i}`)?.ms ?? null, installMs: installs[i] ?? null })),
      serverCpuMs,
      ...(r.code !== 0 && { problem: `apply exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' ')}` }),
    };
    rounds.push(res);
    const each = res.enforcers.map((e) => `${e.enforcer} ${fmt(e.ms ?? NaN)} ms (install ${fmt(e.installMs ?? NaN, 1)} ms)`).join(', ');
    console.log(
      `   round ${String(n).padStart(2)} ${signed ? 'signed  ' : 'unsigned'}: ${res.complete ? `all ${res.installed} enforcing after ${fmt(res.allMs ?? NaN)} ms` : `INCOMPLETE (${res.installed}/${res.selected} installed)`}; ${each}; nats-server CPU ${fmt(serverCpuMs)} ms` +
        (res.problem ? `\n     ${res.problem}` : ''),
    );
    await sleep(300);
  };

  for (let n = 1; n <= ROUNDS; n++) await round(n, false);

  if (SIGNED_ROUNDS > 0) {
    const prefix = join(tmp, 'ops');
    const k = await cli(['keygen', prefix], 30_000);
    if (k.code !== 0) throw new Error(`doorstep keygen exited ${k.code}: ${k.stderr}`);
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) {
      await agents[i]!.terminate();
      agents[i] = start(i, `${prefix}.pub`);
    }
    // back with the state dir's policy, then the (unsigned) set in the bucket is refused
    for (const a of agents) await a.waitFor((r) => r.type === 'policy' && r.status === 'rejected', 'the refusal of the unsigned set', 30_000);
    await waitStatus((s) => s.length === 3 && s.every((e) => e.health === 'rejecting'), 'three restarted agents reporting', 30_000);
    console.log(`   agents restarted with --policy-pubkey in ${fmt((performance.now() - t0) / 1000, 1)} s (they refuse the unsigned set in the bucket, keep their last policy)`);
    for (let n = ROUNDS + 1; n <= ROUNDS + SIGNED_ROUNDS; n++) await round(n, true, `${prefix}.key`);
  }

  // the floor on this network: a process in edge-0's namespace, both connections over the bridge
  const f = await run(
    'nsenter',
    [`--net=/run/netns/${fleet.agents[0]!.topo.server.ns}`, process.execPath, SCRIPT, '--floor', (fleet.nats as NatsServer).url, String(FLOOR_SAMPLES)],
    60_000,
  );
  const netFloor = lastJson<{ samples: number[] }>(f.stdout)?.samples ?? [];

  // a clean stop: agents leave, namespaces go (the cleanup stack would do it too)
  for (const a of agents) await a.terminate();
  await fleet.cleanup();
  return { rounds, netFloor, ...(netFloor.length === 0 && { netFloorProblem: `floor on the fleet network failed (${f.code}): ${f.stderr.trim()}` }) };
}

// ---- 2. simulated watchers ----

interface WatcherRound {
  round: number;
  complete: boolean;
  reported: number;
  firstMs: number;
  p50Ms: number;
  p99Ms: number;
  lastMs: number;
  ackMs: number;
  serverCpuMs: number;
  workersCpuMs: number;
  benchCpuMs: number;
  candidates: number;
  compileMs: number;
}

interface Watchers {
  loopFloor: number[];
  startSeconds: number;
  idleServerCpuMsPerS: number;
  rounds: WatcherRound[];
  workerErrors: number;
}

interface WorkerStatsReply {
  stats: { candidates: number; rejected: number; compileMs: number; errors: number };
}

async function watchers(): Promise<Watchers> {
  const server = await NatsServer.start();
  cleanups.push(() => server.cleanup());
  const serverPid = natsServerPid(server.storeDir);
  console.log(`\n2. ${fmt(WATCHERS)} simulated watchers on one nats-server (${server.url}, pid ${serverPid ?? '?'}), in ${WORKERS} worker processes`);

  // 3. the floor, on the quiet server, before anything else runs there
  const loopFloor = await floor(server.url, FLOOR_SAMPLES);
  console.log(`   floor (put → watcher, loopback, idle server): ${summary(loopFloor, 2)}`);

  const workers: Worker[] = [];
  cleanups.push(async () => {
    await Promise.all(workers.map((w) => w.stop()));
  });
  const t0 = performance.now();
  for (let w = 0, first = 0; w < WORKERS; w++) {
    const count = Math.floor(WATCHERS / WORKERS) + (w < WATCHERS % WORKERS ? 1 : 0);
    workers.push(new Worker(spawn(process.execPath, [WORKER, server.url, POLICY_BUCKET, DEFAULT_STATUS_BUCKET, String(first), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] })));
    first += count;
  }
  for (const w of workers) await w.reply<{ started: number }>(180_000);

  const nc = await connectNats(parseNatsUrl(`${server.url}/${POLICY_BUCKET}`), {}, { name: 'doorstep-bench' });
  cleanups.push(() => nc.close());
  const policyKv = await createPolicyBucket(nc, POLICY_BUCKET);
  const statusKv = await openStatusBucket(nc, DEFAULT_STATUS_BUCKET, SIM_STATUS_TTL_MS);

  const seen = new Set<string>();
  let current: { version: string; t0: number; at: Map<string, number>; done: () => void } | undefined;
  let allSeen: (() => void) | undefined;
  const watcher = await watchStatuses(statusKv, (s) => {
    const t = nowMs();
    if (!seen.has(s.enforcer)) {
      seen.add(s.enforcer);
      if (seen.size >= WATCHERS) allSeen?.();
    }
    const c = current;
    if (c && s.health === 'enforcing' && s.policy?.version === c.version && !c.at.has(s.enforcer)) {
      c.at.set(s.enforcer, t - c.t0);
      if (c.at.size >= WATCHERS) c.done();
    }
  });
  cleanups.push(() => watcher.stop());
  if (seen.size < WATCHERS) {
    await Promise.race([new Promise<void>((r) => (allSeen = r)), sleep(120_000)]);
  }
  if (seen.size < WATCHERS) throw new Error(`only ${seen.size} of ${WATCHERS} simulated enforcers reported within 120 s`);
  const startSeconds = (performance.now() - t0) / 1000;
  console.log(`   all ${fmt(WATCHERS)} reported (default deny) ${fmt(startSeconds, 1)} s after the workers started`);

  const workerPids = workers.map((w) => w.proc.pid);
  const workersCpu = (): number => workerPids.reduce<number>((sum, p) => sum + cpuMs(p), 0);
  const workerStats = async () => {
    const replies = await Promise.all(
      workers.map((w) => {
        w.send('stats');
        return w.reply<WorkerStatsReply>(30_000);
      }),
    );
    return replies.reduce((a, r) => ({ candidates: a.candidates + r.stats.candidates, compileMs: a.compileMs + r.stats.compileMs, errors: a.errors + r.stats.errors }), { candidates: 0, compileMs: 0, errors: 0 });
  };

  const oneRound = async (n: number): Promise<WatcherRound> => {
    const envelope = buildEnvelope('web', {}, [{ file: `web-${n}.yaml`, text: policy(8000 + 2 * n) }]);
    const expected = new ExpectedVersions(POLICY_BUCKET, [{ key: `sets.${envelope.name}`, revision: 0, envelope }]).for({ cloud: 'sim' });
    if (!('version' in expected)) throw new Error(`the benchmark's policy does not compile: ${JSON.stringify(expected)}`);
    const before = await workerStats();
    const at = new Map<string, number>();
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => (done = r));
    const server0 = cpuMs(serverPid);
    const workers0 = workersCpu();
    const bench0 = process.cpuUsage();
    const start = nowMs();
    current = { version: expected.version, t0: start, at, done };
    await publishEnvelope(policyKv, envelope);
    const ackMs = nowMs() - start;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([finished, new Promise((r) => (timer = setTimeout(r, ROUND_TIMEOUT_MS)))]);
    clearTimeout(timer);
    const serverCpuMs = cpuMs(serverPid) - server0;
    const workersCpuMs = workersCpu() - workers0;
    const bench = process.cpuUsage(bench0);
    current = undefined;
    await sleep(500); // late writes settle before the next round
    const after = await workerStats();
    const times = [...at.values()];
    return {
      round: n,
      complete: at.size >= WATCHERS,
      reported: at.size,
      firstMs: Math.min(...times),
      p50Ms: pct(times, 0.5),
      p99Ms: pct(times, 0.99),
      lastMs: Math.max(...times),
      ackMs,
      serverCpuMs,
      workersCpuMs,
      benchCpuMs: (bench.user + bench.system) / 1000,
      candidates: after.candidates - before.candidates,
      compileMs: after.compileMs - before.compileMs,
    };
  };

  const idle0 = cpuMs(serverPid);
  await sleep(IDLE_SECONDS * 1000);
  const idleServerCpuMsPerS = (cpuMs(serverPid) - idle0) / IDLE_SECONDS;
  console.log(`   nats-server at rest with ${fmt(WATCHERS)} watchers: ${fmt(idleServerCpuMsPerS, 1)} ms CPU/s (heartbeats, periodic reports every ${SIM_STATUS_TTL_MS / 3000} s)`);

  const warm = await oneRound(0);
  console.log(`   warm-up: ${warm.complete ? `all enforcing after ${fmt(warm.lastMs)} ms` : `INCOMPLETE (${warm.reported})`}`);
  const rounds: WatcherRound[] = [];
  for (let n = 1; n <= ROUNDS; n++) {
    const r = await oneRound(n);
    rounds.push(r);
    console.log(
      `   round ${String(n).padStart(2)}: ${r.complete ? `all ${fmt(WATCHERS)}` : `INCOMPLETE ${fmt(r.reported)}/${fmt(WATCHERS)}`} — first ${fmt(r.firstMs)} ms, p50 ${fmt(r.p50Ms)}, p99 ${fmt(r.p99Ms)}, last ${fmt(r.lastMs)} ms (put ack ${fmt(r.ackMs, 1)} ms); ` +
        `CPU: nats-server ${fmt(r.serverCpuMs)} ms, workers ${fmt(r.workersCpuMs)} ms, bench ${fmt(r.benchCpuMs)} ms; ${fmt(r.candidates)} candidates compiled in ${fmt(r.compileMs / Math.max(1, r.candidates), 2)} ms each`,
    );
  }
  const errors = (await workerStats()).errors;
  return { loopFloor, startSeconds, idleServerCpuMsPerS, rounds, workerErrors: errors };
}

// ---- the report ----

interface Row {
  metric: string;
  figure: string;
  ratio: string;
}

function printTable(rows: Row[]): void {
  const header: Row = { metric: 'metric', figure: 'figure', ratio: '× floor' };
  const all = [header, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const line = (r: Row) => `${r.metric.padEnd(w('metric'))}  ${r.figure.padStart(w('figure'))}  ${r.ratio}`;
  console.log(line(header));
  console.log('-'.repeat(line(header).length));
  for (const r of rows) console.log(line(r));
}

function natsVersion(): string {
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return (r.stdout || r.stderr || '?').trim().replace(/^nats-server: /, '');
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'doorstep-bench-fleet-'));
  cleanups.unshift(() => rmSync(tmp, { recursive: true, force: true }));
  const onSignal = () => void cleanupAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const machine = `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? '?'}), kernel ${release()}, node ${process.version}, nats-server ${natsVersion()}`;
  const settings =
    `NatsSource: a candidate at once when nothing is pending (up to ${DEBOUNCE_MS} ms while entries are pending), status poke ${POKE_MS} ms (StatusReporter), agents --status-ttl ${AGENT_STATUS_TTL}, simulated status TTL ${SIM_STATUS_TTL_MS / 1000} s; ` +
    `${ROUNDS} rounds (BENCH_ROUNDS), ${SIGNED_ROUNDS} signed (BENCH_SIGNED_ROUNDS), ${fmt(WATCHERS)} watchers (BENCH_WATCHERS) in ${WORKERS} workers (BENCH_WORKERS), ${FAULT_ROUNDS} fault rounds each (BENCH_FAULT_ROUNDS), parts ${[...PARTS].join(',')} (BENCH_PARTS), round limit ${ROUND_TIMEOUT_MS / 1000} s`;
  console.log('doorstep fleet benchmark');
  console.log(`machine:  ${machine}`);
  console.log(`settings: ${settings}\n`);

  let part1: ThreeAgents | undefined;
  let part2: Watchers | undefined;
  let part4: FaultRound[] | undefined;
  try {
    if (PARTS.has('agents')) part1 = await threeAgents(tmp);
    if (PARTS.has('watchers')) part2 = await watchers();
    if (PARTS.has('faults') && FAULT_ROUNDS > 0) part4 = await clusterFaults({ tmp, rounds: FAULT_ROUNDS, cleanups, run, log: (line) => console.log(line) });
  } finally {
    await cleanupAll();
  }

  // ---- the table ----
  const floorMs = part2 ? median(part2.loopFloor) : NaN;
  const x = (ms: number) => (Number.isFinite(ms) && floorMs > 0 ? `${fmt(ms / floorMs, ms / floorMs < 10 ? 1 : 0)}×` : '');
  const rows: Row[] = [];
  if (part2) rows.push({ metric: 'floor: KV put → 1 watcher, loopback (median of 50)', figure: `${fmt(floorMs, 2)} ms`, ratio: '1×' });
  if (part1 && part1.netFloor.length > 0) rows.push({ metric: '  same over the fleet management bridge (netns)', figure: `${fmt(median(part1.netFloor), 2)} ms`, ratio: x(median(part1.netFloor)) });

  const r1 = part1?.rounds ?? [];
  for (const signed of [false, true]) {
    const rs = r1.filter((r) => r.signed === signed);
    if (rs.length === 0) continue;
    const ok = rs.filter((r) => r.complete).map((r) => r.allMs as number);
    const installs = rs.flatMap((r) => r.enforcers.map((e) => e.installMs)).filter((v): v is number => v !== null);
    const tag = signed ? 'signed' : 'unsigned';
    rows.push({ metric: `3 agents, ${tag}: publish → all enforcing (allMs), median`, figure: `${fmt(median(ok))} ms`, ratio: x(median(ok)) });
    rows.push({ metric: '  p90 / max', figure: `${fmt(pct(ok, 0.9))} / ${fmt(Math.max(...ok))} ms`, ratio: x(Math.max(...ok)) });
    rows.push({ metric: '  agent install (compile + image + install), median / max', figure: `${fmt(median(installs), 1)} / ${fmt(Math.max(...installs), 1)} ms`, ratio: '' });
    rows.push({ metric: '  rounds complete', figure: `${ok.length} / ${rs.length}`, ratio: '' });
  }

  if (part2) watcherRows(rows, part2, x);
  if (part4) faultRows(rows, part4);

  console.log('');
  console.log(`machine:  ${machine}`);
  console.log(`settings: ${settings}`);
  if (part1?.netFloorProblem) console.log(`note: ${part1.netFloorProblem}`);
  if (part2) {
    console.log(
      `note: ${availableParallelism()} cores — in part 2 nats-server, the ${WORKERS} simulation processes (${fmt(WATCHERS)} connections, NatsSource + compileIr + StatusReporter each) and this process (the status watch) all compete for them; ` +
        'the latencies there include waiting for a CPU, not only the fan-out.',
    );
  }
  console.log(`note: parts 1 and 2 time from just before the publish (as allMs in \`doorstep apply --wait\`) to the status report carrying the new version; it includes the ${POKE_MS} ms status poke.`);
  if (part4) console.log('note: part 4 times enforcement from JetStream answering (a probe of the policy bucket; the publish follows at once) to each agent\'s own install record, and convergence to the first `fleet status` (polled) saying converged.');
  console.log('');
  printTable(rows);
}

/** min / median / max of the figures, or — when there are none. */
const spread = (xs: readonly number[]) => (xs.length ? `${fmt(Math.min(...xs))} / ${fmt(median(xs))} / ${fmt(Math.max(...xs))} ms` : '—');

function faultRows(rows: Row[], rounds: readonly FaultRound[]): void {
  for (const [fault, what, from] of [
    ['kill', 'kill -9 of the watch consumers\' server', 'the kill'],
    ['outage', 'every server down, then all back', 'the servers\' start'],
  ] as const) {
    const rs = rounds.filter((r) => r.fault === fault);
    if (rs.length === 0) continue;
    const ok = rs.filter((r) => r.complete);
    rows.push({ metric: `${what}: ${from} → JetStream answers (probed), min / median / max`, figure: spread(ok.map((r) => r.answerMs as number)), ratio: '' });
    const slowest = (pick: (r: FaultRound, i: number) => boolean) => ok.flatMap((r) => { const ms = (r.enforceMs as number[]).filter((_, i) => pick(r, i)); return ms.length > 0 ? [Math.max(...ms)] : []; });
    rows.push({ metric: '  answer → all 3 agents enforcing (slowest agent)', figure: spread(slowest(() => true)), ratio: '' });
    if (ok.some((r) => r.restarted.length > 0)) {
      rows.push({ metric: '    the agents that stayed up (slowest)', figure: spread(slowest((r, i) => !r.restarted.includes(i))), ratio: '' });
      rows.push({ metric: '    the agent restarted during the outage', figure: spread(slowest((r, i) => r.restarted.includes(i))), ratio: '' });
    }
    rows.push({ metric: '  answer → `fleet status` converged', figure: spread(ok.map((r) => r.convergedMs as number)), ratio: '' });
    rows.push({ metric: '  rounds complete', figure: `${ok.length} / ${rs.length}`, ratio: '' });
  }
}

function watcherRows(rows: Row[], part2: Watchers, x: (ms: number) => string): void {
  const r2 = part2.rounds.filter((r) => r.complete);
  const n = WATCHERS;
  const col = (f: (r: WatcherRound) => number) => r2.map(f);
  rows.push({ metric: `${fmt(n)} watchers: first enforcer, median over rounds`, figure: `${fmt(median(col((r) => r.firstMs)))} ms`, ratio: x(median(col((r) => r.firstMs))) });
  rows.push({ metric: '  p50 enforcer', figure: `${fmt(median(col((r) => r.p50Ms)))} ms`, ratio: x(median(col((r) => r.p50Ms))) });
  rows.push({ metric: '  p99 enforcer', figure: `${fmt(median(col((r) => r.p99Ms)))} ms`, ratio: x(median(col((r) => r.p99Ms))) });
  rows.push({ metric: '  last enforcer (median / max over rounds)', figure: `${fmt(median(col((r) => r.lastMs)))} / ${fmt(Math.max(...col((r) => r.lastMs)))} ms`, ratio: x(median(col((r) => r.lastMs))) });
  rows.push({ metric: '  wall per enforcer (last / N)', figure: `${fmt((median(col((r) => r.lastMs)) * 1000) / n)} µs`, ratio: '' });
  const serverPer = median(col((r) => r.serverCpuMs));
  const idlePerRound = part2.idleServerCpuMsPerS * (median(col((r) => r.lastMs)) / 1000);
  rows.push({ metric: '  nats-server CPU per enforcer per update', figure: `${fmt((serverPer * 1000) / n)} µs`, ratio: '' });
  rows.push({ metric: '    of which the server\'s rest rate over the round', figure: `${fmt((idlePerRound * 1000) / n)} µs`, ratio: '' });
  rows.push({ metric: '  simulation CPU per enforcer per update (workers)', figure: `${fmt((median(col((r) => r.workersCpuMs)) * 1000) / n)} µs`, ratio: '' });
  rows.push({ metric: '  compileIr per candidate (in the workers)', figure: `${fmt(median(col((r) => r.compileMs / Math.max(1, r.candidates))), 2)} ms`, ratio: '' });
  rows.push({ metric: '  rounds complete', figure: `${r2.length} / ${part2.rounds.length}`, ratio: '' });
  if (part2.workerErrors > 0) rows.push({ metric: '  errors reported by the simulated enforcers', figure: fmt(part2.workerErrors), ratio: '' });
}

const [mode, ...args] = process.argv.slice(2);
if (process.argv[1] !== SCRIPT) {
  // imported: run nothing
} else if (mode === '--floor') {
  console.log(JSON.stringify({ samples: await floor(args[0] as string, Number(args[1] ?? FLOOR_SAMPLES)) }));
  process.exit(0);
} else {
  try {
    await main();
  } catch (err) {
    console.error(`bench:fleet failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
}
