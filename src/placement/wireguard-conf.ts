// SPDX-License-Identifier: Apache-2.0
// WireGuard configuration as text, both ways: a tunnel's settings as the `wg setconf` /
// `wg syncconf` format (our key and port, the edge as the one peer), the `wg show DEV dump`
// lines read back into data, and an edge's peer list in wg-quick's format. Pure.
import type { Tunnel } from './placement.js';

/** The configuration `wg syncconf` gives a tunnel's device: exactly one peer, the edge. */
export function tunnelConf(privateKey: string, t: Tunnel): string {
  const wg = t.wireguard;
  if (!wg) throw new Error(`${t.device} is not a WireGuard tunnel`);
  return [
    '[Interface]',
    `PrivateKey = ${privateKey}`,
    `ListenPort = ${wg.listenPort}`,
    '',
    '[Peer]',
    `PublicKey = ${wg.peerPublicKey}`,
    `Endpoint = ${wg.endpoint}`,
    `AllowedIPs = ${wg.allowedIps.join(', ')}`,
    ...(wg.keepalive > 0 ? [`PersistentKeepalive = ${wg.keepalive}`] : []),
    '',
  ].join('\n');
}

export interface WireguardPeerState {
  publicKey: string;
  /** `host:port`, or null before the peer was heard from (and with no endpoint configured). */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 = none yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface WireguardDeviceState {
  publicKey: string;
  listenPort: number;
  peers: WireguardPeerState[];
}

/** `wg show DEV dump`: the device's line (private key, public key, port, fwmark), then one line per peer. */
export function parseWgDump(text: string): WireguardDeviceState {
  const [device, ...peers] = text.trim().split('\n').map((l) => l.split('\t'));
  if (!device || device.length < 4) throw new Error(`not the output of \`wg show DEV dump\`: ${JSON.stringify(text.slice(0, 80))}`);
  return {
    publicKey: device[1] ?? '',
    listenPort: Number(device[2]),
    peers: peers
      .filter((p) => p.length >= 8)
      .map((p) => ({
        publicKey: p[0] ?? '',
        endpoint: p[2] === '(none)' ? null : (p[2] ?? null),
        allowedIps: p[3] === '(none)' ? [] : (p[3] ?? '').split(','),
        latestHandshake: Number(p[4]),
        rxBytes: Number(p[5]),
        txBytes: Number(p[6]),
      })),
  };
}

/** One enforcer tunnel as the edge sees it: a peer of the edge's interface listening on `edgePort`. */
export interface EdgePeer {
  /** Who it is, for the comment above the peer. */
  name: string;
  /** The edge's port this tunnel goes to: the edge interface it is a peer of. */
  edgePort: number;
  publicKey: string;
  /** Where the edge reaches it, `host:port`; null: the edge learns it from the enforcer's handshake. */
  endpoint: string | null;
  /** What the enforcer may send through the tunnel: its networks and its address inside the tunnel. */
  allowedIps: string[];
}

/** wg-quick `[Peer]` sections for the edge, one file's worth per edge port (one edge interface per port). */
export function edgePeerLists(peers: readonly EdgePeer[]): Map<number, string> {
  const byPort = new Map<number, EdgePeer[]>();
  for (const p of [...peers].sort((a, b) => a.edgePort - b.edgePort || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    byPort.set(p.edgePort, [...(byPort.get(p.edgePort) ?? []), p]);
  }
  const out = new Map<number, string>();
  for (const [port, list] of byPort) {
    const sections = list.map((p) =>
      [`# ${p.name}`, '[Peer]', `PublicKey = ${p.publicKey}`, ...(p.endpoint ? [`Endpoint = ${p.endpoint}`] : []), `AllowedIPs = ${p.allowedIps.join(', ')}`, ''].join('\n'),
    );
    out.set(port, `# the peers of the edge's WireGuard interface listening on port ${port}\n\n${sections.join('\n')}`);
  }
  return out;
}
