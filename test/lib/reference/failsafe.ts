// SPDX-License-Identifier: Apache-2.0
// Reference datapath, management prefixes (docs/datapath.md "The failsafe"): the longest source
// prefix of the packet's own family, then its protocol and destination-port range, if it has them.
import type { FailsafeEntry } from '../../../src/engine/engine.js';
import { inPrefix } from './bytes.js';
import type { Flow } from './parse.js';

export function failsafeAllows(entries: readonly FailsafeEntry[], family: 4 | 6, src: Uint8Array, flow: Flow): boolean {
  let best: FailsafeEntry | undefined;
  for (const e of entries) {
    if (e.cidr.family !== family || !inPrefix(src, e.cidr.addr, e.cidr.len)) continue;
    if (!best || e.cidr.len > best.cidr.len) best = e;
  }
  if (!best) return false;
  if (best.protocol && best.protocol !== flow.proto) return false;
  return !best.ports || (best.ports.lo <= flow.dport && flow.dport <= best.ports.hi);
}
