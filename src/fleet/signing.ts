// SPDX-License-Identifier: Apache-2.0
// Signed fleet policies: an ed25519 signature over the canonical JSON of an envelope (every field
// but the signature, keys sorted), so a compromised channel cannot push a set the operator did
// not sign. Keys are PEM files (`doorstep keygen`, or `openssl genpkey -algorithm ed25519`); a
// key is named by the first 16 hex digits of the SHA-256 of its public key (DER).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DoorstepError } from '../errors.js';
import type { PolicyEnvelope } from './policy-envelope.js';

/** JSON with object keys sorted at every level: the same value always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The bytes a signature covers: the envelope without its signature. */
export function signedBytes(envelope: PolicyEnvelope): Buffer {
  const { signature: _ignored, ...rest } = envelope;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ format: 'der', type: 'spki' })).digest('hex').slice(0, 16);
}

function keyError(path: string, what: string, cause: unknown): DoorstepError {
  return new DoorstepError('DS_E_CONFIG', `${path} is not ${what}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, {
    hint: 'create a key pair with `doorstep keygen PREFIX` (or `openssl genpkey -algorithm ed25519`)',
    cause,
  });
}

function requireEd25519(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new DoorstepError('DS_E_CONFIG', `${path} is a ${key.asymmetricKeyType ?? 'symmetric'} key, not ed25519`, { hint: 'doorstep signs with ed25519 keys only' });
  }
  return key;
}

function readKey(path: string, what: string, create: (pem: Buffer) => KeyObject): KeyObject {
  try {
    return requireEd25519(create(readFileSync(path)), path);
  } catch (cause) {
    if (cause instanceof DoorstepError) throw cause;
    throw keyError(path, what, cause);
  }
}

/** A private key (PEM) for `doorstep sign`. */
export const readPrivateKey = (path: string): KeyObject => readKey(path, 'an ed25519 private key (PEM)', createPrivateKey);

/** A public key (PEM) an agent trusts; a private key file is accepted too (its public half is used). */
export const readPublicKey = (path: string): KeyObject => readKey(path, 'an ed25519 public key (PEM)', createPublicKey);

/** Keys an agent trusts, by key id. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

export function trustedKeys(paths: readonly string[]): TrustedKeys {
  return new Map(paths.map((p) => {
    const key = readPublicKey(p);
    return [keyId(key), key] as const;
  }));
}

export function generateKeyPair(): { privatePem: string; publicPem: string; id: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    id: keyId(publicKey),
  };
}

/** The envelope, signed with `privateKey` (an `issued` time is set if it has none). */
export function signEnvelope(envelope: PolicyEnvelope, privateKey: KeyObject, now = new Date()): PolicyEnvelope {
  const { signature: _old, ...rest } = envelope;
  const unsigned: PolicyEnvelope = { ...rest, issued: rest.issued ?? now.toISOString() };
  const value = sign(null, signedBytes(unsigned), privateKey).toString('base64');
  return { ...unsigned, signature: { alg: 'ed25519', key: keyId(createPublicKey(privateKey)), value } };
}

/** Why `envelope` is not signed by one of `keys`, or undefined when it is. */
export function signatureProblem(envelope: PolicyEnvelope, keys: TrustedKeys): string | undefined {
  const s = envelope.signature;
  if (!s) return 'the set is not signed, and this enforcer installs signed sets only (--policy-pubkey)';
  const key = keys.get(s.key);
  if (!key) return `the set is signed by key ${s.key}, which this enforcer does not trust (trusted: ${[...keys.keys()].join(', ')})`;
  let ok = false;
  try {
    ok = verify(null, signedBytes(envelope), key, Buffer.from(s.value, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) return `the signature does not match the set's content (key ${s.key}): it was changed after signing`;
  if (!envelope.issued) return 'the signed set has no issued time';
  if (envelope.sequence === undefined) return 'the signed set has no sequence number (signed by a doorstep before sequences): sign and publish it again with `doorstep apply --nats URL --sign-key FILE`';
  return undefined;
}
