// SPDX-License-Identifier: Apache-2.0
// A headless browser for UI tests: Debian's chromium driven by playwright-core, started inside a
// network namespace (through a wrapper that nsenter's it there) so it reaches a server bound to
// that namespace's loopback. Playwright talks to it over a pipe, which crosses the namespace.
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Chromium in `ns` (a name under /run/netns; undefined = this process's namespace); the wrapper script is written into `dir`. */
export async function browserIn(ns: string | undefined, dir: string): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium`);
  const wrapper = join(dir, 'chromium-in-netns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${ns ? `nsenter --net=/run/netns/${ns} ` : ''}${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  // root needs --no-sandbox; /dev/shm in a small VM is better left alone
  return chromium.launch({ executablePath: wrapper, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'], timeout: 60_000 });
}
