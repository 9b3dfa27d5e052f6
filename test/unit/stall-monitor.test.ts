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
    await tick(); // the histogram counts from its first tick: a block before it goes unseen
    block(200);
    // the monitor's tick, due during the block, runs before any timer due after it
    await tick();
    const status = monitor.read('status');
    // a tick was due within 5 ms of the block's start and ran after its end: at least 195 ms late
    // (the histogram's 5 ms between ticks is not part of the stall)
    assert.ok(status.maxStallMs >= 195, `a 200 ms block read as ${status.maxStallMs} ms`);
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
