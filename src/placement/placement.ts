// SPDX-License-Identifier: Apache-2.0
// Where an enforcer stands and what it forwards: the `placement`, `sources`, `local` and `edge`
// settings of the agent's config file, checked and resolved into one `Placement`. Pure: reads
// nothing, touches nothing (forwarding.ts applies it).
import { z } from 'zod';
import { DoorstepError } from '../errors.js';
import { cidrContains, parseCidr } from '../policy/ir/cidr.js';
import type { Cidr } from '../policy/ir/ir.js';
import { tenantId } from '../policy/ir/tenants.js';

export const PLACEMENTS = ['workload', 'infra', 'datacenter'] as const;
export type PlacementKind = (typeof PLACEMENTS)[number];

/** The first policy-routing table (and rule preference) the agent uses; one more per tunnel. */
export const DEFAULT_ROUTE_TABLE = 4200;
export const VXLAN_PORT = 4789;
/** WireGuard's customary UDP port: the edge's endpoint port and our first listen port, unless configured. */
export const WIREGUARD_PORT = 51820;
/** Seconds between keepalives: a NAT or stateful firewall on the underlay keeps the tunnel's mapping. */
export const WIREGUARD_KEEPALIVE = 25;
export const TUNNEL_KINDS = ['wireguard', 'vxlan'] as const;
export type TunnelKind = (typeof TUNNEL_KINDS)[number];
/** How many tables (and rule preferences) from `routeTable` on the agent treats as its own. */
export const OWNED_TABLES = 256;

const listOf = (item: z.ZodString) => z.union([item, z.array(item).min(1)]);

const port = z.number().int().min(1).max(65535);

/** One tunnel to the edge: its number (VXLAN: the VNI), our address inside it and the edge's. */
const tunnelSchema = z.strictObject({
  /** VXLAN: the VNI (device dsvx<vni>); WireGuard: the tunnel's number (device dswg<vni>). */
  vni: z.number().int().min(1).max(16_777_215),
  /** Ours, with its prefix length: 169.254.10.2/30; one per family. */
  address: listOf(z.string()),
  /** The edge's, inside the tunnel: the next hop of everything sent to the edge; one per family. */
  peer: listOf(z.string()),
  /** WireGuard: the edge's UDP port for this tunnel (infra: one per tenant, so each has its own interface there). */
  port: port.optional(),
  /** WireGuard: our UDP port for this tunnel. */
  listenPort: port.optional(),
  /** WireGuard: the edge's public key for this tunnel, when it is not `edge.publicKey`. */
  publicKey: z.string().optional(),
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
      /** `wireguard` (the default: encrypted) or `vxlan` (clear text: only over an underlay the operator trusts). */
      tunnel: z.enum(TUNNEL_KINDS, { error: 'wireguard (encrypted, the default) or vxlan (clear text, for a trusted underlay)' }).optional(),
      /** The edge's underlay address: where the tunnel's packets go. */
      remote: z.string(),
      /** WireGuard: the edge's public key (base64, as `wg pubkey` prints it). */
      publicKey: z.string().optional(),
      /** WireGuard: our first UDP port (the next tunnel takes the next port). */
      listenPort: port.optional(),
      /** WireGuard: what the edge may send us through the tunnel (default: everything, 0.0.0.0/0 and ::/0). */
      allowedIps: z.array(z.string()).min(1).optional(),
      /** WireGuard: seconds between keepalives, 0 = none (default 25). */
      keepalive: z.number().int().min(0).max(65535).optional(),
      /** WireGuard: the userspace implementation, used when the kernel has none (default: wireguard-go on PATH). */
      wireguardGo: z.string().min(1).optional(),
      /** Our underlay address (default: the kernel's choice). */
      local: z.string().optional(),
      /** The underlay interface (default: the route to `remote`). */
      device: z.string().optional(),
      /** The edge's UDP port (VXLAN: 4789; WireGuard: 51820). */
      port: port.optional(),
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

/** A WireGuard tunnel's own settings: our port and the edge as its one peer. */
export interface WireguardTunnel {
  listenPort: number;
  /** The edge's public key (base64). */
  peerPublicKey: string;
  /** The edge's endpoint, `host:port`. */
  endpoint: string;
  allowedIps: string[];
  /** Seconds; 0 = none. */
  keepalive: number;
}

export interface Tunnel {
  kind: TunnelKind;
  /** `dswg<vni>` (WireGuard) or `dsvx<vni>` (VXLAN): the agent's own device, enforced as a `fabric` interface. */
  device: string;
  vni: number;
  addresses: InterfaceAddress[];
  /** The edge's address per family inside the tunnel. */
  peers: { family: 4 | 6; address: string }[];
  /** Its policy-routing table, which is also the preference of its rules. */
  table: number;
  /** The tenant whose traffic it carries, when it carries one source's. */
  tenant?: string;
  /** WireGuard only. */
  wireguard?: WireguardTunnel;
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
  edge: { tunnel: TunnelKind; remote: string; local?: string; device?: string; port: number; mtu?: number; wireguardGo?: string };
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

/** A WireGuard key as `wg genkey` / `wg pubkey` print it: 32 bytes in base64 (44 characters). */
export function isWireguardKey(text: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text);
}

function wireguardKey(text: string | undefined, where: string): string {
  if (text === undefined) {
    throw placementError(where, 'the edge\'s WireGuard public key is missing', 'give the edge\'s key (`wg pubkey` prints it) as edge.publicKey, or set edge.tunnel: vxlan for an underlay you trust');
  }
  if (!isWireguardKey(text)) throw placementError(where, `"${text}" is not a WireGuard public key`, 'give 32 bytes in base64 (44 characters ending in =), as `wg pubkey` prints it');
  return text;
}

const endpointOf = (host: string, p: number) => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);

type TunnelSpec = z.infer<typeof tunnelSchema>;
type EdgeSpec = NonNullable<PlacementFile['edge']>;

function tunnelOf(spec: TunnelSpec, edge: EdgeSpec, index: number, table: number, where: string, edgeWhere: string, tenant: string | undefined): Tunnel {
  const kind = edge.tunnel ?? 'wireguard';
  const addresses = many(spec.address).map((a, i) => interfaceAddress(a, `${where}.address[${i}]`));
  const peers = many(spec.peer).map((p, i) => ({ family: address(p, `${where}.peer[${i}]`), address: p }));
  for (const p of peers) {
    if (!addresses.some((a) => a.family === p.family)) {
      throw placementError(where, `the peer ${p.address} has no address of its family on our side`, 'give an address of each peer family');
    }
  }
  const base = { kind, vni: spec.vni, addresses, peers, table, ...(tenant !== undefined && { tenant }) };
  if (kind === 'vxlan') {
    for (const key of ['port', 'listenPort', 'publicKey'] as const) {
      if (spec[key] !== undefined) throw placementError(`${where}.${key}`, 'is a WireGuard setting', 'remove it, or set edge.tunnel: wireguard');
    }
    return { ...base, device: `dsvx${spec.vni}` };
  }
  const peerPublicKey = spec.publicKey !== undefined ? wireguardKey(spec.publicKey, `${where}.publicKey`) : wireguardKey(edge.publicKey, `${edgeWhere}.publicKey`);
  const families = new Set(addresses.map((a) => a.family));
  const allowedIps = (edge.allowedIps ?? [...(families.has(4) ? ['0.0.0.0/0'] : []), ...(families.has(6) ? ['::/0'] : [])]).map((a, i) => prefix(a, `${edgeWhere}.allowedIps[${i}]`).text);
  return {
    ...base,
    device: `dswg${spec.vni}`,
    wireguard: {
      listenPort: spec.listenPort ?? (edge.listenPort ?? WIREGUARD_PORT) + index,
      peerPublicKey,
      endpoint: endpointOf(edge.remote, spec.port ?? edge.port ?? WIREGUARD_PORT),
      allowedIps,
      keepalive: edge.keepalive ?? WIREGUARD_KEEPALIVE,
    },
  };
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
  const tunnelKind = edge.tunnel ?? 'wireguard';
  if (tunnelKind === 'vxlan') {
    for (const key of ['publicKey', 'listenPort', 'allowedIps', 'keepalive', 'wireguardGo'] as const) {
      if (edge[key] !== undefined) throw placementError(at(`edge.${key}`), 'is a WireGuard setting', 'remove it, or set edge.tunnel: wireguard');
    }
  }
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
      const tunnelWhere = s.tunnel ? `${where}.tunnel` : at('edge');
      tunnel = tunnelOf(spec, edge, tunnels.size, base + tunnels.size, tunnelWhere, at('edge'), tenant);
      const wg = tunnel.wireguard;
      const clash = wg && [...tunnels.values()].find((o) => o.wireguard?.endpoint === wg.endpoint && o.wireguard.peerPublicKey === wg.peerPublicKey);
      if (clash) {
        // one WireGuard interface per tenant on both sides: the edge tells tenants apart by the interface a packet arrives on
        throw placementError(`${tunnelWhere}.port`, `${tunnel.device} and ${clash.device} go to the same edge interface (${wg.endpoint})`, 'give each tunnel its own edge port (`tunnel.port`), one edge interface per tenant');
      }
      const portClash = wg && [...tunnels.values()].find((o) => o.wireguard?.listenPort === wg.listenPort);
      if (portClash) throw placementError(`${tunnelWhere}.listenPort`, `${tunnel.device} and ${portClash.device} both listen on ${wg.listenPort}`, 'give each tunnel its own listenPort');
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
      tunnel: tunnelKind,
      remote: edge.remote,
      ...(edge.local && { local: edge.local }),
      ...(edge.device && { device: edge.device }),
      port: edge.port ?? (tunnelKind === 'vxlan' ? VXLAN_PORT : WIREGUARD_PORT),
      ...(edge.mtu && { mtu: edge.mtu }),
      ...(edge.wireguardGo && { wireguardGo: edge.wireguardGo }),
    },
    routeTable: base,
  };
}

/** The served source whose networks hold `cidr` entirely, if any (the hairpin target of a local prefix). */
export function servingSource(placement: Placement, cidr: Cidr): Source | undefined {
  return placement.sources.find((s) => s.networks.some((n) => n.family === cidr.family && n.len <= cidr.len && cidrContains(n, cidr.family, cidr.addr)));
}

/** The interfaces the engine enforces on, with their roles and tenants: sources, then the tunnels. */
export function enforcedInterfaces(placement: Placement): { name: string; role: 'source' | 'fabric'; tenant?: string; l3?: true }[] {
  return [
    ...placement.sources.map((s) => ({ name: s.interface, role: 'source' as const, ...(s.tenant && { tenant: s.tenant }) })),
    // a WireGuard device carries IP packets without a link-layer header
    ...placement.tunnels.map((t) => ({ name: t.device, role: 'fabric' as const, ...(t.tenant && { tenant: t.tenant }), ...(t.kind === 'wireguard' && { l3: true as const }) })),
  ];
}

/**
 * What a reload may change without a restart: the edge's WireGuard peer settings of each tunnel
 * (its public key, endpoint, allowed IPs, keepalive). Returns the tunnels whose peer changed, with
 * their new settings, or the first other difference (which needs a restart).
 */
export function peerChanges(current: Placement, next: Placement): { changed: { device: string; wireguard: WireguardTunnel }[] } | { problem: string } {
  const peerless = (p: Placement) => JSON.stringify({ ...p, tunnels: p.tunnels.map((t) => ({ ...t, wireguard: t.wireguard && { ...t.wireguard, peerPublicKey: '', endpoint: '', allowedIps: [], keepalive: 0 } })) });
  if (peerless(current) !== peerless(next)) return { problem: 'only the edge\'s WireGuard peer settings (edge.publicKey, edge.port, edge.allowedIps, edge.keepalive, a tunnel\'s publicKey and port) apply without a restart' };
  const changed: { device: string; wireguard: WireguardTunnel }[] = [];
  current.tunnels.forEach((t, i) => {
    const n = next.tunnels[i];
    if (t.wireguard && n?.wireguard && JSON.stringify(t.wireguard) !== JSON.stringify(n.wireguard)) changed.push({ device: t.device, wireguard: n.wireguard });
  });
  return { changed };
}
