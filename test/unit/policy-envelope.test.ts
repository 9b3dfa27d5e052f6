// SPDX-License-Identifier: Apache-2.0
// Fleet policy envelopes: parsing, label selection, and the candidate an enforcer assembles.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLabels } from '../../src/controller/config.js';
import { DoorstepError } from '../../src/errors.js';
import { describeTarget, natsToken, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { candidateFor, envelopeAt, parseEnvelope, selects } from '../../src/fleet/policy-envelope.js';

const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('policy envelopes', () => {
  it('parse, or say why not', () => {
    const ok = parseEnvelope(bytes({ format: 1, name: 'web', selector: { region: 'eu' }, documents: [{ file: 'web.yaml', text: 'x' }] }));
    assert.equal('problem' in ok, false);
    assert.deepEqual(parseEnvelope(Buffer.from('{')), { problem: 'not JSON' });
    const bad = parseEnvelope(bytes({ format: 1, name: 'web', selector: {}, documents: [] }));
    assert.match('problem' in bad ? bad.problem : '', /^documents: /);
    const badName = parseEnvelope(bytes({ format: 1, name: 'a/b', selector: {}, documents: [{ file: 'f', text: '' }] }));
    assert.match('problem' in badName ? badName.problem : '', /^name: /);
  });

  it('a set lives under sets.<its name>; anywhere else it is not an envelope', () => {
    const web = bytes({ format: 1, name: 'web', selector: {}, documents: [{ file: 'web.yaml', text: 'x' }] });
    assert.equal('problem' in envelopeAt('sets.web', web), false);
    assert.deepEqual(envelopeAt('sets.db', web), { problem: 'its name "web" does not match the key' });
    assert.deepEqual(envelopeAt('sets.web', Buffer.from('{')), { problem: 'not JSON' });
  });

  it('select by every label; an empty selector selects every enforcer', () => {
    assert.equal(selects({}, { region: 'eu' }), true);
    assert.equal(selects({ region: 'eu' }, { region: 'eu', cloud: 'aws' }), true);
    assert.equal(selects({ region: 'eu', cloud: 'gcp' }, { region: 'eu', cloud: 'aws' }), false);
    assert.equal(selects({ vpc: 'a' }, {}), false);
  });

  it('assemble the selected envelopes in key order', () => {
    const e = (key: string, selector: Record<string, string>, text: string, revision: number) => ({
      key,
      revision,
      envelope: { format: 1 as const, name: key.slice(5), selector, documents: [{ file: 'p.yaml', text }] },
    });
    const c = candidateFor('b', [e('sets.z', {}, 'z', 1), e('sets.a', { region: 'eu' }, 'a', 2), e('sets.m', { region: 'us' }, 'm', 3)], { region: 'eu' }, 7);
    assert.deepEqual(c, { origin: 'nats:b', revision: 7, sources: [{ file: 'b/sets.a/p.yaml', text: 'a' }, { file: 'b/sets.z/p.yaml', text: 'z' }] });
  });
});

describe('fleet settings', () => {
  it('nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT]/NAME', () => {
    assert.deepEqual(parseNatsUrl('nats://127.0.0.1:4222/doorstep-policy'), { servers: ['nats://127.0.0.1:4222'], name: 'doorstep-policy' });
    assert.deepEqual(parseNatsUrl('nats://a:4222,b.example:4222/p'), { servers: ['nats://a:4222', 'nats://b.example:4222'], name: 'p' });
    const withUser = parseNatsUrl('nats://ops:s%40cret@[fd00::1]:4222/p');
    assert.deepEqual(withUser, { servers: ['nats://[fd00::1]:4222'], name: 'p', user: 'ops', password: 's@cret' });
    assert.equal(describeTarget(withUser), 'nats://ops@[fd00::1]:4222/p', 'the password is never printed');
    for (const bad of ['nats://127.0.0.1:4222', 'nats://127.0.0.1/p', 'http://a:1/p', 'nats://a:1/p.q']) {
      assert.throws(() => parseNatsUrl(bad), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_USAGE', bad);
    }
  });

  it('enforcer ids become NATS tokens', () => {
    assert.equal(natsToken('web-1.eu-west-1.example.com'), 'web-1_eu-west-1_example_com');
    assert.equal(natsToken('a b*>c'), 'a_b__c');
  });

  it('labels from key=value flags', () => {
    assert.deepEqual(parseLabels(['region=eu-west-1', 'cloud=aws', 'note=']), { region: 'eu-west-1', cloud: 'aws', note: '' });
    assert.throws(() => parseLabels(['=x']), /is not a label/);
    assert.throws(() => parseLabels(['region']), /is not a label/);
  });
});
