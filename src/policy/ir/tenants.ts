// SPDX-License-Identifier: Apache-2.0
// Tenant identity across the kernel boundary. A rule may be scoped to tenants by name (the VPCs
// one enforcer serves); the datapath knows a tenant only as the 32-bit id of its interfaces
// (struct ds_iface.tenant, written by the agent). Both sides derive that id from the name with
// tenantId, so a compiled policy image needs no agent configuration. Pure.

import { createHash } from 'node:crypto';

/** The id of "no tenant": interfaces the agent gave no tenant. No name maps to it. */
export const NO_TENANT = 0;

/**
 * The 32-bit id of a tenant name, stable across versions and machines: the first 4 bytes of the
 * SHA-256 of the name's UTF-8 bytes, read big-endian, with 0 (reserved for "no tenant") mapped to 1.
 * Two names can share an id (a 32-bit hash); the compiler refuses a policy that names two such
 * tenants, and an agent must refuse to serve two such tenants.
 */
export function tenantId(name: string): number {
  const id = createHash('sha256').update(name, 'utf8').digest().readUInt32BE(0);
  return id === NO_TENANT ? 1 : id;
}

/** `vpc-a (0x1a2b3c4d)`: a tenant as messages show it. */
export function formatTenant(name: string, id = tenantId(name)): string {
  return `${name} (${formatTenantId(id)})`;
}

/** `0x1a2b3c4d`; `none` for 0. */
export function formatTenantId(id: number): string {
  return id === NO_TENANT ? 'none' : `0x${id.toString(16).padStart(8, '0')}`;
}
