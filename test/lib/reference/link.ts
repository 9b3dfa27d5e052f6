// SPDX-License-Identifier: Apache-2.0
// Reference datapath, link layer (docs/datapath.md "Layers and lengths", rows Ethernet and
// EtherType): the Ethernet header, up to two VLAN tags, and the EtherType they lead to.
import { u16 } from './bytes.js';

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
const VLAN_TPIDS = new Set([0x8100, 0x88a8, 0x9100]);

export interface Link {
  etherType: number;
  /** The first tag's VID, 0 without one. */
  vlanOuter: number;
  /** The second tag's VID, 0 without one. */
  vlanInner: number;
  /** Offset of the first byte after the link header. */
  end: number;
}

/** The link header, or why it is malformed. */
export function parseLink(f: Uint8Array): Link | string {
  if (f.length < 14) return 'Ethernet: shorter than 14 bytes';
  let type = u16(f, 12);
  let at = 14;
  const vids: number[] = [];
  while (VLAN_TPIDS.has(type)) {
    if (vids.length === 2) return 'Ethernet: a third VLAN tag';
    if (at + 4 > f.length) return 'Ethernet: a VLAN tag cut short';
    vids.push(u16(f, at) & 0x0fff);
    type = u16(f, at + 2);
    at += 4;
  }
  return { etherType: type, vlanOuter: vids[0] ?? 0, vlanInner: vids[1] ?? 0, end: at };
}
