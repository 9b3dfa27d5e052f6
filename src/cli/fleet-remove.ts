// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet remove --name NAME [--sign-key FILE]`: take a set out of the policy bucket; the
// enforcers it selected re-assemble without it. With --sign-key it publishes a signed tombstone,
// the only removal that enforcers requiring signed sets (--policy-pubkey) accept; without, it
// deletes the key, which they refuse (the set stays, they report `rejecting`).
import { createPublicKey } from 'node:crypto';
import { DoorstepError } from '../errors.js';
import { deleteEnvelope, openBucket, publishEnvelope, setState } from '../fleet/fleet-client.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { keyId, readPrivateKey, signatureProblem, signEnvelope } from '../fleet/signing.js';
import { buildTombstone } from '../watcher/policy-envelope.js';
import { AGENT_HINT } from './fleet-status.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export async function fleetRemove(o: NatsFlags & { name: string; signKey?: string }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const key = o.signKey === undefined ? undefined : readPrivateKey(o.signKey); // a bad key file fails before NATS is asked
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    const policy = await openBucket(nc, target.name, AGENT_HINT);
    const current = await setState(policy, o.name);
    // a deleted key, or one holding a tombstone this key did not sign, may still be in force on
    // enforcers that require signed sets: a tombstone signed by this key finishes it
    const done = current.state === 'tombstone' && (!key || signatureProblem(current.envelope, new Map([[keyId(createPublicKey(key)), createPublicKey(key)]])) === undefined);
    if (current.state === 'none' || done || (current.state === 'deleted' && !key)) {
      throw new DoorstepError('DS_E_USAGE', `there is no set ${o.name} in ${describeTarget(target)}`, { hint: "see the sets with `doorstep fleet status -o json` or the bucket's keys sets.*" });
    }
    if (!key) {
      await deleteEnvelope(policy, o.name);
      console.log(`removed sets.${o.name} from ${describeTarget(target)} (deleted; enforcers that require signed sets refuse this: use --sign-key)`);
      return ExitCode.OK;
    }
    // the tombstone selects whom the set selected (everyone when that is unknown): those check its signature
    const tombstone = signEnvelope(buildTombstone(o.name, current.state === 'set' ? current.envelope.selector : {}), key);
    const revision = await publishEnvelope(policy, tombstone);
    console.log(`removed sets.${o.name} from ${describeTarget(target)}: signed tombstone (key ${tombstone.signature?.key}) at revision ${revision}`);
    return ExitCode.OK;
  } finally {
    await nc.close();
  }
}
