// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet edge-config`: the edge's WireGuard peer list (wg-quick `[Peer]` sections), from
// what every live enforcer publishes in the fleet's status bucket: its public key, and per tunnel
// its endpoint and what it may send (its networks, its address inside the tunnel). One list per
// edge port (one edge interface per port: infra tenants each have their own); `--edge-port`
// picks one. A new enforcer joins the edge without anyone copying keys by hand.
import { writeFileSync } from 'node:fs';
import { DEFAULT_STATUS_BUCKET } from '../fleet/enforcer-status.js';
import { openBucket, readStatuses } from '../fleet/fleet-client.js';
import { connectNats, parseNatsUrl } from '../fleet/nats-connection.js';
import { edgePeerLists } from '../placement/wireguard-conf.js';
import { DoorstepError } from '../errors.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export async function fleetEdgeConfig(o: NatsFlags & { statusBucket?: string; edgePort?: number; out?: string }): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    const status = await openBucket(nc, o.statusBucket ?? DEFAULT_STATUS_BUCKET, 'no agent has reported yet: start agents with --policy nats://HOST:PORT/BUCKET');
    const statuses = await readStatuses(status);
    const lists = edgePeerLists(statuses.flatMap((s) => s.wireguard?.tunnels ?? []));
    if (o.edgePort !== undefined && !lists.has(o.edgePort)) {
      throw new DoorstepError('DS_E_USAGE', `no live enforcer has a WireGuard tunnel to edge port ${o.edgePort}`, {
        hint: `the ports enforcers use: ${[...lists.keys()].join(', ') || 'none (no enforcer reported a WireGuard tunnel)'}`,
      });
    }
    const text = o.edgePort !== undefined ? (lists.get(o.edgePort) as string) : [...lists.values()].join('\n');
    if (o.out) {
      writeFileSync(o.out, text);
      console.error(`wrote ${o.out}: ${[...lists.keys()].filter((p) => o.edgePort === undefined || p === o.edgePort).map((p) => `port ${p}`).join(', ')}`);
    } else process.stdout.write(text);
    if (lists.size === 0) console.error('no live enforcer reported a WireGuard tunnel');
    return ExitCode.OK;
  } finally {
    await nc.close();
  }
}
