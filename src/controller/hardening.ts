// SPDX-License-Identifier: Apache-2.0
// Carries out a hardening plan (hardening-plan.ts) on the kernel's settings and takes it back.
// The settings are reached through SysctlFiles: /proc/sys for real — in the agent's own network
// namespace, since /proc/sys/net follows the namespace of the process that opens it (an agent
// started under `nsenter --net` sets its namespace's interfaces, as placement/forwarding.ts does; /sys is
// not used, it stays the host's) — or a map in memory for tests without root.
//
// apply() remembers each key as found (unless an earlier agent's record already holds it: an
// adopted engine's interfaces are found hardened, and those values are not the originals); restore() puts back every key whose value now differs
// from that, changed by the agent or not: when forwarding turns ip_forward off again at exit, the
// kernel itself rewrites net.ipv4.conf.all.accept_redirects (to 1), and restore() undoes that too.
import { DoorstepError } from '../errors.js';
import type { HardeningPlan, SysctlOutcome } from './hardening-plan.js';
import { isMissing, procSysctls, type SysctlFiles } from '../host/sysctl-files.js';

export { MemorySysctls, procSysctls, type SysctlFiles } from '../host/sysctl-files.js';

export class Hardening {
  /** path → the value found by apply() (keys that exist only) */
  private readonly found = new Map<string, { interface: string; value: string }>();

  constructor(
    private readonly plan: HardeningPlan,
    private readonly files: SysctlFiles = procSysctls,
    /** The values found by an earlier agent (the enforcement record): they stay the originals. */
    inherited: readonly { interface: string; path: string; value: string }[] = [],
  ) {
    for (const h of inherited) this.found.set(h.path, { interface: h.interface, value: h.value });
  }

  /** Every key set, with the value to put back (for the enforcement record). */
  recorded(): { interface: string; path: string; value: string }[] {
    return [...this.found].map(([path, was]) => ({ interface: was.interface, path, value: was.value }));
  }

  /** Set every planned key that exists; a key that cannot be set fails the agent's start. */
  apply(): SysctlOutcome[] {
    const outcomes: SysctlOutcome[] = [];
    for (const s of this.plan.sysctls) {
      try {
        const current = this.files.read(s.path);
        if (current === undefined) {
          outcomes.push({ interface: s.interface, path: s.path, absent: true });
          continue;
        }
        if (!this.found.has(s.path)) this.found.set(s.path, { interface: s.interface, value: current });
        if (current !== s.value) this.files.write(s.path, s.value);
        outcomes.push({ interface: s.interface, path: s.path, from: current, to: s.value });
      } catch (cause) {
        throw new DoorstepError('DS_E_HARDENING', `cannot set ${s.path} to ${s.value}: ${cause instanceof Error ? cause.message : String(cause)}`, {
          hint: 'the agent needs /proc/sys writable in its network namespace (CAP_NET_ADMIN, and /proc/sys not mounted read-only); see docs/operations.md',
          cause,
        });
      }
    }
    return outcomes;
  }

  /**
   * Put back every key whose value differs from what apply() found. Keys gone meanwhile (a
   * tunnel deleted) are reported absent; keys that could not be written are in `failed`, for an
   * `error` record. Best effort: every key is tried.
   */
  restore(): { restored: SysctlOutcome[]; failed: string[] } {
    const restored: SysctlOutcome[] = [];
    const failed: string[] = [];
    for (const [path, was] of this.found) {
      try {
        const current = this.files.read(path);
        if (current === was.value) continue;
        if (current !== undefined) this.files.write(path, was.value);
        restored.push(current === undefined ? { interface: was.interface, path, absent: true } : { interface: was.interface, path, from: current, to: was.value });
      } catch (err) {
        if (isMissing(err)) restored.push({ interface: was.interface, path, absent: true });
        else failed.push(`${path} back to ${was.value}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.found.clear();
    return { restored, failed };
  }
}
