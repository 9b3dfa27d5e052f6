// SPDX-License-Identifier: Apache-2.0
// The fleet tests' NATS fixture: a real JetStream server on loopback whose key-value buckets
// survive a stop and start (the fleet issue takes the server away and brings it back).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NatsServer } from '../lib/nats-server.js';

describe('nats fixture: a JetStream server on loopback', () => {
  let server: NatsServer | undefined;
  after(() => server?.cleanup());

  it('keeps a key-value bucket across a stop and a start', async () => {
    server = await NatsServer.start();
    let nc = await connect({ servers: server.url });
    const kv = await new Kvm(nc).create(`fixture-${process.pid}`, { history: 5 });
    const revision = await kv.put('policy.web', 'v1');
    assert.ok(revision > 0);
    await nc.close();

    await server.stop();
    await assert.rejects(connect({ servers: server.url, reconnect: false, timeout: 1000 }));
    await server.start();

    nc = await connect({ servers: server.url });
    const again = await new Kvm(nc).open(`fixture-${process.pid}`);
    const entry = await again.get('policy.web');
    assert.equal(entry?.string(), 'v1');
    assert.equal(entry?.revision, revision);
    await nc.close();
  });
});
