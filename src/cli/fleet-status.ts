// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet status`: every enforcer that reported within the status TTL, the version it
// runs and the one it should run (the envelopes selecting its labels, compiled here), and
// whether the fleet has converged on the latest policy.
import { DEFAULT_STATUS_BUCKET, expectedText, ExpectedVersions, type FleetView, fleetView, healthText } from '../fleet/enforcer-status.js';
import { bucketExists, openBucket, readEnvelopes, readStatuses } from '../fleet/fleet-client.js';
import { membersBucketOf, readMembers } from '../fleet/membership.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';
import { type OutputFormat, table } from './table.js';

export const AGENT_HINT = 'start agents with --policy nats://HOST:PORT/BUCKET (they create it), or publish with `doorstep apply --nats`';

/** The registered enforcers: none when the membership bucket does not exist (no agent with membership has started). */
export async function readMembersOf(nc: Parameters<typeof openBucket>[0], statusBucket: string) {
  const bucket = membersBucketOf(statusBucket);
  return (await bucketExists(nc, bucket)) ? readMembers(await openBucket(nc, bucket, '')) : [];
}

export async function readFleet(nc: Parameters<typeof openBucket>[0], policyBucket: string, statusBucket: string): Promise<FleetView> {
  const policy = await openBucket(nc, policyBucket, AGENT_HINT);
  const status = await openBucket(nc, statusBucket, `no agent has reported yet: ${AGENT_HINT}`);
  const [entries, statuses, members] = await Promise.all([readEnvelopes(policy), readStatuses(status), readMembersOf(nc, statusBucket)]);
  return fleetView(statuses, new ExpectedVersions(policyBucket, entries), members);
}

/** The verdict line: converged, or how many are missing, stale, rejecting or behind. */
export function verdictText(view: FleetView): string {
  const n = view.enforcers.length;
  if (n === 0) return 'no enforcer is registered or has reported within the status TTL';
  if (view.converged) return `converged: all ${n} enforcers run the latest policy for their labels`;
  const counts = (['missing', 'stale', 'rejecting', 'behind'] as const).flatMap((state) => {
    const k = view.enforcers.filter((v) => v.state === state).length;
    return k ? [`${k} ${state}`] : [];
  });
  return `not converged: ${n - view.inSync} of ${n} enforcers do not run the latest policy for their labels (${counts.join(', ')})`;
}

export async function fleetStatus(o: NatsFlags & { statusBucket?: string; output: OutputFormat }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    const view = await readFleet(nc, target.name, o.statusBucket ?? DEFAULT_STATUS_BUCKET).catch((err: unknown) => {
      throw natsFailure(err, `reading the fleet at ${describeTarget(target)}`);
    });
    if (o.output === 'json') {
      const enforcers = view.enforcers.map((v) => ({
        ...(v.status ?? { enforcer: v.enforcer, labels: v.labels }),
        state: v.state,
        registeredAt: v.member?.registeredAt ?? null,
        expected: v.expected,
        inSync: v.inSync,
      }));
      console.log(JSON.stringify({ converged: view.converged, inSync: view.inSync, members: view.members, missing: view.missing, enforcers }));
      return ExitCode.OK;
    }
    const now = Date.now();
    const ago = (at: string) => `${Math.max(0, Math.round((now - Date.parse(at)) / 1000))}s ago`;
    const rows = view.enforcers.map((v) => {
      const s = v.status;
      const labels = Object.entries(v.labels).map(([k, val]) => `${k}=${val}`).join(',') || '-';
      if (!s) return [v.enforcer, labels, '-', '-', '-', 'MISSING: registered, no report within the status TTL', `no, should run ${expectedText(v)}`, '-'];
      return [
        v.enforcer,
        labels,
        s.policy?.version ?? '-',
        s.policy ? String(s.policy.generation) : '-',
        s.policy?.revision !== undefined ? String(s.policy.revision) : '-',
        healthText(s, now) + (v.member ? '' : ' (not registered)'),
        v.inSync ? 'yes' : `no, should run ${expectedText(v)}`,
        ago(s.updatedAt),
      ];
    });
    if (rows.length) console.log(table(['enforcer', 'labels', 'version', 'generation', 'revision', 'health', 'in sync', 'reported'], rows));
    for (const v of view.enforcers) {
      const wg = v.status?.wireguard;
      if (wg) console.log(`${v.enforcer} WireGuard key ${wg.publicKey}, endpoint ${[...new Set(wg.tunnels.map((t) => t.endpoint ?? '(learnt from its handshake)'))].join(', ')}`);
    }
    for (const v of view.enforcers) if (v.status?.rejected) console.log(`${v.enforcer} rejected revision ${v.status.rejected.revision ?? '?'}: ${v.status.rejected.problems.join('; ')}`);
    console.log(verdictText(view));
    return ExitCode.OK;
  } finally {
    await nc.close();
  }
}
