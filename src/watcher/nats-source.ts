// SPDX-License-Identifier: Apache-2.0
// Policy source `nats`: watches the envelopes in a JetStream key-value bucket and delivers, for
// this enforcer's labels, the union of the envelopes that select it. Candidates go out in
// revision order (a candidate never carries an older revision than one delivered before) and
// only when this enforcer's set really changed; what each key holds is judged by BucketSets. The connection is made in the background and
// retried for ever, so an agent whose NATS is down at boot goes on with its last policy.
import type { NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { createPolicyBucket } from '../fleet/fleet-client.js';
import type { TrustedKeys } from '../fleet/signing.js';
import { BucketSets } from './bucket-sets.js';
import { ENVELOPE_KEY_PREFIX, type Labels } from './policy-envelope.js';
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
  private readonly sets: BucketSets;
  private deliveredRevision = 0;
  private deliveredText = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NatsSourceOptions) {
    this.sets = new BucketSets(options.bucket, options.labels, options.trustedKeys);
  }

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
      if (e.operation === 'PUT') this.sets.put(e.key, e.revision, e.value);
      else this.sets.delete(e.key, e.revision);
      this.schedule(deliver, e.delta === 0 ? 0 : (this.options.debounceMs ?? 100));
    }
  }

  private schedule(deliver: (candidate: PolicyCandidate) => void, waitMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const candidate = this.sets.candidate();
      if (!candidate.refusals) this.sets.accept(); // what is in the bucket is in force, delivered or unchanged
      const text = JSON.stringify([candidate.sources, candidate.refusals ?? []]);
      // revision order, and only real changes of this enforcer's set
      if ((candidate.revision ?? 0) <= this.deliveredRevision || text === this.deliveredText) return;
      this.deliveredRevision = candidate.revision ?? 0;
      this.deliveredText = text;
      deliver(candidate);
    }, waitMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stopWatch?.();
  }
}
