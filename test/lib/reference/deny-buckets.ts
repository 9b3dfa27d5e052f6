// SPDX-License-Identifier: Apache-2.0
// The denied-session cache's buckets, from docs/datapath.md (pipeline, item 4) alone: a flow's 64-bit
// digest is a seed plus its twelve 32-bit words (little-endian) times odd constants, mod 2^64; its
// bucket is the digest's high half times 0x9e3779b1 (mod 2^32), the top log2(ways / 2) bits; a
// bucket has two ways. The constants are written out here, not imported: the oracle must not
// share the code it checks.
import { encodeSessionKey, type SessionKey } from '../../../src/abi/records.js';

const SEED = 0x9e3779b97f4a7c15n;
const MULTIPLIERS = [
  0x9e3779b97f4a7c15n, 0xc2b2ae3d27d4eb4fn, 0x165667b19e3779f9n, 0xd6e8feb86659fd93n, 0xff51afd7ed558ccdn, 0xc4ceb9fe1a85ec53n,
  0x94d049bb133111ebn, 0xbf58476d1ce4e5b9n, 0x2545f4914f6cdd1dn, 0x9fb21c651e98df25n, 0xd1b54a32d192ed03n, 0xaef17502108ef2d9n,
];

/** The digest of a flow, from its 48 bytes as the engine keys it. */
export function digestOf(flow: Buffer): bigint {
  let h = SEED;
  for (let i = 0; i < 12; i++) h += BigInt(flow.readUInt32LE(i * 4)) * MULTIPLIERS[i]!;
  return BigInt.asUintN(64, h);
}

/** The bucket of a flow in a denied-session cache of `ways` entries (a power of two). */
export function bucketOf(key: SessionKey | Buffer, ways: number): number {
  const high = digestOf(Buffer.isBuffer(key) ? key : encodeSessionKey(key)) >> 32n;
  return Number(BigInt.asUintN(32, high * 0x9e3779b1n) >> BigInt(33 - Math.log2(ways)));
}
