// SPDX-License-Identifier: Apache-2.0
// How a policy set travels through the fleet's key-value bucket: one envelope per key, holding
// the documents (as text, so errors still cite file and line) and a label selector saying which
// enforcers it applies to. An enforcer's policy is the union of the envelopes that select it, in
// key order. Pure: parsing, matching and assembling candidates; no I/O.
import { z } from 'zod';
import type { PolicyCandidate } from '../policy/candidate.js';

/** Keys under which envelopes live in the policy bucket. */
export const ENVELOPE_KEY_PREFIX = 'sets.';

export const envelopeSchema = z.strictObject({
  format: z.literal(1),
  /** The set's name: the key is `sets.<name>`. */
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /** Every label must equal the enforcer's; empty = every enforcer. */
  selector: z.record(z.string(), z.string()),
  /** The set's documents; none in a tombstone. */
  documents: z.array(z.strictObject({ file: z.string().min(1), text: z.string() })),
  /** A tombstone: the set is removed (signed like a set, so enforcers that require keys accept it). */
  removed: z.literal(true).optional(),
  /**
   * The set's number under its key: the publisher takes one above the highest in the bucket, and an
   * enforcer that requires signed sets installs a signed one only above the highest it accepted
   * there (kept in its state dir): replay protection that does not trust clocks.
   */
  sequence: z.number().int().positive().optional(),
  /** When it was published or signed (RFC 3339): for humans; a skewed clock is only warned about. */
  issued: z.iso.datetime({ offset: true }).optional(),
  /** ed25519 over the canonical JSON of every other field (src/fleet/signing.ts). */
  signature: z.strictObject({ alg: z.literal('ed25519'), key: z.string().min(1), value: z.string().min(1) }).optional(),
}).superRefine((e, ctx) => {
  if (e.removed && e.documents.length > 0) ctx.addIssue({ code: 'custom', path: ['documents'], message: 'a tombstone (removed: true) holds no documents' });
  if (!e.removed && e.documents.length === 0) ctx.addIssue({ code: 'custom', path: ['documents'], message: 'a set needs at least one document' });
});

export type PolicyEnvelope = z.infer<typeof envelopeSchema>;

export type Labels = Readonly<Record<string, string>>;

export function selects(selector: Labels, labels: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The envelope in a bucket entry, or why it is not one. */
export function parseEnvelope(bytes: Uint8Array): PolicyEnvelope | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { problem: 'not JSON' };
  }
  const r = envelopeSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { problem: `${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}` };
  }
  return r.data;
}

/** The envelope stored under `key`, or why it is not one (a set lives under `sets.<its name>`). */
export function envelopeAt(key: string, bytes: Uint8Array): PolicyEnvelope | { problem: string } {
  const envelope = parseEnvelope(bytes);
  if ('problem' in envelope) return envelope;
  if (key !== `${ENVELOPE_KEY_PREFIX}${envelope.name}`) return { problem: `its name "${envelope.name}" does not match the key` };
  return envelope;
}

export interface BucketEntry {
  key: string;
  revision: number;
  envelope: PolicyEnvelope;
}

/**
 * The candidate for an enforcer with `labels`: the documents of every envelope selecting it, in
 * key order (tombstones left out), named `<bucket>/<key>/<file>` so errors point at the envelope; its revision is the
 * newest revision among those envelopes (or `bucketRevision` when a deletion changed the set).
 */
export function candidateFor(bucket: string, entries: Iterable<BucketEntry>, labels: Labels, bucketRevision: number): PolicyCandidate {
  const chosen = [...entries].filter((e) => !e.envelope.removed && selects(e.envelope.selector, labels)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    origin: `nats:${bucket}`,
    revision: bucketRevision,
    sources: chosen.flatMap((e) => e.envelope.documents.map((d) => ({ file: `${bucket}/${e.key}/${d.file}`, text: d.text }))),
  };
}

/** An envelope for the set `name`, holding `sources` as they are, for the enforcers `selector` picks. */
export function buildEnvelope(name: string, selector: Labels, sources: readonly PolicyCandidate['sources'][number][], issued = new Date()): PolicyEnvelope {
  return { format: 1, name, selector: { ...selector }, documents: sources.map((s) => ({ file: s.file, text: s.text })), issued: issued.toISOString() };
}

/** A tombstone for the set `name`: publishing it (signed, when enforcers require keys) removes the set. */
export function buildTombstone(name: string, selector: Labels, issued = new Date()): PolicyEnvelope {
  return { format: 1, name, selector: { ...selector }, documents: [], removed: true, issued: issued.toISOString() };
}

/** The key a set lives under. */
export const envelopeKey = (name: string): string => `${ENVELOPE_KEY_PREFIX}${name}`;
