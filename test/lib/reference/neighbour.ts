// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the neighbour-discovery failsafe (docs/datapath.md "The failsafe"): the one
// form of IPv6 neighbour solicitation and advertisement that passes before any policy.
import { inPrefix } from './bytes.js';
import type { Datagram, Flow, Fragment } from './parse.js';

const LINK_LOCAL = new Uint8Array([0xfe, 0x80, ...new Array(14).fill(0)]);
const LINK_MULTICAST = new Uint8Array([0xff, 0x02, ...new Array(14).fill(0)]);
const UNSPECIFIED = new Uint8Array(16);

/** Neighbour discovery as RFC 4861 gives it (link scope), which passes as `failsafe`. */
export function isFailsafeNeighbour(ip: Datagram, fragment: Fragment | null, flow: Flow): boolean {
  if (ip.family !== 6 || ip.fixedNext !== 58 || fragment || flow.proto !== 58) return false;
  if (ip.hopLimit !== 255) return false;
  const type = flow.dport >> 8;
  if ((type !== 135 && type !== 136) || (flow.dport & 0xff) !== 0) return false;
  const length = ip.end - ip.start - 40;
  if (length < 24 || (length - 24) % 8 !== 0) return false;
  const srcOk = inPrefix(ip.src, LINK_LOCAL, 10) || (type === 135 && inPrefix(ip.src, UNSPECIFIED, 128));
  const dstOk = inPrefix(ip.dst, LINK_LOCAL, 10) || inPrefix(ip.dst, LINK_MULTICAST, 16);
  return srcOk && dstOk;
}
