// SPDX-License-Identifier: Apache-2.0
// The agent's WireGuard devices, one per tunnel: created (the kernel's device, or a `wireguard-go`
// process over a TUN device, started detached so it outlives a killed agent and keeps carrying
// the enforced traffic), or adopted when a previous agent left one; configured with `wg
// syncconf` (only what differs changes, so an adopted tunnel keeps its session); read with `wg
// show`; removed, `wireguard-go` included. A wireguard-go and the `wg` that speaks to it meet in
// the agent's own socket folder (wireguard-sockets.ts). The keys come from wireguard-keys.ts, the
// text from wireguard-conf.ts. Addresses, MTU and link state are forwarding.ts's, as for any tunnel.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DoorstepError } from '../errors.js';
import { linkKind, runCommand } from './commands.js';
import { endProcesses, endProcessesSync, processesInNetns } from './netns-processes.js';
import type { Tunnel } from './placement.js';
import { parseWgDump, tunnelConf, type WireguardDeviceState } from './wireguard-conf.js';
import type { WireguardImplementation } from './wireguard-implementation.js';
import type { WireguardKeyPair } from './wireguard-keys.js';
import { socketDirOf, withSocketDir } from './wireguard-sockets.js';

/** How long a new wireguard-go may take to open its device and socket. */
const PROCESS_WAIT_MS = 5000;
const POLL_MS = 20;

function wireguardError(message: string, hint: string, cause?: unknown): DoorstepError {
  return new DoorstepError('DS_E_WIREGUARD', message, { hint, cause });
}

const run = (cmd: string, args: string[], as?: string): string => runCommand(cmd, args, { code: 'DS_E_WIREGUARD', hint: 'see docs/placement.md (WireGuard)', ...(as !== undefined && { as }) });

/** `wg args` speaking to the wireguard-go processes whose sockets are in `socketDir` (none: the kernel's devices). */
const wg = (socketDir: string | undefined, args: string[]): string => run(...withSocketDir(socketDir, 'wg', args), `wg ${args.join(' ')}`);

/** `wg show DEV dump`, or undefined when no WireGuard device answers under that name (with `socketDir`: among those of that socket folder). */
export function showDevice(device: string, socketDir?: string): WireguardDeviceState | undefined {
  try {
    return parseWgDump(execFileSync(...withSocketDir(socketDir, 'wg', ['show', device, 'dump']), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }));
  } catch {
    return undefined;
  }
}

/**
 * `use` a file holding `text` (a WireGuard configuration, private key included: mode 0600, in the
 * root-only `dir`), removed afterwards: `wg` reads a configuration only from a file, and not from
 * a pipe it cannot fopen.
 */
export function withConfFile<T>(dir: string, device: string, text: string, use: (file: string) => T): T {
  const file = join(dir, `.wg.${device}.${process.pid}.conf`);
  writeFileSync(file, text, { mode: 0o600 });
  try {
    return use(file);
  } finally {
    rmSync(file, { force: true });
  }
}

/** The live wireguard-go processes serving `device` in our network namespace: their command line ends with its name. */
export function wireguardGoPids(device: string): number[] {
  return processesInNetns(undefined, (argv) => argv[0]!.endsWith('wireguard-go') && argv[argv.length - 1] === device);
}

export class WireguardDevices {
  /** wireguard-go: the folder of our devices' control sockets, ours alone (undefined: the kernel's WireGuard). */
  readonly socketDir: string | undefined;

  constructor(
    readonly implementation: WireguardImplementation,
    readonly keys: WireguardKeyPair,
    /** The agent's state dir: wireguard-go's messages go to `wireguard-go.<device>.log` here, its sockets to `wireguard/`. */
    private readonly stateDir: string,
  ) {
    this.socketDir = implementation.kind === 'wireguard-go' ? socketDirOf(stateDir) : undefined;
  }

  /** The device's state as `wg show` reads it, or undefined when none of ours answers under that name. */
  show(device: string): WireguardDeviceState | undefined {
    return showDevice(device, this.socketDir);
  }

  /** Create the tunnel's device, or adopt the one a previous agent left; then configure it. */
  async open(t: Tunnel): Promise<'created' | 'adopted'> {
    const kind = linkKind(t.device);
    const ours = this.implementation.kind === 'kernel' ? kind === 'wireguard' : kind === 'tun' && this.show(t.device) !== undefined;
    if (kind !== undefined && !ours) {
      throw wireguardError(`${t.device} exists and is not a ${this.implementation.kind} WireGuard device (it is ${kind})`, `remove it (ip link del ${t.device}) and start the agent again`);
    }
    if (!ours) await this.create(t.device);
    this.configure(t);
    return ours ? 'adopted' : 'created';
  }

  /** Our key and port, the edge as the one peer: `wg syncconf` changes only what differs. */
  configure(t: Tunnel): void {
    withConfFile(this.stateDir, t.device, tunnelConf(this.keys.privateKey, t), (file) => wg(this.socketDir, ['syncconf', t.device, file]));
  }

  private async create(device: string): Promise<void> {
    if (this.implementation.kind === 'kernel') {
      run('ip', ['link', 'add', device, 'type', 'wireguard']);
      return;
    }
    const log = join(this.stateDir, `wireguard-go.${device}.log`);
    const fd = openSync(log, 'a', 0o600);
    let child: ChildProcess;
    try {
      // detached: a killed agent leaves it carrying the tunnel, and the next agent adopts it; its
      // control socket in our socket folder (the same pid: unshare and sh exec into it)
      child = spawn(...withSocketDir(this.socketDir, this.implementation.path, ['-f', device]), {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' },
      });
    } finally {
      closeSync(fd);
    }
    let exited: string | undefined;
    child.once('error', (err) => (exited = err.message));
    child.once('exit', (code, signal) => (exited = `exited (${code ?? signal})`));
    child.unref();
    const deadline = Date.now() + PROCESS_WAIT_MS;
    const socket = join(this.socketDir!, `${device}.sock`); // wireguard-go: socketDir is set
    while (!(existsSync(socket) && this.show(device))) {
      if (exited !== undefined || Date.now() > deadline) {
        if (exited === undefined) await endProcesses([child.pid ?? 0].filter(Boolean));
        const said = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
        throw wireguardError(`wireguard-go for ${device} ${exited ?? `did not open its device within ${PROCESS_WAIT_MS} ms`}${said ? `: ${said}` : ''}`, `see ${log}`);
      }
      await sleep(POLL_MS);
    }
  }

  /** Delete the device; a wireguard-go serving it exits with it (or is ended). */
  remove(device: string): void {
    removeWireguardDevice(device);
  }
}

/**
 * Delete a WireGuard device, kernel or wireguard-go (a wireguard-go serving it in our namespace is
 * ended too). Synchronous: run after the engine detached, with nothing else to do meanwhile; also
 * by `doorstep detach`, which does not know which implementation made it. True when anything was
 * there to remove.
 */
export function removeWireguardDevice(device: string): boolean {
  const pids = wireguardGoPids(device);
  const present = linkKind(device) !== undefined;
  if (present) {
    try {
      execFileSync('ip', ['link', 'del', device], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // gone meanwhile
    }
  }
  endProcessesSync(pids);
  return present || pids.length > 0;
}
