// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, the interfaces of a run (docs/datapath.md step 4a): which test
// interfaces are sources and which fabrics, of which tenants, and which networks tenants serve
// (hairpin), nested and with an IPv4-mapped IPv6 twin, so that the longest prefix and the family
// decide. A run's sequences aim replies at these roles; the runner gives both sides the same.
import { parseCidr } from '../../../src/policy/ir/cidr.js';
import type { Cidr } from '../../../src/policy/ir/ir.js';
import { tenantId } from '../../../src/policy/ir/tenants.js';
import type { Random } from '../random-policy.js';

export type Side = 'source' | 'fabric';

export interface Role {
  role: Side;
  tenant: number;
}

export interface Topology {
  /** For Engine.setInterfaceRoles and the reference's: the interfaces given a role. */
  roles: { ifindex: number; role: Side; tenant: number }[];
  nets: { cidr: Cidr; tenant: number }[];
  /** The role of each interface of the run, by its index in the run's interface list. */
  of: Role[];
}

export const TENANTS = { a: tenantId('vpc-a'), b: tenantId('vpc-b'), c: tenantId('vpc-c') } as const;

const cidr = (text: string): Cidr => {
  const c = parseCidr(text);
  if ('problem' in c) throw new Error(c.problem);
  return c;
};

/** Networks tenants serve here: A and B side by side, a /24 of B inside A's /16, a mapped twin. */
const NETS: { cidr: Cidr; tenant: number }[] = [
  { cidr: cidr('10.1.0.0/16'), tenant: TENANTS.a },
  { cidr: cidr('fd00:1::/32'), tenant: TENANTS.a },
  { cidr: cidr('10.2.0.0/16'), tenant: TENANTS.b },
  { cidr: cidr('fd00:2::/32'), tenant: TENANTS.b },
  { cidr: cidr('10.1.255.0/24'), tenant: TENANTS.b },
  { cidr: cidr('::ffff:10.2.0.0/112'), tenant: TENANTS.a },
  { cidr: cidr('10.250.0.0/16'), tenant: TENANTS.a },
];

/** The networks a generator aims hairpinned flows at (the run's, or these when it has none). */
export const TENANT_NETS = NETS;

/**
 * The roles of a run's interfaces. `ifindex` lists them as the datapath sees them; `assignable`
 * says which may be given a role (the test run's default interface stays a source of tenant 0).
 * The first two assignable ones are sources of A and B; the third is A's fabric or source; the
 * fourth B's fabric, or a source of B or of C (B's addresses, another tenant).
 */
export function pickTopology(r: Random, ifaces: readonly { ifindex: number; assignable: boolean }[]): Topology {
  const layout: Role[] = [
    { role: 'source', tenant: TENANTS.a },
    { role: 'source', tenant: TENANTS.b },
    { role: r.chance(0.6) ? 'fabric' : 'source', tenant: TENANTS.a },
    r.pick<Role>([
      { role: 'fabric', tenant: TENANTS.b },
      { role: 'fabric', tenant: TENANTS.b },
      { role: 'source', tenant: TENANTS.b },
      { role: 'source', tenant: TENANTS.c },
    ]),
  ];
  const roles: Topology['roles'] = [];
  const of: Role[] = [];
  let next = 0;
  for (const i of ifaces) {
    if (!i.assignable) {
      of.push({ role: 'source', tenant: 0 });
      continue;
    }
    const role = layout[next++ % layout.length]!;
    of.push(role);
    roles.push({ ifindex: i.ifindex, ...role });
  }
  return { roles, nets: r.chance(0.5) ? NETS : [], of };
}
