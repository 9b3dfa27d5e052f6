// SPDX-License-Identifier: Apache-2.0
// Sets of 16-bit values (ports, ICMP type<<8|code) as closed ranges: merging into the canonical
// sorted, non-overlapping, non-adjacent list.

import type { Range } from './ir.js';

export function mergeRanges(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const out: Range[] = [];
  for (const { lo, hi } of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last.hi + 1) last.hi = Math.max(last.hi, hi);
    else out.push({ lo, hi });
  }
  return out;
}
