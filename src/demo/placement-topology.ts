// SPDX-License-Identifier: Apache-2.0
// The placement demo's network (and the placement tests'), built from the enforcers' own agent
// config files so the two never disagree: per enforcer a namespace holding its source interfaces
// and its underlay link `edge.device`; per source network a namespace with one host (.10) whose
// default route is the enforcer (.1); and the edge: a namespace with the underlay bridge
// (`edge.remote`) and the other ends of the tunnels, with a route to the networks behind each:
// per VXLAN tunnel a VXLAN device; for WireGuard one wireguard-go interface per edge port, whose
// peers are the enforcers' tunnels to that port (the peer list `doorstep fleet edge-config`
// writes). The edge is plain Linux routing: the fabric, not doorstep. Names of namespaces and of
// the edge's WireGuard devices carry a per-run token; the edge's wireguard-go and `wg` meet in a
// socket folder of the run's own. `destroy()` removes everything, twice is safe.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile } from '../controller/config.js';
import { formatAddress } from '../policy/ir/cidr.js';
import { OWNED_TABLES, type Placement, resolvePlacement } from '../placement/placement.js';
import { processesInNetns } from '../placement/netns-processes.js';
import { edgePeersOf } from '../placement/tunnel-status.js';
import { edgePeerLists } from '../placement/wireguard-conf.js';
import { withConfFile } from '../placement/wireguard.js';
import { withSocketDir } from '../placement/wireguard-sockets.js';
import { execIn, inNetns, ip, NamespaceOwner, runToken } from './topology.js';

/** Underlay MTU: room for VXLAN's 50 bytes (WireGuard's 60) over hosts' 1500. */
const UNDERLAY_MTU = 1600;
/** How long the edge's wireguard-go may take to open its device. */
const WIREGUARD_START_MS = 15_000;

export interface WireguardKeys {
  /** The edge's private key (base64). */
  edgePrivateKey: string;
  /** Enforcer name → its public key (made in its state dir before the agent starts). */
  enforcers: Record<string, string>;
  /** A root-only folder for the edge's configuration while `wg` reads it. */
  dir: string;
}

/** Waits synchronously (the topology is built without yielding). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface NetworkHost {
  /** The source's name (its tenant in the infra placement). */
  name: string;
  enforcer: string;
  ns: string;
  /** The host's IPv4 address (.10 of the network). */
  address: string;
  cidr: string;
}

export interface EnforcerNode {
  name: string;
  ns: string;
  config: string;
  placement: Placement;
}

function hostAddress(cidr: Placement['sources'][number]['networks'][number], last: number): string {
  const a = Uint8Array.from(cidr.addr);
  a[a.length - 1] = last;
  return formatAddress(cidr.family, a);
}

export class PlacementTopology extends NamespaceOwner {
  readonly token = runToken();
  readonly edgeNs: string;
  readonly enforcers: EnforcerNode[];
  readonly hosts: NetworkHost[] = [];
  /** The edge's ends of the tunnels (to count what the edge carried). */
  readonly edgeDevices: string[] = [];

  /** `configs`: enforcer name → its agent config file (with a placement). */
  constructor(configs: Record<string, string>, prefix = 'dsp') {
    super();
    this.edgeNs = `${prefix}-edge-${this.token}`;
    this.enforcers = Object.entries(configs).map(([name, config]) => {
      const placement = resolvePlacement(readConfigFile(config), config);
      if (!placement) throw new Error(`${config} has no placement`);
      return { name, ns: `${prefix}-${name.slice(0, 8)}-${this.token}`, config, placement };
    });
    for (const e of this.enforcers) {
      for (const s of e.placement.sources) {
        const net = s.networks[0]!;
        this.hosts.push({ name: s.name, enforcer: e.name, ns: `${prefix}-${s.name.slice(0, 8)}-${this.token}`, address: hostAddress(net, 10), cidr: net.text });
      }
    }
  }

  host(name: string): NetworkHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no network ${name}`);
    return h;
  }

  enforcer(name: string): EnforcerNode {
    const e = this.enforcers.find((x) => x.name === name);
    if (!e) throw new Error(`no enforcer ${name}`);
    return e;
  }

  /** A namespace; the demo's traffic is IPv4, so IPv6 is off (no link-local chatter in the records). */
  private addNs(ns: string): void {
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    execIn(ns, 'ip', ['link', 'set', 'lo', 'up']);
    execIn(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }

  /** `keys`: needed when a tunnel is WireGuard. */
  create(keys?: WireguardKeys): this {
    try {
      const edgeAddress = this.enforcers[0]?.placement.edge.remote ?? '10.240.0.1';
      this.addNs(this.edgeNs);
      const edge = (...args: string[]) => execIn(this.edgeNs, 'ip', args);
      edge('link', 'add', 'ul', 'mtu', String(UNDERLAY_MTU), 'type', 'bridge');
      edge('addr', 'add', `${edgeAddress}/24`, 'dev', 'ul');
      edge('link', 'set', 'ul', 'up');
      // one WireGuard interface serves several enforcers: what it forwards between them goes out
      // where it came in, which is no reason to tell them about a better route
      execIn(this.edgeNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0']);
      // a network's first tunnel gets the edge's route: the edge has no VRFs, so of two tenants
      // with the same range only the first is reachable from beyond it
      const routed = new Set<string>();
      this.enforcers.forEach((e, i) => {
        const p = e.placement;
        this.addNs(e.ns);
        const underlay = p.edge.device ?? 'ul0';
        const port = `ulp${i}`;
        ip('link', 'add', underlay, 'netns', e.ns, 'mtu', String(UNDERLAY_MTU), 'type', 'veth', 'peer', 'name', port, 'mtu', String(UNDERLAY_MTU), 'netns', this.edgeNs);
        edge('link', 'set', port, 'master', 'ul', 'up');
        if (!p.edge.local) throw new Error(`${e.config}: the demo needs edge.local (the enforcer's underlay address)`);
        execIn(e.ns, 'ip', ['addr', 'add', `${p.edge.local}/24`, 'dev', underlay]);
        execIn(e.ns, 'ip', ['link', 'set', underlay, 'up']);
        for (const s of p.sources) {
          const host = this.host(s.name);
          this.addNs(host.ns);
          const net = s.networks[0]!;
          ip('link', 'add', s.interface, 'netns', e.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns);
          execIn(e.ns, 'ip', ['addr', 'add', `${hostAddress(net, 1)}/${net.len}`, 'dev', s.interface]);
          execIn(e.ns, 'ip', ['link', 'set', s.interface, 'up']);
          execIn(host.ns, 'ip', ['addr', 'add', `${host.address}/${net.len}`, 'dev', 'eth0']);
          execIn(host.ns, 'ip', ['link', 'set', 'eth0', 'up']);
          execIn(host.ns, 'ip', ['route', 'add', 'default', 'via', hostAddress(net, 1)]);
        }
        // the edge's end of each VXLAN tunnel, and the way back to the networks behind it
        for (const t of p.tunnels.filter((x) => x.kind === 'vxlan')) {
          const dev = `vx${t.vni}`;
          this.edgeDevices.push(dev);
          edge('link', 'add', dev, 'type', 'vxlan', 'id', String(t.vni), 'remote', p.edge.local, 'local', edgeAddress, 'dev', 'ul', 'dstport', String(p.edge.port));
          const peer = t.peers.find((x) => x.family === 4)!;
          const ours = t.addresses.find((a) => a.family === 4)!;
          edge('addr', 'add', `${peer.address}/${ours.text.split('/')[1]}`, 'dev', dev);
          edge('link', 'set', dev, 'up');
          for (const s of p.sources.filter((x) => x.tunnel === t.device)) {
            for (const n of s.networks.filter((x) => x.family === 4 && !routed.has(x.text))) {
              routed.add(n.text);
              edge('route', 'add', n.text, 'via', ours.text.split('/')[0]!, 'dev', dev);
            }
          }
        }
      });
      this.createWireguardEdge(keys, routed);
      return this;
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** The edge's WireGuard side: per edge port one wireguard-go interface, its peers the enforcers' tunnels to that port. */
  private createWireguardEdge(keys: WireguardKeys | undefined, routed: Set<string>): void {
    const tunnels = this.enforcers.flatMap((e) => e.placement.tunnels.filter((t) => t.kind === 'wireguard').map((t) => ({ e, t })));
    if (tunnels.length === 0) return;
    if (!keys) throw new Error('WireGuard tunnels need the edge\'s and the enforcers\' keys');
    this.edgeSocketDir = join(keys.dir, 'edge-wireguard');
    mkdirSync(this.edgeSocketDir, { recursive: true, mode: 0o700 });
    const peers = this.enforcers.flatMap((e) => {
      const key = keys.enforcers[e.name];
      if (!key) throw new Error(`no WireGuard key for ${e.name}`);
      return edgePeersOf(e.name, e.placement, key);
    });
    for (const [port, peerList] of edgePeerLists(peers)) {
      const dev = `e${port}-${this.token}`;
      // its messages go to a file, read back if it does not come up (nothing reads a pipe while this waits)
      const logPath = join(keys.dir, `wireguard-go.${dev}.log`);
      const log = openSync(logPath, 'w');
      const [cmd, args] = inNetns(this.edgeNs, ...withSocketDir(this.edgeSocketDir, 'wireguard-go', ['-f', dev]));
      const child = this.own(spawn(cmd, args, { stdio: ['ignore', log, log] }));
      closeSync(log);
      this.edgeDevices.push(dev);
      for (let waited = 0; ; waited += 20) {
        try {
          this.edgeWg(['show', dev]);
          break;
        } catch (err) {
          if (waited > WIREGUARD_START_MS) {
            const state = existsSync(`/proc/${child.pid}`) ? 'still running' : 'exited';
            throw new Error(`the edge's wireguard-go for ${dev} (pid ${child.pid}, ${state}) opened no control socket in ${WIREGUARD_START_MS} ms: ${readFileSync(logPath, 'utf8').trim() || 'no output'}`, { cause: err });
          }
          pause(20);
        }
      }
      withConfFile(keys.dir, dev, `[Interface]\nPrivateKey = ${keys.edgePrivateKey}\nListenPort = ${port}\n\n${peerList}`, (file) => this.edgeWg(['setconf', dev, file]));
      execIn(this.edgeNs, 'ip', ['link', 'set', dev, 'mtu', '1500', 'up']);
      for (const { e, t } of tunnels.filter(({ t }) => t.wireguard!.endpoint.endsWith(`:${port}`))) {
        const peer = t.peers.find((x) => x.family === 4)!;
        const ours = t.addresses.find((a) => a.family === 4)!;
        execIn(this.edgeNs, 'ip', ['addr', 'add', `${peer.address}/${ours.text.split('/')[1]}`, 'dev', dev]);
        for (const s of e.placement.sources.filter((x) => x.tunnel === t.device)) {
          for (const n of s.networks.filter((x) => x.family === 4 && !routed.has(x.text))) {
            routed.add(n.text);
            execIn(this.edgeNs, 'ip', ['route', 'add', n.text, 'dev', dev]);
          }
        }
      }
    }
  }

  /** The edge's control sockets: a folder of this run's own, bound on /var/run/wireguard in the
   *  mount namespace its wireguard-go and `wg` run in, as an agent's are (placement/wireguard-sockets.ts):
   *  the host's shared folder is no one's, and two runs at once never meet there. */
  private edgeSocketDir: string | undefined;

  /** `wg args` in the edge's namespace, speaking to the edge's wireguard-go. */
  edgeWg(args: string[]): string {
    if (!this.edgeSocketDir) throw new Error('the edge has no WireGuard devices');
    return execIn(this.edgeNs, ...withSocketDir(this.edgeSocketDir, 'wg', args));
  }

  /** The edge's WireGuard devices go first: their wireguard-go exits and removes its control socket. */
  override destroy(): void {
    for (const dev of this.edgeDevices.filter((d) => d.startsWith('e'))) {
      try {
        execIn(this.edgeNs, 'ip', ['link', 'del', dev]);
      } catch {
        // gone, or never made
      }
    }
    super.destroy();
  }

  /** Packets the edge received from and sent into all its tunnels (to tell the edge path from a hairpin). */
  edgeTunnelPackets(): { rx: number; tx: number } {
    let rx = 0;
    let tx = 0;
    for (const dev of this.edgeDevices) {
      const s = linkStats(this.edgeNs, dev);
      rx += s.rx;
      tx += s.tx;
    }
    return { rx, tx };
  }

  /** Packets an enforcer sent into and received from its tunnels: a denied flow moves neither. */
  enforcerTunnelPackets(e: EnforcerNode): { rx: number; tx: number } {
    let rx = 0;
    let tx = 0;
    for (const t of e.placement.tunnels) {
      const s = linkStats(e.ns, t.device);
      rx += s.rx;
      tx += s.tx;
    }
    return { rx, tx };
  }

  /** What of an enforcer's forwarding is still in its namespace: tunnels, rules and routes of its tables. */
  forwardingLeftovers(e: EnforcerNode): string[] {
    const out: string[] = [];
    const from = e.placement.routeTable;
    const to = from + OWNED_TABLES - 1;
    for (const l of JSON.parse(execIn(e.ns, 'ip', ['-j', 'link', 'show']) || '[]') as { ifname: string }[]) {
      if (/^ds(vx|wg)/.test(l.ifname)) out.push(`link ${l.ifname}`);
    }
    for (const pid of processesInNetns(`/run/netns/${e.ns}`, (argv) => argv[0]!.endsWith('wireguard-go'))) out.push(`wireguard-go pid ${pid}`);
    for (const family of ['-4', '-6']) {
      for (const r of JSON.parse(execIn(e.ns, 'ip', ['-j', family, 'rule', 'show']) || '[]') as { priority: number; iif?: string }[]) {
        if (r.priority >= from && r.priority <= to) out.push(`rule ${family} ${r.priority} iif ${r.iif ?? '*'}`);
      }
      for (const t of e.placement.tunnels) {
        let routes = '';
        try {
          routes = execIn(e.ns, 'ip', [family, 'route', 'show', 'table', String(t.table)]).trim();
        } catch {
          // the table does not exist (any more)
        }
        if (routes) out.push(`routes ${family} table ${t.table}: ${routes.split('\n').length}`);
      }
    }
    if (execIn(e.ns, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim() !== '0') out.push('net.ipv4.ip_forward=1');
    return out;
  }
}

/** A link's packet counters in a namespace; zeros when it does not exist. */
function linkStats(ns: string, dev: string): { rx: number; tx: number } {
  try {
    const [stats] = JSON.parse(execIn(ns, 'ip', ['-j', '-s', 'link', 'show', dev])) as { stats64: { rx: { packets: number }; tx: { packets: number } } }[];
    return { rx: stats?.stats64.rx.packets ?? 0, tx: stats?.stats64.tx.packets ?? 0 };
  } catch {
    return { rx: 0, tx: 0 };
  }
}
