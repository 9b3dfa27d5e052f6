// SPDX-License-Identifier: Apache-2.0
// A placement's tunnels as the agent reports them: in its `tunnel` audit records, in `doorstep
// status` (with WireGuard's handshake and byte counts read from `wg show`), and in the fleet's
// status bucket (what the edge needs to add this enforcer as a peer). Pure.
import type { TunnelFields } from '../audit/records.js';
import type { Placement, Tunnel } from './placement.js';
import type { EdgePeer, WireguardDeviceState } from './wireguard-conf.js';

/** A WireGuard session is dropped this long after its handshake unless a new one came (the protocol's Reject-After-Time). */
export const WIREGUARD_REJECT_AFTER_S = 180;

export interface WireguardIdentity {
  implementation: string;
  publicKey: string;
}

/** Our WireGuard endpoint as the edge would dial it: `edge.local` and the tunnel's port; null without `edge.local`. */
export function ourEndpoint(p: Placement, t: Tunnel): string | null {
  const local = p.edge.local;
  if (!local || !t.wireguard) return null;
  return local.includes(':') ? `[${local}]:${t.wireguard.listenPort}` : `${local}:${t.wireguard.listenPort}`;
}

export function tunnelFields(p: Placement, t: Tunnel, wg: WireguardIdentity | undefined): TunnelFields {
  if (t.kind === 'vxlan' || !t.wireguard || !wg) {
    return { kind: 'vxlan', encrypted: false, edge: p.edge.remote.includes(':') ? `[${p.edge.remote}]:${p.edge.port}` : `${p.edge.remote}:${p.edge.port}` };
  }
  return {
    kind: 'wireguard',
    encrypted: true,
    implementation: wg.implementation,
    publicKey: wg.publicKey,
    listenPort: t.wireguard.listenPort,
    edge: t.wireguard.endpoint,
    edgePublicKey: t.wireguard.peerPublicKey,
  };
}

/** The one line a `tunnel` record's message says. */
export function tunnelSentence(device: string, f: TunnelFields): string {
  if (f.kind === 'vxlan') return `${device}: VXLAN to ${f.edge}, clear text: only for an underlay you trust (edge.tunnel: vxlan)`;
  return `${device}: WireGuard (${f.implementation}) to ${f.edge}, edge key ${f.edgePublicKey}; ours ${f.publicKey}, port ${f.listenPort}`;
}

export interface TunnelStatus extends TunnelFields {
  device: string;
  tenant?: string;
  /** The device exists. */
  up: boolean;
  /** WireGuard: where the edge reaches us (`edge.local`:port), null when not configured. */
  endpoint?: string | null;
  /** WireGuard: `established` (a handshake within the last 180 s), `pending` (none yet: the edge has not answered), `stale` (none for longer). */
  handshake?: 'established' | 'pending' | 'stale';
  latestHandshake?: string | null;
  rxBytes?: number;
  txBytes?: number;
}

/** One tunnel's status; `state`: what `wg show` said of its device (undefined: no such device). */
export function tunnelStatus(p: Placement, t: Tunnel, wg: WireguardIdentity | undefined, state: WireguardDeviceState | undefined, up: boolean, nowS: number): TunnelStatus {
  const fields = tunnelFields(p, t, wg);
  const base = { ...fields, device: t.device, ...(t.tenant && { tenant: t.tenant }), up };
  if (fields.kind === 'vxlan') return base;
  const peer = state?.peers.find((x) => x.publicKey === fields.edgePublicKey);
  const latest = peer?.latestHandshake ?? 0;
  return {
    ...base,
    endpoint: ourEndpoint(p, t),
    handshake: latest === 0 ? 'pending' : nowS - latest > WIREGUARD_REJECT_AFTER_S ? 'stale' : 'established',
    latestHandshake: latest === 0 ? null : new Date(latest * 1000).toISOString(),
    rxBytes: peer?.rxBytes ?? 0,
    txBytes: peer?.txBytes ?? 0,
  };
}

/** What the fleet publishes of an enforcer's WireGuard tunnels: enough for the edge's peer list. */
export function edgePeersOf(enforcer: string, p: Placement, publicKey: string): EdgePeer[] {
  return p.tunnels
    .filter((t) => t.wireguard)
    .map((t) => {
      const served = p.sources.filter((s) => s.tunnel === t.device);
      const inside = t.addresses.map((a) => `${a.text.split('/')[0]}/${a.family === 4 ? 32 : 128}`);
      return {
        name: `${enforcer} ${t.device}${t.tenant ? ` (tenant ${t.tenant})` : ''}`,
        edgePort: Number(t.wireguard!.endpoint.slice(t.wireguard!.endpoint.lastIndexOf(':') + 1)),
        publicKey,
        endpoint: ourEndpoint(p, t),
        allowedIps: [...served.flatMap((s) => s.networks.map((n) => n.text)), ...inside],
      };
    });
}
