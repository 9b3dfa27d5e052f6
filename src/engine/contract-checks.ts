// SPDX-License-Identifier: Apache-2.0
// The engine held to its contract (bpf/include/contract.h) when Engine.open loads it:
// - checkObject: the object's maps are the generated MapTypes (names, BTF key and value type
//   names, sizes), so an object of another build is never loaded;
// - pinnedMaps, adoptPins: pins an earlier engine left are adopted only when every map of the
//   object is there, ds_abi holds DS_ABI_VERSION, and each map has the object's map type, key and
//   value sizes, kernel BTF key and value type names and (maps of maps) inner maps of the object's
//   templates; anything else is refused with DS_E_ABI_MISMATCH before a single pin is reused, so
//   two layouts never mix;
// - stampAbi: a new engine's ds_abi written and frozen before it is pinned.
// Touches the object (reuse) and the pins (read only), through the addon.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeStruct, readField, sizeOf } from '../abi/codec.js';
import { Limits, MapName, MapTypes } from '../abi/generated.js';
import { DoorstepError } from '../errors.js';
import { addon, type BpfObjectHandle, type MapSpec } from './native.js';

const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
const BPF_MAP_TYPE_HASH_OF_MAPS = 13;

const ZERO_KEY = Buffer.alloc(4);

function mismatch(pinRoot: string, what: string): DoorstepError {
  return new DoorstepError('DS_E_ABI_MISMATCH', what, {
    hint: `stop the agent that uses it, then remove ${pinRoot} (which detaches its engine: the interfaces are unprotected until the new agent attaches) and start again, or give another --pin-root`,
  });
}

/**
 * Refuse an engine object whose maps are not the contract this build generated (another build's
 * object, an object given by path): each map of MapTypes, with its key and value type names and
 * sizes (maps of maps: of the inner template), and no other. Read before load.
 */
export function checkObject(obj: BpfObjectHandle, objectPath: string): void {
  const refuse = (what: string) =>
    new DoorstepError('DS_E_ABI_MISMATCH', `the engine object ${objectPath} ${what}`, { hint: 'rebuild (npm run build) so the object and the TypeScript come from the same bpf/include/abi.h and contract.h' });
  const names = obj.mapNames().filter((n) => n.startsWith('ds_'));
  const missing = Object.keys(MapTypes).filter((n) => !names.includes(n));
  const extra = names.filter((n) => !(n in MapTypes));
  if (missing.length > 0 || extra.length > 0) {
    throw refuse(`has other maps than this build's contract (${[...missing.map((n) => `lacks ${n}`), ...extra.map((n) => `has ${n}`)].join(', ')})`);
  }
  const sizes = (spec: MapSpec) => `${spec.keySize}/${spec.valueSize}`;
  for (const [name, c] of Object.entries(MapTypes)) {
    if (c.kind === 'ringbuf') continue; // records, not keys and values: the object names no type for them
    if (c.kind === 'map') {
      const spec = obj.mapSpec(name);
      if (spec.keyType !== c.key || spec.valueType !== c.value || spec.keySize !== c.keySize || spec.valueSize !== c.valueSize) {
        throw refuse(`declares ${name} with ${spec.keyType} keys and ${spec.valueType} values (${sizes(spec)} bytes); the contract says ${c.key} and ${c.value} (${c.keySize}/${c.valueSize})`);
      }
    } else {
      const spec = obj.innerSpec(name); // inner templates carry sizes only (bpf/include/maps.h)
      if (spec.keySize !== c.keySize || spec.valueSize !== c.valueSize) {
        throw refuse(`declares ${name}'s inner maps with ${sizes(spec)}-byte keys/values; the contract's ${c.key}/${c.value} have ${c.keySize}/${c.valueSize}`);
      }
    }
  }
}

/**
 * Which of the object's maps `mapDir` holds pins of: none (a fresh pin root: nothing to adopt) or
 * all (to adopt, after checkPins). Throws when only some are there: another build's engine.
 */
export function pinnedMaps(pinRoot: string, names: readonly string[]): 'none' | 'all' {
  const mapDir = join(pinRoot, 'maps');
  const present = names.filter((n) => existsSync(join(mapDir, n)));
  if (present.length === 0) return 'none';
  if (present.length < names.length) {
    const missing = names.filter((n) => !present.includes(n));
    throw mismatch(pinRoot, `${mapDir} holds an engine of another doorstep version (it lacks ${missing.join(', ')})`);
  }
  return 'all';
}

/** Why a pinned map is not the object's map `name`, or null when it is. */
function difference(name: string, fd: number, ours: MapSpec & { keyType: string | null; valueType: string | null }, inner: MapSpec | undefined): string | null {
  const native = addon();
  const pinned = native.mapInfo(fd);
  if (pinned.type !== ours.type || pinned.keySize !== ours.keySize || pinned.valueSize !== ours.valueSize) {
    return `has ${pinned.keySize}/${pinned.valueSize}-byte keys/values (type ${pinned.type}); this engine's ${name} has ${ours.keySize}/${ours.valueSize} (type ${ours.type})`;
  }
  // libbpf creates maps of maps without BTF: theirs is checked through the inner maps below
  const ofMaps = ours.type === BPF_MAP_TYPE_ARRAY_OF_MAPS || ours.type === BPF_MAP_TYPE_HASH_OF_MAPS;
  if (!ofMaps) {
    const types = native.mapBtfTypes(fd);
    if (types.key !== ours.keyType || types.value !== ours.valueType) {
      return `has ${types.key ?? 'no BTF'} keys and ${types.value ?? 'no BTF'} values; this engine's ${name} has ${ours.keyType} and ${ours.valueType}`;
    }
  }
  if (inner) {
    for (let slot = 0; slot < pinned.maxEntries; slot++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(slot);
      const id = Buffer.alloc(4);
      if (!native.mapLookup(fd, key, id)) continue;
      const innerFd = native.mapFdById(id.readUInt32LE());
      try {
        const held = native.mapInfo(innerFd);
        if (held.type !== inner.type || held.keySize !== inner.keySize || held.valueSize !== inner.valueSize) {
          return `holds in slot ${slot} a map of ${held.keySize}/${held.valueSize}-byte keys/values (type ${held.type}); this engine's inner maps have ${inner.keySize}/${inner.valueSize} (type ${inner.type})`;
        }
      } finally {
        native.closeFd(innerFd);
      }
    }
  }
  return null;
}

/** The ABI version the pinned ds_abi carries (0 when it cannot say: another shape, or no entry). */
function pinnedVersion(fd: number): number {
  const native = addon();
  const info = native.mapInfo(fd);
  const value = Buffer.alloc(sizeOf('ds_abi'));
  if (info.keySize !== 4 || info.valueSize !== value.length || !native.mapLookup(fd, ZERO_KEY, value)) return 0;
  return readField('ds_abi', value, 0, 'version');
}

/**
 * Reuse the maps pinned under `pinRoot` in `obj` (before it loads), after checking that they are
 * its contract: the ABI stamp first (the plainest answer: "another version"), then every map.
 * `innerSpecs`: the object's inner-map templates, read before load.
 */
export function adoptPins(obj: BpfObjectHandle, pinRoot: string, names: readonly string[], innerSpecs: ReadonlyMap<string, MapSpec>): void {
  const native = addon();
  const mapDir = join(pinRoot, 'maps');
  const fds = new Map<string, number>();
  try {
    for (const n of names) fds.set(n, native.objGet(join(mapDir, n)));
    const version = pinnedVersion(fds.get(MapName.ABI) as number);
    if (version !== Limits.ABI_VERSION) {
      throw mismatch(pinRoot, `${mapDir} holds an engine of ABI version ${version || 'unknown'}; this doorstep's is ${Limits.ABI_VERSION}`);
    }
    for (const [n, fd] of fds) {
      const why = difference(n, fd, obj.mapSpec(n), innerSpecs.get(n));
      if (why) throw mismatch(pinRoot, `${join(mapDir, n)} ${why}`);
    }
    for (const [n, fd] of fds) obj.reuseMapFd(n, fd); // libbpf keeps its own duplicate
  } finally {
    for (const fd of fds.values()) native.closeFd(fd);
  }
}

/** Write DS_ABI_VERSION into a new engine's ds_abi and freeze it, before anything is pinned. */
export function stampAbi(abiFd: number): void {
  const native = addon();
  native.mapUpdate(abiFd, ZERO_KEY, encodeStruct('ds_abi', { version: Limits.ABI_VERSION }));
  native.mapFreeze(abiFd);
}
