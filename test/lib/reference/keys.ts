// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the identities it keeps state under, as text: a session (docs/datapath.md
// "Pipeline" step 4: addresses, ports, protocol, family, ingress interface, VLANs) and a
// fragmented datagram ("Fragments": addresses, identification, family, interface, VLANs,
// identity protocol). The engine's session keys convert to the same text for comparison.
import type { SessionKey } from '../../../src/abi/records.js';
import { hex } from './bytes.js';

export interface Where {
  ifindex: number;
  vlanOuter: number;
  vlanInner: number;
}

export function sessionKey(family: 4 | 6, src: Uint8Array, dst: Uint8Array, w: Where, proto: number, sport: number, dport: number): string {
  return `${family} ${hex(src)} ${hex(dst)} if${w.ifindex} v${w.vlanOuter}.${w.vlanInner} p${proto} ${sport}>${dport}`;
}

export function fragmentKey(family: 4 | 6, src: Uint8Array, dst: Uint8Array, w: Where, id: number, proto: number): string {
  return `${family} ${hex(src)} ${hex(dst)} if${w.ifindex} v${w.vlanOuter}.${w.vlanInner} id${id} p${proto}`;
}

/** An engine session key (addresses 16 bytes, IPv4 mapped) as the reference writes it. */
export function engineSessionKey(k: SessionKey): string {
  const cut = (a: Uint8Array) => (k.family === 4 ? a.subarray(12) : a);
  return sessionKey(k.family, cut(k.src), cut(k.dst), k, k.proto, k.sport, k.dport);
}

/** The engine's form of a session key: 16-byte addresses, IPv4 mapped. */
export function engineKeyOf(family: 4 | 6, src: Uint8Array, dst: Uint8Array, w: Where, proto: number, sport: number, dport: number): SessionKey {
  const wide = (a: Uint8Array) => {
    if (family === 6) return a.slice();
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(a, 12);
    return out;
  };
  return { family, src: wide(src), dst: wide(dst), ifindex: w.ifindex, vlanOuter: w.vlanOuter, vlanInner: w.vlanInner, proto, sport, dport };
}

/** An engine session key back as the flow it names: addresses of the family's length, and where. */
export function flowOfEngineKey(k: SessionKey): { family: 4 | 6; src: Uint8Array; dst: Uint8Array; where: Where; proto: number; sport: number; dport: number } {
  const cut = (a: Uint8Array) => (k.family === 4 ? a.slice(12) : a.slice());
  return { family: k.family, src: cut(k.src), dst: cut(k.dst), where: { ifindex: k.ifindex, vlanOuter: k.vlanOuter, vlanInner: k.vlanInner }, proto: k.proto, sport: k.sport, dport: k.dport };
}
