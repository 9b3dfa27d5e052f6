// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, (c) byte-level mutations of valid frames: bit flips and byte
// overwrites (mostly in the headers), truncation, extension. A test run needs at least the
// 14-byte Ethernet header, so no mutation cuts below it.
import type { Ctx } from './build.js';
import { type Bytes, cat } from './wire.js';

/** Values that mean something in some header field: versions, lengths, next headers, EtherTypes. */
const INTERESTING = [0x00, 0xff, 0x80, 0x7f, 0x01, 0x05, 0x06, 0x0f, 0x11, 0x2b, 0x2c, 0x32, 0x33, 0x3a, 0x3b, 0x3c, 0x40, 0x45, 0x4f, 0x60, 0x81, 0x86, 0x87, 0x88, 0xdd];

const headerPosition = (c: Ctx, f: Bytes) => (c.r.chance(0.85) ? c.r.int(12, Math.min(f.length, 110) - 1) : c.r.int(0, f.length - 1));

export const MUTATIONS: Record<string, (c: Ctx, frame: Bytes) => Bytes> = {
  'mutate-bit-flip': (c, f) => {
    const out = f.slice();
    for (let k = c.r.int(1, 3); k > 0; k--) out[headerPosition(c, out)]! ^= 1 << c.r.int(0, 7);
    return out;
  },
  'mutate-overwrite': (c, f) => {
    const out = f.slice();
    for (let k = c.r.int(1, 2); k > 0; k--) out[headerPosition(c, out)] = c.r.chance(0.7) ? c.r.pick(INTERESTING) : c.r.int(0, 255);
    return out;
  },
  'mutate-truncate': (c, f) => f.slice(0, f.length <= 14 ? f.length : c.r.int(14, f.length - 1)),
  'mutate-extend': (c, f) => cat(f, new Uint8Array(c.r.int(1, 64)).map(() => c.r.int(0, 255))),
};
