// SPDX-License-Identifier: Apache-2.0
// The enforcement record: `enforcement.json` in the state dir, what an agent left in place for the
// next one — the engine's pin folder and interfaces, the hardened sysctls with the values found
// before the first agent touched them, the forwarding rules, tables and sysctls, the tunnels.
// A stopped agent leaves the engine enforcing (DESIGN.md §9); this record is what lets the next
// agent restore the original settings one day (it inherits them instead of taking the hardened
// values for the originals), and what `doorstep detach` undoes with no agent running. Written
// atomically by the agent whenever what it holds changes; removed once everything is detached.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeAtomic } from './state-store.js';

export const ENFORCEMENT_FILE = 'enforcement.json';

const recordSchema = z.object({
  format: z.literal(1),
  /** The agent that wrote it last (detach refuses while it runs). */
  agentPid: z.number().int().positive(),
  pinRoot: z.string(),
  interfaces: z.array(z.string()),
  /** Hardened keys: the value each had before the first agent set it. */
  hardening: z.array(z.object({ interface: z.string(), path: z.string(), value: z.string() })),
  forwarding: z.object({
    /** `ip` arguments that delete each rule. */
    rules: z.array(z.array(z.string())),
    /** Routing tables the agent owns (flushed on detach). */
    tables: z.array(z.object({ family: z.union([z.literal(4), z.literal(6)]), table: z.number().int() })),
    /** Forwarding sysctls: the value each had before the first agent set it. */
    sysctls: z.array(z.object({ path: z.string(), value: z.string() })),
    tunnels: z.array(z.object({ device: z.string(), kind: z.enum(['wireguard', 'vxlan']) })),
  }),
  updatedAt: z.string(),
});

export type EnforcementRecord = z.infer<typeof recordSchema>;
export type RecordedHardening = EnforcementRecord['hardening'];
export type RecordedForwarding = EnforcementRecord['forwarding'];

export const NO_FORWARDING: RecordedForwarding = { rules: [], tables: [], sysctls: [], tunnels: [] };

const pathOf = (stateDir: string) => join(stateDir, ENFORCEMENT_FILE);

/** The record in `stateDir`, or null when there is none (a damaged one is said through `onProblem`). */
export function readEnforcementRecord(stateDir: string, onProblem: (message: string) => void = () => {}): EnforcementRecord | null {
  return readJsonFile(pathOf(stateDir), recordSchema, onProblem, '; `doorstep detach` then removes only the pins');
}

export function writeEnforcementRecord(stateDir: string, record: Omit<EnforcementRecord, 'format' | 'updatedAt'>): void {
  writeAtomic(pathOf(stateDir), JSON.stringify({ format: 1, ...record, updatedAt: new Date().toISOString() }));
}

export function removeEnforcementRecord(stateDir: string): void {
  rmSync(pathOf(stateDir), { force: true });
}
