// SPDX-License-Identifier: Apache-2.0
// Policy source `nats`: watches the envelopes in a JetStream key-value bucket and delivers, for
// this enforcer's labels, the union of the envelopes that select it. Candidates go out in
// revision order (a candidate never carries an older revision than one delivered before) and
// only when this enforcer's set really changed. The connection is made in the background and
// retried for ever, so an agent whose NATS is down at boot goes on with its last policy.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { DoorstepError } from '../errors.js';
import { type BucketEntry, candidateFor, ENVELOPE_KEY_PREFIX, type Labels, parseEnvelope } from './policy-envelope.js';
import type { PolicyCandidate, PolicySourceHandle } from './source.js';

export interface NatsSourceOptions {
  /** `nats://host:port` (several, comma-separated, for a cluster). */
  servers: string;
  bucket: string;
  labels: Labels;
  /** Quiet time before a burst of changes (the initial catch-up) becomes one candidate. */
  debounceMs?: number;
  onError?: (err: Error) => void;
}

/** `nats://HOST:PORT[,HOST:PORT…]/BUCKET` → the servers and the bucket. */
export function parseNatsPolicyUrl(url: string): { servers: string; bucket: string } {
  const m = /^nats:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(url);
  if (!m) {
    throw new DoorstepError('DS_E_USAGE', `"${url}" is not a NATS policy source`, { hint: 'write nats://HOST:PORT/BUCKET, e.g. nats://127.0.0.1:4222/doorstep-policy' });
  }
  const servers = (m[1] as string).split(',').map((h) => `nats://${h}`).join(',');
  return { servers, bucket: m[2] as string };
}

export class NatsSource implements PolicySourceHandle {
  private nc: NatsConnection | undefined;
  private stopWatch: (() => void) | undefined;
  private closed = false;
  private readonly entries = new Map<string, BucketEntry>();
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
    this.nc = await connect({
      servers: this.options.servers.split(','),
      name: 'doorstep-agent',
      waitOnFirstConnect: true,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
    if (this.closed) return void (await this.nc.close());
    const kv = await new Kvm(this.nc).create(this.options.bucket, { history: 10 });
    const watch = await kv.watch({ key: `${ENVELOPE_KEY_PREFIX}>` });
    this.stopWatch = () => watch.stop();
    for await (const e of watch) {
      this.bucketRevision = Math.max(this.bucketRevision, e.revision);
      if (e.operation === 'PUT') {
        const envelope = parseEnvelope(e.value);
        if ('problem' in envelope) {
          this.problem(`${e.key} (revision ${e.revision}) is not a policy envelope: ${envelope.problem}; ignored`);
          this.entries.delete(e.key);
        } else {
          this.entries.set(e.key, { key: e.key, revision: e.revision, envelope });
        }
      } else {
        this.entries.delete(e.key);
      }
      this.schedule(deliver);
    }
  }

  private schedule(deliver: (candidate: PolicyCandidate) => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const candidate = candidateFor(this.options.bucket, this.entries.values(), this.options.labels, this.bucketRevision);
      const text = JSON.stringify(candidate.sources);
      // revision order, and only real changes of this enforcer's set
      if ((candidate.revision ?? 0) <= this.deliveredRevision || text === this.deliveredText) return;
      this.deliveredRevision = candidate.revision ?? 0;
      this.deliveredText = text;
      deliver(candidate);
    }, this.options.debounceMs ?? 100);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stopWatch?.();
    await this.nc?.close();
  }
}
