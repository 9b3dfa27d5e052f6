// SPDX-License-Identifier: Apache-2.0
// The fleet's UI view, from the status bucket and the policy bucket (the same reading as
// `doorstep fleet status`): every enforcer, its version and the one it should run, its health,
// its WireGuard key. Readers within READ_SHARE_MS of each other share one reading.
import { expectedText, type FleetView, healthText } from '../fleet/enforcer-status.js';
import type { FleetEnforcerView, FleetViewSource } from './views.js';

/** Pages ask every tick (2 s): one bucket reading serves all the pages open within this. */
const READ_SHARE_MS = 1000;

export function fleetViewSource(read: () => Promise<FleetView>): FleetViewSource {
  let last: { at: number; reading: Promise<FleetView> } | undefined;
  return {
    read: async () => {
      const now = Date.now();
      if (!last || now - last.at > READ_SHARE_MS) last = { at: now, reading: read() };
      const reading = last.reading;
      reading.catch(() => (last = undefined)); // a failed reading is not shared
      const view = await reading;
      // a registered enforcer that does not report is listed as missing (membership, docs/fleet.md)
      const enforcers: FleetEnforcerView[] = view.enforcers.map((v) => ({
        enforcer: v.enforcer,
        labels: v.labels,
        health: v.status ? healthText(v.status, now) : 'MISSING: registered, no report within the status TTL',
        version: v.status?.policy?.version ?? null,
        expected: expectedText(v),
        inSync: v.inSync,
        reportedAt: v.status?.updatedAt ?? '',
        ...(v.status?.wireguard && { wireguardKey: v.status.wireguard.publicKey }),
      }));
      return { converged: view.converged, enforcers };
    },
  };
}
