// SPDX-License-Identifier: Apache-2.0
// Retrying a NATS step: attempts until one works, pauses from the backoff, and a pause that the
// caller ends early (a put seen or a reconnect: JetStream answers again).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryPause, retryUntilDone, worthReporting } from '../../src/fleet/retry.js';

describe('retry', () => {
  it('attempts until one resolves, reporting each failure with its pause', async () => {
    const failures: number[] = [];
    let n = 0;
    const pause = new RetryPause();
    const value = await retryUntilDone(
      async () => {
        if (++n < 3) throw new Error(`attempt ${n}`);
        return 'done';
      },
      { stopped: () => false, pause, onFailure: (_err, attempt, ms) => {
        failures.push(attempt);
        assert.ok(ms > 0);
        pause.wake(); // no real waiting in this test
      } },
    );
    assert.equal(value, 'done');
    assert.deepEqual(failures, [1, 2]);
  });

  it('a woken pause ends at once; a wake between pauses skips the next one only', async () => {
    const pause = new RetryPause();
    const long = pause.sleep(60_000);
    pause.wake();
    await long; // would hang the test for a minute otherwise
    pause.wake();
    await pause.sleep(60_000); // skipped
    let ended = false;
    const keepAlive = setTimeout(() => undefined, 1000); // the pause's own timer does not hold the process
    const next = pause.sleep(50).then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(ended, false, 'the next pause is a real one');
    await next;
    clearTimeout(keepAlive);
  });

  it('stops when the caller closes', async () => {
    let closed = false;
    let attempts = 0;
    const pause = new RetryPause();
    const value = await retryUntilDone(
      () => {
        attempts++;
        return Promise.reject(new Error('no'));
      },
      { stopped: () => closed, pause, onFailure: () => {
        closed = true;
        pause.wake();
      } },
    );
    assert.equal(attempts, 1, 'no attempt after the close');
    assert.equal(value, undefined);
  });

  it('reports attempts 1, 2, 4, 8…', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 8, 12, 16].map(worthReporting), [true, true, false, true, false, true, false, true]);
  });
});
