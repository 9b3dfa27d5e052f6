// SPDX-License-Identifier: Apache-2.0
// Attachment: native XDP with a reported fallback to generic, jumbo MTUs (xdp.frags), links
// pinned under the pin root, adoption of pins by a second engine and its refusal of pins that are
// not its contract (missing maps, another ABI stamp, other sizes or BTF types), and nothing left
// behind on close. The interfaces (a bridge: no native XDP; a veth pair) are created here without addresses, so
// they carry no traffic, and are removed after.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeStruct, sizeOf } from '../../src/abi/codec.js';
import { Limits, MapName } from '../../src/abi/generated.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { addon } from '../../src/engine/native.js';
import { DoorstepError } from '../../src/errors.js';
import { ip, runToken } from '../../src/demo/topology.js';
import { floorObjectPath } from '../../src/paths.js';
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
    assert.ok(existsSync(join(pinRoot, 'maps', MapName.SESSIONS)));
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

  /**
   * A first engine's pins, tampered with into what another build would have left: a second
   * Engine.open refuses them with DS_E_ABI_MISMATCH saying `why` and what to do; nothing is
   * attached, and the pins stay as they were.
   */
  const refusesTampered = (tamper: () => void, why: RegExp): void => {
    const first = NativeEngine.open({ pinRoot });
    try {
      tamper();
      assert.throws(() => NativeEngine.open({ pinRoot }), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_ABI_MISMATCH' && why.test(e.message) && /remove .*doorstep-test/.test(e.hint ?? ''));
      assert.equal(addon().xdpQuery(addon().ifNameToIndex(vethB)).progId, 0, 'nothing attached');
      assert.ok(existsSync(join(pinRoot, 'maps', MapName.SESSIONS)), 'the pins are left as they were');
    } finally {
      first.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  };
  /** Pin the map `fd` where the pin of `name` was, and let go of the fd. */
  const pinInstead = (name: MapName, fd: number): void => {
    try {
      rmSync(join(pinRoot, 'maps', name));
      addon().objPin(fd, join(pinRoot, 'maps', name));
    } finally {
      addon().closeFd(fd);
    }
  };

  it('refuses pins left by another version (some maps missing) instead of mixing two layouts', () => {
    // what an engine pinned by an older build lacks
    refusesTampered(() => rmSync(join(pinRoot, 'maps', MapName.REPLIES)), /another doorstep version \(it lacks ds_replies\)/);
  });

  it('refuses a pinned map of the same name with another layout instead of adopting it', () => {
    // what an engine pinned by a build with a smaller ds_settings value leaves
    refusesTampered(() => pinInstead(MapName.SETTINGS, addon().mapCreate(2 /* BPF_MAP_TYPE_ARRAY */, 4, 8, 1, 0, -1, MapName.SETTINGS)), /ds_settings has 4\/8-byte keys\/values/);
  });

  it('refuses pins stamped with another ABI version', () => {
    const stampOf = (version: number) => {
      const fd = addon().mapCreate(2 /* BPF_MAP_TYPE_ARRAY */, 4, sizeOf('ds_abi'), 1, 0, -1, MapName.ABI);
      addon().mapUpdate(fd, Buffer.alloc(4), encodeStruct('ds_abi', { version }));
      return fd;
    };
    refusesTampered(() => pinInstead(MapName.ABI, stampOf(Limits.ABI_VERSION - 1)), new RegExp(`holds an engine of ABI version ${Limits.ABI_VERSION - 1}; this doorstep's is ${Limits.ABI_VERSION}`));
  });

  it('refuses a pinned map of the right name, type and sizes whose BTF key or value type is another', () => {
    // ds_ifaces and ds_flow_coarse are both arrays of 4-byte keys and 8-byte values: ds_iface, __u64
    refusesTampered(
      () => pinInstead(MapName.FLOW_COARSE, addon().objGet(join(pinRoot, 'maps', MapName.IFACES))),
      /ds_flow_coarse has __u32 keys and ds_iface values; this engine's ds_flow_coarse has __u32 and __u64/,
    );
  });

  it('stamps a new engine\'s pins with the ABI version, frozen', () => {
    const engine = NativeEngine.open({ pinRoot });
    const native = addon();
    const fd = native.objGet(join(pinRoot, 'maps', MapName.ABI));
    try {
      const value = Buffer.alloc(sizeOf('ds_abi'));
      assert.equal(native.mapLookup(fd, Buffer.alloc(4), value), true);
      assert.equal(value.readUInt32LE(0), Limits.ABI_VERSION);
      assert.throws(() => native.mapUpdate(fd, Buffer.alloc(4), Buffer.alloc(value.length)), (e: unknown) => (e as { errno?: number }).errno === 1 /* EPERM: frozen */);
    } finally {
      native.closeFd(fd);
      engine.close();
    }
  });

  it('refuses an engine object whose maps are not this build\'s contract, before loading it', () => {
    assert.throws(
      () => NativeEngine.open({ pinRoot, objectPath: floorObjectPath }),
      (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_ABI_MISMATCH' && /floor\.bpf\.o has other maps than this build's contract \(lacks ds_abi, .*has ds_floor\)/.test(e.message),
    );
    assert.equal(existsSync(pinRoot), false, 'nothing pinned');
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
