// SPDX-License-Identifier: Apache-2.0
// The agent's fleet status report against a real JetStream server: it stays in the bucket for
// as long as the agent runs, even when the bucket was created with a shorter TTL than the
// agent's, it expires when the agent dies, and a clean stop removes it at once.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type EnforcerStatus, parseStatus, statusKey } from '../../src/fleet/enforcer-status.js';
import { StatusReporter } from '../../src/fleet/status-reporter.js';
import { sleep } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const report = (enforcer: string): EnforcerStatus => ({
  format: 1,
  enforcer,
  labels: { region: 'eu' },
  health: 'enforcing',
  policy: { version: 'sha256:1', generation: 1, origin: 'nats:p', rules: 1, installedAt: new Date().toISOString() },
  rejected: null,
  counters: { passed: 1, dropped: 2, sessions: 3, eventsLost: 0, auditDropped: 0 },
  interfaces: [{ name: 'eth0', mode: 'native' }],
  agent: { pid: 1, startedAt: new Date().toISOString() },
  updatedAt: new Date().toISOString(),
});

describe('fleet status reporter', () => {
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  after(async () => {
    await nc?.close();
    await server?.cleanup();
  });

  it('outlives a shorter bucket TTL while it runs; a dead agent expires, a clean stop leaves at once', async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    // the bucket exists with a 3 s TTL; this agent was told 30 s
    const kv = await new Kvm(nc).create('status', { history: 1, ttl: 3000 });
    const problems: string[] = [];
    const live = new StatusReporter({ connection: async () => nc!, bucket: 'status', ttlMs: 30_000, enforcer: 'edge.1', report: () => report('edge.1'), onError: (e) => problems.push(e.message) });
    live.start();
    // edge-2 reported once and died (no clean stop, so no delete)
    await kv.put(statusKey('edge-2'), JSON.stringify(report('edge-2')));
    await sleep(500);
    assert.equal(statusKey('edge.1'), 'enforcers.edge_1');
    const first = await kv.get(statusKey('edge.1'));
    assert.equal(parseStatus(first!.value)?.enforcer, 'edge.1');
    assert.match(problems.join('\n'), /TTL is 3 s, not the 30 s/);

    await sleep(5000); // longer than the bucket's TTL
    const stillThere = await kv.get(statusKey('edge.1'));
    assert.equal(stillThere?.operation, 'PUT', 'the live agent is still in the bucket after more than the TTL');
    assert.ok((stillThere?.revision ?? 0) > (first?.revision ?? 0), 'it reported again');
    assert.equal(await kv.get(statusKey('edge-2')), null, 'the dead one expired');

    await live.close();
    const gone = await kv.get(statusKey('edge.1'));
    assert.notEqual(gone?.operation, 'PUT', 'a clean stop removes the entry');
  });
});
