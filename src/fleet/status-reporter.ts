// SPDX-License-Identifier: Apache-2.0
// The agent's entry in the fleet's status bucket: written at once when something changes (a
// policy installed or rejected), and again every third of the bucket's TTL, so an enforcer that
// dies loses its report within the TTL (the fleet then counts it as missing). Opening the bucket is retried with backoff
// and jitter until it works (NATS down at boot, JetStream without a leader yet). One write in
// flight at a time; while NATS is away, reports are skipped (the next one carries the news),
// never queued; a failed write is tried again a second later. Beside its reports it registers
// the enforcer in the membership bucket (src/fleet/membership.ts), retried on its own until it
// works (a refused permission there never stops the reports), so the fleet counts it as missing
// whenever it stops reporting.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { type EnforcerStatus, statusKey } from './enforcer-status.js';
import { membersBucketOf, openMembersBucket, register } from './membership.js';
import { retryUntilDone, worthReporting } from './retry.js';

export interface StatusReporterOptions {
  connection: () => Promise<NatsConnection>;
  bucket: string;
  /** The bucket's TTL when the agent creates it; the report interval is a third of it. */
  ttlMs: number;
  enforcer: string;
  /** The report, built when it is written. */
  report: () => EnforcerStatus;
  onError?: (err: Error) => void;
}

/** Open the status bucket, creating it (history 1, with the TTL) when it does not exist. */
export async function openStatusBucket(nc: NatsConnection, bucket: string, ttlMs: number): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: 1, ttl: ttlMs });
}

/** After a failed write, the next attempt. */
const WRITE_RETRY_MS = 1000;

export class StatusReporter {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pokeTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private lastProblem = '';
  /** Reports written (for tests and metrics). */
  written = 0;

  constructor(private readonly options: StatusReporterOptions) {}

  /** Open the bucket (retried with backoff until it works, however long NATS or JetStream is away), then report. */
  start(): void {
    const retried = (what: string) => ({
      stopped: () => this.closed,
      onFailure: (err: unknown, attempt: number, ms: number) => worthReporting(attempt) && this.problem(new Error(`${what}${err instanceof Error ? err.message : String(err)} (attempt ${attempt}; again in ${ms} ms)`, { cause: err })),
    });
    void retryUntilDone(() => this.open(), retried(''));
    void retryUntilDone(() => this.register(), retried(`registering in ${membersBucketOf(this.options.bucket)}: `));
  }

  /** Register this enforcer once (nothing is written when its entry holds its labels already). */
  private async register(): Promise<void> {
    const nc = await this.options.connection();
    if (this.closed) return;
    await register(await openMembersBucket(nc, membersBucketOf(this.options.bucket)), this.options.enforcer, this.options.report().labels);
  }

  private async open(): Promise<void> {
    const nc = await this.options.connection();
    if (this.closed) return;
    const kv = await openStatusBucket(nc, this.options.bucket, this.options.ttlMs);
    // an existing bucket keeps the TTL it was created with: report often enough for that one
    const bucketTtl = (await kv.status()).ttl;
    if (this.closed) return;
    this.kv = kv;
    this.write();
    const ttl = bucketTtl > 0 ? Math.min(bucketTtl, this.options.ttlMs) : this.options.ttlMs;
    if (bucketTtl > 0 && bucketTtl !== this.options.ttlMs) {
      this.problem(`the bucket's TTL is ${bucketTtl / 1000} s, not the ${this.options.ttlMs / 1000} s given to this agent; reporting every ${Math.max(1, Math.floor(ttl / 3000))} s`);
    }
    this.timer = setInterval(() => this.write(), Math.max(1000, Math.floor(ttl / 3)));
    // back after an outage: the entry may have expired meanwhile, so report at once
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closed) break;
        if (s.type === 'reconnect') this.write();
      }
    })().catch(() => undefined);
  }

  /** Something changed: report now (changes within a few ms make one report). */
  poke(): void {
    if (this.closed || this.pokeTimer) return;
    this.pokeTimer = setTimeout(() => {
      this.pokeTimer = undefined;
      this.write();
    }, 20);
  }

  private problem(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message === this.lastProblem || this.closed) return; // once per distinct problem
    this.lastProblem = message;
    this.options.onError?.(new DoorstepError('DS_E_NATS', `status bucket ${this.options.bucket}: ${message}`, { cause: err }));
  }

  private write(): void {
    const kv = this.kv;
    if (!kv || this.closed) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = kv
      .put(statusKey(this.options.enforcer), JSON.stringify(this.options.report()))
      .then(
        () => {
          this.written++;
          this.lastProblem = '';
        },
        (err: unknown) => {
          this.problem(err);
          this.retrySoon();
        },
      )
      .finally(() => {
        this.writing = undefined;
        if (this.again) {
          this.again = false;
          this.write();
        }
      });
  }

  /** A write failed (JetStream without a leader, a server lost): try again in a second, not at the next interval. */
  private retrySoon(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.write();
    }, WRITE_RETRY_MS);
    this.retryTimer.unref();
  }

  /** Stop reporting and remove this enforcer's entry (a clean stop leaves the fleet at once). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.pokeTimer);
    clearTimeout(this.retryTimer);
    await this.writing;
    if (this.kv) {
      await Promise.race([this.kv.delete(statusKey(this.options.enforcer)).catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
  }
}
