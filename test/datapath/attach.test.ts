// SPDX-License-Identifier: Apache-2.0
// Attachment: native XDP with a reported fallback to generic, jumbo MTUs (xdp.frags), links
// pinned under the pin root, adoption of pins by a second engine, and nothing left behind on
// close. The interfaces (a bridge: no native XDP; a veth pair) are created here without addresses, so
// they carry no traffic, and are removed after.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { NativeEngine } from '../../src/engine/engine.js';
import { addon } from '../../src/engine/native.js';
import { DoorstepError } from '../../src/errors.js';
import { ip, runToken } from '../../src/demo/topology.js';
import { compileYaml } from '../lib/datapath.js';

describe('datapath: attaching to interfaces', () => {
  const t = runToken();
  const bridge = `dsbr${t}`;
  const vethA = `dsja${t}`;
  const vethB = `dsjb${t}`;
  const pinRoot = `/sys/fs/bpf/doorstep-test-${t}`;

  before(() => {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('link', 'add', vethA, 'mtu', '9000', 'type', 'veth', 'peer', 'name', vethB, 'mtu', '9000');
    for (const i of [bridge, vethA, vethB]) ip('link', 'set', i, 'up');
  });
  after(() => {
    for (const i of [bridge, vethA]) {
      try {
        ip('link', 'del', i);
      } catch {
        // already gone
      }
    }
  });

  it('falls back to generic XDP where the driver has no native support, and says so', () => {
    const engine = NativeEngine.open({ pinRoot: null });
    try {
      assert.throws(() => engine.attach(bridge, 'native'), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_BPF_ATTACH');
      const a = engine.attach(bridge, 'auto');
      assert.equal(a.mode, 'generic');
      assert.equal(a.adopted, false);
    } finally {
      engine.close();
    }
  });

  it('attaches natively to a veth with a 9000-byte MTU (xdp.frags)', () => {
    const engine = NativeEngine.open({ pinRoot: null });
    try {
      assert.equal(engine.attach(vethA).mode, 'native');
    } finally {
      engine.close();
    }
  });

  it('pins maps and links; a second engine adopts them with the policy still active; close removes them', () => {
    const first = NativeEngine.open({ pinRoot });
    const installed = first.install(compileYaml('apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec: { defaultAction: deny }\n').image);
    first.attach(vethB);
    assert.ok(existsSync(`${pinRoot}/links/${vethB}`));
    assert.ok(existsSync(`${pinRoot}/maps/ds_sessions`));
    first.close({ keepAttached: true });
    assert.ok(existsSync(`${pinRoot}/links/${vethB}`), 'the link stays pinned (and attached) after the process lets go');

    const second = NativeEngine.open({ pinRoot });
    try {
      assert.equal(second.adopted, true);
      assert.equal(second.activePolicy()?.generation, installed.generation);
      const a = second.attach(vethB);
      assert.equal(a.adopted, true);
      assert.equal(a.mode, 'native');
    } finally {
      second.close();
    }
    assert.equal(existsSync(pinRoot), false, 'no pins left');
  });

  it('refuses pins left by another version (some maps missing) instead of mixing two layouts', () => {
    const first = NativeEngine.open({ pinRoot });
    try {
      rmSync(`${pinRoot}/maps/ds_replies`); // what an engine pinned by an older build lacks
      assert.throws(
        () => NativeEngine.open({ pinRoot }),
        (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_ABI_MISMATCH' && /another doorstep version \(it lacks ds_replies\)/.test(e.message),
      );
    } finally {
      first.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  });

  it('refuses a pinned map of the same name with another layout instead of adopting it', () => {
    const first = NativeEngine.open({ pinRoot });
    try {
      // what an engine pinned by a build with a smaller ds_settings value leaves
      rmSync(`${pinRoot}/maps/ds_settings`);
      const native = addon();
      const fd = native.mapCreate(2 /* BPF_MAP_TYPE_ARRAY */, 4, 8, 1, 0, -1, 'ds_settings');
      try {
        native.objPin(fd, `${pinRoot}/maps/ds_settings`);
      } finally {
        native.closeFd(fd);
      }
      assert.throws(
        () => NativeEngine.open({ pinRoot }),
        (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_ABI_MISMATCH' && /ds_settings has 4\/8-byte keys\/values/.test(e.message),
      );
    } finally {
      first.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  });

  it('refuses an interface that does not exist with DS_E_NO_INTERFACE', () => {
    const engine = NativeEngine.open({ pinRoot: null });
    try {
      assert.throws(() => engine.attach(`nope${t}`), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_NO_INTERFACE');
    } finally {
      engine.close();
    }
  });
});
