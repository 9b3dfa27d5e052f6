// SPDX-License-Identifier: Apache-2.0
// The kernel/user boundary has one source of truth (bpf/include/abi.h). These tests fail when the
// committed TypeScript layouts are stale, or when a map of the built engine object disagrees
// with the layout the TypeScript side writes into it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type BtfType, btfToTypeScript } from '../../src/abi/btf-to-ts.js';
import { Layouts } from '../../src/abi/generated.js';
import { decodeSessionKey, decodeSessionValue, readSessionKey, readSessionValue, SESSION_VALUE_SIZE } from '../../src/abi/records.js';
import { abiObjectPath, engineObjectPath, packageRoot } from '../../src/paths.js';

const btf = (object: string) => JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8' })) as { types: BtfType[] };

describe('ABI', () => {
  it('src/abi/generated.ts is what abi.h generates today', () => {
    const fresh = btfToTypeScript(btf(abiObjectPath));
    const committed = readFileSync(join(packageRoot, 'src/abi/generated.ts'), 'utf8');
    assert.equal(committed, fresh, 'run `npm run gen:abi` and commit the result');
  });

  it('every map of the engine object has the key and value sizes of the TypeScript layouts', () => {
    const types = new Map(btf(engineObjectPath).types.map((t) => [t.id, t]));
    const resolve = (id: number): BtfType => {
      let t = types.get(id);
      while (t && ['TYPEDEF', 'CONST', 'VOLATILE'].includes(t.kind)) t = types.get(t.type_id ?? 0);
      assert.ok(t, `BTF type ${id}`);
      return t;
    };
    const sizeOf = (t: BtfType): number => (t.kind === 'ARRAY' ? (t.nr_elems ?? 0) * sizeOf(resolve(t.type_id ?? 0)) : (t.size ?? 0));
    /** key and value sizes of a map definition struct: __type(key, T) is a pointer to T; __uint(key_size, N) a pointer to int[N]. */
    const sizes = (def: BtfType) => {
      const out: Record<string, number> = {};
      for (const m of def.members ?? []) {
        const target = resolve(resolve(m.type_id).type_id ?? 0);
        if (m.name === 'key' || m.name === 'value') out[m.name] = sizeOf(target);
        if (m.name === 'key_size' || m.name === 'value_size') out[m.name.replace('_size', '')] = target.nr_elems ?? 0;
      }
      return out;
    };
    const defs = new Map<string, Record<string, number>>();
    const maps = [...types.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps');
    assert.ok(maps, '.maps section');
    for (const v of maps.vars ?? []) {
      const variable = types.get(v.type_id);
      const def = resolve(variable?.type_id ?? 0);
      defs.set(variable?.name ?? '', sizes(def));
      const values = def.members?.find((m) => m.name === 'values');
      if (values) {
        // map-in-map: values is an array of pointers to the inner template
        const inner = resolve(resolve(resolve(values.type_id).type_id ?? 0).type_id ?? 0);
        defs.set(`${variable?.name}.inner`, sizes(inner));
      }
    }
    const L = (name: keyof typeof Layouts) => Layouts[name].size;
    const expected: Record<string, [number, number]> = {
      ds_sessions: [L('ds_session_key'), L('ds_session_value')],
      ds_frags: [L('ds_frag_key'), L('ds_frag_value')],
      ds_denies: [L('ds_session_key'), L('ds_session_value')],
      ds_flow_filter: [4, L('ds_flow_filter_entry')],
      ds_flow_coarse: [4, 8],
      ds_flood_samples: [4, L('ds_flood_sample')],
      ds_scratch: [4, L('ds_session_value')],
      ds_stats: [4, L('ds_cpu_stats')],
      ds_rule_stats: [4, L('ds_rule_stat')],
      ds_failsafe_v2: [L('ds_prefix_key'), L('ds_failsafe_value')],
      ds_tenantnet_v2: [L('ds_prefix_key'), 4],
      ds_settings: [4, L('ds_settings')],
      ds_ifaces: [4, L('ds_iface')],
      ds_replies: [L('ds_reply_key'), L('ds_session_key')],
      'ds_active.inner': [4, L('ds_policy_meta')],
      'ds_src4_top.inner': [4, L('ds_v4_top')],
      'ds_dst4_top.inner': [4, L('ds_v4_top')],
      'ds_src4_long.inner': [4, L('ds_v4_slot')],
      'ds_dst4_long.inner': [4, L('ds_v4_slot')],
      'ds_src6.inner': [L('ds_lpm6_key'), L('ds_addr_class')],
      'ds_dst6.inner': [L('ds_lpm6_key'), L('ds_addr_class')],
      'ds_svc.inner': [4, 4],
      'ds_target.inner': [L('ds_target_key'), L('ds_target_value')],
      'ds_tenant.inner': [4, 4],
      'ds_tenant_tgt.inner': [L('ds_tenant_target_key'), 4],
      'ds_verdict.inner': [L('ds_verdict_key'), L('ds_verdict_value')],
    };
    for (const [name, [key, value]] of Object.entries(expected)) {
      const got = defs.get(name);
      assert.ok(got, `map ${name} exists in the engine object`);
      assert.deepEqual([got.key, got.value], [key, value], `${name}: key/value sizes`);
    }
    // and nothing in the object goes unchecked
    const unchecked = [...defs.keys()].filter((n) => !(n in expected) && !['ds_events', 'ds_dirty', 'ds_active', 'ds_src4_top', 'ds_dst4_top', 'ds_src4_long', 'ds_dst4_long', 'ds_src6', 'ds_dst6', 'ds_svc', 'ds_target', 'ds_tenant', 'ds_tenant_tgt', 'ds_verdict'].includes(n));
    assert.deepEqual(unchecked, []);
  });
});

describe('ABI: fast session decoders', () => {
  it('readSessionKey and readSessionValue equal decodeSessionKey and decodeSessionValue on random bytes', () => {
    const buf = randomBytes(SESSION_VALUE_SIZE * 64 + 7);
    for (let at = 0; at + SESSION_VALUE_SIZE <= buf.length; at += 13) {
      assert.deepEqual({ ...readSessionKey(buf, at), src: [...readSessionKey(buf, at).src], dst: [...readSessionKey(buf, at).dst] }, { ...decodeSessionKey(buf, at), src: [...decodeSessionKey(buf, at).src], dst: [...decodeSessionKey(buf, at).dst] });
      // u64 counters beyond 2^53 read differently by construction (both lossy): keep them small
      const v = Buffer.from(buf.subarray(at, at + SESSION_VALUE_SIZE));
      for (const f of ['packets', 'bytes', 'base_packets', 'base_bytes', 'prev_packets', 'prev_bytes'] as const) v.fill(0, Layouts.ds_session_value.fields[f].offset + 6, Layouts.ds_session_value.fields[f].offset + 8);
      assert.deepEqual(readSessionValue(v), decodeSessionValue(v));
    }
  });
});

