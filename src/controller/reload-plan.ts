// SPDX-License-Identifier: Apache-2.0
// What a SIGHUP (`systemctl reload doorstep`) can change in a running agent, from the settings it
// runs with and the re-read ones: the deny-event budget and cap and the failsafe prefixes apply
// at once; a placement's edge peer settings are the placement's (peerChanges); every other
// changed setting is named, as one that needs a restart. Pure: compares, touches nothing.
import { isDeepStrictEqual } from 'node:util';
import type { AgentConfig } from './config.js';

/** Settings a reload applies without a restart (the placement's peers aside). */
const RELOADABLE = ['denyEventBudget', 'denyEventCap', 'failsafe'] as const;

export interface ReloadPlan {
  denyEventBudget?: number;
  denyEventCap?: number;
  failsafe?: AgentConfig['failsafe'];
  /** Changed settings that take effect only at the next start. */
  needRestart: string[];
}

export function reloadPlan(running: AgentConfig, next: AgentConfig): ReloadPlan {
  const plan: ReloadPlan = { needRestart: [] };
  if (next.denyEventBudget !== running.denyEventBudget) plan.denyEventBudget = next.denyEventBudget;
  if (next.denyEventCap !== running.denyEventCap) plan.denyEventCap = next.denyEventCap;
  if (!isDeepStrictEqual(next.failsafe, running.failsafe)) plan.failsafe = next.failsafe;
  for (const key of Object.keys(running) as (keyof AgentConfig)[]) {
    if ((RELOADABLE as readonly string[]).includes(key) || key === 'placement') continue;
    if (!isDeepStrictEqual(running[key], next[key])) plan.needRestart.push(key);
  }
  return plan;
}
