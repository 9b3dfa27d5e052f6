// SPDX-License-Identifier: Apache-2.0
// The fleet's expected enforcers: a key-value bucket beside the status bucket (its name with
// `-members` appended), one key `members.<id>` per enforcer, with no TTL. An agent registers once
// (when its key is absent, or holds other labels) and its entry stays until an operator removes
// it (`doorstep fleet forget`), so an enforcer that stops reporting is counted as missing, never
// dropped from the fleet in silence. Owns the record's shape and the bucket's reads and writes.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { parseValue } from './enforcer-status.js';
import { currentValues } from './fleet-client.js';
import { natsToken } from './nats-connection.js';

export const MEMBER_KEY_PREFIX = 'members.';

/** The membership bucket that goes with `statusBucket` (doorstep-status → doorstep-status-members). */
export const membersBucketOf = (statusBucket: string): string => `${statusBucket}-members`;

export const memberKey = (enforcer: string): string => `${MEMBER_KEY_PREFIX}${natsToken(enforcer)}`;

export const memberSchema = z.object({
  format: z.literal(1),
  enforcer: z.string(),
  /** The labels it registered with (apply --wait uses them to tell whom a set selects while it does not report). */
  labels: z.record(z.string(), z.string()),
  /** When it first registered, and when its labels last changed. */
  registeredAt: z.string(),
  updatedAt: z.string(),
});

export type Member = z.infer<typeof memberSchema>;

export const parseMember = (bytes: Uint8Array): Member | undefined => parseValue(memberSchema, bytes);

/** The membership bucket, created (history 1, no TTL) when it does not exist. */
export function openMembersBucket(nc: NatsConnection, bucket: string): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: 1 });
}

const sameLabels = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/**
 * Register `enforcer` with `labels`: nothing is written when its entry holds them already; a
 * new entry is created, one with other labels updated at the revision read (a racing writer
 * makes this throw, and the caller retries). Resolves with what was done.
 */
export async function register(kv: KV, enforcer: string, labels: Record<string, string>, now = new Date()): Promise<'registered' | 'updated' | 'unchanged'> {
  const key = memberKey(enforcer);
  const current = await kv.get(key);
  const known = current?.operation === 'PUT' ? parseMember(current.value) : undefined;
  if (known && known.enforcer === enforcer && sameLabels(known.labels, labels)) return 'unchanged';
  const at = now.toISOString();
  const record: Member = { format: 1, enforcer, labels, registeredAt: known?.registeredAt ?? at, updatedAt: at };
  if (current && current.revision > 0) {
    await kv.update(key, JSON.stringify(record), current.revision);
    return known ? 'updated' : 'registered';
  }
  await kv.create(key, JSON.stringify(record));
  return 'registered';
}

/** Every registered enforcer (values that are not member records are left out). */
export async function readMembers(kv: KV): Promise<Member[]> {
  return (await currentValues(kv, MEMBER_KEY_PREFIX)).flatMap((v) => {
    const m = parseMember(v.value);
    return m ? [m] : [];
  });
}

/** Remove `enforcer` from the fleet (purged: its key leaves no marker behind). */
export async function forget(kv: KV, enforcer: string): Promise<void> {
  await kv.purge(memberKey(enforcer));
}
