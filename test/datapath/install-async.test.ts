// SPDX-License-Identifier: Apache-2.0
// NativeEngine.installAsync (the agent's install: map-in-map writes on an addon thread) publishes a
// version exactly as install() does: the next packet meets it, the generation moves on, the slots
// alternate, and a version it replaces counts no more packets once it has settled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NativeEngine } from '../../src/engine/engine.js';
import { compileYaml, openTestEngine } from '../lib/datapath.js';
import { frame } from '../lib/packet.js';

const policy = (action: 'allow' | 'deny') => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: swap }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: ${action}, protocol: tcp, ports: [443] }
`;

describe('datapath: installAsync', () => {
  let engine: NativeEngine;
  before(() => {
    engine = openTestEngine();
  });
  after(() => engine?.close());

  it('publishes each version for the next packet, alternating slots, while the event loop turns', async () => {
    let sport = 30000;
    const send = () => engine.testRun(frame({ src: '10.9.0.1', dst: '10.9.1.1', proto: 6, sport: sport++, dport: 443 })).verdict;
    let turns = 0;
    const ticker = setInterval(() => turns++, 1);
    try {
      const first = await engine.installAsync(compileYaml(policy('allow')));
      assert.equal(send(), 'pass');
      const second = await engine.installAsync(compileYaml(policy('deny')));
      assert.equal(send(), 'drop');
      const third = await engine.installAsync(compileYaml(policy('allow')));
      assert.equal(send(), 'pass');
      assert.deepEqual([second.generation - first.generation, third.generation - second.generation], [1, 1]);
      assert.deepEqual([first.slot, second.slot, third.slot], [first.slot, 1 - first.slot, first.slot]);
      assert.equal(engine.activePolicy()?.generation, third.generation);
      assert.ok(turns > 0, 'the event loop turned during the installs');
    } finally {
      clearInterval(ticker);
    }
  });

  it('leaves the version in force when an install fails', async () => {
    const before = engine.activePolicy();
    const { image } = compileYaml(policy('deny'));
    const broken = { ...image, tables: { ...image.tables, ds_svc: { ...image.tables.ds_svc, keySize: 3 } } };
    await assert.rejects(engine.installAsync({ image: broken }), /DS_E_ABI_MISMATCH|ds_svc/);
    assert.equal(engine.activePolicy()?.generation, before?.generation);
  });
});
