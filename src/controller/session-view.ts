// SPDX-License-Identifier: Apache-2.0
// A session-cache entry as operators read it (`doorstep sessions`): the same field names as audit
// records, so one filter serves both, plus the cache's own counts and times.
import { Action, Reason } from '../abi/generated.js';
import { reasonLabel } from '../abi/records.js';
import { formatAddress16, setFlowDetails, type EnrichContext } from '../audit/session-record.js';
import { ruleName } from '../audit/rule-names.js';
import type { FlowFields } from '../audit/records.js';
import type { Session } from '../engine/engine-interface.js';
import { protocolLabel } from '../policy/ir/protocols.js';

export interface SessionView extends FlowFields {
  interface: string;
  reason: string;
  generation: number;
  /** False when the cached verdict comes from an older policy version (it is re-classified on the next packet). */
  current: boolean;
  packets: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
}


export function sessionView({ key, value }: Session, ctx: EnrichContext, toWall: (ns: bigint) => Date, activeGeneration?: number): SessionView {
  const names = ctx.policies.get(value.generation);
  const view: SessionView = {
    interface: ctx.interfaces.get(key.ifindex) ?? `if${key.ifindex}`,
    verdict: value.action === Action.ALLOW ? 'allow' : 'deny',
    reason: reasonLabel(value.reason),
    protocol: protocolLabel(key.proto),
    src: formatAddress16(key.family, key.src),
    dst: formatAddress16(key.family, key.dst),
    rule: value.reason === Reason.POLICY ? ruleName(names, value.rule) : reasonLabel(value.reason),
    generation: value.generation,
    current: activeGeneration === undefined || value.generation === activeGeneration,
    packets: value.packets,
    bytes: value.bytes,
    firstSeen: toWall(value.firstSeenNs).toISOString(),
    lastSeen: toWall(value.lastSeenNs).toISOString(),
  };
  setFlowDetails(view, key);
  return view;
}
