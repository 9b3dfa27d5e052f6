// SPDX-License-Identifier: Apache-2.0
// Who a flood came from, as a `flood` record tells it: the distinct sources, estimated from the
// datapath's HyperLogLog sketch of a rule's held-back sessions (ds_sketch), and the top sources
// and prefixes, estimated from its per-CPU sample of them (ds_flood_samples). Pure.
import type { FloodSample } from '../abi/records.js';
import { formatAddress, formatCidr, maskAddress } from '../policy/ir/cidr.js';

/** An estimate of the distinct values added to HyperLogLog registers `regs` (Flajolet et al.,
 * with the linear-counting correction for small counts, where most registers are still zero). */
export function estimateDistinct(regs: Uint8Array): number {
  const m = regs.length;
  let sum = 0;
  let zeros = 0;
  for (const r of regs) {
    sum += 2 ** -r;
    if (r === 0) zeros++;
  }
  const alpha = m === 16 ? 0.673 : m === 32 ? 0.697 : m === 64 ? 0.709 : 0.7213 / (1 + 1.079 / m);
  const raw = (alpha * m * m) / sum;
  if (raw <= 2.5 * m && zeros > 0) return m * Math.log(m / zeros);
  return raw;
}

/** A source or prefix and the held-back sessions it is estimated to account for. */
export interface SourceShare {
  source: string;
  sessions: number;
}

export interface FloodSources {
  /** Samples of this rule's held-back sessions in the interval. */
  sampled: number;
  topSources: SourceShare[];
  /** IPv4 /24s and IPv6 /48s. */
  topPrefixes: SourceShare[];
}

/** The prefix length a flood's sources are grouped by: what one site or customer usually holds. */
const PREFIX_LEN = { 4: 24, 6: 48 } as const;

/**
 * The `top` most frequent sources and prefixes among the samples of (generation, rule), each with
 * the held-back sessions it is estimated to account for: its share of the samples times `held`.
 */
export function topSources(samples: readonly FloodSample[], generation: number, rule: number | null, held: number, top = 5): FloodSources {
  const mine = samples.filter((s) => s.rule === rule && (rule === null || s.generation === generation));
  const addresses = mine.map((s) => {
    const family = s.family === 4 ? 4 : 6;
    const addr = family === 4 ? s.src.subarray(12, 16) : s.src;
    return { address: formatAddress(family, addr), prefix: formatCidr(family, maskAddress(addr, PREFIX_LEN[family]), PREFIX_LEN[family]) };
  });
  const rank = (texts: string[]): SourceShare[] => {
    const counts = new Map<string, number>();
    for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
    return [...counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, top)
      .map(([source, n]) => ({ source, sessions: Math.round((n / mine.length) * held) }));
  };
  return { sampled: mine.length, topSources: rank(addresses.map((a) => a.address)), topPrefixes: rank(addresses.map((a) => a.prefix)) };
}
