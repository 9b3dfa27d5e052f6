// SPDX-License-Identifier: Apache-2.0
// The native addon holds every key and value buffer it is given to the map's own key size and
// value bytes (the kernel's, per-CPU maps: an 8-byte-aligned copy per possible CPU): a buffer of
// another size is refused with a RangeError naming the map, before any syscall could read or
// write past it; a buffer of the right size works. Maps made here, freed at the end.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addon } from '../../src/engine/native.js';

const HASH = 1;
const ARRAY = 2;
const PERCPU_ARRAY = 6;
const ARRAY_OF_MAPS = 12;

describe('native addon: buffers against the map\'s own key and value sizes', () => {
  const native = addon();
  const cpus = native.numPossibleCpus();
  /** 8-byte keys, 16-byte values. */
  let hash: number;
  /** u32 keys, 12-byte values per CPU: 16 bytes a CPU in a buffer. */
  let perCpu: number;
  /** u32 keys, 8-byte values (what mapClearBytes takes as a summary, and as the map it clears). */
  let array: number;
  /** u32 keys of 2 slots holding `array`-like maps. */
  let outer: number;
  const fds: number[] = [];
  const key = (n: number, size = 8) => {
    const b = Buffer.alloc(size);
    b.writeUInt32LE(n);
    return b;
  };

  before(() => {
    hash = native.mapCreate(HASH, 8, 16, 16, 0, -1, 'h18_sz_hash');
    perCpu = native.mapCreate(PERCPU_ARRAY, 4, 12, 4, 0, -1, 'h18_sz_pcpu');
    array = native.mapCreate(ARRAY, 4, 8, 64, 0, -1, 'h18_sz_array');
    outer = native.mapCreate(ARRAY_OF_MAPS, 4, 4, 2, 0, array, 'h18_sz_outer');
    fds.push(hash, perCpu, array, outer);
  });
  after(() => {
    for (const fd of fds) native.closeFd(fd);
  });

  /** The call is refused with a RangeError that names the map and the size it has. */
  const refused = (call: () => unknown, map: string, size: RegExp) =>
    assert.throws(call, (e: unknown) => e instanceof RangeError && e.message.includes(`map ${map}`) && size.test(e.message), String(call));

  it('single-entry calls: lookup, update, delete, next key', () => {
    native.mapUpdate(hash, key(1), Buffer.alloc(16, 7));
    const value = Buffer.alloc(16);
    assert.equal(native.mapLookup(hash, key(1), value), true);
    assert.deepEqual(value, Buffer.alloc(16, 7));

    refused(() => native.mapLookup(hash, key(1), Buffer.alloc(8)), 'h18_sz_hash', /values of 8 bytes .* values take 16 bytes/);
    refused(() => native.mapLookup(hash, key(1, 4), value), 'h18_sz_hash', /a 4-byte key .* keys have 8 bytes/);
    refused(() => native.mapUpdate(hash, key(1), Buffer.alloc(32)), 'h18_sz_hash', /values of 32 bytes/);
    refused(() => native.mapUpdate(hash, key(2, 48), Buffer.alloc(16)), 'h18_sz_hash', /a 48-byte key/);
    refused(() => native.mapDelete(hash, key(1, 4)), 'h18_sz_hash', /a 4-byte key/);
    refused(() => native.mapNextKey(hash, null, Buffer.alloc(4)), 'h18_sz_hash', /a 4-byte key/);
    refused(() => native.mapNextKey(hash, Buffer.alloc(2), Buffer.alloc(8)), 'h18_sz_hash', /a 2-byte key/);
    // nothing was written by the refused calls
    assert.equal(native.mapLookup(hash, key(1), value), true);
    assert.deepEqual(value, Buffer.alloc(16, 7));
    assert.equal(native.mapLookup(hash, key(2), value), false);
    assert.equal(native.mapDelete(hash, key(1)), true);
  });

  it('per-CPU values take an 8-byte-aligned copy per possible CPU', () => {
    const values = Buffer.alloc(16 * cpus);
    for (let c = 0; c < cpus; c++) values.writeUInt32LE(100 + c, c * 16);
    native.mapUpdate(perCpu, key(0, 4), values);
    const read = Buffer.alloc(16 * cpus);
    assert.equal(native.mapLookup(perCpu, key(0, 4), read), true);
    for (let c = 0; c < cpus; c++) assert.equal(read.readUInt32LE(c * 16), 100 + c);
    refused(() => native.mapLookup(perCpu, key(0, 4), Buffer.alloc(12)), 'h18_sz_pcpu', new RegExp(`values of 12 bytes .* take ${16 * cpus} bytes \\(12 per CPU`));
    refused(() => native.mapUpdate(perCpu, key(0, 4), Buffer.alloc(12 * cpus)), 'h18_sz_pcpu', new RegExp(`take ${16 * cpus} bytes`));
    refused(() => native.mapDump(perCpu, 4, 12, 4), 'h18_sz_pcpu', /values of 12 bytes/);
  });

  it('batch calls: the sizes they are told must be the map\'s', async () => {
    refused(() => native.mapUpdateBatch(hash, Buffer.alloc(48), Buffer.alloc(48), 3, 16, 16), 'h18_sz_hash', /keys of 16 bytes/);
    refused(() => native.mapUpdateBatch(hash, Buffer.alloc(48), Buffer.alloc(48), 4, 8, 12), 'h18_sz_hash', /values of 12 bytes/);
    assert.throws(() => native.mapUpdateBatchAsync(hash, Buffer.alloc(48), Buffer.alloc(48), 4, 8, 12), RangeError);
    refused(() => native.mapDump(hash, 8, 8, 16), 'h18_sz_hash', /values of 8 bytes/);
    refused(() => native.mapReadBatch(hash, 8, 80, 16, null), 'h18_sz_hash', /values of 80 bytes/);
    refused(() => native.mapDumpAsync(hash, 8, 8, 16), 'h18_sz_hash', /values of 8 bytes/);
    refused(() => native.mapCountAsync(hash, 4, 16, 16), 'h18_sz_hash', /keys of 4 bytes/);
    refused(() => native.mapLookupMany([hash], Buffer.alloc(48), 1, 48, 16), 'h18_sz_hash', /keys of 48 bytes/);
    refused(() => native.mapClearBytes(array, 16, 64, 0, 8), 'h18_sz_array', /values of 16 bytes/);
    refused(() => native.mapClearBytes(array, 8, 64, 0, 8, hash), 'h18_sz_hash', /keys of 4 bytes/);
    // the right sizes work
    const keys = Buffer.concat([key(5), key(6)]);
    native.mapUpdateBatch(hash, keys, Buffer.alloc(32, 1), 2, 8, 16);
    assert.equal(native.mapDump(hash, 8, 16, 16).count, 2);
    assert.equal((await native.mapDumpAsync(hash, 8, 16, 16)).keys.toString('hex'), native.mapDump(hash, 8, 16, 16).keys.toString('hex'));
    assert.equal(await native.mapCountAsync(hash, 8, 16, 16), 2);
    assert.equal(await native.mapCountAsync(hash, 8, 16, 16, 0), 2, 'both values\' byte 0 is 1');
    assert.equal(native.mapLookupMany([hash], keys, 2, 8, 16).found.toString('hex'), '0101');
  });

  it('mapDumpAsync with skipZero hands back only the values that are not all zero, and says how many it walked', async () => {
    // the array's 64 entries of 8 bytes: three not all zero (one of them by its last byte only)
    const values = Buffer.alloc(64 * 8);
    values.writeUInt32LE(9, 3 * 8);
    values[40 * 8 + 7] = 1;
    values.writeUInt32LE(7, 63 * 8);
    native.mapUpdateBatch(array, Buffer.concat(Array.from({ length: 64 }, (_, i) => key(i, 4))), values, 64, 4, 8);
    const whole = await native.mapDumpAsync(array, 4, 8, 64);
    assert.deepEqual([whole.count, whole.walked, whole.values], [64, 64, values]);
    const sparse = await native.mapDumpAsync(array, 4, 8, 64, null, true);
    assert.deepEqual([sparse.count, sparse.walked], [3, 64]);
    assert.deepEqual(sparse.keys, Buffer.concat([key(3, 4), key(40, 4), key(63, 4)]));
    assert.deepEqual(sparse.values, Buffer.concat([values.subarray(3 * 8, 4 * 8), values.subarray(40 * 8, 41 * 8), values.subarray(63 * 8)]));
    const after = await native.mapDumpAsync(array, 4, 8, 31, key(9, 4), true); // keys 10 to 40
    assert.deepEqual([after.count, after.walked, after.keys], [1, 31, key(40, 4)], 'from the key after `after`, `maxCount` walked');
    native.mapUpdateBatch(array, Buffer.concat(Array.from({ length: 64 }, (_, i) => key(i, 4))), Buffer.alloc(64 * 8), 64, 4, 8);
  });

  it('map-in-map writes: the slot key must be the outer map\'s', () => {
    refused(() => native.mapUpdateFd(outer, key(0, 8), array), 'h18_sz_outer', /a 8-byte key .* keys have 4 bytes/);
    refused(() => native.mapUpdateFdMany([[outer, Buffer.alloc(2), array]]), 'h18_sz_outer', /a 2-byte key/);
    native.mapUpdateFd(outer, key(0, 4), array);
    const id = Buffer.alloc(4);
    assert.equal(native.mapLookup(outer, key(0, 4), id), true);
    assert.equal(id.readUInt32LE(), native.mapInfo(array).id);
  });
});
