// SPDX-License-Identifier: Apache-2.0
// The fleet as the CLI sees it through NATS: the envelopes in the policy bucket, the enforcers'
// reports in the status bucket, and publishing an envelope. Buckets that do not exist are an
// error that says how they come to be, except where publishing creates the policy bucket.
import { jetstream, JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { Bucket, Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { type BucketEntry, ENVELOPE_KEY_PREFIX, envelopeAt, envelopeKey, type PolicyEnvelope } from './policy-envelope.js';
import { type EnforcerStatus, parseStatus, STATUS_KEY_PREFIX } from './enforcer-status.js';

/** Whether the bucket exists: its stream's info (answered by the stream's leader, not the cluster's meta leader). */
export async function bucketExists(nc: NatsConnection, bucket: string): Promise<boolean> {
  try {
    await (await jetstreamManager(nc, { checkAPI: false })).streams.info(`KV_${bucket}`);
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return false;
    throw err;
  }
}

/** An existing bucket, or DS_E_NATS with `hint`. */
export async function openBucket(nc: NatsConnection, bucket: string, hint: string): Promise<KV> {
  if (!(await bucketExists(nc, bucket))) throw new DoorstepError('DS_E_NATS', `the key-value bucket ${bucket} does not exist`, { hint });
  return new Kvm(nc).open(bucket);
}

/** How many revisions of each key the policy bucket keeps (when an agent or a publisher creates it). */
export const POLICY_BUCKET_HISTORY = 10;

/**
 * The policy bucket, created when it does not exist yet (by the first agent or the first publish).
 * `timeoutMs`: how long each JetStream request on it (and on its watches) may wait (nats.js: 5 s).
 */
export function createPolicyBucket(nc: NatsConnection, bucket: string, timeoutMs?: number): Promise<KV> {
  return new Kvm(timeoutMs === undefined ? nc : jetstream(nc, { timeout: timeoutMs })).create(bucket, { history: POLICY_BUCKET_HISTORY });
}

/**
 * The keys under `prefix`. From the stream's subject counts (answered by the stream's leader)
 * rather than kv.keys(), whose consumer needs the cluster's meta leader: right after a server is
 * lost the fleet can still be read. Deleted keys are listed too (their markers); callers read each.
 */
async function keysUnder(kv: KV, prefix: string): Promise<string[]> {
  if (!(kv instanceof Bucket)) {
    const keys: string[] = [];
    for await (const k of await kv.keys(`${prefix}>`)) keys.push(k);
    return keys;
  }
  const info = await kv.jsm.streams.info(kv.stream, { subjects_filter: `${kv.prefix}.${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(kv.prefix.length + 1));
}

/** The newest entry of every key under `prefix`, deletions included, without a consumer. */
export async function latestEntries(kv: KV, prefix: string): Promise<KvEntry[]> {
  const keys = await keysUnder(kv, prefix);
  const entries = await Promise.all(keys.sort().map((k) => kv.get(k)));
  return entries.flatMap((e) => (e ? [e] : []));
}

/** Every current value under `prefix`: the keys, then each one's newest entry. */
export async function currentValues(kv: KV, prefix: string): Promise<{ key: string; revision: number; value: Uint8Array }[]> {
  return (await latestEntries(kv, prefix)).flatMap((e) => (e.operation === 'PUT' ? [{ key: e.key, revision: e.revision, value: e.value }] : []));
}

/** The envelopes in the policy bucket (values that are not envelopes are left out: agents refuse them and report `rejecting`). */
export async function readEnvelopes(kv: KV): Promise<BucketEntry[]> {
  const out: BucketEntry[] = [];
  for (const v of await currentValues(kv, ENVELOPE_KEY_PREFIX)) {
    const envelope = envelopeAt(v.key, v.value);
    if (!('problem' in envelope)) out.push({ key: v.key, revision: v.revision, envelope });
  }
  return out;
}

/** The enforcers that reported within the status bucket's TTL. */
export async function readStatuses(kv: KV): Promise<EnforcerStatus[]> {
  const out: EnforcerStatus[] = [];
  for (const v of await currentValues(kv, STATUS_KEY_PREFIX)) {
    const s = parseStatus(v.value);
    if (s) out.push(s);
  }
  return out;
}

/** A plain put of `envelope` under `sets.<name>`, its sequence as it is (the benchmark's unsigned sets); publishers use publishNext. */
export function publishEnvelope(kv: KV, envelope: PolicyEnvelope): Promise<number> {
  return kv.put(envelopeKey(envelope.name), JSON.stringify(envelope));
}

/** Under `sets.<name>`: the highest sequence in the key's history, and the key's last revision (0: never written). */
export async function sequenceAt(kv: KV, name: string): Promise<{ highest: number; revision: number }> {
  let highest = 0;
  let revision = 0;
  for await (const e of await kv.history({ key: envelopeKey(name) })) {
    revision = Math.max(revision, e.revision);
    if (e.operation !== 'PUT') continue;
    const envelope = envelopeAt(e.key, e.value);
    if (!('problem' in envelope)) highest = Math.max(highest, envelope.sequence ?? 0);
  }
  return { highest, revision };
}

/** How often a publish that lost a race to another publisher reads the key again and retries (after a short random pause). */
const PUBLISH_ATTEMPTS = 20;

function lostRace(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}

/**
 * Publish under `sets.<name>` the envelope `make` builds for the next sequence number (one above
 * the highest in the key's history), written only if nobody wrote the key meanwhile (create, or
 * update at the revision read); a publisher that lost the race reads again and retries. Resolves
 * with the envelope and the bucket revision it got. `make` may throw (a signed envelope whose
 * sequence is fixed and not above the highest).
 */
export async function publishNext(kv: KV, name: string, make: (sequence: number) => PolicyEnvelope): Promise<{ envelope: PolicyEnvelope; revision: number }> {
  for (let attempt = 1; ; attempt++) {
    const { highest, revision: last } = await sequenceAt(kv, name);
    const envelope = make(highest + 1);
    const bytes = JSON.stringify(envelope);
    try {
      const revision = last === 0 ? await kv.create(envelopeKey(name), bytes) : await kv.update(envelopeKey(name), bytes, last);
      return { envelope, revision };
    } catch (err) {
      if (!lostRace(err)) throw err;
      if (attempt >= PUBLISH_ATTEMPTS) {
        throw new DoorstepError('DS_E_POLICY_SEQUENCE', `nothing was published: other publishers wrote ${envelopeKey(name)} ${attempt} times while this one took its sequence number`, {
          hint: 'publish again once the other publishers are done',
          cause: err,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
  }
}

/** `envelope` as it is (signed elsewhere): refused unless its sequence is at least `next`. */
export function fixedSequence(envelope: PolicyEnvelope, next: number): PolicyEnvelope {
  if ((envelope.sequence ?? 0) >= next) return envelope;
  const has = envelope.sequence === undefined ? 'has no sequence number' : `has sequence ${envelope.sequence}`;
  throw new DoorstepError('DS_E_POLICY_SEQUENCE', `nothing was published: the envelope for set ${envelope.name} ${has}, and the bucket already holds ${next - 1} under ${envelopeKey(envelope.name)}: enforcers would refuse it as a replay`, {
    hint: `sign it again with \`doorstep sign --nats URL\` (or --sequence ${next}), or publish with \`doorstep apply --nats URL --sign-key FILE\``,
  });
}

/** What the bucket holds under `sets.<name>` now. */
export type SetState =
  | { state: 'none' | 'deleted' | 'unreadable' }
  | { state: 'set' | 'tombstone'; envelope: PolicyEnvelope };

export async function setState(kv: KV, name: string): Promise<SetState> {
  const current = await kv.get(`${ENVELOPE_KEY_PREFIX}${name}`);
  if (!current) return { state: 'none' };
  if (current.operation !== 'PUT') return { state: 'deleted' };
  const envelope = envelopeAt(current.key, current.value);
  if ('problem' in envelope) return { state: 'unreadable' };
  return { state: envelope.removed ? 'tombstone' : 'set', envelope };
}

/** Delete the set `name` (enforcers that require signed sets refuse this: they need a signed tombstone). */
export async function deleteEnvelope(kv: KV, name: string): Promise<void> {
  await kv.delete(`${ENVELOPE_KEY_PREFIX}${name}`);
}

/** Status reports as they are written (after the current ones); `stop()` ends the iteration. */
export async function watchStatuses(kv: KV, onStatus: (s: EnforcerStatus) => void): Promise<{ stop: () => void; done: Promise<void> }> {
  const watch = await kv.watch({ key: `${STATUS_KEY_PREFIX}>` });
  const done = (async () => {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      const s = parseStatus(e.value);
      if (s) onStatus(s);
    }
  })();
  return { stop: () => watch.stop(), done };
}
