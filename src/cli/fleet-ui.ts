// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet ui --nats URL --ui HOST:PORT`: the web UI's fleet view (enforcers, versions,
// convergence, keys) read from the fleet's buckets, served until SIGINT/SIGTERM. Loopback
// unless --ui-allow-remote; --ui-token FILE requires a token. Reads NATS only.
import { uiSettings } from '../controller/config.js';
import { DEFAULT_STATUS_BUCKET } from '../fleet/enforcer-status.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { fleetViewSource } from '../ui/fleet-views.js';
import { serveUi } from '../ui/ui-server.js';
import { readUiToken } from '../controller/ui-settings.js';
import { readFleet } from './fleet-status.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';

export interface FleetUiFlags extends NatsFlags {
  statusBucket?: string;
  ui: string;
  uiAllowRemote?: boolean;
  uiToken?: string;
}

export async function fleetUi(o: FleetUiFlags): Promise<number> {
  const settings = uiSettings(o.ui, o.uiAllowRemote ?? false, o.uiToken)!;
  const token = settings.tokenFile ? readUiToken(settings.tokenFile) : undefined;
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-fleet-ui' });
  const statusBucket = o.statusBucket ?? DEFAULT_STATUS_BUCKET;
  const fleet = fleetViewSource(() =>
    readFleet(nc, target.name, statusBucket).catch((err: unknown) => {
      throw natsFailure(err, `reading the fleet at ${describeTarget(target)}`);
    }),
  );
  try {
    const ui = await serveUi({ host: settings.host, port: settings.port, token, views: { title: `fleet ${target.name}`, fleet } });
    console.log(`web UI of the fleet at ${ui.url}${token ? ' (token required)' : ''}; Ctrl-C stops it`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await ui.close();
  } finally {
    await nc.close();
  }
  return ExitCode.OK;
}
