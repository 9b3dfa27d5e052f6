// SPDX-License-Identifier: Apache-2.0
// StallMonitor: a blocked event loop shows as a stall, in the maximum since the start and in each
// reader's window since its previous read; one reader's read does not reset another's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StallMonitor } from '../../src/controller/stall-monitor.js';

const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
const tick = () => new Promise((r) => setTimeout(r, 20));

test('a blocked loop is a stall for every reader, and a read restarts only its own window', async () => {
  const monitor = new StallMonitor(5);
  try {
    block(200);
    // synchronise on the fact: the monitor's timer has run late at least once since the block
    let status = monitor.read('status');
    while (status.maxStallMs === 0) {
      await tick();
      status = monitor.read('status');
    }
    assert.ok(status.maxStallSinceLastReadMs > 0);
    assert.ok(status.maxStallSinceLastReadMs <= status.maxStallMs);
    const metrics = monitor.read('metrics');
    assert.equal(metrics.maxStallMs, status.maxStallMs);
    assert.equal(metrics.maxStallSinceLastReadMs, status.maxStallMs, "the first read covers everything since the start");
    const again = monitor.read('status');
    assert.ok(again.maxStallSinceLastReadMs <= again.maxStallMs, 'the window restarted at the previous read');
    assert.ok(again.maxStallMs >= status.maxStallMs);
  } finally {
    monitor.close();
  }
});
