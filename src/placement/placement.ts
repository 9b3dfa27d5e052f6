// SPDX-License-Identifier: Apache-2.0
// Where an enforcer stands and what it forwards: the `placement`, `sources`, `local` and `edge`
// settings of the agent's config file, checked and resolved into one `Placement`. Pure: reads
// nothing, touches nothing (forwarding.ts applies it).
import { z } from 'zod';
import { DoorstepError } from '../errors.js';
import { cidrContains, parseCidr } from '../policy/cidr.js';
import type { Cidr } from '../policy/ir.js';
import { tenantId } from '../policy/tenants.js';

export const PLACEMENTS = ['workload', 'infra', 'datacenter'] as const;
export type PlacementKind = (typeof PLACEMENTS)[number];

/** The first policy-routing table (and rule preference) the agent uses; one more per tunnel. */
export const DEFAULT_ROUTE_TABLE = 4200;
export const VXLAN_PORT = 4789;
/** How many tables (and rule preferences) from `routeTable` on the agent treats as its own. */
export const OWNED_TABLES = 256;

const listOf = (item: z.ZodString) => z.union([item, z.array(item).min(1)]);

/** One tunnel to the edge: its VNI, our address inside it and the edge's. */
const tunnelSchema = z.strictObject({
  vni: z.number().int().min(1).max(16_777_215),
  /** Ours, with its prefix length: 169.254.10.2/30; one per family. */
  address: listOf(z.string()),
  /** The edge's, inside the tunnel: the next hop of everything sent to the edge; one per family. */
  peer: listOf(z.string()),
});

export const placementFileSchema = {
  placement: z.enum(PLACEMENTS).optional(),
  /** The source networks this enforcer serves, each behind one interface (role `source`). */
  sources: z
    .array(
      z.strictObject({
        /** The network's name; in the infra placement also its tenant (policies may scope rules to it). */
        name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a lowercase name such as vpc-a'),
        interface: z.string().min(1).max(15),
        networks: z.array(z.string()).min(1),
        /** The next hop towards `networks` when they are not on the interface's own link. */
        via: z.string().optional(),
        /** Its own tunnel to the edge (infra: one per tenant, so overlapping ranges stay apart). */
        tunnel: tunnelSchema.optional(),
      }),
    )
    .optional(),
  /** Infra only: prefixes in the same cloud and region; traffic to them is sent straight back (hairpin). */
  local: z.array(z.string()).optional(),
  edge: z
    .strictObject({
      tunnel: z.literal('vxlan', { error: 'only vxlan: this build has no WireGuard (docs/placement.md)' }).optional(),
      /** The edge's underlay address: where the tunnel's packets go. */
      remote: z.string(),
      /** Our underlay address (default: the kernel's choice). */
      local: z.string().optional(),
      /** The underlay interface (default: the route to `remote`). */
      device: z.string().optional(),
      port: z.number().int().min(1).max(65535).optional(),
      mtu: z.number().int().min(1280).max(65535).optional(),
      vni: z.number().int().min(1).max(16_777_215).optional(),
      address: listOf(z.string()).optional(),
      peer: listOf(z.string()).optional(),
    })
    .optional(),
  /** First policy-routing table and rule preference (one per tunnel from there). */
  routeTable: z.number().int().min(1).max(2 ** 31 - 2).optional(),
};

export interface PlacementFile {
  placement?: PlacementKind | undefined;
  sources?: z.infer<(typeof placementFileSchema)['sources']>;
  local?: string[] | undefined;
  edge?: z.infer<(typeof placementFileSchema)['edge']>;
  routeTable?: number | undefined;
}

/** An address with its prefix length, as an interface carries it (host bits allowed). */
export interface InterfaceAddress {
  family: 4 | 6;
  /** `a.b.c.d/len` */
  text: string;
}

export interface Tunnel {
  /** `dsvx<vni>`: the agent's own device, enforced as a `fabric` interface. */
  device: string;
  vni: number;
  addresses: InterfaceAddress[];
  /** The edge's address per family inside the tunnel. */
  peers: { family: 4 | 6; address: string }[];
  /** Its policy-routing table, which is also the preference of its rules. */
  table: number;
  /** The tenant whose traffic it carries, when it carries one source's. */
  tenant?: string;
}

export interface Source {
  name: string;
  interface: string;
  networks: Cidr[];
  via?: string;
  /** Its name, when it has a tunnel of its own (infra: always); otherwise none. */
  tenant?: string;
  /** The device of the tunnel its accepted traffic takes. */
  tunnel: string;
}

export interface Placement {
  kind: PlacementKind;
  sources: Source[];
  tunnels: Tunnel[];
  /** Infra: hairpin prefixes; empty elsewhere. */
  local: Cidr[];
  edge: { remote: string; local?: string; device?: string; port: number; mtu?: number };
  /** The first of the agent's routing tables (and rule preferences): one per tunnel from here. */
  routeTable: number;
}

function placementError(where: string, message: string, hint: string): DoorstepError {
  return new DoorstepError('DS_E_CONFIG', `${where}: ${message}`, { hint });
}

const many = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

function prefix(text: string, where: string): Cidr {
  const c = parseCidr(text);
  if ('problem' in c) throw placementError(where, c.problem, 'write a prefix such as 10.1.0.0/16 or fd00:1::/64');
  return c;
}

function address(text: string, where: string): 4 | 6 {
  const c = parseCidr(text);
  if ('problem' in c || c.len !== (c.family === 4 ? 32 : 128)) throw placementError(where, `"${text}" is not an IP address`, 'write e.g. 10.240.0.1');
  return c.family;
}

function interfaceAddress(text: string, where: string): InterfaceAddress {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  const family = m ? address(m[1] as string, where) : undefined;
  if (!m || !family || Number(m[2]) > (family === 4 ? 32 : 128)) {
    throw placementError(where, `"${text}" is not an address with its prefix length`, 'write e.g. 169.254.10.2/30');
  }
  return { family, text };
}

function tunnelOf(
  spec: { vni: number; address: string | string[]; peer: string | string[] },
  table: number,
  where: string,
  tenant: string | undefined,
): Tunnel {
  const addresses = many(spec.address).map((a, i) => interfaceAddress(a, `${where}.address[${i}]`));
  const peers = many(spec.peer).map((p, i) => ({ family: address(p, `${where}.peer[${i}]`), address: p }));
  for (const p of peers) {
    if (!addresses.some((a) => a.family === p.family)) {
      throw placementError(where, `the peer ${p.address} has no address of its family on our side`, 'give an address of each peer family');
    }
  }
  return { device: `dsvx${spec.vni}`, vni: spec.vni, addresses, peers, table, ...(tenant !== undefined && { tenant }) };
}

/** Check and resolve the placement settings; undefined when the file names no placement. */
export function resolvePlacement(file: PlacementFile, path: string): Placement | undefined {
  const at = (key: string) => `${path}: ${key}`;
  if (!file.placement) {
    for (const key of ['sources', 'local', 'edge', 'routeTable'] as const) {
      if (file[key] !== undefined) throw placementError(at(key), 'needs `placement:`', 'add placement: workload, infra or datacenter');
    }
    return undefined;
  }
  const kind = file.placement;
  const sources = file.sources ?? [];
  if (sources.length === 0) throw placementError(at('sources'), 'a placement serves at least one source network', 'list the source networks under `sources:`');
  if (!file.edge) throw placementError(at('edge'), 'a placement forwards to an edge', 'give `edge: { remote: ADDRESS, vni: N, address: A/LEN, peer: P }`');
  if (kind !== 'infra' && file.local?.length) {
    throw placementError(at('local'), `hairpin prefixes are for the infra placement, not ${kind}`, 'remove `local:` or use placement: infra');
  }
  const edge = file.edge;
  address(edge.remote, at('edge.remote'));
  if (edge.local) address(edge.local, at('edge.local'));
  const base = file.routeTable ?? DEFAULT_ROUTE_TABLE;

  // sources first, then one tunnel per VNI; a source with a tunnel of its own is a tenant
  // (infra: always), so its sessions, replies and tenant-scoped rules are its own
  const names = new Set<string>();
  const specs = sources.map((s, i) => {
    const where = at(`sources[${i}]`);
    if (names.has(s.name)) throw placementError(`${where}.name`, `"${s.name}" is named twice`, 'give each source network its own name');
    const clash = [...names].find((n) => tenantId(n) === tenantId(s.name));
    if (clash) throw placementError(`${where}.name`, `"${s.name}" and "${clash}" have the same tenant id`, 'rename one of them');
    names.add(s.name);
    if (kind === 'infra' && sources.some((o, j) => j < i && o.interface === s.interface)) {
      // the tenant of a packet is the interface it arrives on
      throw placementError(`${where}.interface`, `${s.interface} already serves another tenant`, 'give every infra source its own interface (a VLAN or VXLAN device per tenant)');
    }
    if (s.via) address(s.via, `${where}.via`);
    const spec = s.tunnel ?? (edge.vni !== undefined && edge.address && edge.peer ? { vni: edge.vni, address: edge.address, peer: edge.peer } : undefined);
    if (!spec) throw placementError(`${where}.tunnel`, 'no tunnel to the edge', 'give the source a `tunnel:` or the edge a default `vni`, `address` and `peer`');
    return { source: s, where, spec, networks: s.networks.map((n, j) => prefix(n, `${where}.networks[${j}]`)) };
  });
  const tunnels = new Map<number, Tunnel>();
  const resolved: Source[] = specs.map(({ source: s, where, spec, networks }) => {
    const sharing = specs.filter((o) => o.spec.vni === spec.vni).length;
    if (kind === 'infra' && sharing > 1) {
      // one tunnel per tenant: replies from the edge are told apart by the device they arrive on
      throw placementError(`${where}.tunnel.vni`, `VNI ${spec.vni} carries more than one tenant`, 'give every infra source its own tunnel VNI');
    }
    const tenant = sharing === 1 ? s.name : undefined;
    let tunnel = tunnels.get(spec.vni);
    if (!tunnel) {
      if (tunnels.size >= OWNED_TABLES) throw placementError(`${where}.tunnel`, `more than ${OWNED_TABLES} tunnels`, 'serve fewer networks per enforcer');
      tunnel = tunnelOf(spec, base + tunnels.size, s.tunnel ? `${where}.tunnel` : at('edge'), tenant);
      tunnels.set(spec.vni, tunnel);
    }
    return { name: s.name, interface: s.interface, networks, ...(s.via && { via: s.via }), ...(tenant && { tenant }), tunnel: tunnel.device };
  });
  const local = (file.local ?? []).map((l, i) => prefix(l, at(`local[${i}]`)));
  return {
    kind,
    sources: resolved,
    tunnels: [...tunnels.values()],
    local,
    edge: {
      remote: edge.remote,
      ...(edge.local && { local: edge.local }),
      ...(edge.device && { device: edge.device }),
      port: edge.port ?? VXLAN_PORT,
      ...(edge.mtu && { mtu: edge.mtu }),
    },
    routeTable: base,
  };
}

/** The served source whose networks hold `cidr` entirely, if any (the hairpin target of a local prefix). */
export function servingSource(placement: Placement, cidr: Cidr): Source | undefined {
  return placement.sources.find((s) => s.networks.some((n) => n.family === cidr.family && n.len <= cidr.len && cidrContains(n, cidr.family, cidr.addr)));
}

/** The interfaces the engine enforces on, with their roles and tenants: sources, then the tunnels. */
export function enforcedInterfaces(placement: Placement): { name: string; role: 'source' | 'fabric'; tenant?: string }[] {
  return [
    ...placement.sources.map((s) => ({ name: s.interface, role: 'source' as const, ...(s.tenant && { tenant: s.tenant }) })),
    ...placement.tunnels.map((t) => ({ name: t.device, role: 'fabric' as const, ...(t.tenant && { tenant: t.tenant }) })),
  ];
}
