// SPDX-License-Identifier: Apache-2.0
// Which WireGuard this host runs, decided once at the agent's start: the kernel's (a probe device
// of type wireguard can be made, then is removed at once), else `wireguard-go` over /dev/net/tun
// (the userspace implementation; with `unshare`, which gives it and `wg` the agent's own socket
// folder), else a DS_E_WIREGUARD error naming the setting. Never a
// fallback to clear text: without WireGuard the agent does not start.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { DoorstepError } from '../errors.js';

export type WireguardImplementation = { kind: 'kernel' } | { kind: 'wireguard-go'; path: string };

export const describeImplementation = (i: WireguardImplementation): string => i.kind;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `name` as the shell would find it: an absolute path as is, otherwise the first on PATH. */
function onPath(name: string): string | undefined {
  if (isAbsolute(name) || name.includes('/')) return executable(name) ? name : undefined;
  return (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name)).find(executable);
}

/** Can this network namespace's kernel make a WireGuard device? (The module loads on demand.) */
function kernelHasWireguard(): boolean {
  const probe = `dswgprobe${process.pid % 100_000}`;
  try {
    execFileSync('ip', ['link', 'add', probe, 'type', 'wireguard'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return false;
  }
  try {
    execFileSync('ip', ['link', 'del', probe], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // gone already
  }
  return true;
}

/** `wireguardGo`: the `edge.wireguardGo` setting (default `wireguard-go` on PATH); `where` names it in errors. */
export function detectWireguard(wireguardGo: string | undefined, where: string): WireguardImplementation {
  if (!onPath('wg')) {
    throw new DoorstepError('DS_E_WIREGUARD', `${where}: wireguard: \`wg\` (wireguard-tools) is not installed`, {
      hint: 'install wireguard-tools (apt-get install wireguard-tools; scripts/bootstrap.sh does), or set edge.tunnel: vxlan for an underlay you trust',
    });
  }
  if (kernelHasWireguard()) return { kind: 'kernel' };
  const name = wireguardGo ?? 'wireguard-go';
  const path = onPath(name);
  if (!path) {
    throw new DoorstepError('DS_E_WIREGUARD', `${where}: wireguard: this kernel has no WireGuard and ${name} is not found (edge.wireguardGo)`, {
      hint: 'install wireguard-go (apt-get install wireguard-go; scripts/bootstrap.sh does) or point edge.wireguardGo at it; nothing is sent in clear instead',
    });
  }
  if (!onPath('unshare')) {
    throw new DoorstepError('DS_E_WIREGUARD', `${where}: wireguard: this kernel has no WireGuard and wireguard-go's control sockets need \`unshare\` (util-linux), which is not found`, {
      hint: 'install util-linux (each agent runs wireguard-go and wg in a mount namespace of their own: docs/placement.md, WireGuard)',
    });
  }
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    throw new DoorstepError('DS_E_WIREGUARD', `${where}: wireguard: this kernel has no WireGuard and wireguard-go needs /dev/net/tun, which is missing`, {
      hint: 'load the tun module (modprobe tun) or give the container /dev/net/tun',
    });
  }
  return { kind: 'wireguard-go', path };
}
