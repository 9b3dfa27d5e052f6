// SPDX-License-Identifier: Apache-2.0
// A worker of `npm run bench:fleet` (bench/fleet.ts, part 2): simulated enforcers without a
// datapath. Each one is what an agent does on the fleet side, on a NATS connection of its own:
// the real NatsSource on the policy bucket with its own labels (100 ms debounce), compileIr on
// every candidate (validation + normalization + hashing, as the agent does before installing;
// no tables, no BPF), and the real StatusReporter writing a report whose policy.version is the
// compiled version into the status bucket (TTL 60 s). Talks to its parent in JSON lines:
// stdout `{started}` once every enforcer runs, `{stats}` on the stdin command `stats`; the end
// of stdin, `close`, SIGTERM or SIGINT remove every enforcer's entry, close and exit.
//
//   node dist/bench/fleet-watchers.js NATS_URL POLICY_BUCKET STATUS_BUCKET FIRST COUNT
import type { NatsConnection } from '@nats-io/transport-node';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EnforcerStatus } from '../src/fleet/enforcer-status.js';
import { connectNats, parseNatsUrl } from '../src/fleet/nats-connection.js';
import { StatusReporter } from '../src/fleet/status-reporter.js';
import { compileIr } from '../src/policy/compile.js';
import { NatsSource } from '../src/watcher/nats-source.js';

/** The status bucket's TTL the simulated enforcers create it with (a report every 20 s). */
export const SIM_STATUS_TTL_MS = 60_000;
/** Enforcers set up at a time (connect, open both buckets, start the watch). */
const SETUP_CONCURRENCY = 25;

export const simEnforcerId = (k: number): string => `sim-${String(k).padStart(4, '0')}`;

interface Sim {
  id: string;
  nc?: NatsConnection;
  source?: NatsSource;
  reporter?: StatusReporter;
}

export interface WorkerStats {
  candidates: number;
  rejected: number;
  compileMs: number;
  errors: number;
}

function send(msg: object): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

async function main(url: string, policyBucket: string, statusBucket: string, first: number, count: number): Promise<void> {
  const startedAt = new Date();
  const stats: WorkerStats = { candidates: 0, rejected: 0, compileMs: 0, errors: 0 };
  const onError = (err: Error) => {
    if (stats.errors++ < 5) process.stderr.write(`fleet-watchers: ${err.message}\n`);
  };
  const sims: Sim[] = Array.from({ length: count }, (_, i) => ({ id: simEnforcerId(first + i) }));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // a clean stop removes each entry (StatusReporter.close), as an agent's does
      await Promise.all(
        sims.map(async (s) => {
          await s.source?.close();
          await s.reporter?.close();
          await s.nc?.close().catch(() => undefined);
        }),
      );
      send({ closed: true });
    })());
  const stop = () => void close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  const setUp = async (s: Sim, index: number): Promise<void> => {
    const target = parseNatsUrl(`${url}/${policyBucket}`);
    const nc = await connectNats(target, {}, { name: `doorstep-sim-${s.id}`, background: true });
    s.nc = nc;
    if (closing) return;
    const labels = { cloud: 'sim', region: index % 2 === 0 ? 'eu' : 'us', enforcer: s.id };
    let generation = 0;
    let policy: EnforcerStatus['policy'] = null;
    let rejected: EnforcerStatus['rejected'] = null;
    const report = (): EnforcerStatus => ({
      format: 1,
      enforcer: s.id,
      labels,
      health: rejected ? 'rejecting' : policy ? 'enforcing' : 'default-deny',
      policy,
      rejected,
      counters: { passed: 0, dropped: 0, sessions: 0, eventsLost: 0, auditDropped: 0 },
      interfaces: [],
      agent: { pid: process.pid, startedAt: startedAt.toISOString() },
      updatedAt: new Date().toISOString(),
    });
    const reporter = new StatusReporter({ connection: async () => nc, bucket: statusBucket, ttlMs: SIM_STATUS_TTL_MS, enforcer: s.id, report, onError });
    s.reporter = reporter;
    const source = new NatsSource({ connection: async () => nc, bucket: policyBucket, labels, onError });
    s.source = source;
    reporter.start();
    await source.start((candidate) => {
      stats.candidates++;
      const t0 = performance.now();
      try {
        const { ir } = compileIr(candidate.sources);
        policy = {
          version: ir.version,
          generation: ++generation,
          ...(candidate.revision !== undefined && { revision: candidate.revision }),
          origin: candidate.origin,
          rules: ir.rules.length,
          installedAt: new Date().toISOString(),
        };
        rejected = null;
      } catch (err) {
        stats.rejected++;
        rejected = { ...(candidate.revision !== undefined && { revision: candidate.revision }), at: new Date().toISOString(), problems: [err instanceof Error ? err.message : String(err)] };
      }
      stats.compileMs += performance.now() - t0;
      reporter.poke();
    });
  };

  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(SETUP_CONCURRENCY, count) }, async () => {
      while (next < count && !closing) {
        const i = next++;
        await setUp(sims[i] as Sim, first + i);
      }
    }),
  );
  send({ started: count, ms: Math.round(performance.now() - t0) });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const cmd = line.trim();
    if (cmd === 'stats') send({ stats: { ...stats } });
    else if (cmd === 'close') break;
  }
  await close();
  process.exit(0);
}

const SCRIPT = fileURLToPath(import.meta.url);
if (process.argv[1] === SCRIPT) {
  // run as a worker (imported by bench/fleet.ts for its constants: run nothing)
  const [url, policyBucket, statusBucket, first, count] = process.argv.slice(2);
  if (!url || !policyBucket || !statusBucket || first === undefined || count === undefined) {
    process.stderr.write('usage: fleet-watchers NATS_URL POLICY_BUCKET STATUS_BUCKET FIRST COUNT\n');
    process.exit(2);
  }
  await main(url, policyBucket, statusBucket, Number(first), Number(count));
}
