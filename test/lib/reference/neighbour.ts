// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the neighbour-discovery failsafe (docs/datapath.md "The failsafe"): the one
// form of IPv6 neighbour solicitation and advertisement that passes before any policy. Whether a
// unicast destination is on this link is the kernel FIB's answer from the ingress interface,
// which the caller gives as `onLink`.
import { inPrefix } from './bytes.js';
import type { Datagram, Flow, Fragment } from './parse.js';

const prefix = (...head: number[]) => new Uint8Array([...head, ...new Array<number>(16 - head.length).fill(0)]);
const LINK_LOCAL = prefix(0xfe, 0x80);
const MULTICAST = prefix(0xff);
const LINK_SCOPE_GROUP = prefix(0xff, 0x02);
const SOLICITED_NODE = prefix(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff);
const UNSPECIFIED = prefix();

/** Neighbour discovery as RFC 4861 gives it (link scope), which passes as `failsafe`. */
export function isFailsafeNeighbour(ip: Datagram, fragment: Fragment | null, flow: Flow, onLink: (dst: Uint8Array) => boolean): boolean {
  if (ip.family !== 6 || ip.fixedNext !== 58 || fragment || flow.proto !== 58) return false;
  if (ip.hopLimit !== 255) return false;
  const type = flow.dport >> 8;
  if ((type !== 135 && type !== 136) || (flow.dport & 0xff) !== 0) return false;
  const length = ip.end - ip.start - 40;
  if (length < 24 || (length - 24) % 8 !== 0) return false;
  if (inPrefix(ip.src, MULTICAST, 8)) return false;
  if (inPrefix(ip.src, UNSPECIFIED, 128) && !(type === 135 && inPrefix(ip.dst, SOLICITED_NODE, 104))) return false;
  if (inPrefix(ip.dst, LINK_LOCAL, 10) || inPrefix(ip.dst, LINK_SCOPE_GROUP, 16)) return true;
  return !inPrefix(ip.dst, MULTICAST, 8) && onLink(ip.dst);
}
