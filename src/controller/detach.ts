// SPDX-License-Identifier: Apache-2.0
// Detaching the engine, as an explicit act (DESIGN.md §9): with no agent running (`doorstep
// detach`) or at the end of an agent started with --detach-on-exit. Works from what is on disk
// only — the pin folder and the enforcement record in the state dir — in the order that never
// forwards unenforced traffic: forwarding rules, tables and sysctls first, then the XDP links
// and pins, then the hardened settings, then the tunnels (wireguard-go included), then the
// record. Idempotent: a second run finds nothing and says so.
import { existsSync, readFileSync } from 'node:fs';
import type { EngineHost } from '../engine/engine-interface.js';
import { DoorstepError } from '../errors.js';
import { processAlive } from '../placement/netns-processes.js';
import { removeRecordedTunnels, unrouteRecorded } from '../placement/forwarding.js';
import { readEnforcementRecord, removeEnforcementRecord } from '../host/enforcement-record.js';
import { Hardening, type SysctlFiles } from './hardening.js';
import type { SysctlOutcome } from './hardening-plan.js';

export interface DetachOutcome {
  pinRoot: string;
  /** Interfaces whose XDP link was detached. */
  detached: string[];
  /** Whether a pin folder was there (and is gone now). */
  pinsRemoved: boolean;
  /** Whether forwarding rules, tables or sysctls were recorded (and taken back). */
  unrouted: boolean;
  /** Hardened keys put back, and the keys that could not be. */
  unhardened: SysctlOutcome[];
  failed: string[];
  /** Tunnels deleted. */
  tunnels: string[];
  /** Whether there was anything to detach at all. */
  found: boolean;
}

/** The pid's command line, if it is a live `doorstep agent` (a reused pid is not). */
function liveAgent(pid: number): boolean {
  if (pid === process.pid || !processAlive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('agent');
  } catch {
    return false;
  }
}

/**
 * Take back what an agent left enforcing. `pinRoot` overrides the record's. Throws
 * DS_E_AGENT_RUNNING when the agent that wrote the record still runs (stop it first).
 */
export function detachEnforcement(o: {
  stateDir: string;
  pinRoot?: string;
  /** Where the engine's pins are removed (the kernel's bpffs, or a test's memory). */
  host: Pick<EngineHost, 'removePins'>;
  /** Where the hardened settings are put back (default /proc/sys). */
  sysctls?: SysctlFiles;
  onProblem?: (message: string) => void;
}): DetachOutcome {
  const record = readEnforcementRecord(o.stateDir, o.onProblem);
  if (record && liveAgent(record.agentPid)) {
    throw new DoorstepError('DS_E_AGENT_RUNNING', `the agent (pid ${record.agentPid}) that owns ${o.stateDir} still runs`, {
      hint: `stop it first (kill -TERM ${record.agentPid}), then run doorstep detach again; or start agents with --detach-on-exit`,
    });
  }
  const pinRoot = o.pinRoot ?? record?.pinRoot;
  const failed: string[] = [];
  const f = record?.forwarding;
  const unrouted = !!f && (f.rules.length > 0 || f.tables.length > 0 || f.sysctls.length > 0);
  // nothing is forwarded past a detached engine: routes go first
  if (f) unrouteRecorded(f);
  const pinsPresent = !!pinRoot && existsSync(pinRoot);
  const detached = pinRoot ? o.host.removePins(pinRoot) : [];
  // the settings go back once the engine is off the interfaces, before the tunnels go
  const { restored, failed: unrestored } = new Hardening({ sysctls: [] }, o.sysctls, record?.hardening ?? []).restore();
  failed.push(...unrestored);
  const tunnels = f ? removeRecordedTunnels(f.tunnels) : [];
  removeEnforcementRecord(o.stateDir);
  return {
    pinRoot: pinRoot ?? '',
    detached,
    pinsRemoved: pinsPresent,
    unrouted,
    unhardened: restored,
    failed,
    tunnels,
    found: record !== null || pinsPresent,
  };
}
