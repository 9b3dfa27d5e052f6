// SPDX-License-Identifier: Apache-2.0
// Where ds_denies keeps a denied flow: an array of 2-way buckets, the bucket chosen by the flow's
// digest (bpf/include/session.h: ds_flow_digest, ds_deny_bucket; the constants are abi.h's enum
// ds_digest). The agent takes a marked session's digest from its ds_dirty record; tools and tests
// compute a flow's digest here.
import { Digest } from '../abi/generated.js';
import { SESSION_KEY_SIZE } from '../abi/records.js';
import { DoorstepError } from '../errors.js';

/** Where ds_dirty.digest's high half lies in its 8 bytes (little-endian). */
const HIGH_HALF_AT = 4;
const u64 = (hi: number, lo: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);
const SEED = u64(Digest.SEED_HI, Digest.SEED_LO);
const MULTIPLIERS = [
  u64(Digest.K0_HI, Digest.K0_LO), u64(Digest.K1_HI, Digest.K1_LO), u64(Digest.K2_HI, Digest.K2_LO), u64(Digest.K3_HI, Digest.K3_LO),
  u64(Digest.K4_HI, Digest.K4_LO), u64(Digest.K5_HI, Digest.K5_LO), u64(Digest.K6_HI, Digest.K6_LO), u64(Digest.K7_HI, Digest.K7_LO),
  u64(Digest.K8_HI, Digest.K8_LO), u64(Digest.K9_HI, Digest.K9_LO), u64(Digest.K10_HI, Digest.K10_LO), u64(Digest.K11_HI, Digest.K11_LO),
];

/** ds_settings.deny_bucket_shift for a ds_denies of `entries` ways: 2^(32 - shift) buckets of two. */
export function denyBucketShift(entries: number): number {
  const bits = Math.log2(entries);
  if (!Number.isInteger(bits) || bits < 2 || bits > 31) {
    throw new DoorstepError('DS_E_USAGE', `the denied-session cache cannot have ${entries} entries`, {
      hint: 'give a power of two from 4 to 2^31 (ds_denies is made of 2-way buckets)',
    });
  }
  return 33 - bits;
}

/** The first way of the bucket of the flow whose digest (8 bytes, as ds_dirty carries it) is at `at` in `digests`; the second is the next. */
export function denyBucketWay(digests: Buffer, at: number, shift: number): number {
  return (Math.imul(digests.readUInt32LE(at + HIGH_HALF_AT), Digest.BUCKET_MULTIPLIER) >>> shift) * 2;
}

/** The digest of a flow (its SESSION_KEY_SIZE bytes), 8 bytes as a ds_dirty record carries it: for one flow at a time (BigInt arithmetic). */
export function flowDigest(flow: Buffer): Buffer {
  let h = SEED;
  for (let i = 0; i < SESSION_KEY_SIZE / 4; i++) h += BigInt(flow.readUInt32LE(i * 4)) * MULTIPLIERS[i]!;
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt.asUintN(64, h));
  return out;
}
