// SPDX-License-Identifier: Apache-2.0
// Where the web UI listens and who may read it: loopback unless the operator allows more, and an
// optional bearer token read from a file. Checks only; serving is ui/ui-server.ts's job.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DoorstepError } from '../errors.js';

export interface UiSettings {
  host: string;
  port: number;
  /** Bind beyond loopback (another host may then read the UI: give it a token). */
  allowRemote: boolean;
  /** A file holding the bearer token every request must carry; undefined = none. */
  tokenFile: string | undefined;
}

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x) and `localhost`: what only this host can reach. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Refuse a bind beyond loopback unless it is allowed; the error says how to allow it. */
export function checkUiBind(s: Pick<UiSettings, 'host' | 'allowRemote'>): void {
  if (s.allowRemote || isLoopback(s.host)) return;
  throw new DoorstepError('DS_E_CONFIG', `the web UI would listen on ${s.host}, beyond loopback`, {
    hint: 'bind it to 127.0.0.1 or [::1], or add --ui-allow-remote (and --ui-token FILE) to let other hosts read it',
  });
}

/** The token in `file` (surrounding white space trimmed); an unreadable or empty file is an error. */
export function readUiToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (cause) {
    throw new DoorstepError('DS_E_CONFIG', `cannot read the UI token file ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
      hint: 'write a random token into it, e.g. `head -c 24 /dev/urandom | base64 > FILE; chmod 600 FILE`',
      cause,
    });
  }
  if (text.length < 16) {
    throw new DoorstepError('DS_E_CONFIG', `the UI token in ${file} is ${text.length === 0 ? 'empty' : 'shorter than 16 characters'}`, {
      hint: 'write a random token into it, e.g. `head -c 24 /dev/urandom | base64 > FILE`',
    });
  }
  return text;
}
