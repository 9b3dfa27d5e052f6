// SPDX-License-Identifier: Apache-2.0
// Sets of 16-bit values (ports, ICMP type<<8|code) as closed ranges: merging into the canonical
// sorted, non-overlapping, non-adjacent list.

import type { Range } from './ir.js';

/** The canonical list covering the same values. Reuses the input objects when it already is one. */
export function mergeRanges(ranges: readonly Range[]): Range[] {
  if (isMerged(ranges)) return ranges.slice();
  const sorted = [...ranges].sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const out: Range[] = [];
  for (const { lo, hi } of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last.hi + 1) last.hi = Math.max(last.hi, hi);
    else out.push({ lo, hi });
  }
  return out;
}

/** True when the list is already sorted with a gap between neighbours: nothing to merge. */
function isMerged(ranges: readonly Range[]): boolean {
  for (let i = 1; i < ranges.length; i++) if (ranges[i]!.lo <= ranges[i - 1]!.hi + 1) return false;
  return true;
}
