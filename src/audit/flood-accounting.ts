// SPDX-License-Identifier: Apache-2.0
// FloodAccounting: which denied sessions the datapath's event budget held back since the last
// reading, per rule, with the rule's packets and bytes over the same interval — the numbers of a
// `flood` record. Pure: the engine's counters come in as values; it keeps the previous reading
// as its baseline. Counters are monotonic within a version; a version's rows start at zero when
// it is installed, and its final counts arrive as "retired" when it is replaced, so every
// held-back session is counted exactly once.

import type { FloodSample } from '../abi/records.js';

/** One rule's counters as the engine reads them (Engine.ruleStats()). */
export interface RuleCounters {
  packets: number;
  bytes: number;
  held: number;
  /** The sketch of its held-back sessions' sources in the interval being read (null: none). */
  sketch?: Uint8Array | null;
}

export interface FloodReading {
  /** The active version (0 = none installed). */
  generation: number;
  /** Its rules' counters: every rule that matched a packet (one left out counts as all zeros). */
  rules: ReadonlyMap<number, RuleCounters>;
  /** Held back among denies no counted rule decided (no policy, beyond capacity): monotonic. */
  heldWithoutRule: number;
  /** Their sources' sketch in the interval being read. */
  sketchWithoutRule?: Uint8Array | null;
  /** The datapath's samples of held-back sessions' sources in the interval being read. */
  samples?: readonly FloodSample[];
  /** Versions switched away from since the previous reading, with their final counters (at least
   *  every rule that held sessions back). */
  retired: readonly { generation: number; rules: ReadonlyMap<number, RuleCounters> }[];
}

/** Held-back sessions of one rule (or of no rule: `rule` null) over an interval. */
export interface FloodDelta {
  generation: number;
  /** Rule index (0 = the policy default), or null for denies no counted rule decided. */
  rule: number | null;
  held: number;
  /** The rule's packets and bytes over the same interval (null rule: none counted). */
  packets: number;
  bytes: number;
  /** The sketch of the held-back sessions' sources in this interval (null: none). */
  sketch: Uint8Array | null;
}

/** Versions whose last counters are kept as baselines: the active one and those switched away from but not yet reported retired. */
const BASELINES_KEPT = 8;

export class FloodAccounting {
  /** Per version, its counters at the last reading that saw it active. */
  private readonly baselines = new Map<number, ReadonlyMap<number, RuleCounters>>();
  private heldWithoutRule: number | undefined;

  /**
   * The rules with sessions held back since the previous call. The first call sets the baseline
   * and reports nothing: an adopted engine's past is not this reader's. A version's baseline is
   * its counters at the last reading that saw it active, kept until the version comes back
   * retired: a reading may see the next version active before the engine has the replaced one's
   * final counters (the switch is the kernel's, the retired counters are read after it), and the
   * reading after that then counts the replaced one from where it was seen last, not from zero.
   */
  update(now: FloodReading): FloodDelta[] {
    const first = this.heldWithoutRule === undefined;
    const out: FloodDelta[] = [];
    if (!first) {
      // versions retired since: their final counts against our baseline of them (none: from zero)
      for (const r of now.retired) out.push(...deltas(r.generation, r.rules, this.baselines.get(r.generation)));
      if (now.generation !== 0) out.push(...deltas(now.generation, now.rules, this.baselines.get(now.generation)));
      const heldWithoutRule = now.heldWithoutRule - this.heldWithoutRule!;
      if (heldWithoutRule > 0) {
        out.push({ generation: now.generation, rule: null, held: heldWithoutRule, packets: 0, bytes: 0, sketch: now.sketchWithoutRule ?? null });
      }
    }
    for (const r of now.retired) this.baselines.delete(r.generation);
    if (now.generation !== 0) this.baselines.set(now.generation, now.rules);
    for (const g of [...this.baselines.keys()].sort((a, b) => a - b).slice(0, Math.max(0, this.baselines.size - BASELINES_KEPT))) this.baselines.delete(g);
    this.heldWithoutRule = now.heldWithoutRule;
    return out;
  }
}

function deltas(generation: number, rules: ReadonlyMap<number, RuleCounters>, from: ReadonlyMap<number, RuleCounters> | undefined): FloodDelta[] {
  const out: FloodDelta[] = [];
  for (const [rule, c] of rules) {
    const b = from?.get(rule);
    const held = c.held - (b?.held ?? 0);
    if (held > 0) out.push({ generation, rule, held, packets: c.packets - (b?.packets ?? 0), bytes: c.bytes - (b?.bytes ?? 0), sketch: c.sketch ?? null });
  }
  return out;
}
