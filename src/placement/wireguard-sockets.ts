// SPDX-License-Identifier: Apache-2.0
// Where an agent's wireguard-go and `wg` meet: a control socket per device in a folder of the
// agent's own, `wireguard/` in its state dir. Both programs look only in /var/run/wireguard (built
// into each, no setting changes it), a folder every network namespace of a host shares, so each
// runs in a mount namespace of its own in which that folder is the agent's, bound there. Two
// agents on one host (other network namespaces, the same device names) never see each other's
// sockets; a restarted agent finds the running wireguard-go's socket where the last one left it.
// The kernel's WireGuard needs none of it (`wg` talks netlink, which is per network namespace).
// Owns nothing but argument lists and the folder.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Where wireguard-go and `wg` look for control sockets, in their own mount namespace: there it is the agent's socket folder. */
export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

/** The folder of an agent's control sockets (made, root only, when missing). */
export function socketDirOf(stateDir: string): string {
  const dir = join(stateDir, 'wireguard');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * The command line that runs `cmd args` with `socketDir` in place of /var/run/wireguard: a new
 * mount namespace (`slave`: the host's unmounts, `ip netns del` among them, still reach it; its
 * own bind mount never reaches the host), the folder bound there, then `cmd` exec'd (same pid).
 * Without a folder (the kernel's WireGuard) the command as it is.
 */
export function withSocketDir(socketDir: string | undefined, cmd: string, args: string[]): [string, string[]] {
  if (socketDir === undefined) return [cmd, args];
  const script = `mkdir -p ${WIREGUARD_SOCKET_DIR} && mount --bind "$1" ${WIREGUARD_SOCKET_DIR} && shift && exec "$@"`;
  return ['unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-c', script, 'sh', socketDir, cmd, ...args]];
}
