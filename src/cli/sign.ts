// SPDX-License-Identifier: Apache-2.0
// `doorstep keygen PREFIX` and `doorstep sign --key FILE POLICY…`: an ed25519 key pair, and a
// policy set validated, wrapped in an envelope for the fleet and signed, ready for
// `doorstep apply --nats` (which can also sign in one step with --sign-key).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseLabels } from '../controller/config.js';
import { DoorstepError } from '../errors.js';
import { bucketExists, fixedSequence, openBucket, sequenceAt } from '../fleet/fleet-client.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { generateKeyPair, readPrivateKey, signEnvelope } from '../fleet/signing.js';
import { compileIr } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import { buildEnvelope, envelopeSchema, type PolicyEnvelope } from '../fleet/policy-envelope.js';
import { AGENT_HINT } from './fleet-status.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export interface EnvelopeFlags {
  name?: string;
  selector?: string[];
  signKey?: string;
}

export const DEFAULT_SET_NAME = 'default';

/** The envelope in `path` when it is one (written by `doorstep sign`), else undefined. */
export function readEnvelopeFile(path: string): PolicyEnvelope | undefined {
  if (!path.endsWith('.json')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined; // not JSON: a policy file, and validation will say what is wrong with it
  }
  if (typeof value !== 'object' || value === null || !('documents' in value) || !('format' in value)) return undefined;
  const r = envelopeSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new DoorstepError('DS_E_USAGE', `${path} looks like a policy envelope but ${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`, {
      hint: 'write envelopes with `doorstep sign`',
    });
  }
  return r.data;
}

/** A set ready to publish once its sequence number is known (one above the highest under its key). */
export interface EnvelopeDraft {
  name: string;
  documents: PolicyEnvelope['documents'];
  /** The envelope with sequence `next` (signed with --sign-key); an envelope file as it is, when its own number is at least `next`. */
  at(next: number): PolicyEnvelope;
}

/**
 * The set to publish: a signed envelope file as it is, or the policy files wrapped (and signed
 * with --sign-key once the sequence is known). Either way its documents are validated first: an
 * invalid set never reaches the bucket (PolicyError, exit 3).
 */
export async function envelopeDraft(paths: string[], f: EnvelopeFlags): Promise<EnvelopeDraft> {
  const given = paths.length === 1 ? readEnvelopeFile(paths[0] as string) : undefined;
  if (given) {
    if (f.name !== undefined || f.selector?.length || f.signKey !== undefined) {
      throw new DoorstepError('DS_E_USAGE', `${paths[0]} is an envelope: its name, selector and signature are inside it`, {
        hint: 'drop --name, --selector and --sign-key, or give the policy files instead',
      });
    }
    compileIr(given.documents);
    return { name: given.name, documents: given.documents, at: (next) => fixedSequence(given, next) };
  }
  const sources = await readPolicySources(paths);
  compileIr(sources);
  const envelope = buildEnvelope(f.name ?? DEFAULT_SET_NAME, parseLabels(f.selector ?? []), sources);
  const key = f.signKey === undefined ? undefined : readPrivateKey(f.signKey); // a bad key file fails before NATS is asked
  return {
    name: envelope.name,
    documents: envelope.documents,
    at: (next) => (key ? signEnvelope({ ...envelope, sequence: next }, key) : { ...envelope, sequence: next }),
  };
}

export interface SignFlags extends EnvelopeFlags, Partial<NatsFlags> {
  key: string;
  out?: string;
  sequence?: string;
}

/** The sequence number `doorstep sign` gives the set: --sequence, or one above the highest in the bucket (--nats). */
async function signingSequence(name: string, f: SignFlags): Promise<number> {
  if (f.sequence !== undefined) {
    const n = Number(f.sequence);
    if (!Number.isSafeInteger(n) || n < 1) throw new DoorstepError('DS_E_USAGE', `--sequence ${f.sequence} is not a positive integer`, { hint: 'give the number above the highest under the key, or --nats URL to read it' });
    return n;
  }
  if (f.nats === undefined) {
    throw new DoorstepError('DS_E_USAGE', 'a signed set needs its sequence number: the next one under its key in the policy bucket', {
      hint: 'give --nats nats://HOST:PORT/BUCKET to read it from the bucket, or --sequence N',
    });
  }
  const target = parseNatsUrl(f.nats, 'BUCKET');
  const nc = await connectNats(target, natsAuthOf(f), { name: 'doorstep-cli' });
  try {
    if (!(await bucketExists(nc, target.name))) return 1;
    return (await sequenceAt(await openBucket(nc, target.name, AGENT_HINT), name)).highest + 1;
  } catch (err) {
    throw natsFailure(err, `reading the sequence of sets.${name} from ${describeTarget(target)}`);
  } finally {
    await nc.close();
  }
}

export async function sign(paths: string[], f: SignFlags): Promise<number> {
  const draft = await envelopeDraft(paths, { ...f, signKey: f.key });
  const envelope = draft.at(await signingSequence(draft.name, f));
  const text = `${JSON.stringify(envelope, null, 2)}\n`;
  if (f.out) {
    writeFileSync(f.out, text);
    console.error(`signed set ${envelope.name} sequence ${envelope.sequence} (key ${envelope.signature?.key}) written to ${f.out}`);
  } else {
    process.stdout.write(text);
  }
  return ExitCode.OK;
}

export function keygen(prefix: string): number {
  const keyFile = `${prefix}.key`;
  const pubFile = `${prefix}.pub`;
  for (const f of [keyFile, pubFile]) {
    if (existsSync(f)) throw new DoorstepError('DS_E_USAGE', `${f} exists`, { hint: 'choose another prefix; a key is never overwritten' });
  }
  const pair = generateKeyPair();
  writeFileSync(keyFile, pair.privatePem, { mode: 0o600 });
  writeFileSync(pubFile, pair.publicPem, { mode: 0o644 });
  console.log(`key ${pair.id}: private ${keyFile} (keep it off the enforcers), public ${pubFile} (--policy-pubkey)`);
  return ExitCode.OK;
}
