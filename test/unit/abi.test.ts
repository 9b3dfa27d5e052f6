// SPDX-License-Identifier: Apache-2.0
// The kernel/user boundary has one source of truth (bpf/include/abi.h and the map contract beside
// it, contract.h). These tests fail when the committed TypeScript is stale, when abi_btf.c misses
// a type of abi.h, or when a map of the built engine object is not the contract's: another name,
// another key or value type (by BTF name), other sizes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type BtfType, btfToTypeScript, parseBtfJson } from '../../src/abi/btf-to-ts.js';
import { Layouts, Limits, MapTypes, SLOT_TABLES } from '../../src/abi/generated.js';
import { abiObjectPath, engineObjectPath, packageRoot } from '../../src/paths.js';
import { compileSources } from '../../src/policy/compile.js';
import { buildImage } from '../../src/policy/tables/image.js';

const btf = (object: string) => parseBtfJson(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8' }));

describe('ABI', () => {
  it('src/abi/generated.ts is what abi.h generates today', () => {
    const fresh = btfToTypeScript(btf(abiObjectPath));
    const committed = readFileSync(join(packageRoot, 'src/abi/generated.ts'), 'utf8');
    assert.equal(committed, fresh, 'run `npm run gen:abi` and commit the result');
  });

  it('every struct and enum of abi.h reaches the BTF of abi_btf.o (its list of variables is complete)', () => {
    const header = readFileSync(join(packageRoot, 'bpf/include/abi.h'), 'utf8');
    const declared = [...header.matchAll(/^(struct|enum) (ds_\w+) \{/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.ok(declared.length > 30, 'abi.h declares its types at the start of a line');
    const inBtf = new Set(btf(abiObjectPath).types.filter((t) => t.kind === 'STRUCT' || t.kind === 'ENUM').map((t) => `${t.kind.toLowerCase()} ${t.name}`));
    assert.deepEqual(declared.filter((d) => !inBtf.has(d)), [], 'give each a variable in bpf/abi_btf.c');
  });

  it('the engine object has exactly the maps of the contract, each with the contract\'s BTF key and value type names', () => {
    const maps = engineMaps(btf(engineObjectPath));
    assert.deepEqual([...maps.keys()].sort(), Object.keys(MapTypes).sort(), 'maps.h and contract.h declare the same maps');
    for (const [name, contract] of Object.entries(MapTypes)) {
      const def = maps.get(name);
      assert.ok(def, name);
      const outer = { ds_active: 1 } as Record<string, number>;
      if (contract.kind === 'ringbuf') {
        assert.equal(def.type, BPF_MAP_TYPE_RINGBUF, `${name} is a ring buffer`);
        assert.deepEqual([def.key, def.value], [undefined, undefined], `${name} declares no key or value`);
        continue;
      }
      if (contract.kind === 'map') {
        // the names, not only the sizes: ds_session_key, ds_reply_key and ds_frag_key are all 48 bytes
        assert.deepEqual([def.key?.name, def.value?.name], [contract.key, contract.value], `${name}: key and value types`);
        assert.deepEqual([def.key?.size, def.value?.size], [contract.keySize, contract.valueSize], `${name}: key and value sizes`);
        continue;
      }
      // a map of maps: u32 slots holding inner maps whose template (sizes only: see maps.h) fits the contract's types
      assert.equal(def.type, BPF_MAP_TYPE_ARRAY_OF_MAPS, `${name} is a map of maps`);
      assert.equal(def.maxEntries, contract.kind === 'slot-table' ? Limits.SLOTS : outer[name], `${name}: slots`);
      assert.deepEqual([def.inner?.key?.size, def.inner?.value?.size], [contract.keySize, contract.valueSize], `${name}: inner key and value sizes`);
    }
  });

  it('the contract\'s types are abi.h\'s layouts, and every policy image table has its map\'s sizes', () => {
    for (const [name, c] of Object.entries(MapTypes)) {
      for (const [type, size] of [[c.key, c.keySize], [c.value, c.valueSize]] as const) {
        if (type === null) continue;
        const expected = type in Layouts ? Layouts[type as keyof typeof Layouts].size : SCALARS[type];
        assert.equal(size, expected, `${name}: ${type}`);
      }
    }
    const { ir, tables } = compileSources([{ file: 'abi.yaml', text: 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: r, action: allow, from: [10.0.0.0/8, "2001:db8::/32"], protocol: tcp, ports: [443] }\n' }]);
    const image = buildImage(ir, tables);
    assert.deepEqual(Object.keys(image.tables), [...SLOT_TABLES], 'an image fills exactly the slot tables');
    for (const name of SLOT_TABLES) {
      assert.deepEqual([image.tables[name].keySize, image.tables[name].valueSize], [MapTypes[name].keySize, MapTypes[name].valueSize], name);
    }
  });
});

const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
const BPF_MAP_TYPE_RINGBUF = 27;
const SCALARS: Record<string, number> = { __u32: 4, __u64: 8 };

interface TypeRef {
  name: string;
  size: number;
}
interface MapDef {
  type: number;
  maxEntries: number;
  key?: TypeRef;
  value?: TypeRef;
  inner?: MapDef;
}

/**
 * The maps of an object as its BTF declares them (libbpf's map definitions, read independently of
 * scripts/gen-abi.ts): __uint(x, N) is a pointer to int[N]; __type(key, T) a pointer to T (a
 * typedef keeps its own name: __u32); key_size/value_size give a size only; __array(values, S) an
 * array of pointers to the inner template S.
 */
function engineMaps(dump: { types: BtfType[] }): Map<string, MapDef> {
  const types = new Map(dump.types.map((t) => [t.id, t]));
  const get = (id: number): BtfType => {
    const t = types.get(id);
    assert.ok(t, `BTF type ${id}`);
    return t;
  };
  const strip = (id: number): BtfType => {
    let t = get(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE'].includes(t.kind)) t = get(t.type_id ?? 0);
    return t;
  };
  const sizeOf = (t: BtfType): number => (t.kind === 'ARRAY' ? (t.nr_elems ?? 0) * sizeOf(strip(t.type_id ?? 0)) : (t.size ?? 0));
  const definition = (def: BtfType): MapDef => {
    const out: MapDef = { type: 0, maxEntries: 0 };
    for (const m of def.members ?? []) {
      const pointee = get(get(m.type_id).type_id ?? 0); // every member is a pointer
      const n = strip(pointee.id).nr_elems ?? 0;
      if (m.name === 'type') out.type = n;
      else if (m.name === 'max_entries') out.maxEntries = n;
      else if (m.name === 'key' || m.name === 'value') out[m.name] = { name: pointee.name ?? '', size: sizeOf(strip(pointee.id)) };
      else if (m.name === 'key_size' || m.name === 'value_size') out[m.name === 'key_size' ? 'key' : 'value'] = { name: '', size: n };
    }
    const values = def.members?.find((m) => m.name === 'values');
    if (values) out.inner = definition(strip(get(strip(values.type_id).type_id ?? 0).type_id ?? 0));
    return out;
  };
  const section = dump.types.find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  assert.ok(section, '.maps section');
  const out = new Map<string, MapDef>();
  for (const v of section.vars ?? []) {
    const variable = get(v.type_id);
    out.set(variable.name ?? '', definition(strip(variable.type_id ?? 0)));
  }
  return out;
}
