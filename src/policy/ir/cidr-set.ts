// SPDX-License-Identifier: Apache-2.0
// Address sets as prefix lists: merging any list of Cidrs into the minimal list of prefixes that
// covers exactly the same addresses (overlaps and adjacent siblings collapsed), sorted by family
// (IPv4 first), then address, then length. Pure; IPv4 uses numbers, IPv6 uses BigInt.

import type { Cidr } from './ir.js';
import { ipv4Number, makeCidr, makeCidr4 } from './cidr.js';

/** 0.0.0.0/0 and ::/0: what "any" means. */
export const ANY_CIDRS: readonly Cidr[] = Object.freeze([
  makeCidr(4, new Uint8Array(4), 0),
  makeCidr(6, new Uint8Array(16), 0),
]);

/** The minimal sorted prefix list covering exactly the union of `cidrs`. Reuses input objects where unchanged. */
export function mergeCidrs(cidrs: readonly Cidr[]): Cidr[] {
  if (isMerged(cidrs)) return cidrs.slice();
  const v4 = mergeIPv4(ofFamily(cidrs, 4));
  const v6 = ofFamily(cidrs, 6);
  return v6.length === 0 ? v4 : v4.concat(mergeIPv6(v6));
}

/** The prefixes of one family; the list itself when they all are (the common case: an IPv4 feed). */
function ofFamily(cidrs: readonly Cidr[], family: 4 | 6): readonly Cidr[] {
  return cidrs.every((c) => c.family === family) ? cidrs : cidrs.filter((c) => c.family === family);
}

/** True when the list is already sorted with a gap between neighbours: nothing to merge. */
function isMerged(cidrs: readonly Cidr[]): boolean {
  for (let i = 1; i < cidrs.length; i++) {
    const a = cidrs[i - 1]!;
    const b = cidrs[i]!;
    if (a.family !== b.family) {
      if (a.family > b.family) return false;
      continue;
    }
    if (a.family === 4) {
      if (ipv4Number(b.addr) <= lastAddress4(ipv4Number(a.addr), a.len) + 1) return false;
    } else if (span(b)[0] <= span(a)[1] + 1n) return false;
  }
  return true;
}

/** Last address of the IPv4 prefix at `start` (JavaScript shifts by len mod 32, hence the /32 case). */
function lastAddress4(start: number, len: number): number {
  return start + (len === 32 ? 0 : 0xffffffff >>> len);
}

/** First and last address of an IPv6 prefix. */
function span(c: Cidr): [bigint, bigint] {
  let start = 0n;
  for (const byte of c.addr) start = (start << 8n) | BigInt(byte);
  return [start, start + (1n << BigInt(128 - c.len)) - 1n];
}

/** Sort keys pack (start address, input index) as start * INDEX_SPAN + index: exact in a double up to 2^21 inputs. */
const INDEX_SPAN = 2 ** 21;

function mergeIPv4(cidrs: readonly Cidr[]): Cidr[] {
  const n = cidrs.length;
  const out: Cidr[] = [];
  if (n === 0) return out;
  // Sort by start address; pack (start, input index) into one double so a numeric sort does it.
  const packed = n <= INDEX_SPAN;
  const keys: number[] = new Array(n);
  for (let i = 0; i < n; i++) keys[i] = packed ? ipv4Number(cidrs[i]!.addr) * INDEX_SPAN + i : i;
  const order = packed ? sortNumbers(keys) : keys.sort((x, y) => ipv4Number(cidrs[x]!.addr) - ipv4Number(cidrs[y]!.addr));
  let runStart = -1;
  let runEnd = -1;
  let runOnly: Cidr | undefined; // the one input prefix equal to the run, if the run is exactly one prefix
  for (let k = 0; k < n; k++) {
    const key = order[k]!;
    const start = packed ? Math.floor(key / INDEX_SPAN) : ipv4Number(cidrs[key]!.addr);
    const c = cidrs[packed ? key - start * INDEX_SPAN : key]!;
    const end = lastAddress4(start, c.len);
    if (runStart >= 0 && start <= runEnd + 1) {
      if (end <= runEnd) continue; // contained in the run
      runOnly = runStart === start ? c : undefined;
      runEnd = end;
      continue;
    }
    if (runStart >= 0) pushRun4(out, runStart, runEnd, runOnly);
    runStart = start;
    runEnd = end;
    runOnly = c;
  }
  pushRun4(out, runStart, runEnd, runOnly);
  return out;
}

/**
 * The numbers in ascending order. Most address groups are short, and for them an insertion sort
 * in place beats the native sort, whose typed array costs more to allocate than ten numbers to sort.
 */
function sortNumbers(values: number[]): ArrayLike<number> {
  if (values.length > 16) return Float64Array.from(values).sort();
  for (let i = 1; i < values.length; i++) {
    const v = values[i]!;
    let j = i;
    for (; j > 0 && values[j - 1]! > v; j--) values[j] = values[j - 1]!;
    values[j] = v;
  }
  return values;
}

/** Appends the run [start, end]: its one input prefix if it is exactly that, else its minimal prefixes. */
function pushRun4(out: Cidr[], start: number, end: number, only: Cidr | undefined): void {
  if (only) out.push(only);
  else for (const [addr, len] of rangeToPrefixes4(start, end)) out.push(makeCidr4(addr, len));
}

/** Minimal prefixes covering [start, end] (inclusive, 32-bit unsigned). */
function rangeToPrefixes4(start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  while (start <= end) {
    let size = start === 0 ? 2 ** 32 : (start & -start) >>> 0;
    while (start + size - 1 > end) size /= 2;
    out.push([start, 32 - Math.log2(size)]);
    start += size;
  }
  return out;
}

function mergeIPv6(cidrs: readonly Cidr[]): Cidr[] {
  if (cidrs.length === 0) return [];
  const spans = cidrs.map((c) => ({ c, range: span(c) }));
  spans.sort((x, y) => (x.range[0] < y.range[0] ? -1 : x.range[0] > y.range[0] ? 1 : 0));
  const out: Cidr[] = [];
  let run: { start: bigint; end: bigint; only: Cidr | undefined } | undefined;
  const flush = () => {
    if (!run) return;
    if (run.only) out.push(run.only);
    else for (const [addr, len] of rangeToPrefixes6(run.start, run.end)) out.push(makeCidr(6, bigintBytes(addr), len));
  };
  for (const { c, range } of spans) {
    const [start, end] = range;
    if (run && start <= run.end + 1n) {
      if (end <= run.end) continue;
      run.only = run.start === start ? c : undefined;
      run.end = end;
      continue;
    }
    flush();
    run = { start, end, only: c };
  }
  flush();
  return out;
}

function rangeToPrefixes6(start: bigint, end: bigint): [bigint, number][] {
  const out: [bigint, number][] = [];
  while (start <= end) {
    let len = 128;
    // Grow the block while the start stays aligned and the block stays inside the range.
    while (len > 0) {
      const size = 1n << BigInt(129 - len);
      if (start % size !== 0n || start + size - 1n > end) break;
      len--;
    }
    out.push([start, len]);
    start += 1n << BigInt(128 - len);
  }
  return out;
}

function bigintBytes(value: bigint): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(value & 255n);
    value >>= 8n;
  }
  return out;
}
