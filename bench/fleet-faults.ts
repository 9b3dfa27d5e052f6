// SPDX-License-Identifier: Apache-2.0
// Part 4 of `npm run bench:fleet`: time to convergence after NATS faults, on a 3-node JetStream
// cluster (test/lib/fleet-rig.ts with natsServers: 3; buckets and audit stream with 3 replicas)
// with three real agents. BENCH_FAULT_ROUNDS rounds (default 3) of each fault:
//   kill:   kill -9 of the server holding most of the agents' watch consumers, then publish;
//   outage: kill -9 of every server, one agent restarted while they are down (another each
//           round; the other two stay up through it), then all three servers started again,
//           then publish.
// Per round: fault → JetStream answering (the policy bucket's stream info, probed; the publish
// follows at once, probed again while `apply` exits 6), from that answer → each agent's `policy`
// installed record (its own clock: the same host), and → the first `fleet status` saying
// converged. The killed servers come back between rounds. Every wait is bounded (60 s: the round
// is reported incomplete). BENCH_FAULTS (default kill,outage) runs only the faults named.
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { type AgentProcess, mainJs } from '../test/lib/agent-rig.js';
import { FleetRig } from '../test/lib/fleet-rig.js';
import { DEFAULT_STATUS_BUCKET } from '../src/fleet/enforcer-status.js';
import { packageRoot } from '../src/paths.js';

export const POLICY_BUCKET = 'doorstep-policy';
const STATUS_BUCKET = DEFAULT_STATUS_BUCKET;
const STREAM = 'DOORSTEP_AUDIT';
const STATUS_TTL_MS = 6000;
const LIMIT_MS = 60_000;
/** The issue's bound on enforcing after JetStream answers: an agent slower than this has its records printed. */
const SLOW_MS = 5000;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface FaultRound {
  fault: 'kill' | 'outage';
  round: number;
  complete: boolean;
  /** From the fault (kill) or from the servers' start (outage) to JetStream answering (probed) before the publish. */
  answerMs: number | null;
  /** From JetStream answering to each agent's install record. */
  enforceMs: (number | null)[];
  /** The agents (indices into enforceMs) restarted during the fault; the others stayed up. */
  restarted: number[];
  /** From JetStream answering to the first `fleet status` saying converged. */
  convergedMs: number | null;
  /** The server killed (kill rounds). */
  victim?: string;
  problem?: string;
}

export interface FaultBenchOptions {
  tmp: string;
  rounds: number;
  /** Cleanups to run at the end or on a signal (the namespaces, the agents). */
  cleanups: (() => unknown)[];
  /** A command to its end, without blocking the event loop. */
  run: (cmd: string, args: string[], timeoutMs: number) => Promise<Run>;
  log: (line: string) => void;
}

const policy = (port: number) =>
  `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: allow-web, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [${port}] }\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function clusterFaults(o: FaultBenchOptions): Promise<FaultRound[]> {
  const fleet = new FleetRig(3, { natsServers: 3 });
  o.cleanups.push(() => fleet.cleanup());
  const agents: AgentProcess[] = [];
  o.cleanups.push(async () => {
    for (const a of agents) await a.terminate();
  });
  const startAgent = (i: number) =>
    (agents[i] = fleet.agents[i]!.startAgent(
      ['--policy', fleet.url(POLICY_BUCKET), '--audit', '-', '--audit', fleet.url(STREAM), '--status-ttl', `${STATUS_TTL_MS / 1000}s`, '--summary-interval', '0'],
      { folder: false, enforcerId: `edge-${i}` },
    ));
  await fleet.create();
  const url = fleet.url(POLICY_BUCKET);
  const cli = (args: string[], timeoutMs = 30_000) => o.run('nsenter', [`--net=/run/netns/${fleet.mgmtNs}`, process.execPath, mainJs, ...args], timeoutMs);
  for (let end = Date.now() + LIMIT_MS; ; await sleep(500)) {
    try {
      fleet.js(['replicate', '3', String(STATUS_TTL_MS), POLICY_BUCKET, STATUS_BUCKET, `${STATUS_BUCKET}-members`, STREAM]);
      break;
    } catch (err) {
      if (Date.now() > end) throw err;
    }
  }
  for (let i = 0; i < 3; i++) startAgent(i);
  for (const a of agents) await a.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach', 30_000);

  let port = 7400;
  /** When JetStream answers (the policy bucket's stream info, probed by test/lib/js-tool.ts): its wall time. */
  const answers = async (): Promise<number> => {
    const r = await o.run('nsenter', [`--net=/run/netns/${fleet.mgmtNs}`, process.execPath, join(packageRoot, 'dist/test/lib/js-tool.js'), fleet.servers, 'answers', `KV_${POLICY_BUCKET}`, String(LIMIT_MS)], LIMIT_MS + 10_000);
    if (r.code !== 0) throw new Error(`JetStream did not answer within ${LIMIT_MS / 1000} s: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { at: number }).at;
  };
  /**
   * Publish a new version as soon as JetStream answers (probed), probing again while the publish
   * fails; the wall time of the probe's answer before the publish that worked, and the version.
   */
  const publish = async (): Promise<{ at: number; version: string }> => {
    const file = join(o.tmp, `fault-${++port}.yaml`);
    writeFileSync(file, policy(port));
    for (const end = Date.now() + LIMIT_MS; ; await sleep(100)) {
      const at = await answers();
      const r = await cli(['apply', '--nats', url, '--name', 'web', '-o', 'json', file]);
      if (r.code === 0) return { at, version: (JSON.parse(r.stdout.trim().split('\n').pop() as string) as { version: string }).version };
      if (r.code !== 6) throw new Error(`apply exited ${r.code} (only 0 or 6 are expected): ${r.stderr}`);
      if (Date.now() > end) throw new Error(`JetStream did not take a publish within ${LIMIT_MS / 1000} s: ${r.stderr}`);
    }
  };
  /** Each agent's install of `version` (its record's wall time minus `at`), null when not within the limit. */
  const installs = (version: string, at: number, from: number[]) =>
    Promise.all(
      agents.map((a, i) =>
        a
          .waitFor((r) => r.type === 'policy' && r.status === 'installed' && r.policyVersion === version, 'the install', LIMIT_MS, from[i])
          .then((r) => Date.parse(String(r.time)) - at)
          .catch(() => null),
      ),
    );
  /** From `at` to the first `fleet status` saying converged (null: not within the limit). */
  const converged = async (at: number): Promise<number | null> => {
    for (const end = Date.now() + LIMIT_MS; Date.now() < end; await sleep(100)) {
      const r = await cli(['fleet', 'status', '--nats', url, '-o', 'json']);
      if (r.code === 0 && (JSON.parse(r.stdout) as { converged: boolean; members: number }).converged) return Date.now() - at;
    }
    return null;
  };

  const first = await publish();
  await installs(first.version, first.at, [0, 0, 0]);
  if ((await converged(first.at)) === null) throw new Error('the fleet did not converge on the first set');
  o.log(`4. faults on a 3-node JetStream cluster (R3 buckets and stream; seeds ${url}); three agents converged`);

  const rounds: FaultRound[] = [];
  const report = (r: FaultRound) => {
    rounds.push(r);
    const ms = (v: number | null) => (v === null ? '—' : `${v} ms`);
    o.log(
      `   ${r.fault.padEnd(6)} round ${r.round}${r.victim ? ` (${r.victim})` : ''}: JetStream answered after ${ms(r.answerMs)}; enforced ${r.enforceMs.map((v, i) => `edge-${i} ${ms(v)}${r.restarted.includes(i) ? ' (restarted)' : ''}`).join(', ')} after that; fleet status converged after ${ms(r.convergedMs)}` +
        (r.problem ? `\n     ${r.problem}` : ''),
    );
  };
  const measure = async (fault: FaultRound['fault'], round: number, t0: number, restarted: number[], victim?: string): Promise<void> => {
    const from = agents.map((a) => a.records.length);
    try {
      const p = await publish();
      const enforceMs = await installs(p.version, p.at, from);
      const convergedMs = await converged(p.at);
      const complete = convergedMs !== null && enforceMs.every((v) => v !== null);
      // an agent slower than the issue's 5 s: what it said meanwhile
      for (const [i, ms] of enforceMs.entries()) {
        if (ms !== null && ms <= SLOW_MS) continue;
        const said = agents[i]!.records.slice(from[i]).filter((r) => r.type === 'agent' || (r.type === 'policy' && r.status !== 'installed'));
        o.log(`     edge-${i} (${ms === null ? 'never' : `${ms} ms`}; answered at ${new Date(p.at).toISOString()}): ${said.map((r) => `${String(r.time)} ${String(r.event ?? r.status)} ${String(r.message ?? '')}`).join('\n       ') || 'nothing'}`);
      }
      report({ fault, round, complete, answerMs: p.at - t0, enforceMs, restarted, convergedMs, ...(victim && { victim }) });
    } catch (err) {
      report({ fault, round, complete: false, answerMs: null, enforceMs: [], restarted, convergedMs: null, ...(victim && { victim }), problem: err instanceof Error ? err.message : String(err) });
    }
  };

  const faults = new Set((process.env.BENCH_FAULTS ?? 'kill,outage').split(','));
  for (let round = 1; round <= o.rounds && faults.has('kill'); round++) {
    const held = new Map<string, number>();
    for (const c of fleet.js<{ filter: string; leader?: string }[]>(['consumers', `KV_${POLICY_BUCKET}`])) {
      if (c.filter.endsWith('.sets.>') && c.leader) held.set(c.leader, (held.get(c.leader) ?? 0) + 1);
    }
    const victim = [...held.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'n0';
    const server = fleet.natsServers[Number(victim.slice(1))]!;
    const t0 = Date.now();
    await server.kill();
    await measure('kill', round, t0, [], victim);
    await server.start();
    await converged(Date.now()); // whole again before the next fault
  }
  for (let round = 1; round <= o.rounds && faults.has('outage'); round++) {
    for (const s of fleet.natsServers) await s.kill();
    await sleep(2000); // the agents notice: disconnected, stale
    // one agent restarted while every server is down: it adopts its engine and policy, and connects in the background
    const restarted = (round - 1) % agents.length;
    await agents[restarted]!.terminate();
    await startAgent(restarted).waitFor((r) => r.type === 'policy' && r.status === 'adopted', `edge-${restarted} adopts its engine`, LIMIT_MS);
    const t0 = Date.now();
    await Promise.all(fleet.natsServers.map((s) => s.start()));
    await measure('outage', round, t0, [restarted]);
  }
  for (const a of agents) await a.terminate();
  await fleet.cleanup();
  return rounds;
}
