// SPDX-License-Identifier: Apache-2.0
// A fleet under test: N agent rigs (each a client and a server namespace joined by the enforced
// veth pair) plus a management network: a namespace of its own holding a bridge and a real
// nats-server, with one more veth pair from each server namespace into the bridge. Agents
// reach NATS over the management link, never through the interface they enforce; the CLI runs
// in the management namespace. With `natsServers: 3` NATS is a JetStream cluster of three servers
// on one address (client ports 4222…, route ports 6222…), each with its own store. All names
// are unique per run; `cleanup()` removes everything.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { execIn, ip, runToken } from '../../src/demo/topology.js';
import { packageRoot } from '../../src/paths.js';
import { AgentRig, mainJs } from './agent-rig.js';
import { until } from './until.js';
import { NatsServer } from './nats-server.js';

export const NATS_ADDRESS = '10.232.0.1';

export class FleetRig {
  readonly token = runToken();
  readonly mgmtNs = `dsf-m-${this.token}`;
  readonly agents: AgentRig[] = [];
  /** The first server (the only one without a cluster). */
  nats: NatsServer | undefined;
  readonly natsServers: NatsServer[] = [];
  private cleaned = false;

  constructor(
    readonly size: number,
    readonly o: { natsServers?: number } = {},
  ) {}

  /** The cluster's name and each server's arguments: names n0…, every other server as a route. */
  private clusterArgs(i: number, n: number): string[] {
    if (n === 1) return [];
    const routes = Array.from({ length: n }, (_, k) => k).filter((k) => k !== i).map((k) => `nats://${NATS_ADDRESS}:${6222 + k}`);
    return ['--name', `n${i}`, '--cluster_name', `dsc-${this.token}`, '--cluster', `nats://${NATS_ADDRESS}:${6222 + i}`, '--routes', routes.join(',')];
  }

  async create(): Promise<this> {
    try {
      ip('netns', 'add', this.mgmtNs);
      execIn(this.mgmtNs, 'ip', ['link', 'set', 'lo', 'up']);
      execIn(this.mgmtNs, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      execIn(this.mgmtNs, 'ip', ['addr', 'add', `${NATS_ADDRESS}/24`, 'dev', 'br0']);
      execIn(this.mgmtNs, 'ip', ['link', 'set', 'br0', 'up']);
      for (let i = 0; i < this.size; i++) {
        const rig = new AgentRig(`df${i}`);
        this.agents.push(rig);
        const inServer = `dm${i}${this.token}`;
        const inMgmt = `dmb${i}${this.token}`;
        ip('link', 'add', inServer, 'netns', rig.topo.server.ns, 'type', 'veth', 'peer', 'name', inMgmt, 'netns', this.mgmtNs);
        execIn(this.mgmtNs, 'ip', ['link', 'set', inMgmt, 'master', 'br0', 'up']);
        execIn(rig.topo.server.ns, 'ip', ['addr', 'add', `10.232.0.${10 + i}/24`, 'dev', inServer]);
        execIn(rig.topo.server.ns, 'ip', ['link', 'set', inServer, 'up']);
      }
      const n = this.o.natsServers ?? 1;
      for (let i = 0; i < n; i++) this.natsServers.push(await NatsServer.startIn(this.mgmtNs, NATS_ADDRESS, 4222 + i, this.clusterArgs(i, n)));
      this.nats = this.natsServers[0];
      return this;
    } catch (err) {
      await this.cleanup();
      throw err;
    }
  }

  /** `nats://10.232.0.1:4222[,10.232.0.1:4223…]/NAME`: every server as a seed. */
  url(name: string): string {
    return `nats://${this.natsServers.map((s) => `${s.host}:${s.port}`).join(',')}/${name}`;
  }

  /** The servers as a client's list: `nats://HOST:PORT,nats://HOST:PORT…`. */
  get servers(): string {
    return this.natsServers.map((s) => s.url).join(',');
  }

  /** The CLI, in the management namespace (where NATS is reachable). */
  cli(args: string[], timeoutMs = 90_000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.mgmtNs}`, process.execPath, mainJs, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** A raw write to `bucket` (test/lib/kv-tool.ts): `put KEY VALUE` or `delete KEY`, no envelope, no signature. */
  kv(bucket: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
    const tool = join(packageRoot, 'dist/test/lib/kv-tool.js');
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.mgmtNs}`, process.execPath, tool, this.servers, bucket, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** test/lib/js-tool.ts against the servers: its JSON line. */
  js<T>(args: string[]): T {
    const tool = join(packageRoot, 'dist/test/lib/js-tool.js');
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.mgmtNs}`, process.execPath, tool, this.servers, ...args], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`js-tool ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const s of this.natsServers) await s.cleanup();
    for (const rig of this.agents) rig.cleanup();
    try {
      ip('netns', 'del', this.mgmtNs);
    } catch {
      // already gone
    }
  }
}

/** Packets `rig`'s engine counted in its cached udp sessions to `port`: all, and those it allowed. */
function engineCounts(rig: AgentRig, port: number): { all: number; allowed: number } {
  const r = rig.cliJson<{ sessions: { verdict: string; packets: number }[] }>(['sessions', '--protocol', 'udp', '--port', String(port)]);
  return r.sessions.reduce((n, s) => ({ all: n.all + s.packets, allowed: n.allowed + (s.verdict === 'allow' ? s.packets : 0) }), { all: 0, allowed: 0 });
}

/**
 * Datagrams to `port` of `rig`'s server: how many were sent and how many arrived. Read once the
 * engine has counted every one in its sessions (a datagram it dropped can no longer arrive) and
 * the sink has every one it allowed (the deadline only ends a wait that fails).
 */
export async function traffic(rig: AgentRig, port: number): Promise<{ sent: number; received: number }> {
  const sink = await rig.sink(port, 20);
  try {
    const before = engineCounts(rig, port);
    const { sent } = await rig.stream(port, 200, 0.2).done;
    let after = before;
    await until(() => (after = engineCounts(rig, port)).all - before.all >= sent, `the engine counting all ${sent} datagrams to port ${port}`, 20_000, 200);
    const allowed = after.allowed - before.allowed;
    await sink.until((p) => p.count >= allowed, `the ${allowed} datagrams the engine allowed`, 5_000).catch(() => undefined);
    return { sent, received: (await sink.stop()).length };
  } finally {
    await sink.stop();
  }
}

/** Every datagram arrives (and some were sent). */
export async function passes(rig: AgentRig, port: number): Promise<boolean> {
  const t = await traffic(rig, port);
  return t.sent > 10 && t.received === t.sent;
}

/** None arrives (and some were sent). */
export async function dropped(rig: AgentRig, port: number): Promise<boolean> {
  const t = await traffic(rig, port);
  return t.sent > 10 && t.received === 0;
}
