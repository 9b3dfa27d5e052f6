// SPDX-License-Identifier: Apache-2.0
// Reference datapath, ICMP errors (docs/datapath.md "ICMP errors"): which messages are errors,
// and the flow of the packet an error quotes, parsed from 8 bytes past the ICMP header inside the
// outer datagram. A quote that does not parse is no quote.
import { u16 } from './bytes.js';
import { walkExtensions } from './ipv6-extensions.js';
import type { Flow } from './parse.js';
import { readPorts } from './transport.js';

const V4_ERRORS = new Set([3, 11, 12]);
const V6_ERRORS = new Set([1, 2, 3, 4]);

export interface Quote extends Flow {
  src: Uint8Array;
  dst: Uint8Array;
}

/** ICMP (1) type 3, 11, 12 in IPv4; ICMPv6 (58) type 1–4 in IPv6. */
export function isIcmpError(family: 4 | 6, flow: Flow): boolean {
  const type = flow.dport >> 8;
  return family === 4 ? flow.proto === 1 && V4_ERRORS.has(type) : flow.proto === 58 && V6_ERRORS.has(type);
}

/** The quoted flow of an error whose ICMP header starts at `l4`, or null when the quote does not parse. */
export function parseQuote(f: Uint8Array, family: 4 | 6, l4: number, end: number): Quote | null {
  const q = l4 + 8;
  if (family === 4) {
    if (q + 20 > end || f[q]! >> 4 !== 4) return null;
    const ihl = f[q]! & 15;
    if (ihl < 5 || q + ihl * 4 > end) return null;
    if ((u16(f, q + 6) & 0x1fff) !== 0) return null;
    const proto = f[q + 9]!;
    const ports = readPorts(f, proto, q + ihl * 4, end, true);
    if (typeof ports === 'string') return null;
    return { src: f.slice(q + 12, q + 16), dst: f.slice(q + 16, q + 20), proto, ...ports };
  }
  if (q + 40 > end || f[q]! >> 4 !== 6) return null;
  const walk = walkExtensions(f, f[q + 6]!, q + 40, end, true);
  if (typeof walk === 'string') return null;
  const ports = readPorts(f, walk.upper, walk.at, end, true);
  if (typeof ports === 'string') return null;
  return { src: f.slice(q + 8, q + 24), dst: f.slice(q + 24, q + 40), proto: walk.upper, ...ports };
}
