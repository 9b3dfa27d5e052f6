// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, the plan of one run of frames: structured frames, stateful sequences
// and mutations mixed by weight, with real captured frames among them, every frame labelled with
// the class that made it. A run without a policy also carries errors about failsafe sessions; a
// run has at most one policy change (one of the two sequences that make one).
import { capturedFrames } from '../captures.js';
import { MUTATIONS } from './mutations.js';
import { POLICY_CHANGE_REPLIES, REPLY_SEQUENCES } from './replies.js';
import { SEQUENCES as BASIC_SEQUENCES, type SequenceCtx, type Step } from './sequences.js';
import { STRUCTURED } from './structured.js';

const STRUCTURED_NAMES = Object.keys(STRUCTURED);
const MUTATION_NAMES = Object.keys(MUTATIONS);
const NO_POLICY_ONLY = 'icmp-error-failsafe-no-policy';
const CAPTURED = 'captured';
/** Real frames (test/lib/captures.ts), verbatim or as the base of a mutation. */
const CAPTURES = capturedFrames().map((c) => new Uint8Array(c.frame));
const SEQUENCES = { ...BASIC_SEQUENCES, ...REPLY_SEQUENCES };
/** The sequences that install or uninstall a policy (each install costs ~90 ms). */
const POLICY_CHANGES = ['sequence-policy-change', POLICY_CHANGE_REPLIES];

/** Every class a run can label a frame with: a test fails when one of them made no frame. */
export const ALL_CLASSES: readonly string[] = [...STRUCTURED_NAMES, ...Object.keys(SEQUENCES), ...MUTATION_NAMES, CAPTURED];

export function planRun(c: SequenceCtx, frames: number): Step[] {
  const r = c.r;
  const sequences = Object.keys(SEQUENCES).filter((n) => !POLICY_CHANGES.includes(n) && (n !== NO_POLICY_ONLY || c.noPolicy));
  const steps: Step[] = [];
  let count = 0;
  let changed = false;
  const add = (xs: Step[]) => {
    for (const s of xs) if (s.kind === 'frame') count++;
    steps.push(...xs);
  };
  const structured = () => ({ kind: 'frame' as const, cls: '', frame: STRUCTURED[r.pick(STRUCTURED_NAMES)]!(c), iface: r.int(0, c.ifaces - 1) });
  while (count < frames) {
    const roll = r.next();
    if (roll < 0.52) {
      const cls = r.pick(STRUCTURED_NAMES);
      add([{ kind: 'frame', cls, frame: STRUCTURED[cls]!(c), iface: r.int(0, c.ifaces - 1) }]);
    } else if (roll < 0.55) {
      add([{ kind: 'frame', cls: CAPTURED, frame: r.pick(CAPTURES), iface: r.int(0, c.ifaces - 1) }]);
    } else if (roll < 0.8) {
      const name: string = !changed && r.chance(0.02) ? r.pick(POLICY_CHANGES) : r.pick(sequences);
      changed ||= POLICY_CHANGES.includes(name);
      add(SEQUENCES[name]!(c));
    } else {
      const cls = r.pick(MUTATION_NAMES);
      if (r.chance(0.1)) {
        add([{ kind: 'frame', cls, frame: MUTATIONS[cls]!(c, r.pick(CAPTURES)), iface: r.int(0, c.ifaces - 1) }]);
      } else if (r.chance(0.7)) {
        const base = structured();
        add([{ ...base, cls, frame: MUTATIONS[cls]!(c, base.frame) }]);
      } else {
        // a sequence whose last frame (an ICMP error, a fragment) is mutated
        const seq = SEQUENCES[r.pick(sequences)]!(c);
        const last = seq[seq.length - 1];
        if (last?.kind === 'frame') seq[seq.length - 1] = { ...last, cls, frame: MUTATIONS[cls]!(c, last.frame) };
        add(seq);
      }
    }
  }
  return steps;
}

