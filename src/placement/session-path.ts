// SPDX-License-Identifier: Apache-2.0
// Where an allowed session went, as the placement routes it: from a source interface to a local
// prefix straight back (infra: `hairpin`), otherwise to the `edge`; from a tunnel, to the `source`
// network. Adds the tenant in the infra placement. Pure: the audit pipeline calls it per record.
import type { SessionRecord } from '../audit/session-record.js';
import { cidrContains, parseCidr } from '../policy/ir/cidr.js';
import type { Placement } from './placement.js';

export function sessionAnnotator(p: Placement): (r: SessionRecord) => void {
  const sources = new Map(p.sources.map((s) => [s.interface, s]));
  const tunnels = new Map(p.tunnels.map((t) => [t.device, t]));
  const isLocal = (dst: string) => {
    if (p.local.length === 0) return false;
    const a = parseCidr(dst);
    return !('problem' in a) && p.local.some((l) => l.family === a.family && cidrContains(l, a.family, a.addr));
  };
  return (r) => {
    const source = sources.get(r.interface);
    const tunnel = source ? undefined : tunnels.get(r.interface);
    const tenant = source?.tenant ?? tunnel?.tenant;
    if (tenant) r.tenant = tenant;
    if (r.verdict !== 'allow') return;
    if (source) r.path = isLocal(r.dst) ? 'hairpin' : 'edge';
    else if (tunnel) r.path = 'source';
  };
}
