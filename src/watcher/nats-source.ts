// SPDX-License-Identifier: Apache-2.0
// Policy source `nats`: watches the envelopes in a JetStream key-value bucket and delivers, for
// this enforcer's labels, the union of the envelopes that select it. Candidates go out in
// revision order (a candidate never carries an older revision than one delivered before) and
// only when this enforcer's set really changed; what each key holds is judged by BucketSets. The
// connection is made in the background and the watch made again after any fault (a failed call
// while JetStream has no leader, a watch that ended or stalled), with backoff and jitter, so an
// agent whose NATS is down at boot goes on with its last policy and rejoins on its own. A watch
// whose consumer died with its server (it ends nowhere, it just goes quiet) is told by a plain
// subscription to the bucket's subjects, held from the first connect: a put (or a reconnect, which
// may have hidden one) that the watch has not followed half a second later makes it read the
// bucket, and watch again if behind; with no watch yet (an agent started while JetStream was
// away), the put makes it read the bucket at once, without waiting for the next watch attempt.
import type { NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { createPolicyBucket, latestEntries } from '../fleet/fleet-client.js';
import type { TrustedKeys } from '../fleet/signing.js';
import { RetryPause, retryUntilDone, worthReporting } from '../fleet/retry.js';
import { BucketSets } from './bucket-sets.js';
import { ENVELOPE_KEY_PREFIX, type Labels } from '../fleet/policy-envelope.js';
import type { SequenceMarkStore } from './sequence-marks.js';
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
  /** How often the bucket's own revision is read, to tell a watch that has fallen behind. */
  checkMs?: number;
  /** How long after a put seen on the bucket's subjects the watch must have moved (else the bucket is read). */
  nudgeMs?: number;
  /** Where the highest accepted sequence per key is kept (the state dir), with trusted keys. */
  marks?: SequenceMarkStore;
  onError?: (err: Error) => void;
  /** Something accepted that a human should look at (a signing clock far off this one). */
  onWarning?: (message: string) => void;
  /** The watch went stale or live (the agent reports it at once). */
  onSyncChange?: () => void;
}

/**
 * How long each JetStream request of the watch may wait. Shorter than nats.js's 5 s: a request
 * lost with a server is made again sooner, and a healthy cluster answers in milliseconds.
 */
export const WATCH_REQUEST_TIMEOUT_MS = 2000;

/** How long after a put seen (or a reconnect) the watch must have moved: a live watch takes milliseconds. */
export const NUDGE_MS = 500;

type PolicyBucket = Awaited<ReturnType<typeof createPolicyBucket>>;

/** How far this source is behind the bucket (in the agent's status). */
export interface SourceSync {
  /** `live`: watching and caught up as far as it knows; `stale`: not watching (NATS away, a failed watch) or behind. */
  state: 'live' | 'stale';
  /** Since when it is stale (RFC 3339), null when live. */
  staleSince: string | null;
  /** The newest bucket revision this enforcer has seen. */
  revision: number;
  /** The bucket's newest revision when last read, and when that was; null before the first read. */
  bucketRevision: number | null;
  bucketReadAt: string | null;
  /** The last warning about a set accepted (a signing clock far off this one's), null when none. */
  warning: string | null;
}

export class NatsSource implements PolicySourceHandle {
  private stopWatch: (() => void) | undefined;
  private closed = false;
  private readonly sets: BucketSets;
  private deliveredRevision = 0;
  private deliveredText = '';
  private timer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private watching = false;
  private staleSince: Date | null = new Date();
  private bucketRevision: number | null = null;
  private bucketReadAt: Date | null = null;
  /** A bucket revision the watch has been restarted for: once per revision, then left stale. */
  private restartedFor = 0;
  private behindAt = 0;
  /** A bucket revision read directly (catchUp) while no watch ran: once per revision. */
  private caughtUpFor = 0;
  private nudgeTimer: NodeJS.Timeout | undefined;
  /** The bucket as last opened (by a watch attempt, or by a nudge before any watch worked). */
  private kv: PolicyBucket | undefined;
  /** A read of the bucket after a nudge, while it is in flight (one at a time). */
  private nudgeRead: Promise<void> | undefined;
  private warning: string | null = null;
  /** The pause between watch attempts: a put seen or a reconnect ends it (JetStream answers again). */
  private readonly pause = new RetryPause();
  private deliver: ((candidate: PolicyCandidate) => void) | undefined;

  constructor(private readonly options: NatsSourceOptions) {
    this.sets = new BucketSets(options.bucket, options.labels, options.trustedKeys, {
      ...(options.marks && { marks: options.marks }),
      onProblem: (m) => this.problem(m),
    });
  }

  get origin(): string {
    return `nats:${this.options.bucket}`;
  }

  /** Live or stale, and the revision seen against the bucket's. */
  sync(): SourceSync {
    return {
      state: this.staleSince ? 'stale' : 'live',
      staleSince: this.staleSince?.toISOString() ?? null,
      revision: this.sets.revision,
      bucketRevision: this.bucketRevision,
      bucketReadAt: this.bucketReadAt?.toISOString() ?? null,
      warning: this.warning,
    };
  }

  private problem(message: string, cause?: unknown): void {
    this.options.onError?.(new DoorstepError('DS_E_POLICY_SOURCE', `${this.origin}: ${message}`, { cause }));
  }

  private stale(): void {
    if (this.staleSince) return;
    this.staleSince = new Date();
    this.options.onSyncChange?.();
  }

  private live(): void {
    if (!this.staleSince) return;
    this.staleSince = null;
    this.options.onSyncChange?.();
  }

  /** Resolves at once; candidates follow once NATS answers, and the watch is made again after every fault. */
  async start(deliver: (candidate: PolicyCandidate) => void): Promise<void> {
    this.deliver = deliver;
    void this.options.connection().then((nc) => this.follow(nc), () => undefined);
    void retryUntilDone(() => this.watchUntilStopped(deliver), {
      stopped: () => this.closed,
      pause: this.pause,
      onFailure: (err, attempt, ms) => {
        this.stale();
        if (worthReporting(attempt)) this.problem(`watching failed (attempt ${attempt}): ${err instanceof Error ? err.message : String(err)}; watching again in ${ms} ms`, err);
      },
    });
  }

  /** One watch, from its creation until it ends: throws when it ends while the source is open. */
  private async watchUntilStopped(deliver: (candidate: PolicyCandidate) => void): Promise<void> {
    const nc = await this.options.connection();
    if (this.closed) return;
    const kv = await this.open(nc);
    const watch = await kv.watch({ key: `${ENVELOPE_KEY_PREFIX}>` });
    this.stopWatch = () => watch.stop();
    if (this.closed) return void watch.stop();
    this.watching = true;
    const check = () => void this.check(kv).catch(() => undefined);
    this.checkTimer = setInterval(check, this.options.checkMs ?? 5000);
    check(); // an empty bucket sends nothing: the first read says the watch is caught up
    try {
      for await (const e of watch) {
        if (e.operation === 'PUT') this.sets.put(e.key, e.revision, e.value);
        else this.sets.delete(e.key, e.revision);
        if (e.delta === 0 && this.bucketRevision !== null && this.sets.revision >= this.bucketRevision) this.live();
        this.schedule(deliver, e.delta === 0 ? 0 : (this.options.debounceMs ?? 100));
      }
    } finally {
      this.watching = false;
      clearInterval(this.checkTimer);
    }
    if (!this.closed) throw new DoorstepError('DS_E_NATS', 'the watch ended');
  }

  private async open(nc: NatsConnection): Promise<PolicyBucket> {
    this.kv = await createPolicyBucket(nc, this.options.bucket, WATCH_REQUEST_TIMEOUT_MS);
    return this.kv;
  }

  /**
   * From the first connect on (not from the first watch: an agent started while JetStream is away
   * must see the first put too), follow what tells that JetStream answers again. Every put under
   * sets.* reaches a plain subscription whatever became of the watch's consumer (the subscription
   * moves with the connection); a reconnect may have hidden puts. A refused permission on the
   * subscription leaves the 5 s check alone.
   */
  private follow(nc: NatsConnection): void {
    if (this.closed) return;
    nc.subscribe(`$KV.${this.options.bucket}.${ENVELOPE_KEY_PREFIX}>`, {
      callback: (err) => {
        if (!err) this.nudged();
      },
    });
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closed) break;
        if (s.type === 'disconnect') this.stale();
        // puts made while this connection was away never reach the subscription: check as if one had
        if (s.type === 'reconnect') this.nudged();
      }
    })().catch(() => undefined);
  }

  /**
   * Read the bucket after a nudge, opening it first when no watch has yet (an agent started while
   * JetStream was away); one read at a time.
   */
  private nudgeCheck(seen: number): Promise<void> {
    this.nudgeRead ??= (async () => {
      try {
        await this.check(this.kv ?? (await this.open(await this.options.connection())), seen);
      } finally {
        this.nudgeRead = undefined;
      }
    })();
    return this.nudgeRead;
  }

  /**
   * A put was seen on the bucket's subjects, or the connection is back (the watch then stood at
   * `seen`): JetStream answers. Between watch attempts, the next one starts now, and every
   * nudgeMs while none has worked (a new consumer needs the cluster's meta leader, which may come
   * later than the stream's), and the bucket is read directly meanwhile. Watching, unless the
   * watch has moved within nudgeMs, read the bucket, and again a nudgeMs later while that read fails.
   */
  private nudged(seen = this.sets.revision): void {
    if (this.closed) return;
    if (!this.watching) this.pause.wake();
    if (this.nudgeTimer) return;
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined;
      if (this.closed || this.sets.revision !== seen) return;
      if (!this.watching) {
        this.nudgeCheck(seen).catch(() => undefined); // behind: read the bucket without a consumer
        return this.nudged(seen);
      }
      this.nudgeCheck(seen).catch(() => this.nudged(seen));
    }, this.options.nudgeMs ?? NUDGE_MS);
    this.nudgeTimer.unref();
  }

  /**
   * Read the bucket's newest revision. Caught up: live. Behind at two reads in a row with no
   * progress, or after a put the watch did not deliver within nudgeMs (`nudgedAt`: its revision
   * then): the watch has stalled (its consumer lost with a server), so it is made again, once
   * per bucket revision (keys other than sets.* would otherwise look like a lag for ever).
   */
  private async check(kv: PolicyBucket, nudgedAt?: number): Promise<void> {
    const last = (await kv.status()).streamInfo.state.last_seq;
    this.bucketRevision = last;
    this.bucketReadAt = new Date();
    if (!this.watching) {
      // between watch attempts (no consumer can be made yet): what the bucket holds, read directly
      if (nudgedAt !== undefined && this.sets.revision < last && this.caughtUpFor !== last) {
        this.caughtUpFor = last;
        await this.catchUp(kv);
      }
      return;
    }
    if (this.sets.revision >= last) {
      this.live();
      this.behindAt = 0;
      return;
    }
    this.stale();
    const stalled = this.behindAt === last || (nudgedAt !== undefined && this.sets.revision === nudgedAt);
    if (stalled && this.restartedFor !== last) {
      this.restartedFor = last;
      this.problem(`the watch is at revision ${this.sets.revision}, the bucket at ${last}: reading the bucket, and watching again`);
      this.stopWatch?.();
      await this.catchUp(kv);
    }
    this.behindAt = last;
  }

  /**
   * Read what every sets.* key holds now, without a consumer (a new one needs the cluster's meta
   * leader, which may be away for seconds after a server is lost; the buckets' stream leader and
   * replicas answer this), and deliver it as the watch would have. The new watch follows.
   */
  private async catchUp(kv: PolicyBucket): Promise<void> {
    for (const e of await latestEntries(kv, ENVELOPE_KEY_PREFIX)) {
      if (e.operation === 'PUT') this.sets.put(e.key, e.revision, e.value);
      else this.sets.delete(e.key, e.revision);
    }
    if (this.deliver) this.schedule(this.deliver, 0);
  }

  private schedule(deliver: (candidate: PolicyCandidate) => void, waitMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const candidate = this.sets.candidate();
      // what is in the bucket is in force, delivered or unchanged
      if (!candidate.refusals) {
        for (const w of this.sets.accept()) {
          this.warning = `${this.origin}: ${w}`;
          this.options.onWarning?.(this.warning);
        }
      }
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
    clearInterval(this.checkTimer);
    clearTimeout(this.nudgeTimer);
    this.stopWatch?.();
  }
}
