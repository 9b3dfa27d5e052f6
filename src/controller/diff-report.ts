// SPDX-License-Identifier: Apache-2.0
// The agent's answer to `doorstep diff`, built where the IRs are (the policy thread,
// policy-thread.ts): the installed IR against a candidate's, and every cached session, fed a
// slice at a time, through both. Pure.
import type { FlowFields } from '../audit/records.js';
import { formatAddress16, setFlowDetails } from '../audit/session-record.js';
import type { PolicyIr } from '../policy/ir/ir.js';
import { protocolLabel } from '../policy/ir/protocols.js';
import { type CachedSession, diffPolicies, formatDiff, sessionImpactAccumulator, type SessionFlip } from '../policy/tools/diff.js';

export interface DiffReport {
  lines: string[];
  sameVersion: boolean;
  counts: { added: number; removed: number; changed: number; unchanged: number };
  flips: (Pick<FlowFields, 'protocol' | 'src' | 'dst' | 'sport' | 'dport' | 'icmpType' | 'icmpCode' | 'vlan'> & {
    from: 'allow' | 'deny';
    to: 'allow' | 'deny';
    ruleNow: string;
    ruleCandidate: string;
    packets: number;
    bytes: number;
  })[];
  flipCounts: { toDeny: number; toAllow: number };
}

/** A diff of `candidate` against `installed` (null: none installed), with the sessions fed so far. */
export class SessionDiff {
  private readonly impact: ReturnType<typeof sessionImpactAccumulator>;

  /** `generation`: the engine's active one (cached verdicts of others are re-decided by `installed`). */
  constructor(
    private readonly installed: PolicyIr | null,
    private readonly candidate: PolicyIr,
    generation: number,
  ) {
    this.impact = sessionImpactAccumulator(installed, candidate, { generation });
  }

  add(sessions: readonly CachedSession[]): void {
    for (const s of sessions) this.impact.add(s);
  }

  report(): DiffReport {
    const diff = diffPolicies(this.installed, this.candidate);
    const impact = this.impact.result;
    return {
      lines: formatDiff(diff, impact),
      sameVersion: diff.sameVersion,
      counts: diff.counts,
      flips: [...impact.toDeny.first, ...impact.toAllow.first].map(flipView),
      flipCounts: { toDeny: impact.toDeny.count, toAllow: impact.toAllow.count },
    };
  }
}

function flipView(f: SessionFlip): DiffReport['flips'][number] {
  const flip: DiffReport['flips'][number] = {
    protocol: protocolLabel(f.key.proto),
    src: formatAddress16(f.key.family, f.key.src),
    dst: formatAddress16(f.key.family, f.key.dst),
    from: f.now.action,
    to: f.candidate.action,
    ruleNow: f.now.ruleId,
    ruleCandidate: f.candidate.ruleId,
    packets: f.packets,
    bytes: f.bytes,
  };
  setFlowDetails(flip, f.key);
  return flip;
}
