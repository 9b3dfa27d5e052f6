// SPDX-License-Identifier: Apache-2.0
// Carries out a forwarding plan with iproute2 and /proc/sys, and takes it back. Idempotent: an
// agent restarted after a crash finds its own tunnels, rules and routes and reconciles them
// instead of failing on "exists" (and an adopted engine keeps its attachment to the tunnel).
// WireGuard devices are wireguard.ts's to create, configure and remove; their addresses, MTU
// and link state are set here like a VXLAN device's.
//
// Order matters for fail-closed start: tunnels first (the engine must attach to them), then the
// caller attaches the engine in default deny, then routes, rules and sysctls turn forwarding on.
import type { RecordedForwarding } from '../host/enforcement-record.js';
import { procSysctls } from '../host/sysctl-files.js';
import { type ForwardingPlan, routeArgs, ruleArgs, type RulePlan, tunnelArgs } from './forwarding-plan.js';
import type { Placement } from './placement.js';
import { linkKind, runCommand } from './commands.js';
import { removeWireguardDevice, type WireguardDevices } from './wireguard.js';

const ip = (args: string[]): string =>
  runCommand('ip', args, { code: 'DS_E_FORWARDING', hint: 'check that the interfaces named in the config exist and that iproute2 is installed; see docs/placement.md' });

function ipJson<T>(args: string[]): T[] {
  try {
    const out = ip(['-j', ...args]).trim();
    return out ? (JSON.parse(out) as T[]) : [];
  } catch {
    return []; // a table that does not exist yet
  }
}

const linkExists = (name: string): boolean => linkKind(name) !== undefined;

/** Best effort: a kernel without IPv6 has no such file. */
function writeSysctl(path: string, value: string): void {
  try {
    procSysctls.write(path, value);
  } catch {
    // not there
  }
}

interface IpRule {
  priority: number;
  iif?: string;
  table?: string;
}

interface IpRoute {
  dst: string;
  type?: string;
}

export interface ForwardingState {
  tunnels: string[];
  /** Tunnels a previous agent left, taken over by this one. */
  adopted: string[];
  routes: number;
  rules: number;
}

export class Forwarding {
  private readonly restore = new Map<string, string>();
  private routed = false;
  private readonly adopted: string[] = [];

  constructor(
    readonly placement: Placement,
    private readonly plan: ForwardingPlan,
    /** The WireGuard devices, when the tunnels are WireGuard. */
    readonly wireguard?: WireguardDevices,
    /** Forwarding sysctls an earlier agent set, with the values it found (the enforcement record). */
    inherited: readonly { path: string; value: string }[] = [],
  ) {
    if (placement.tunnels.some((t) => t.kind === 'wireguard') && !wireguard) throw new Error('WireGuard tunnels need WireguardDevices');
    for (const s of inherited) this.restore.set(s.path, s.value);
  }

  /** What `doorstep detach` needs to take this forwarding back with no agent (the enforcement record). */
  recorded(): RecordedForwarding {
    const tables = new Map(this.plan.routes.map((r) => [`${r.family}/${r.table}`, { family: r.family, table: r.table }]));
    return {
      rules: this.plan.rules.map((r) => ruleArgs(r, 'del')),
      tables: [...tables.values()],
      sysctls: [...this.restore].map(([path, value]) => ({ path, value })),
      tunnels: this.plan.tunnels.map((t) => ({ device: t.device, kind: t.kind })),
    };
  }

  /** Create (or find) the tunnels to the edge and bring them up; nothing is forwarded yet. */
  async createTunnels(): Promise<void> {
    for (const t of this.plan.tunnels) {
      if (t.kind === 'wireguard') {
        if ((await this.wireguard!.open(t)) === 'adopted') this.adopted.push(t.device);
      } else if (!linkExists(t.device)) ip(tunnelArgs(t, this.placement.edge));
      else this.adopted.push(t.device);
      // no IPv6 address planned: no link-local chatter (router solicitations, MLD) into the tunnel
      if (!t.addresses.some((a) => a.family === 6)) writeSysctl(`/proc/sys/net/ipv6/conf/${t.device}/disable_ipv6`, '1');
      for (const a of t.addresses) ip([`-${a.family}`, 'addr', 'replace', a.text, 'dev', t.device, ...(a.family === 6 ? ['nodad'] : [])]);
      ip(['link', 'set', t.device, ...(this.placement.edge.mtu ? ['mtu', String(this.placement.edge.mtu)] : []), 'up']);
    }
  }

  /** Routes, rules and sysctls: from here accepted traffic flows to the edge (or back, hairpin). */
  route(): void {
    this.routed = true;
    const { from, to } = this.plan.owned;
    const ours = (table: number | string | undefined) => Number(table) >= from && Number(table) <= to;
    for (const family of [4, 6] as const) {
      // routes: replace what is planned, delete what a previous run left in our tables
      const tables = new Set(this.plan.routes.filter((r) => r.family === family).map((r) => r.table));
      for (const r of this.plan.routes.filter((x) => x.family === family)) ip(routeArgs(r));
      for (const table of tables) {
        for (const existing of ipJson<IpRoute>([`-${family}`, 'route', 'show', 'table', String(table)])) {
          const dst = existing.dst === 'default' || existing.dst.includes('/') ? existing.dst : `${existing.dst}/${family === 4 ? 32 : 128}`;
          if (!this.plan.routes.some((r) => r.family === family && r.table === table && r.dst === dst)) {
            ip([`-${family}`, 'route', 'del', ...(existing.type === 'throw' ? ['throw'] : []), existing.dst, 'table', String(table)]);
          }
        }
      }
      // rules: add the missing ones, delete ours that are not planned
      const present = ipJson<IpRule>([`-${family}`, 'rule', 'show']).filter((r) => ours(r.priority));
      const planned = this.plan.rules.filter((r) => r.family === family);
      const same = (a: IpRule, b: RulePlan) => a.priority === b.pref && a.iif === b.iif && Number(a.table) === b.table;
      for (const r of planned) if (!present.some((e) => same(e, r))) ip(ruleArgs(r, 'add'));
      for (const e of present) {
        if (!planned.some((r) => same(e, r))) ip([`-${family}`, 'rule', 'del', 'pref', String(e.priority), ...(e.iif ? ['iif', e.iif] : [])]);
      }
    }
    for (const s of this.plan.sysctls) {
      const current = procSysctls.read(s.path);
      if (current === undefined) throw new Error(`${s.path}: no such kernel setting`);
      if (current === s.value) continue;
      if (!this.restore.has(s.path)) this.restore.set(s.path, current);
      procSysctls.write(s.path, s.value);
    }
  }

  /** Take back the rules, routes and sysctls (before the engine detaches: nothing is forwarded unenforced). */
  unroute(): void {
    if (!this.routed) return;
    this.routed = false;
    unrouteRecorded(this.recorded());
    this.restore.clear();
  }

  /** Delete the tunnels (after the engine detached from them), wireguard-go processes included. */
  removeTunnels(): void {
    removeRecordedTunnels(this.recorded().tunnels);
  }

  /** What is in place now, for status and tests. */
  state(): ForwardingState {
    return {
      tunnels: this.plan.tunnels.map((t) => t.device).filter(linkExists),
      adopted: [...this.adopted],
      routes: this.routed ? this.plan.routes.length : 0,
      rules: this.routed ? this.plan.rules.length : 0,
    };
  }
}

/** Delete recorded rules, flush recorded tables, put recorded sysctls back; best effort, each step tried. */
export function unrouteRecorded(f: Pick<RecordedForwarding, 'rules' | 'tables' | 'sysctls'>): void {
  for (const args of f.rules) {
    try {
      ip(args);
    } catch {
      // already gone
    }
  }
  for (const { family, table } of f.tables) {
    try {
      ip([`-${family}`, 'route', 'flush', 'table', String(table)]);
    } catch {
      // already empty
    }
  }
  for (const { path, value } of f.sysctls) {
    try {
      procSysctls.write(path, value);
    } catch {
      // the interface is gone with its settings
    }
  }
}

/** Delete recorded tunnels that still exist (a wireguard-go serving one is ended); returns those deleted. */
export function removeRecordedTunnels(tunnels: RecordedForwarding['tunnels']): string[] {
  const removed: string[] = [];
  for (const t of tunnels) {
    if (t.kind === 'wireguard') {
      if (removeWireguardDevice(t.device)) removed.push(t.device);
      continue;
    }
    if (!linkExists(t.device)) continue;
    try {
      ip(['link', 'del', t.device]);
      removed.push(t.device);
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}
