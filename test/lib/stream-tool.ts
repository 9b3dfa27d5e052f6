// SPDX-License-Identifier: Apache-2.0
// Every audit record stored in a JetStream stream, for tests: `node stream-tool.js SERVER STREAM`
// prints each message's JSON lines, in stream order (nothing when the stream does not exist).
// Run it where the server is reachable (under nsenter for a server in a test's namespace).
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const [server, stream] = process.argv.slice(2) as [string, string];
const nc = await connect({ servers: server, timeout: 5000 });
try {
  const jsm = await jetstreamManager(nc);
  try {
    const info = await jsm.streams.info(stream);
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (m) process.stdout.write(Buffer.from(m.data));
    }
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
  }
} finally {
  await nc.close();
}
