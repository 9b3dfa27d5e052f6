// SPDX-License-Identifier: Apache-2.0
// The capabilities the engine needs, checked before anything touches the kernel: read from
// /proc/self/status (CapEff), so an agent run by a service manager as an unprivileged user with
// ambient capabilities passes, and one missing a capability is told which, not "run as root".
import { readFileSync } from 'node:fs';
import { DoorstepError } from '../errors.js';

/** Capability numbers (linux/capability.h) of the ones doorstep names. */
export const CAPABILITY_BITS = {
  CAP_NET_ADMIN: 12,
  CAP_SYS_ADMIN: 21,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
} as const;

export type CapabilityName = keyof typeof CAPABILITY_BITS;

/**
 * What the engine needs, each proven by running the agent without it (test/e2e/service.test.ts
 * runs it with exactly these, as an unprivileged user):
 * - CAP_BPF: load the program, create and pin maps;
 * - CAP_NET_ADMIN: write the enforced interfaces' sysctls (without it: DS_E_HARDENING, EACCES)
 *   and attach XDP (which the kernel would also grant to CAP_SYS_ADMIN);
 * - CAP_PERFMON: without it the kernel refuses to load the engine (EPERM: the verifier holds a
 *   loader that is not perfmon-capable to its pointer-leak and speculation checks);
 * - CAP_SYS_ADMIN: the active policy's maps are reached through ds_active, a map of maps, by id
 *   (BPF_MAP_GET_FD_BY_ID), which the kernel grants only with CAP_SYS_ADMIN; every install reads
 *   its generation back that way, and an adopting agent finds the version in force so.
 * The kernel would let CAP_SYS_ADMIN stand in for CAP_BPF and CAP_PERFMON; the agent still asks
 * for each by name, so dropping CAP_SYS_ADMIN later (keeping those maps' fds or pins instead of
 * ids) narrows the unit without another change here. The order is the order missing ones are named in.
 */
export const REQUIRED_CAPABILITIES: readonly CapabilityName[] = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_ADMIN'];

/** The effective set from a /proc/<pid>/status text; undefined when it has no CapEff line. */
export function effectiveCapabilities(statusText: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** The names in `required` whose bit is not in `effective`, in `required`'s order. */
export function missingCapabilities(effective: bigint, required: readonly CapabilityName[] = REQUIRED_CAPABILITIES): CapabilityName[] {
  return required.filter((name) => (effective & (1n << BigInt(CAPABILITY_BITS[name]))) === 0n);
}

/** Throw DS_E_CAPABILITY naming every capability this process lacks. */
export function checkCapabilities(statusText: string = readFileSync('/proc/self/status', 'utf8')): void {
  const effective = effectiveCapabilities(statusText);
  if (effective === undefined) {
    throw new DoorstepError('DS_E_CAPABILITY', 'cannot read this process\'s capabilities (no CapEff in /proc/self/status)', {
      hint: 'run doorstep on Linux with /proc mounted',
    });
  }
  const missing = missingCapabilities(effective);
  if (missing.length === 0) return;
  const all = REQUIRED_CAPABILITIES.join(' ');
  throw new DoorstepError('DS_E_CAPABILITY', `missing capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')} (doorstep needs ${all})`, {
    hint: `run it from doorstep.service (AmbientCapabilities=${all}), or grant ${missing.join(' ')}, e.g. setpriv --inh-caps +${missing.map(short).join(',+')} --ambient-caps +${missing.map(short).join(',+')}`,
  });
}

/** CAP_NET_ADMIN → net_admin, setpriv's and capsh's spelling. */
function short(name: CapabilityName): string {
  return name.slice(4).toLowerCase();
}
