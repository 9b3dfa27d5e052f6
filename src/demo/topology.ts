// SPDX-License-Identifier: Apache-2.0
// Network namespaces and veth pairs for the demo and the end-to-end tests. Every name carries a
// per-run suffix so concurrent runs never collide; `Topology.destroy()` removes everything and
// is safe to call twice.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { endProcessesSync, processesInNetns } from '../placement/netns-processes.js';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A short unique token: interface names are at most 15 characters. */
export function runToken(): string {
  return randomBytes(3).toString('hex');
}

/** Arguments that run a command inside a namespace (nsenter keeps /sys/fs/bpf visible). */
export function inNetns(ns: string, cmd: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]];
}

export function execIn(ns: string, cmd: string, args: string[], timeoutMs = 20_000): string {
  const [c, a] = inNetns(ns, cmd, args);
  return execFileSync(c, a, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
  const [c, a] = inNetns(ns, cmd, args);
  return spawn(c, a, { stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface Host {
  ns: string;
  ifname: string;
  v4: string;
  v6: string;
}

/** Namespaces and the child processes run in them: destroy() kills the children and whatever else
 *  still runs in the namespaces, and deletes the namespaces, newest first; twice is safe. */
export class NamespaceOwner {
  protected readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  /** Track a child so destroy() kills it. */
  own(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) c.kill('SIGKILL');
    // what our children left running in the namespaces (a detached wireguard-go outlives its
    // namespace otherwise): SIGTERM, so it removes its control socket, then SIGKILL
    endProcessesSync(this.namespaces.flatMap((ns) => processesInNetns(`/run/netns/${ns}`)));
    for (const ns of [...this.namespaces].reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  }
}

/** Two namespaces joined by one veth pair: `client` sends, `server` holds the enforced interface. */
export class Topology extends NamespaceOwner {
  readonly client: Host;
  readonly server: Host;

  constructor(prefix = 'ds') {
    super();
    const t = runToken();
    this.client = { ns: `${prefix}-c-${t}`, ifname: `${prefix}c${t}`, v4: '10.231.0.1', v6: 'fd00:231::1' };
    this.server = { ns: `${prefix}-s-${t}`, ifname: `${prefix}s${t}`, v4: '10.231.0.2', v6: 'fd00:231::2' };
  }

  create(): this {
    try {
      for (const h of [this.client, this.server]) {
        ip('netns', 'add', h.ns);
        this.namespaces.push(h.ns);
      }
      ip('link', 'add', this.client.ifname, 'netns', this.client.ns, 'type', 'veth', 'peer', 'name', this.server.ifname, 'netns', this.server.ns);
      for (const h of [this.client, this.server]) {
        execIn(h.ns, 'ip', ['link', 'set', 'lo', 'up']);
        execIn(h.ns, 'ip', ['addr', 'add', `${h.v4}/24`, 'dev', h.ifname]);
        execIn(h.ns, 'ip', ['-6', 'addr', 'add', `${h.v6}/64`, 'dev', h.ifname, 'nodad']);
        execIn(h.ns, 'ip', ['link', 'set', h.ifname, 'up']);
      }
      return this;
    } catch (err) {
      this.destroy();
      throw err;
    }
  }
}
