// SPDX-License-Identifier: Apache-2.0
// The `nats` policy source against a real JetStream server: envelopes selected by labels become
// candidates in revision order; envelopes for other enforcers, unchanged sets and broken entries
// deliver nothing new.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type KV, Kvm } from '@nats-io/kv';
import type { PolicyEnvelope } from '../../src/fleet/policy-envelope.js';
import { NatsConnections, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { NatsSource } from '../../src/watcher/nats-source.js';
import type { PolicyCandidate } from '../../src/watcher/source.js';
import { NatsServer } from '../lib/nats-server.js';

const BUCKET = 'doorstep-policy-test';

function envelope(name: string, selector: Record<string, string>, text: string): string {
  const e: PolicyEnvelope = { format: 1, name, selector, documents: [{ file: `${name}.yaml`, text }] };
  return JSON.stringify(e);
}

/** Resolves with the next candidate, or rejects after `ms`. */
function next(queue: PolicyCandidate[], waiters: (() => void)[], ms = 10_000): Promise<PolicyCandidate> {
  return new Promise((resolve, reject) => {
    const take = () => {
      const c = queue.shift();
      if (!c) return false;
      clearTimeout(timer);
      resolve(c);
      return true;
    };
    const timer = setTimeout(() => reject(new Error(`no candidate within ${ms} ms`)), ms);
    if (!take()) waiters.push(() => void take());
  });
}

describe('policy source: nats key-value bucket', () => {
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let source: NatsSource | undefined;
  let closePool: (() => Promise<void>) | undefined;
  after(async () => {
    await source?.close();
    await closePool?.();
    await nc?.close();
    await server?.cleanup();
  });

  it('delivers the envelopes that select this enforcer, in revision order', async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    const kv: KV = await new Kvm(nc).create(BUCKET, { history: 10 });
    await kv.put('sets.base', envelope('base', {}, 'base-v1'));
    await kv.put('sets.eu', envelope('eu', { region: 'eu' }, 'eu-v1'));
    await kv.put('sets.us', envelope('us', { region: 'us' }, 'us-v1'));

    const queue: PolicyCandidate[] = [];
    const waiters: (() => void)[] = [];
    const errors: string[] = [];
    const pool = new NatsConnections({}, 'test');
    closePool = () => pool.close();
    source = new NatsSource({ connection: () => pool.get(parseNatsUrl(`${server!.url}/${BUCKET}`)), bucket: BUCKET, labels: { region: 'eu', cloud: 'aws' }, debounceMs: 50, onError: (e) => errors.push(e.message) });
    await source.start((c) => {
      queue.push(c);
      for (const w of waiters.splice(0)) w();
    });

    const first = await next(queue, waiters);
    assert.deepEqual(first.sources.map((s) => [s.file, s.text]), [[`${BUCKET}/sets.base/base.yaml`, 'base-v1'], [`${BUCKET}/sets.eu/eu.yaml`, 'eu-v1']]);
    assert.equal(first.origin, `nats:${BUCKET}`);
    assert.equal(first.revision, 3, 'the catch-up is one candidate at the newest revision');

    await kv.put('sets.us', envelope('us', { region: 'us' }, 'us-v2')); // not ours: nothing
    await kv.put('not-a-set', 'x'); // outside the watched keys
    await kv.put('sets.broken', '{"format":1}'); // not an envelope: a refusal, never a deletion
    const eu2 = await kv.put('sets.eu', envelope('eu', { region: 'eu' }, 'eu-v2'));
    // the garbage may come as a candidate of its own (refused) before eu-v2 does, or with it
    let second = await next(queue, waiters);
    if (second.revision !== eu2) {
      assert.deepEqual(second.sources.map((s) => s.text), ['base-v1', 'eu-v1'], 'the garbage alone changes no set');
      assert.ok(second.refusals?.length, 'and is refused');
      second = await next(queue, waiters);
    }
    assert.deepEqual(second.sources.map((s) => s.text), ['base-v1', 'eu-v2']);
    assert.equal(second.revision, eu2);
    // the candidate carries the refusal, so the controller keeps the set in force (bucket-sets.ts)
    assert.deepEqual(second.refusals?.map((r) => [r.code, r.file]), [['DS_E_POLICY_SOURCE', `${BUCKET}/sets.broken`]]);
    assert.match(second.refusals?.[0]?.message ?? '', /revision \d+ is not a policy envelope/);

    await kv.delete('sets.broken'); // the garbage gone (no keys required: a delete removes)
    const third = await next(queue, waiters);
    assert.deepEqual(third.sources.map((s) => s.text), ['base-v1', 'eu-v2']);
    assert.equal(third.refusals, undefined, 'nothing refused any more');

    await kv.delete('sets.eu');
    const fourth = await next(queue, waiters);
    assert.deepEqual(fourth.sources.map((s) => s.text), ['base-v1']);
    assert.ok((first.revision as number) < (second.revision as number) && (second.revision as number) < (third.revision as number) && (third.revision as number) < (fourth.revision as number));
    assert.deepEqual(errors, [], 'nothing to report but the refusal');
    assert.equal(queue.length, 0, 'no other candidate');
  });

  it('starts while NATS is down and catches up once it is back', async () => {
    await source?.close();
    await closePool?.();
    await nc?.close();
    const down = await NatsServer.start();
    try {
      await down.stop();
      const queue: PolicyCandidate[] = [];
      const waiters: (() => void)[] = [];
      const pool = new NatsConnections({}, 'test');
      const late = new NatsSource({ connection: () => pool.get(parseNatsUrl(`${down.url}/${BUCKET}`)), bucket: BUCKET, labels: {}, debounceMs: 50 });
      try {
        await late.start((c) => {
          queue.push(c);
          for (const w of waiters.splice(0)) w();
        }); // resolves although nothing answers
        assert.equal(queue.length, 0);
        await down.start();
        const writer = await connect({ servers: down.url });
        try {
          const kv = await new Kvm(writer).create(BUCKET, { history: 10 });
          await kv.put('sets.all', envelope('all', {}, 'late-v1'));
          const c = await next(queue, waiters, 20_000);
          assert.deepEqual(c.sources.map((x) => x.text), ['late-v1']);
        } finally {
          await writer.close();
        }
      } finally {
        await late.close();
        await pool.close();
      }
    } finally {
      await down.cleanup();
    }
  });
});
