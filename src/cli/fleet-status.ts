// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet status`: every enforcer that reported within the status TTL, the version it
// runs and the one it should run (the envelopes selecting its labels, compiled here), and
// whether the fleet has converged on the latest policy.
import { DEFAULT_STATUS_BUCKET, type EnforcerView, ExpectedVersions, type FleetView, fleetView } from '../fleet/enforcer-status.js';
import { openBucket, readEnvelopes, readStatuses } from '../fleet/fleet-client.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';
import { type OutputFormat, table } from './table.js';

export const AGENT_HINT = 'start agents with --policy nats://HOST:PORT/BUCKET (they create it), or publish with `doorstep apply --nats`';

export function expectedText(v: EnforcerView): string {
  const e = v.expected;
  return 'version' in e ? e.version : 'none' in e ? '(no set selects it)' : `(invalid: ${e.invalid})`;
}

/** The health, and when its policy watch is stale: since when, and its revision against the bucket's. */
export function healthText(s: EnforcerView['status'], now: number): string {
  const sync = s.sync;
  if (sync?.state !== 'stale') return s.health;
  const since = sync.staleSince ? `${Math.max(0, Math.round((now - Date.parse(sync.staleSince)) / 1000))}s` : '?';
  return `${s.health}, stale for ${since} (revision ${sync.revision} of ${sync.bucketRevision ?? '?'})`;
}

export async function readFleet(nc: Parameters<typeof openBucket>[0], policyBucket: string, statusBucket: string): Promise<FleetView> {
  const policy = await openBucket(nc, policyBucket, AGENT_HINT);
  const status = await openBucket(nc, statusBucket, `no agent has reported yet: ${AGENT_HINT}`);
  const [entries, statuses] = await Promise.all([readEnvelopes(policy), readStatuses(status)]);
  return fleetView(statuses, new ExpectedVersions(policyBucket, entries));
}

export async function fleetStatus(o: NatsFlags & { statusBucket?: string; output: OutputFormat }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    const view = await readFleet(nc, target.name, o.statusBucket ?? DEFAULT_STATUS_BUCKET).catch((err: unknown) => {
      throw natsFailure(err, `reading the fleet at ${describeTarget(target)}`);
    });
    if (o.output === 'json') {
      console.log(JSON.stringify({ converged: view.converged, inSync: view.inSync, enforcers: view.enforcers.map((v) => ({ ...v.status, expected: v.expected, inSync: v.inSync })) }));
      return ExitCode.OK;
    }
    const now = Date.now();
    const rows = view.enforcers.map((v) => {
      const s = v.status;
      return [
        s.enforcer,
        Object.entries(s.labels).map(([k, val]) => `${k}=${val}`).join(',') || '-',
        s.policy?.version ?? '-',
        s.policy ? String(s.policy.generation) : '-',
        s.policy?.revision !== undefined ? String(s.policy.revision) : '-',
        healthText(s, now),
        v.inSync ? 'yes' : `no, should run ${expectedText(v)}`,
        `${Math.max(0, Math.round((now - Date.parse(s.updatedAt)) / 1000))}s ago`,
      ];
    });
    if (rows.length) console.log(table(['enforcer', 'labels', 'version', 'generation', 'revision', 'health', 'in sync', 'reported'], rows));
    for (const v of view.enforcers) {
      const wg = v.status.wireguard;
      if (wg) console.log(`${v.status.enforcer} WireGuard key ${wg.publicKey}, endpoint ${[...new Set(wg.tunnels.map((t) => t.endpoint ?? '(learnt from its handshake)'))].join(', ')}`);
    }
    for (const v of view.enforcers) if (v.status.rejected) console.log(`${v.status.enforcer} rejected revision ${v.status.rejected.revision ?? '?'}: ${v.status.rejected.problems.join('; ')}`);
    console.log(
      view.enforcers.length === 0
        ? 'no enforcer has reported within the status TTL'
        : view.converged
          ? `converged: all ${view.enforcers.length} enforcers run the latest policy for their labels`
          : `not converged: ${view.enforcers.length - view.inSync} of ${view.enforcers.length} enforcers do not run the latest policy for their labels`,
    );
    return ExitCode.OK;
  } finally {
    await nc.close();
  }
}
