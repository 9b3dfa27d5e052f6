// SPDX-License-Identifier: Apache-2.0
// The policy bucket as one enforcer sees it: per key, what the bucket holds now (a set, a
// tombstone, a value that is not an envelope, or a deletion) and the set this enforcer accepted
// there last; from both, the candidate and what is wrong with it. A value that cannot be installed
// never removes the set in force: it makes the candidate refused, as a bad signature does. With
// trusted keys a set leaves only by a signed tombstone; without, a deletion removes it. Pure: the
// NATS watch that feeds it is src/watcher/nats-source.ts.
import { signatureProblem, type TrustedKeys } from '../fleet/signing.js';
import { type BucketEntry, candidateFor, envelopeAt, type Labels, type PolicyEnvelope, selects } from '../fleet/policy-envelope.js';
import { markOf, MemoryMarkStore, replayProblem, type SequenceMark, type SequenceMarkStore } from './sequence-marks.js';
import type { PolicyCandidate } from './source.js';

type Refusal = NonNullable<PolicyCandidate['refusals']>[number];

/** What a key holds now. */
type BucketValue =
  | { kind: 'envelope'; key: string; revision: number; envelope: PolicyEnvelope }
  | { kind: 'unreadable'; key: string; revision: number; problem: string }
  | { kind: 'deleted'; key: string; revision: number };

export class BucketSets {
  private readonly values = new Map<string, BucketValue>();
  /** Per key, the set in force when the last candidate without refusals was taken. */
  private accepted = new Map<string, BucketEntry>();
  /** Per key, the highest signed set accepted (with trusted keys): never go back. */
  private readonly marks: Map<string, SequenceMark>;
  private readonly markStore: SequenceMarkStore;
  /** The newest bucket revision seen. */
  revision = 0;

  constructor(
    private readonly bucket: string,
    private readonly labels: Labels,
    private readonly trustedKeys?: TrustedKeys,
    private readonly options: BucketSetsOptions = {},
  ) {
    this.markStore = options.marks ?? new MemoryMarkStore();
    this.marks = this.markStore.load((m) => options.onProblem?.(m));
  }

  /** What `key` holds is newer than `revision` (a catch-up read came before a watch's older entry). */
  private newer(key: string, revision: number): boolean {
    return (this.values.get(key)?.revision ?? 0) > revision;
  }

  /** A value was put under `key`. */
  put(key: string, revision: number, bytes: Uint8Array): void {
    this.revision = Math.max(this.revision, revision);
    if (this.newer(key, revision)) return;
    const envelope = envelopeAt(key, bytes);
    this.values.set(key, 'problem' in envelope ? { kind: 'unreadable', key, revision, problem: envelope.problem } : { kind: 'envelope', key, revision, envelope });
  }

  /** `key` was deleted or purged. */
  delete(key: string, revision: number): void {
    this.revision = Math.max(this.revision, revision);
    if (this.newer(key, revision)) return;
    this.values.set(key, { kind: 'deleted', key, revision });
  }

  /** The candidate for this enforcer now, with the refusals that keep it from being installed. */
  candidate(): PolicyCandidate {
    const candidate = candidateFor(this.bucket, this.envelopes(), this.labels, this.revision);
    const refusals = [...this.values.values()].flatMap((v) => this.refusal(v) ?? []);
    if (refusals.length > 0) candidate.refusals = refusals;
    return candidate;
  }

  /**
   * The candidate had no refusals: its sets are now the ones in force (replays of older ones are
   * refused). Returns warnings about the signed sets newly accepted: an issued time far from this
   * enforcer's clock, a mark that could not be kept.
   */
  accept(): string[] {
    const warnings: string[] = [];
    let changed = false;
    for (const v of this.values.values()) {
      if (!this.trustedKeys || v.kind !== 'envelope' || !this.concerns(v)) continue;
      const mark = markOf(v.envelope);
      const kept = this.marks.get(v.key);
      if (kept && kept.sequence === mark.sequence && kept.signature === mark.signature) continue;
      this.marks.set(v.key, mark);
      changed = true;
      const skew = clockSkew(v.envelope, (this.options.now ?? (() => new Date()))(), this.options.skewWarnMs ?? SKEW_WARN_MS);
      if (skew) warnings.push(`${this.bucket}/${v.key} revision ${v.revision} (sequence ${mark.sequence}) ${skew}; accepted: only the sequence decides`);
    }
    if (changed) {
      try {
        this.markStore.save(this.marks);
      } catch (err) {
        warnings.push(`cannot keep the accepted sequences: ${err instanceof Error ? err.message : String(err)}; a replay across a restart would not be recognised`);
      }
    }
    this.accepted = new Map(this.envelopes().filter((e) => !e.envelope.removed).map((e) => [e.key, e]));
    return warnings;
  }

  private envelopes(): BucketEntry[] {
    return [...this.values.values()].flatMap((v) => (v.kind === 'envelope' ? [{ key: v.key, revision: v.revision, envelope: v.envelope }] : []));
  }

  /** The set in force under `key` selects this enforcer. */
  private inForceHere(key: string): boolean {
    const a = this.accepted.get(key);
    return a !== undefined && selects(a.envelope.selector, this.labels);
  }

  /** A value matters to this enforcer when it selects it, or replaces a set that does. */
  private concerns(v: BucketValue): boolean {
    return (v.kind === 'envelope' && selects(v.envelope.selector, this.labels)) || this.inForceHere(v.key);
  }

  private refusal(v: BucketValue): Refusal | undefined {
    const file = `${this.bucket}/${v.key}`;
    if (v.kind === 'unreadable') {
      // nobody can tell whom it was meant for unless it replaces a set that did not select this enforcer
      if (this.accepted.has(v.key) && !this.inForceHere(v.key)) return undefined;
      return { code: 'DS_E_POLICY_SOURCE', file, message: `revision ${v.revision} is not a policy envelope (${v.problem}): the set in force stays; put a valid set or remove it` };
    }
    const keys = this.trustedKeys;
    if (!keys || !this.concerns(v)) return undefined;
    if (v.kind === 'deleted') {
      return { code: 'DS_E_POLICY_SIGNATURE', file, message: `revision ${v.revision} deletes the set without a signed tombstone, and this enforcer installs signed sets only: the set stays; remove it with \`doorstep fleet remove --sign-key\`` };
    }
    const what = v.envelope.removed ? 'tombstone' : 'set';
    const problem = signatureProblem(v.envelope, keys);
    if (problem) return { code: 'DS_E_POLICY_SIGNATURE', file, message: `revision ${v.revision} (${what}): ${problem}` };
    const replay = replayProblem(v.envelope, this.marks.get(v.key));
    if (replay) return { code: 'DS_E_POLICY_SIGNATURE', file, message: `revision ${v.revision} (${what}) ${replay}` };
    return undefined;
  }
}

export interface BucketSetsOptions {
  /** Where the accepted sequences are kept (the state dir); in memory when not given. */
  marks?: SequenceMarkStore;
  /** The kept sequences could not be read. */
  onProblem?: (message: string) => void;
  now?: () => Date;
  /** How far an issued time may be from this enforcer's clock before a warning (default SKEW_WARN_MS). */
  skewWarnMs?: number;
}

/** Issued times further than this from the enforcer's clock are warned about. */
export const SKEW_WARN_MS = 30_000;

/** How the envelope's issued time is off this enforcer's clock, when by more than `limitMs`. */
export function clockSkew(envelope: PolicyEnvelope, now: Date, limitMs: number): string | undefined {
  if (!envelope.issued) return undefined;
  const ms = Date.parse(envelope.issued) - now.getTime();
  if (Math.abs(ms) <= limitMs) return undefined;
  return `was issued ${envelope.issued}, ${(Math.abs(ms) / 1000).toFixed(0)} s ${ms > 0 ? 'ahead of' : 'behind'} this enforcer's clock (${now.toISOString()})`;
}
