// SPDX-License-Identifier: Apache-2.0
// Raw key-value writes for tests, as anyone with write access to a bucket could make them (no
// envelope, no signature): `node kv-tool.js SERVER BUCKET put KEY VALUE` or `… delete KEY`.
// Run it where the server is reachable (FleetRig.kv runs it in the management namespace).
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

const [server, bucket, op, key, value] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const nc = await connect({ servers: server.split(','), timeout: 5000 });
try {
  const kv = await new Kvm(nc).open(bucket);
  if (op === 'put') console.log(await kv.put(key, value ?? ''));
  else if (op === 'delete') await kv.delete(key);
  else throw new Error(`unknown operation ${op}`);
} finally {
  await nc.close();
}
