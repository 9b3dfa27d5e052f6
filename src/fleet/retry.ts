// SPDX-License-Identifier: Apache-2.0
// Retrying a NATS step until it works: pauses from nats.js's own backoff (which adds jitter, so a
// fleet that lost its servers together does not come back in step), never more than a few
// seconds apart, so a part that failed while JetStream had no leader rejoins soon after it has one;
// a caller that learns JetStream answers again (a put seen, a reconnect) cuts the pause short.
import { backoff } from '@nats-io/transport-node';

/** Pauses between attempts, in ms before jitter (the last repeats). */
export const RETRY_POLICY_MS = [250, 500, 1000, 2000];

export interface RetryOptions {
  /** True once the caller is closing: no more attempts. */
  stopped: () => boolean;
  /** Each failure, with the attempt's number (from 1) and the pause before the next. */
  onFailure: (err: unknown, attempt: number, pauseMs: number) => void;
  /** Pauses the caller can end early (RetryPause.wake). */
  pause?: RetryPause;
}

/** The pause between attempts, which `wake()` ends at once (or, between pauses, skips the next). */
export class RetryPause {
  private wakeUp: (() => void) | undefined;
  private woken = false;

  sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wakeUp?.(), ms);
      timer.unref();
      this.wakeUp = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }
}

/** `attempt()` until it resolves (its value) or the caller stops (undefined). */
export async function retryUntilDone<T>(attempt: () => Promise<T>, o: RetryOptions): Promise<T | undefined> {
  const pauses = backoff(RETRY_POLICY_MS);
  const pause = o.pause ?? new RetryPause();
  for (let n = 1; !o.stopped(); n++) {
    try {
      return await attempt();
    } catch (err) {
      if (o.stopped()) return undefined;
      const ms = pauses.backoff(n - 1);
      o.onFailure(err, n, ms);
      await pause.sleep(ms);
    }
  }
  return undefined;
}

/** Attempts 1, 2, 4, 8…: a long outage leaves a few records, not one per attempt. */
export const worthReporting = (attempt: number): boolean => (attempt & (attempt - 1)) === 0;
