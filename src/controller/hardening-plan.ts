// SPDX-License-Identifier: Apache-2.0
// What the agent turns off on the interfaces it enforces, as data, and how the outcome reads in
// the audit trail. Pure; hardening.ts reads and writes /proc/sys and takes it back.
//
// A host on the source network must not be able to steer the enforcer itself: a Router
// Advertisement would give it a default route and a SLAAC address of the sender's choosing, a
// redirect a new next hop, a source route a path. Per enforced interface:
//   net.ipv6.conf.<if>.accept_ra, .accept_redirects, .accept_source_route   = 0
//   net.ipv4.conf.<if>.accept_redirects, .accept_source_route               = 0
// and once per namespace net.ipv4.conf.all.accept_redirects = 0: on an interface that does not
// forward, the kernel accepts IPv4 redirects when *either* `all` or the interface says 1, so the
// interface's own 0 alone does not turn them off (an interface that forwards needs both; IPv4
// source routing needs both too, and IPv6's keys are per interface).
import type { SysctlChange } from '../audit/records.js';

/** One key to set. */
export interface HardeningSysctl {
  /** The enforced interface, or `*` for the namespace-wide key. */
  interface: string;
  /** Under /proc/sys, as the kernel names it (an interface's dots stay dots). */
  path: string;
  value: string;
}

export interface HardeningPlan {
  sysctls: HardeningSysctl[];
}

/** What one key was found at, and what the agent left it at; `absent` when there is no such key. */
export interface SysctlOutcome {
  interface: string;
  path: string;
  from?: string;
  to?: string;
  absent?: true;
}

/** The per-interface keys, in the order they are set and reported. */
const PER_INTERFACE: readonly { family: 4 | 6; name: string }[] = [
  { family: 6, name: 'accept_ra' },
  { family: 6, name: 'accept_redirects' },
  { family: 4, name: 'accept_redirects' },
  { family: 4, name: 'accept_source_route' },
  { family: 6, name: 'accept_source_route' },
];

const confPath = (family: 4 | 6, dev: string, name: string) => `/proc/sys/net/ipv${family}/conf/${dev}/${name}`;

export function hardeningPlan(interfaces: readonly string[]): HardeningPlan {
  const sysctls: HardeningSysctl[] = [];
  for (const dev of new Set(interfaces)) {
    for (const k of PER_INTERFACE) sysctls.push({ interface: dev, path: confPath(k.family, dev, k.name), value: '0' });
  }
  if (sysctls.length > 0) sysctls.push({ interface: '*', path: confPath(4, 'all', 'accept_redirects'), value: '0' });
  return { sysctls };
}

/** `/proc/sys/net/ipv4/conf/eth0.100/rp_filter` → `net.ipv4.conf.eth0/100.rp_filter`, as sysctl(8) writes it. */
export function sysctlName(path: string): string {
  return path
    .replace(/^\/proc\/sys\//, '')
    .split('/')
    .map((part) => part.replace(/\./g, '/'))
    .join('.');
}

/** The audit trail's form of one outcome. */
export function sysctlChange(o: SysctlOutcome): SysctlChange {
  const key = sysctlName(o.path);
  return o.absent ? { key, absent: true } : { key, from: o.from ?? '', to: o.to ?? '' };
}

/** One line for a person: `key 1 → 0`, `key 0 (as found)`, `key: none (…), skipped`. */
function describe(o: SysctlOutcome, verb: 'set' | 'restored'): string {
  const key = sysctlName(o.path);
  if (o.absent) {
    const why = verb === 'restored' ? 'the interface is gone' : `no IPv${o.path.startsWith('/proc/sys/net/ipv6/') ? 6 : 4} on ${o.interface}`;
    return `${key}: no such key (${why}), skipped`;
  }
  return o.from === o.to ? `${key} ${o.to} (as found)` : `${key} ${o.from} → ${o.to}`;
}

/** The agent records of an apply (`hardening`) or a restore (`unhardened`): one per interface, `*` last. */
export function hardeningRecords(
  outcomes: readonly SysctlOutcome[],
  event: 'hardening' | 'unhardened',
): { event: 'hardening' | 'unhardened'; interface: string; message: string; sysctls: SysctlChange[] }[] {
  const byInterface = new Map<string, SysctlOutcome[]>();
  for (const o of outcomes) byInterface.set(o.interface, [...(byInterface.get(o.interface) ?? []), o]);
  const verb = event === 'hardening' ? 'set' : 'restored';
  return [...byInterface].map(([dev, list]) => ({
    event,
    interface: dev,
    message: `${verb}: ${list.map((o) => describe(o, verb)).join(', ')}`,
    sysctls: list.map(sysctlChange),
  }));
}
