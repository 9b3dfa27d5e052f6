// SPDX-License-Identifier: Apache-2.0
// IP prefixes: parsing user text ("10.0.0.0/8", "2001:db8::1") into normalized `Cidr`s,
// canonical text (IPv6 per RFC 5952), and family-aware prefix matching. Pure, no I/O.

import { isIPv4, isIPv6 } from 'node:net';
import type { Cidr } from './ir.js';

/** A parsed prefix, or why the text is not one. */
export type CidrParse = Cidr | { problem: string };

const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/** Parses "addr/len" or a bare address (a host prefix). Host bits must be zero. */
export function parseCidr(text: string): CidrParse {
  return parseIPv4Strict(text) ?? parseCidrSlow(text);
}

/**
 * The fast path for the common case (a million-entry feed is IPv4): a strict "a.b.c.d" or
 * "a.b.c.d/len" (no leading zeros, octets to 255, length to 32, host bits zero), on 32-bit
 * integers; undefined for anything else, which then takes the general path below.
 */
function parseIPv4Strict(text: string): Cidr | undefined {
  const n = text.length;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined; // leading zero
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return undefined;
    } else if (c === 0x2e && digits > 0 && dots < 3) {
      value = (value << 8) | octet;
      octet = 0;
      digits = 0;
      dots++;
    } else break;
  }
  if (digits === 0 || dots !== 3) return undefined;
  value = ((value << 8) | octet) >>> 0;
  if (i === n) return { family: 4, addr: ipv4Bytes(value), len: 32, text: `${text}/32` };
  if (text.charCodeAt(i) !== 0x2f /* / */ || i + 1 === n || n - i - 1 > 2) return undefined;
  let len = 0;
  for (i++; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || (len === 0 && i + 1 < n && c === 0x30)) return undefined;
    len = len * 10 + (c - 0x30);
  }
  // Host bits are the low 32 - len bits; "<< 32" would shift by 0, hence the /32 case.
  if (len > 32 || (len < 32 && (value << len) !== 0)) return undefined;
  return { family: 4, addr: ipv4Bytes(value), len, text };
}

/** Everything else: IPv6, errors (with their messages), and IPv4 with host bits set. */
function parseCidrSlow(text: string): CidrParse {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  if (isIPv4(addrText)) return parseCidr4(text, addrText, lenText);
  if (!isIPv6(addrText) || addrText.includes('%')) {
    return { problem: `"${text}" is not an IP address or CIDR (expected e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)` };
  }
  const addr = parseIPv6(addrText);
  const len = parseLength(lenText, 128);
  if (len === undefined) return { problem: badLength(text, 6) };
  const network = maskAddress(addr, len);
  if (!bytesEqual(network, addr)) return { problem: hostBitsSet(text, formatCidr(6, network, len), formatCidr(6, addr, 128)) };
  return { family: 6, addr, len, text: formatCidr(6, addr, len) };
}

/** IPv4 the fast scan did not take: invalid lengths and host bits set, with their messages. */
function parseCidr4(text: string, addrText: string, lenText: string | undefined): CidrParse {
  let value = 0;
  for (const octet of addrText.split('.')) value = value * 256 + Number(octet);
  const len = parseLength(lenText, 32);
  if (len === undefined) return { problem: badLength(text, 4) };
  const network = len === 0 ? 0 : (value & (-1 << (32 - len))) >>> 0;
  if (network !== value) return { problem: hostBitsSet(text, `${dotted(network)}/${len}`, `${addrText}/32`) };
  // Valid input with a "/len" is already canonical: isIPv4 refuses leading zeros, and so does PREFIX_LENGTH.
  return { family: 4, addr: ipv4Bytes(value), len, text: lenText === undefined ? `${addrText}/32` : text };
}

function parseLength(lenText: string | undefined, max: number): number | undefined {
  if (lenText === undefined) return max;
  if (!PREFIX_LENGTH.test(lenText) || Number(lenText) > max) return undefined;
  return Number(lenText);
}

function badLength(text: string, family: 4 | 6): string {
  return `"${text}" has an invalid prefix length; IPv${family} allows /0 to /${family === 4 ? 32 : 128}`;
}

function hostBitsSet(text: string, network: string, host: string): string {
  return `"${text}" has host bits set; write ${network} for the network, or ${host} for the single host`;
}

/** Builds a normalized Cidr from a network address (host bits must already be zero). */
export function makeCidr(family: 4 | 6, addr: Uint8Array, len: number): Cidr {
  return { family, addr, len, text: formatCidr(family, addr, len) };
}

/** IPv4 prefix from a 32-bit unsigned network address. */
export function makeCidr4(addr: number, len: number): Cidr {
  return { family: 4, addr: ipv4Bytes(addr), len, text: `${dotted(addr)}/${len}` };
}

let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * The 4 bytes of an IPv4 address. Carved from a shared 64 KiB slab: one ArrayBuffer per address
 * would cost a million allocations for a million-CIDR feed. Read `addr` through the view (its
 * byteOffset matters), never through `addr.buffer` alone.
 */
function ipv4Bytes(value: number): Uint8Array {
  if (slabUsed + 4 > slab.length) {
    slab = new Uint8Array(65536);
    slabUsed = 0;
  }
  const at = slabUsed;
  slabUsed += 4;
  slab[at] = value >>> 24;
  slab[at + 1] = (value >>> 16) & 255;
  slab[at + 2] = (value >>> 8) & 255;
  slab[at + 3] = value & 255;
  return new Uint8Array(slab.buffer, at, 4);
}

function dotted(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** The 32-bit unsigned value of an IPv4 address. */
export function ipv4Number(addr: Uint8Array): number {
  return ((addr[0]! << 24) | (addr[1]! << 16) | (addr[2]! << 8) | addr[3]!) >>> 0;
}

/** True when `addr` (of `family`) lies inside `cidr`. */
export function cidrContains(cidr: Cidr, family: 4 | 6, addr: Uint8Array): boolean {
  if (cidr.family !== family) return false;
  const whole = cidr.len >>> 3;
  for (let i = 0; i < whole; i++) if (cidr.addr[i] !== addr[i]) return false;
  const rest = cidr.len & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((addr[whole]! ^ cidr.addr[whole]!) & mask) === 0;
}

/** A copy of `addr` with every bit after the first `len` cleared. */
export function maskAddress(addr: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(addr.length);
  const whole = len >>> 3;
  out.set(addr.subarray(0, whole));
  const rest = len & 7;
  if (rest !== 0) out[whole] = addr[whole]! & ((0xff << (8 - rest)) & 0xff);
  return out;
}

export function formatCidr(family: 4 | 6, addr: Uint8Array, len: number): string {
  return `${formatAddress(family, addr)}/${len}`;
}

/** Dotted quad for IPv4; RFC 5952 for IPv6 (lowercase, no leading zeros, longest zero run as "::"). */
export function formatAddress(family: 4 | 6, addr: Uint8Array): string {
  if (family === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((addr[i]! << 8) | addr[i + 1]!);
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((v) => v.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Parses an address already validated by `isIPv6` (may end in an embedded IPv4 address). */
function parseIPv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const words = (groups: string[]): number[] =>
    groups.flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
  const headWords = words(headGroups);
  const tailWords = words(tailGroups);
  const all = [...headWords, ...new Array<number>(8 - headWords.length - tailWords.length).fill(0), ...tailWords];
  all.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & 255;
  });
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
