// SPDX-License-Identifier: Apache-2.0
// The enforcer's WireGuard key pair: made on the agent's first start into its state dir
// (`wireguard.key`, mode 0600, the private key in base64 as `wg genkey` writes it) and read on
// every start after, so the edge keeps knowing this enforcer by one public key. X25519 from
// node:crypto; touches only that one file.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DoorstepError } from '../errors.js';
import { isWireguardKey } from './placement.js';

export const WIREGUARD_KEY_FILE = 'wireguard.key';

/** DER prefixes of a raw X25519 key: PKCS#8 (private) and SubjectPublicKeyInfo (public). */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_LENGTH = 44;

export interface WireguardKeyPair {
  /** base64 */
  privateKey: string;
  /** base64 */
  publicKey: string;
  /** The key file. */
  path: string;
  /** Made by this start. */
  created: boolean;
}

/** The public key of a base64 private key (what `wg pubkey` prints). */
export function wireguardPublicKey(privateKey: string): string {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, 'base64')]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32, SPKI_X25519_LENGTH).toString('base64');
}

/** A new private key, clamped as WireGuard's `wg genkey` makes them. */
export function newWireguardPrivateKey(): string {
  const der = generateKeyPairSync('x25519').privateKey.export({ format: 'der', type: 'pkcs8' });
  const raw = Buffer.from(der.subarray(der.length - 32));
  raw[0] = raw[0]! & 248;
  raw[31] = (raw[31]! & 127) | 64;
  return raw.toString('base64');
}

function keyError(path: string, problem: string, cause?: unknown): DoorstepError {
  return new DoorstepError('DS_E_STATE_DIR', `${path}: ${problem}`, {
    hint: 'the agent keeps its WireGuard private key there (base64, one line, mode 0600); remove the file to make a new key pair, then give the edge the new public key',
    cause,
  });
}

/** Read the key pair from `stateDir`, or make it there (0600) on the first start. */
export function loadOrCreateKeyPair(stateDir: string): WireguardKeyPair {
  const path = join(stateDir, WIREGUARD_KEY_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw keyError(path, `cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, cause);
  }
  if (text !== undefined) {
    if (!isWireguardKey(text)) throw keyError(path, 'does not hold a WireGuard private key');
    // nobody but root reads it, whatever umask or copy made it
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { privateKey: text, publicKey: wireguardPublicKey(text), path, created: false };
  }
  const privateKey = newWireguardPrivateKey();
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600); // never over a key another agent wrote meanwhile
  } catch (cause) {
    throw keyError(path, `cannot create it (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, cause);
  }
  try {
    writeSync(fd, `${privateKey}\n`);
  } finally {
    closeSync(fd);
  }
  return { privateKey, publicKey: wireguardPublicKey(privateKey), path, created: true };
}
