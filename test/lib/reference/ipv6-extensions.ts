// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the IPv6 extension-header table (docs/datapath.md "IPv6 extension
// headers"): which next-header values are walked, how long each walked header is, and where the
// walk stops. Used for a packet and, with the quote's relaxations, for the packet an ICMPv6 error
// quotes.
import { u16, u32 } from './bytes.js';

const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const AH = 51;
const DESTINATION = 60;
const WALKED = new Set([HOP_BY_HOP, ROUTING, FRAGMENT, AH, DESTINATION]);
const MAX_WALKED = 8;

export interface FragmentHeader {
  /** The fragment header's next header: the identity protocol of the datagram. */
  next: number;
  /** Fragment offset in bytes. */
  offset: number;
  more: boolean;
  id: number;
}

export interface Walk {
  /** The upper-layer protocol; for a later fragment, the fragment header's next header. */
  upper: number;
  /** Offset of the upper-layer header (for a later fragment: just past the fragment header). */
  at: number;
  fragment: FragmentHeader | null;
}

/**
 * Walk the headers from `next` at `at`, every one inside [at, end). In a quote (`quote`) the
 * routing header's segments left is not checked, and a later fragment leaves no quote. Returns
 * the walk, or why the packet is malformed (in a quote: why there is no quote).
 */
export function walkExtensions(f: Uint8Array, next: number, at: number, end: number, quote: boolean): Walk | string {
  let fragment: FragmentHeader | null = null;
  for (let walked = 0; ; walked++) {
    if (!WALKED.has(next)) return { upper: next, at, fragment };
    if (walked === MAX_WALKED) return 'IPv6 extension headers: a ninth walked header';
    if (next === HOP_BY_HOP && walked > 0) return 'IPv6 extension headers: hop-by-hop not directly after the IPv6 header';
    if (next !== FRAGMENT && at + 2 > end) return 'IPv6 extension headers: a header beyond the datagram';
    const length = next === FRAGMENT ? 8 : next === AH ? ((f[at + 1] as number) + 2) * 4 : ((f[at + 1] as number) + 1) * 8;
    if (at + length > end) return 'IPv6 extension headers: a header beyond the datagram';
    if (next === ROUTING && !quote && f[at + 3] !== 0) return 'IPv6 extension headers: routing with segments left ≠ 0';
    if (next === FRAGMENT) {
      if (fragment) return 'IPv6 extension headers: a second fragment header';
      const word = u16(f, at + 2);
      fragment = { next: f[at] as number, offset: word & 0xfff8, more: (word & 1) === 1, id: u32(f, at + 4) };
      if (fragment.offset !== 0) {
        if (quote) return 'ICMP quote: a later fragment';
        return { upper: fragment.next, at: at + 8, fragment };
      }
    }
    next = f[at] as number;
    at += length;
  }
}
