// SPDX-License-Identifier: Apache-2.0
// Reference datapath: reading big-endian fields out of a frame, and addresses as map-key text.
// Owns nothing but these helpers; every layer of the reference reads bytes through them.

export const u8 = (f: Uint8Array, at: number): number => f[at] as number;
export const u16 = (f: Uint8Array, at: number): number => ((f[at] as number) << 8) | (f[at + 1] as number);
export const u32 = (f: Uint8Array, at: number): number => ((u16(f, at) << 16) | u16(f, at + 2)) >>> 0;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Bytes as lowercase hex, no separators. */
export function hex(b: Uint8Array, from = 0, to = b.length): string {
  let s = '';
  for (let i = from; i < to; i++) s += HEX[b[i] as number];
  return s;
}

/** Does `addr` (4 or 16 bytes) lie in the prefix `prefix`/`len` of the same length? */
export function inPrefix(addr: Uint8Array, prefix: Uint8Array, len: number): boolean {
  if (addr.length !== prefix.length) return false;
  const whole = len >>> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== prefix[i]) return false;
  const rest = len & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (((addr[whole] as number) ^ (prefix[whole] as number)) & mask) === 0;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
