// SPDX-License-Identifier: Apache-2.0
// The policy bucket as one enforcer judges it: a value that is not an envelope never removes the
// set in force; with trusted keys a set leaves only by a signed tombstone; without keys a
// deletion removes it; a value that replaces a set selecting this enforcer is checked even when
// it no longer selects it.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateKeyPair, keyId, signEnvelope } from '../../src/fleet/signing.js';
import { BucketSets } from '../../src/watcher/bucket-sets.js';
import { buildEnvelope, buildTombstone, type PolicyEnvelope } from '../../src/fleet/policy-envelope.js';
import { MemoryMarkStore } from '../../src/watcher/sequence-marks.js';

const pair = generateKeyPair();
const privateKey = createPrivateKey(pair.privatePem);
const publicKey = createPublicKey(pair.publicPem);
const keys = new Map([[keyId(publicKey), publicKey]]);

const bytes = (e: PolicyEnvelope | string) => Buffer.from(typeof e === 'string' ? e : JSON.stringify(e));
const web = (selector: Record<string, string> = {}, at = new Date()) => buildEnvelope('web', selector, [{ file: 'web.yaml', text: 'x' }], at);
/** Signed with the next sequence number (as a publisher takes it), or `sequence`. */
let lastSequence = 0;
const signed = (e: PolicyEnvelope, sequence = ++lastSequence) => signEnvelope({ ...e, sequence }, privateKey);
const files = (s: BucketSets) => s.candidate().sources.map((x) => x.file);
const refusals = (s: BucketSets) => (s.candidate().refusals ?? []).map((r) => `${r.code} ${r.file}: ${r.message}`);

/** The sets after `web` (selecting everyone) was accepted at revision 1. */
function withWeb(trusted: boolean): BucketSets {
  const s = new BucketSets('b', { region: 'eu' }, trusted ? keys : undefined);
  s.put('sets.web', 1, bytes(signed(web())));
  assert.deepEqual(refusals(s), []);
  s.accept();
  return s;
}

describe('the policy bucket as an enforcer sees it', () => {
  it('keeps the newer of two entries for a key (a direct read of the bucket before the watch delivers older ones)', () => {
    const s = new BucketSets('b', { region: 'eu' }, undefined);
    s.put('sets.web', 5, bytes(web()));
    s.put('sets.web', 3, bytes('garbage')); // an older revision, late
    s.delete('sets.web', 4);
    assert.deepEqual(refusals(s), []);
    assert.deepEqual(files(s), ['b/sets.web/web.yaml']);
    assert.equal(s.revision, 5);
    s.delete('sets.web', 6);
    assert.deepEqual(files(s), []);
  });

  for (const trusted of [false, true]) {
    it(`a value that is not an envelope is refused and removes nothing (${trusted ? 'with' : 'without'} keys)`, () => {
      const s = withWeb(trusted);
      s.put('sets.web', 2, bytes('garbage'));
      const [r] = s.candidate().refusals ?? [];
      assert.equal(r?.code, 'DS_E_POLICY_SOURCE');
      assert.equal(r?.file, 'b/sets.web');
      assert.match(r?.message ?? '', /revision 2 is not a policy envelope \(not JSON\)/);
      // a valid set again: accepted
      s.put('sets.web', 3, bytes(signed(web())));
      assert.deepEqual(refusals(s), []);
      assert.deepEqual(files(s), ['b/sets.web/web.yaml']);
    });
  }

  it('without keys a deletion removes the set', () => {
    const s = withWeb(false);
    s.delete('sets.web', 2);
    assert.deepEqual(refusals(s), []);
    assert.deepEqual(files(s), []);
    assert.equal(s.candidate().revision, 2);
  });

  it('with keys an unsigned deletion is refused; a signed tombstone removes the set; a forged one is refused', () => {
    const s = withWeb(true);
    s.delete('sets.web', 2);
    assert.match(refusals(s).join(), /DS_E_POLICY_SIGNATURE b\/sets.web: revision 2 deletes the set without a signed tombstone/);
    s.put('sets.web', 3, bytes(buildTombstone('web', {})));
    assert.match(refusals(s).join(), /revision 3 \(tombstone\): the set is not signed/);
    s.put('sets.web', 4, bytes(signed(buildTombstone('web', {}))));
    assert.deepEqual(refusals(s), []);
    assert.deepEqual(files(s), []);
    s.accept();
    // gone: a later deletion of the key (cleaning up) refuses nothing
    s.delete('sets.web', 5);
    assert.deepEqual(refusals(s), []);
  });

  it('with keys, a set that replaces one selecting this enforcer is checked even when it selects others', () => {
    const s = withWeb(true);
    s.put('sets.web', 2, bytes(web({ region: 'us' }))); // unsigned, no longer selects region=eu
    assert.match(refusals(s).join(), /revision 2 \(set\): the set is not signed/);
  });

  it('with keys, a replayed older tombstone is refused', () => {
    const s = new BucketSets('b', { region: 'eu' }, keys);
    const old = signed(buildTombstone('web', {}, new Date(Date.now() - 60_000)));
    s.put('sets.web', 1, bytes(signed(web())));
    s.accept();
    s.put('sets.web', 2, bytes(old));
    assert.match(refusals(s).join(), /a replayed older tombstone/);
  });

  it('not an envelope under a key whose set never selected this enforcer: not its business', () => {
    const s = new BucketSets('b', { region: 'eu' }, keys);
    s.put('sets.us', 1, bytes(signed(buildEnvelope('us', { region: 'us' }, [{ file: 'us.yaml', text: 'x' }]))));
    s.accept();
    s.put('sets.us', 2, bytes('{"format":2}'));
    assert.deepEqual(refusals(s), []);
    // under a new key nobody can tell whom it was meant for: refused
    s.put('sets.new', 3, bytes('{'));
    assert.match(refusals(s).join(), /DS_E_POLICY_SOURCE b\/sets.new/);
  });

  it('with keys, the sequence decides, not the clock: a set issued an hour ahead is accepted with a warning, and so is the next from a correct clock', () => {
    const now = new Date();
    const s = new BucketSets('b', { region: 'eu' }, keys, { now: () => now });
    s.put('sets.web', 1, bytes(signed(web({}, new Date(now.getTime() + 3_600_000)))));
    assert.deepEqual(refusals(s), []);
    const [warning, ...more] = s.accept();
    assert.match(warning ?? '', /b\/sets.web revision 1 \(sequence \d+\) was issued .*, 3600 s ahead of this enforcer's clock/);
    assert.deepEqual(more, []);
    s.put('sets.web', 2, bytes(signed(web({}, now))));
    assert.deepEqual(refusals(s), []);
    assert.deepEqual(s.accept(), [], 'a correct clock: no warning');
    // the same set seen again (a new watch) is not a replay, and warns no more
    s.put('sets.web', 2, bytes(signed(web({}, now), lastSequence)));
    assert.deepEqual(refusals(s), []);
  });

  it('with keys, an older sequence is refused whatever its issued time; one number signed twice is refused', () => {
    const s = new BucketSets('b', { region: 'eu' }, keys);
    const older = signed(web({}, new Date(Date.now() + 60_000)));
    s.put('sets.web', 1, bytes(signed(web())));
    s.accept();
    s.put('sets.web', 2, bytes(older));
    assert.match(refusals(s).join(), /DS_E_POLICY_SIGNATURE b\/sets.web: revision 2 \(set\) has sequence \d+, not above \d+ accepted before: a replayed older set/);
    s.put('sets.web', 3, bytes(signed(web({ region: 'eu' }), lastSequence)));
    assert.match(refusals(s).join(), /revision 3 \(set\) has sequence \d+, the number of another set this enforcer accepted/);
  });

  it('without keys, sequences are not checked (anyone who can write can also delete)', () => {
    const s = withWeb(false);
    s.put('sets.web', 2, bytes(web()));
    assert.deepEqual(refusals(s), []);
    assert.deepEqual(s.accept(), []);
  });

  it('the marks outlive the enforcer: a replay after a restart is refused', () => {
    const store = new MemoryMarkStore();
    const first = new BucketSets('b', { region: 'eu' }, keys, { marks: store });
    const old = signed(web());
    first.put('sets.web', 1, bytes(old));
    first.accept();
    first.put('sets.web', 2, bytes(signed(web())));
    first.accept();
    const restarted = new BucketSets('b', { region: 'eu' }, keys, { marks: store });
    restarted.put('sets.web', 3, bytes(old));
    assert.match(refusals(restarted).join(), /a replayed older set/);
    const fresh = new BucketSets('b', { region: 'eu' }, keys);
    fresh.put('sets.web', 3, bytes(old));
    assert.deepEqual(refusals(fresh), [], 'without the store it would be installed');
  });
});
