// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet remove --name NAME [--sign-key FILE]`: take a set out of the policy bucket; the
// enforcers it selected re-assemble without it. With --sign-key it publishes a signed tombstone,
// the only removal that enforcers requiring signed sets (--policy-pubkey) accept; without, it
// deletes the key, which they refuse (the set stays, they report `rejecting`).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { DoorstepError } from '../errors.js';
import { deleteEnvelope, openBucket, publishNext, setState } from '../fleet/fleet-client.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, describeTarget, type NatsTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { keyId, readPrivateKey, signatureProblem, signEnvelope } from '../fleet/signing.js';
import { buildTombstone } from '../fleet/policy-envelope.js';
import { AGENT_HINT } from './fleet-status.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export async function fleetRemove(o: NatsFlags & { name: string; signKey?: string }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const key = o.signKey === undefined ? undefined : readPrivateKey(o.signKey); // a bad key file fails before NATS is asked
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    return await removeSet(nc, target, o.name, key);
  } catch (err) {
    throw natsFailure(err, `removing sets.${o.name} from ${describeTarget(target)}`);
  } finally {
    await nc.close();
  }
}

async function removeSet(nc: NatsConnection, target: NatsTarget, name: string, key: KeyObject | undefined): Promise<number> {
  const policy = await openBucket(nc, target.name, AGENT_HINT);
  const current = await setState(policy, name);
  // a deleted key, or one holding a tombstone this key did not sign, may still be in force on
  // enforcers that require signed sets: a tombstone signed by this key finishes it
  const signer = key && createPublicKey(key);
  const done = current.state === 'tombstone' && (!signer || signatureProblem(current.envelope, new Map([[keyId(signer), signer]])) === undefined);
  if (current.state === 'none' || done || (current.state === 'deleted' && !key)) {
    throw new DoorstepError('DS_E_USAGE', `there is no set ${name} in ${describeTarget(target)}`, { hint: "see the sets with `doorstep fleet status -o json` or the bucket's keys sets.*" });
  }
  if (!key) {
    await deleteEnvelope(policy, name);
    console.log(`removed sets.${name} from ${describeTarget(target)} (deleted; enforcers that require signed sets refuse this: use --sign-key)`);
    return ExitCode.OK;
  }
  // the tombstone selects whom the set selected (everyone when that is unknown): those check its signature
  const selector = current.state === 'set' ? current.envelope.selector : {};
  const { envelope: tombstone, revision } = await publishNext(policy, name, (sequence) => signEnvelope({ ...buildTombstone(name, selector), sequence }, key));
  console.log(`removed sets.${name} from ${describeTarget(target)}: signed tombstone (key ${tombstone.signature?.key}) at revision ${revision}, sequence ${tombstone.sequence}`);
  return ExitCode.OK;
}
