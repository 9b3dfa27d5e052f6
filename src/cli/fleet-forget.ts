// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet forget --name ID`: take an enforcer off the fleet's list of expected enforcers
// (src/fleet/membership.ts), once it is gone for good; until then `fleet status` counts it as
// missing and `apply --wait` waits for it. One that still reports is refused: stop its agent
// first (a running agent would be counted as unregistered, and registers again at its next start).
import { DoorstepError } from '../errors.js';
import { DEFAULT_STATUS_BUCKET, statusKey } from '../fleet/enforcer-status.js';
import { bucketExists, openBucket } from '../fleet/fleet-client.js';
import { forget, memberKey, membersBucketOf, openMembersBucket } from '../fleet/membership.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export async function fleetForget(o: NatsFlags & { name: string; statusBucket?: string }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const statusBucket = o.statusBucket ?? DEFAULT_STATUS_BUCKET;
  const membersBucket = membersBucketOf(statusBucket);
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    const notMember = new DoorstepError('DS_E_USAGE', `${o.name} is not a registered enforcer in ${membersBucket}`, { hint: 'see the enforcers with `doorstep fleet status`' });
    if (!(await bucketExists(nc, membersBucket))) throw notMember;
    const members = await openMembersBucket(nc, membersBucket);
    const entry = await members.get(memberKey(o.name));
    if (!entry || entry.operation !== 'PUT') throw notMember;
    if (await bucketExists(nc, statusBucket)) {
      const report = await (await openBucket(nc, statusBucket, '')).get(statusKey(o.name));
      if (report?.operation === 'PUT') {
        throw new DoorstepError('DS_E_USAGE', `${o.name} still reports to ${statusBucket} (last at ${new Date(report.created).toISOString()}): nothing was forgotten`, {
          hint: 'stop its agent first (a clean stop removes its report at once; a dead one leaves within the status TTL), then forget it',
        });
      }
    }
    await forget(members, o.name);
    console.log(`forgot ${o.name}: removed ${memberKey(o.name)} from ${membersBucket} at ${describeTarget({ ...target, name: membersBucket })}`);
    return ExitCode.OK;
  } catch (err) {
    throw natsFailure(err, `forgetting ${o.name} at ${describeTarget(target)}`);
  } finally {
    await nc.close();
  }
}
