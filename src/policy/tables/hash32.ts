// SPDX-License-Identifier: Apache-2.0
// 32-bit hashing of integers for the compiler's in-memory hash tables, where numeric keys are far
// cheaper than strings built to serve as keys. MurmurHash3's mixing step, one word at a time.
// Never persisted: the policy version is a SHA-256 (ir/canonical.ts).

/** Mixes the 32-bit word `x` into the running hash `h`. */
export function mix32(h: number, x: number): number {
  let k = Math.imul(x, 0xcc9e2d51);
  k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
  h ^= k;
  return (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
}
