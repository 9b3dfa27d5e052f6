// SPDX-License-Identifier: Apache-2.0
// Policy source `nats`: watches the envelopes in a JetStream key-value bucket and delivers, for
// this enforcer's labels, the union of the envelopes that select it. Candidates go out in
// revision order (a candidate never carries an older revision than one delivered before) and
// only when this enforcer's set really changed. The connection is made in the background and
// retried for ever, so an agent whose NATS is down at boot goes on with its last policy.
import type { NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { createPolicyBucket } from '../fleet/fleet-client.js';
import { signatureProblem, type TrustedKeys } from '../fleet/signing.js';
import { type BucketEntry, candidateFor, ENVELOPE_KEY_PREFIX, envelopeAt, type Labels, selects } from './policy-envelope.js';
import type { PolicyCandidate, PolicySourceHandle } from './source.js';

export interface NatsSourceOptions {
  /** The connection (shared, made in the background: src/fleet/nats-connection.ts). */
  connection: () => Promise<NatsConnection>;
  bucket: string;
  labels: Labels;
  /** Install only envelopes signed by one of these keys (--policy-pubkey). */
  trustedKeys?: TrustedKeys;
  /**
   * While the watch says more entries are pending (the catch-up after connecting, a burst of
   * publishes), wait up to this long for them, so they become one candidate. Once nothing is
   * pending the candidate goes out at once.
   */
  debounceMs?: number;
  onError?: (err: Error) => void;
}

export class NatsSource implements PolicySourceHandle {
  private stopWatch: (() => void) | undefined;
  private closed = false;
  private readonly entries = new Map<string, BucketEntry>();
  /** Per set name, the newest `issued` time of a signed envelope accepted: never go back. */
  private readonly newestIssued = new Map<string, string>();
  private bucketRevision = 0;
  private deliveredRevision = 0;
  private deliveredText = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NatsSourceOptions) {}

  get origin(): string {
    return `nats:${this.options.bucket}`;
  }

  private problem(message: string, cause?: unknown): void {
    this.options.onError?.(new DoorstepError('DS_E_POLICY_SOURCE', `${this.origin}: ${message}`, { cause }));
  }

  /** Resolves at once; candidates follow once NATS answers. */
  async start(deliver: (candidate: PolicyCandidate) => void): Promise<void> {
    void this.run(deliver).catch((err: unknown) => {
      if (!this.closed) this.problem(`watching stopped: ${err instanceof Error ? err.message : String(err)}`, err);
    });
  }

  private async run(deliver: (candidate: PolicyCandidate) => void): Promise<void> {
    const nc = await this.options.connection();
    if (this.closed) return;
    const kv = await createPolicyBucket(nc, this.options.bucket);
    const watch = await kv.watch({ key: `${ENVELOPE_KEY_PREFIX}>` });
    this.stopWatch = () => watch.stop();
    if (this.closed) return void watch.stop();
    for await (const e of watch) {
      this.bucketRevision = Math.max(this.bucketRevision, e.revision);
      if (e.operation === 'PUT') {
        const envelope = envelopeAt(e.key, e.value);
        if ('problem' in envelope) {
          this.problem(`${e.key} (revision ${e.revision}) is not a policy envelope: ${envelope.problem}; ignored`);
          this.entries.delete(e.key);
        } else {
          this.entries.set(e.key, { key: e.key, revision: e.revision, envelope });
        }
      } else {
        this.entries.delete(e.key);
      }
      this.schedule(deliver, e.delta === 0 ? 0 : (this.options.debounceMs ?? 100));
    }
  }

  /** With trusted keys: why each selected envelope may not be installed (unsigned, untrusted, altered, older). */
  private refusals(): NonNullable<PolicyCandidate['refusals']> {
    const keys = this.options.trustedKeys;
    if (!keys) return [];
    const out: NonNullable<PolicyCandidate['refusals']> = [];
    for (const e of this.entries.values()) {
      if (!selects(e.envelope.selector, this.options.labels)) continue;
      const file = `${this.options.bucket}/${e.key}`;
      const problem = signatureProblem(e.envelope, keys);
      if (problem) {
        out.push({ code: 'DS_E_POLICY_SIGNATURE', file, message: `revision ${e.revision}: ${problem}` });
        continue;
      }
      const newest = this.newestIssued.get(e.envelope.name);
      if (newest && Date.parse(e.envelope.issued as string) < Date.parse(newest)) {
        out.push({ code: 'DS_E_POLICY_SIGNATURE', file, message: `revision ${e.revision} was issued ${e.envelope.issued}, before the accepted ${newest}: a replayed older set` });
      }
    }
    return out;
  }

  private schedule(deliver: (candidate: PolicyCandidate) => void, waitMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const candidate: PolicyCandidate = candidateFor(this.options.bucket, this.entries.values(), this.options.labels, this.bucketRevision);
      const refusals = this.refusals();
      if (refusals.length > 0) candidate.refusals = refusals;
      const text = JSON.stringify([candidate.sources, refusals]);
      // revision order, and only real changes of this enforcer's set
      if ((candidate.revision ?? 0) <= this.deliveredRevision || text === this.deliveredText) return;
      this.deliveredRevision = candidate.revision ?? 0;
      this.deliveredText = text;
      if (refusals.length === 0) {
        for (const e of this.entries.values()) {
          if (e.envelope.issued && selects(e.envelope.selector, this.options.labels)) this.newestIssued.set(e.envelope.name, e.envelope.issued);
        }
      }
      deliver(candidate);
    }, waitMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stopWatch?.();
  }
}
