// SPDX-License-Identifier: Apache-2.0
// Signed fleet policies: canonical bytes, signing and every way a set can fail verification.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DoorstepError } from '../../src/errors.js';
import { canonicalJson, generateKeyPair, keyId, readPrivateKey, readPublicKey, signatureProblem, signEnvelope, trustedKeys } from '../../src/fleet/signing.js';
import { buildEnvelope, parseEnvelope } from '../../src/fleet/policy-envelope.js';

const envelope = { ...buildEnvelope('web', { region: 'eu' }, [{ file: 'web.yaml', text: 'spec: {}\n' }], new Date('2026-11-26T10:00:00Z')), sequence: 7 };

function keyFiles(): { dir: string; key: string; pub: string; id: string } {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-keys-'));
  const pair = generateKeyPair();
  writeFileSync(join(dir, 'k.key'), pair.privatePem);
  writeFileSync(join(dir, 'k.pub'), pair.publicPem);
  return { dir, key: join(dir, 'k.key'), pub: join(dir, 'k.pub'), id: pair.id };
}

describe('signed fleet policies', () => {
  it('canonical JSON sorts keys at every level and drops undefined', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 2, y: 3 }], c: undefined } }), '{"a":{"d":[1,{"y":3,"z":2}]},"b":1}');
  });

  it('a signed envelope verifies with its key, survives the bucket round trip, and fails every tampering', () => {
    const k = keyFiles();
    try {
      const keys = trustedKeys([k.pub]);
      assert.deepEqual([...keys.keys()], [k.id]);
      const signed = signEnvelope(envelope, readPrivateKey(k.key));
      assert.equal(signed.signature?.key, k.id);
      assert.equal(signed.issued, '2026-11-26T10:00:00.000Z', 'an issued time given is kept');
      assert.equal(signatureProblem(signed, keys), undefined);
      // through JSON and the schema, as an agent reads it from the bucket
      const read = parseEnvelope(Buffer.from(JSON.stringify(signed)));
      assert.ok(!('problem' in read));
      assert.equal(signatureProblem(read, keys), undefined);

      assert.match(signatureProblem(envelope, keys) ?? '', /not signed/);
      assert.match(signatureProblem({ ...signed, sequence: 8 }, keys) ?? '', /does not match/, 'the sequence is signed too');
      const { sequence: _none, ...before } = envelope;
      assert.match(signatureProblem(signEnvelope(before, readPrivateKey(k.key)), keys) ?? '', /no sequence number/, 'a signed set without a sequence fails closed');
      const allowAll = { ...signed, documents: [{ file: 'web.yaml', text: 'spec: { defaultAction: allow }\n' }] };
      assert.match(signatureProblem(allowAll, keys) ?? '', /does not match/);
      assert.match(signatureProblem({ ...signed, selector: {} }, keys) ?? '', /does not match/, 'the selector is signed too');
      const other = generateKeyPairSync('ed25519');
      const byOther = signEnvelope(envelope, other.privateKey);
      assert.match(signatureProblem(byOther, keys) ?? '', new RegExp(`signed by key ${keyId(other.publicKey)}, which this enforcer does not trust`));
      const forged = { ...byOther, signature: { ...(byOther.signature as NonNullable<typeof byOther.signature>), key: k.id } };
      assert.match(signatureProblem(forged, keys) ?? '', /does not match/, 'claiming a trusted key id does not help');
    } finally {
      rmSync(k.dir, { recursive: true, force: true });
    }
  });

  it('key files: a private key also serves as a public key; other files are refused with DS_E_CONFIG', () => {
    const k = keyFiles();
    try {
      assert.equal(keyId(readPublicKey(k.key)), k.id);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
      writeFileSync(join(k.dir, 'rsa.pub'), rsa.publicKey.export({ format: 'pem', type: 'spki' }));
      writeFileSync(join(k.dir, 'junk'), 'not a key');
      for (const f of ['rsa.pub', 'junk', 'missing']) {
        assert.throws(() => readPublicKey(join(k.dir, f)), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_CONFIG', f);
      }
      assert.throws(() => readPrivateKey(k.pub), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_CONFIG');
    } finally {
      rmSync(k.dir, { recursive: true, force: true });
    }
  });
});
