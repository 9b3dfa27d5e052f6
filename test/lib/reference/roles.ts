// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the controller's configuration of interfaces (docs/datapath.md step 4a
// "Interface roles and replies"): each interface's role (source or fabric) and tenant, every
// interface not named a source of tenant 0; and the networks tenants serve on this enforcer,
// the longest prefix of the packet's own family deciding. Owns only that configuration.
import type { Cidr } from '../../../src/policy/ir/ir.js';
import { inPrefix } from './bytes.js';

export type Side = 'source' | 'fabric';

export interface Role {
  role: Side;
  tenant: number;
}

const NONE: Role = { role: 'source', tenant: 0 };

export class Roles {
  private readonly byIfindex = new Map<number, Role>();
  private nets: readonly { cidr: Cidr; tenant: number }[] = [];
  private fabric = false;

  /** Engine.setInterfaceRoles: every interface not listed is a source of tenant 0. */
  setInterfaceRoles(entries: readonly { ifindex: number; role: Side; tenant?: number }[]): void {
    this.byIfindex.clear();
    for (const e of entries) this.byIfindex.set(e.ifindex, { role: e.role, tenant: e.tenant ?? 0 });
    this.fabric = entries.some((e) => e.role === 'fabric');
  }

  /** Engine.setTenantNetworks. */
  setTenantNetworks(entries: readonly { cidr: Cidr; tenant: number }[]): void {
    this.nets = entries;
  }

  of(ifindex: number): Role {
    return this.byIfindex.get(ifindex) ?? NONE;
  }

  /** "while some interface is a fabric" (DS_SETTING_TRACK_REPLIES). */
  get anyFabric(): boolean {
    return this.fabric;
  }

  /** "while it is not empty" (DS_SETTING_TENANT_NETS). */
  get tenantNetworks(): boolean {
    return this.nets.length > 0;
  }

  /** The tenant serving `dst` (the longest prefix of its family), or null. */
  servedBy(family: 4 | 6, dst: Uint8Array): number | null {
    let best: { cidr: Cidr; tenant: number } | undefined;
    for (const n of this.nets) {
      if (n.cidr.family !== family || !inPrefix(dst, n.cidr.addr, n.cidr.len)) continue;
      if (!best || n.cidr.len > best.cidr.len) best = n;
    }
    return best ? best.tenant : null;
  }
}
