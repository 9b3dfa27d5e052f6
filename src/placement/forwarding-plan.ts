// SPDX-License-Identifier: Apache-2.0
// What a placement asks of the host's network stack, as data: the tunnels to create, the
// policy-routing rules and routes, and the sysctls. Pure; forwarding.ts carries it out and undoes it.
//
// Accepted traffic from a source interface is looked up in its tunnel's own routing table (an
// `iif` rule): the source networks behind their interfaces, in the infra placement the local
// prefixes straight back out (hairpin), and everything else to the edge's address inside the
// tunnel. Replies from the edge arrive on the tunnel and use the same table. One table per tunnel
// keeps two tenants with overlapping ranges apart.
import { formatCidr } from '../policy/ir/cidr.js';
import type { Cidr } from '../policy/ir/ir.js';
import { OWNED_TABLES, type Placement, servingSource, type Tunnel } from './placement.js';

export interface RoutePlan {
  family: 4 | 6;
  table: number;
  /** `default` or a prefix */
  dst: string;
  /** `unicast` routes go `via` / `dev`; a `throw` route hands the lookup back to the main table. */
  type: 'unicast' | 'throw';
  via?: string;
  dev?: string;
}

export interface RulePlan {
  family: 4 | 6;
  iif: string;
  table: number;
  /** = table */
  pref: number;
}

export interface SysctlPlan {
  path: string;
  value: string;
}

export interface ForwardingPlan {
  tunnels: Tunnel[];
  routes: RoutePlan[];
  rules: RulePlan[];
  sysctls: SysctlPlan[];
  /** The tables and preferences the agent owns: anything of ours there that is not planned goes. */
  owned: { from: number; to: number };
}

const familyOf = (address: string): 4 | 6 => (address.includes(':') ? 6 : 4);

export function routeArgs(r: RoutePlan): string[] {
  const head = [`-${r.family}`, 'route'];
  if (r.type === 'throw') return [...head, 'replace', 'throw', r.dst, 'table', String(r.table)];
  return [...head, 'replace', r.dst, ...(r.via ? ['via', r.via] : []), ...(r.dev ? ['dev', r.dev] : []), 'table', String(r.table)];
}

export function ruleArgs(r: RulePlan, verb: 'add' | 'del'): string[] {
  return [`-${r.family}`, 'rule', verb, 'iif', r.iif, 'lookup', String(r.table), 'pref', String(r.pref)];
}

/** `ip link add` arguments of a tunnel device. */
export function tunnelArgs(t: Tunnel, edge: Placement['edge']): string[] {
  return [
    'link', 'add', t.device, 'type', 'vxlan', 'id', String(t.vni), 'remote', edge.remote,
    ...(edge.local ? ['local', edge.local] : []),
    ...(edge.device ? ['dev', edge.device] : []),
    'dstport', String(edge.port),
  ];
}

export function forwardingPlan(p: Placement): ForwardingPlan {
  const routes: RoutePlan[] = [];
  const rules: RulePlan[] = [];
  const families = new Set<4 | 6>([4]);
  const add = (route: RoutePlan) => {
    families.add(route.family);
    if (!routes.some((r) => r.table === route.table && r.family === route.family && r.dst === route.dst)) routes.push(route);
  };
  const text = (c: Cidr) => formatCidr(c.family, c.addr, c.len);
  for (const t of p.tunnels) {
    const served = p.sources.filter((s) => s.tunnel === t.device);
    for (const s of served) {
      for (const n of s.networks) {
        const via = s.via && familyOf(s.via) === n.family ? s.via : undefined;
        add({ family: n.family, table: t.table, dst: text(n), type: 'unicast', ...(via && { via }), dev: s.interface });
      }
    }
    for (const l of p.local) {
      const target = servingSource(p, l);
      if (!target) {
        add({ family: l.family, table: t.table, dst: text(l), type: 'throw' });
        continue;
      }
      const via = target.via && familyOf(target.via) === l.family ? target.via : undefined;
      add({ family: l.family, table: t.table, dst: text(l), type: 'unicast', ...(via && { via }), dev: target.interface });
    }
    for (const peer of t.peers) add({ family: peer.family, table: t.table, dst: 'default', type: 'unicast', via: peer.address, dev: t.device });
  }
  for (const t of p.tunnels) {
    const iifs = [...new Set([...p.sources.filter((s) => s.tunnel === t.device).map((s) => s.interface), t.device])];
    for (const family of families) for (const iif of iifs) rules.push({ family, iif, table: t.table, pref: t.table });
  }
  const sysctls: SysctlPlan[] = [{ path: '/proc/sys/net/ipv4/ip_forward', value: '1' }];
  if (families.has(6)) sysctls.push({ path: '/proc/sys/net/ipv6/conf/all/forwarding', value: '1' });
  // reverse-path filtering would check a source against the main table, which knows nothing of
  // the networks behind our tables
  for (const dev of new Set([...p.sources.map((s) => s.interface), ...p.tunnels.map((t) => t.device)])) {
    sysctls.push({ path: `/proc/sys/net/ipv4/conf/${dev}/rp_filter`, value: '0' });
  }
  return { tunnels: p.tunnels, routes, rules, sysctls, owned: { from: p.routeTable, to: p.routeTable + OWNED_TABLES - 1 } };
}
