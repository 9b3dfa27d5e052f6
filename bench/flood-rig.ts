// SPDX-License-Identifier: Apache-2.0
// The flood benchmark's network and its four enforcers. One client namespace holds the sending
// ends of four veth pairs; each pair's other end sits in a server namespace of its own, one per
// enforcer (doorstep's agent, xdp-filter, an nftables set, iptables raw), so the four never share
// a hook or a table and can stay set up for the whole run. Every pair is configured alike: TSO
// off on the sending end (socket-sent frames would otherwise skip the receiver's NAPI), GRO on
// at the receiving end (so the veth has a NAPI instance even without XDP, and the stack peers
// take the same NAPI path as the XDP ones), threaded NAPI there (so the receive work runs in a
// kernel thread of its own whose CPU time can be read exactly, `napi/<ifname>-<id>`), pinned
// to CPU 0. Namespace names carry a per-run token; `destroy()` removes them and is safe twice.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { execIn, inNetns, ip, NamespaceOwner, runToken } from '../src/demo/topology.js';
import { PinnedMap } from './lib/packet-flood.js';
import { parseIp } from '../src/engine/frame.js';
import { floorObjectPath } from '../src/paths.js';

export const SERVER_V4 = '10.241.0.2';
export const CLIENT_V4 = '10.241.0.1';
export const DENIED_PORT = 9999;
export const ALLOWED_PORT = 7777;
export const NAPI_CPU = 0;
export const SENDER_CPU = 1;
/** The sending thread's nice value: it shares CPU 1 with the agent, and yields to it, as traffic
 *  from the network (not a busy user process beside it) would. */
export const SENDER_NICE = 19;

/** The 10,000 non-matching sources every "10,000 rules" configuration is made of: 172.16.0.0/12 hosts. */
export function feedSources(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
}

/** The frame with its IPv4 header checksum filled in (the builder leaves it 0; the stack drops
 *  such a frame in ip_rcv, before netfilter would see it). Untagged IPv4 frames only. */
export function withIpv4Checksum(frame: Buffer): Buffer {
  const ip = frame.subarray(14, 14 + (frame[14]! & 0x0f) * 4);
  ip.writeUInt16BE(0, 10);
  let sum = 0;
  for (let i = 0; i < ip.length; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  return frame;
}

export interface Host {
  ns: string;
  ifname: string;
  mac: string;
}

/** The enforcers, and the floor: an XDP program that drops every frame at once (not an enforcer:
 *  the least any XDP program can cost on this path). */
export const ENFORCERS = ['doorstep', 'xdp-filter', 'XDP_DROP floor', 'nft set', 'iptables raw'] as const;
export type EnforcerName = (typeof ENFORCERS)[number];

export class FloodTopology extends NamespaceOwner {
  readonly token = runToken();
  readonly client: string;
  /** Per enforcer: the sending end (in `client`) and the receiving end (in its server namespace). */
  readonly pairs: { name: EnforcerName; sender: Host; receiver: Host }[];
  /** The enforced interface of the agent (AgentHarness's EnforcedTopology). */
  readonly enforced: { ns: string; ifname: string };

  constructor() {
    super();
    this.client = `dsf-c-${this.token}`;
    this.pairs = ENFORCERS.map((name, k) => ({
      name,
      sender: { ns: this.client, ifname: `fc${k}${this.token}`, mac: `02:f0:00:00:00:0${k}` },
      receiver: { ns: `dsf-s${k}-${this.token}`, ifname: `fs${k}${this.token}`, mac: `02:f1:00:00:00:0${k}` },
    }));
    const doorstep = this.pair('doorstep').receiver;
    this.enforced = { ns: doorstep.ns, ifname: doorstep.ifname };
  }

  pair(name: EnforcerName): { sender: Host; receiver: Host } {
    return this.pairs.find((p) => p.name === name)!;
  }

  create(): this {
    try {
      ip('netns', 'add', this.client);
      this.namespaces.push(this.client);
      // the client sends raw frames only: no addresses, no IPv6 chatter on its links
      execIn(this.client, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      for (const { sender, receiver } of this.pairs) {
        ip('netns', 'add', receiver.ns);
        this.namespaces.push(receiver.ns);
        ip('link', 'add', sender.ifname, 'netns', sender.ns, 'address', sender.mac, 'type', 'veth', 'peer', 'name', receiver.ifname, 'netns', receiver.ns, 'address', receiver.mac);
        execIn(sender.ns, 'ethtool', ['-K', sender.ifname, 'tso', 'off']);
        execIn(sender.ns, 'ip', ['link', 'set', sender.ifname, 'up']);
        execIn(receiver.ns, 'ip', ['link', 'set', 'lo', 'up']);
        execIn(receiver.ns, 'ip', ['addr', 'add', `${SERVER_V4}/24`, 'dev', receiver.ifname]);
        execIn(receiver.ns, 'ethtool', ['-K', receiver.ifname, 'gro', 'on']);
        execIn(receiver.ns, 'ip', ['link', 'set', receiver.ifname, 'up']);
        // sysfs follows the namespace it was mounted in: `ip netns exec` mounts the namespace's own
        execFileSync('ip', ['netns', 'exec', receiver.ns, 'sh', '-c', `echo 1 > /sys/class/net/${receiver.ifname}/threaded`]);
      }
      return this;
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** The receiving veth's NAPI threads, pinned to NAPI_CPU (XDP attach/detach may recreate them). */
  napiThreads(receiver: Host): number[] {
    const prefix = `napi/${receiver.ifname}`.slice(0, 15);
    const pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith(prefix);
        } catch {
          return false;
        }
      })
      .map(Number);
    for (const pid of pids) execFileSync('taskset', ['-p', String(1 << NAPI_CPU), String(pid)], { stdio: 'ignore' });
    return pids;
  }

  /** Frames the receiving end took in (every frame its NAPI handled, dropped at XDP or not). */
  received(receiver: Host): number {
    const [link] = JSON.parse(execIn(receiver.ns, 'ip', ['-s', '-j', 'link', 'show', 'dev', receiver.ifname])) as { stats64: { rx: { packets: number } } }[];
    return link!.stats64.rx.packets;
  }

  /** XDP_DROP verdicts the veth counted on its receive queue. */
  xdpDrops(receiver: Host): number {
    const m = /rx_queue_0_xdp_drops:\s*(\d+)/.exec(execIn(receiver.ns, 'ethtool', ['-S', receiver.ifname]));
    return m ? Number(m[1]) : 0;
  }

  /** The id of the XDP program attached to the receiving end. */
  xdpProgId(receiver: Host): number | undefined {
    const [link] = JSON.parse(execIn(receiver.ns, 'ip', ['-d', '-j', 'link', 'show', 'dev', receiver.ifname])) as { xdp?: { prog?: { id: number } } }[];
    return link?.xdp?.prog?.id;
  }
}

/** What every peer of doorstep offers the bench. */
export interface Peer {
  readonly name: EnforcerName;
  /** What this peer's "10,000 rules" configuration is. */
  readonly rulesNote: string;
  /** The plain configuration (deny the flood's port) or the one with 10,000 non-matching entries before it. */
  configure(rules10k: boolean): void | Promise<void>;
  /** Frames this peer dropped so far. */
  dropped(): number;
  stop(): void;
}

const XDP_FILTER_PINS = '/sys/fs/bpf/xdp-filter';
/** libxdp's own folder (dispatcher pins), created on first use: removed again if this bench created it and it is empty. */
const LIBXDP_PINS = '/sys/fs/bpf/xdp';

/** xdp-filter (xdp-tools) in its default program (default allow, all features), denying UDP to the port. */
export class XdpFilterPeer implements Peer {
  readonly name = 'xdp-filter';
  readonly rulesNote = '10,000 IPv4 source addresses in its filter_ipv4 map (a per-CPU hash; its capacity), none of them the sender';
  private loaded = false;
  private readonly libxdpFolderExisted = existsSync(LIBXDP_PINS);
  private readonly feed = feedSources(10_000).map((a) => parseIp(a));

  constructor(
    private readonly topo: FloodTopology,
    private readonly host: Host,
  ) {
    // xdp-filter pins its maps at a fixed path: one xdp-filter per host, and this bench removes it afterwards
    if (existsSync(XDP_FILTER_PINS)) {
      throw new Error(`${XDP_FILTER_PINS} exists: another xdp-filter is loaded on this host (its maps are pinned at that fixed path); unload it first`);
    }
    this.loaded = true;
    execIn(host.ns, 'xdp-filter', ['load', '-m', 'native', host.ifname]);
    execIn(host.ns, 'xdp-filter', ['port', String(DENIED_PORT), '-m', 'dst', '-p', 'udp']);
  }

  configure(rules10k: boolean): void {
    // 10,000 `xdp-filter ip ADDR -m src` commands would take a minute: the same entries, written
    // straight into its pinned map (key: the address in network order; value per CPU: mode bits,
    // 1 = source, as `xdp-filter ip` writes them)
    const map = PinnedMap.open(`${XDP_FILTER_PINS}/filter_ipv4`, true);
    try {
      const value = Buffer.alloc(map.valueSize);
      for (let off = 0; off < value.length; off += 8) value.writeBigUInt64LE(1n, off);
      for (const key of this.feed) {
        if (rules10k) map.update(key, value);
        else map.delete(key);
      }
    } finally {
      map.close();
    }
  }

  dropped(): number {
    return this.topo.xdpDrops(this.host);
  }

  stop(): void {
    if (!this.loaded) return;
    this.loaded = false;
    try {
      execIn(this.host.ns, 'xdp-filter', ['unload', this.host.ifname]);
    } finally {
      rmSync(XDP_FILTER_PINS, { recursive: true, force: true });
      if (!this.libxdpFolderExisted) {
        try {
          rmdirSync(LIBXDP_PINS);
        } catch {
          // absent, or someone else's pins in it now
        }
      }
    }
  }
}

/** bpf/floor.bpf.c's ds_xdp_drop, attached natively by iproute2: every frame dropped at once. */
export class XdpDropPeer implements Peer {
  readonly name = 'XDP_DROP floor';
  readonly rulesNote = 'none (it drops every frame at once)';

  constructor(
    private readonly topo: FloodTopology,
    private readonly host: Host,
  ) {
    execIn(host.ns, 'ip', ['link', 'set', 'dev', host.ifname, 'xdpdrv', 'obj', floorObjectPath, 'sec', 'xdp.frags', 'program', 'ds_xdp_drop']);
  }

  configure(): void {
    // nothing to configure
  }

  dropped(): number {
    return this.topo.xdpDrops(this.host);
  }

  stop(): void {
    // the namespace (and the program with it) goes with the topology
  }
}

/** An nftables set of denied ports in a raw-priority prerouting chain; "10,000 rules": a source set before it. */
export class NftPeer implements Peer {
  readonly name = 'nft set';
  readonly rulesNote = 'a set of 10,000 IPv4 source addresses (ip saddr @feed drop, no match) before the port set';

  constructor(private readonly host: Host) {}

  configure(rules10k: boolean): void {
    const feed = rules10k ? `    set feed { type ipv4_addr; elements = { ${feedSources(10_000).join(', ')} } }\n` : '';
    const rules = `${rules10k ? '        ip saddr @feed counter drop\n' : ''}        udp dport @deny_ports counter drop\n`;
    const text =
      `table ip dsflood\ndelete table ip dsflood\ntable ip dsflood {\n` +
      `    set deny_ports { type inet_service; elements = { ${DENIED_PORT} } }\n${feed}` +
      `    chain pre {\n        type filter hook prerouting priority raw; policy accept;\n${rules}    }\n}\n`;
    runWithInput(this.host.ns, 'nft', ['-f', '-'], text);
  }

  dropped(): number {
    const text = execIn(this.host.ns, 'nft', ['list', 'table', 'ip', 'dsflood']);
    return [...text.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  }

  stop(): void {
    // the namespace goes with the topology
  }
}

/** iptables (the legacy xtables backend) raw table; "10,000 rules": 10,000 non-matching rules before the deny. */
export class IptablesPeer implements Peer {
  readonly name = 'iptables raw';
  readonly rulesNote = '10,000 rules (-s 172.16.x.y -p udp --dport 9999 -j DROP, no match) before the deny, walked one by one (iptables-legacy)';

  constructor(private readonly host: Host) {}

  configure(rules10k: boolean): void {
    const feed = rules10k ? feedSources(10_000).map((a) => `-A PREROUTING -s ${a}/32 -p udp --dport ${DENIED_PORT} -j DROP\n`).join('') : '';
    const text = `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${feed}-A PREROUTING -p udp --dport ${DENIED_PORT} -j DROP\nCOMMIT\n`;
    runWithInput(this.host.ns, 'iptables-legacy-restore', [], text);
  }

  dropped(): number {
    const [c, a] = inNetns(this.host.ns, 'iptables-legacy', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n']);
    const text = execFileSync(c, a, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    return text
      .split('\n')
      .slice(2)
      .reduce((n, line) => n + (Number(line.trim().split(/\s+/)[0]) || 0), 0);
  }

  stop(): void {
    // the namespace goes with the topology
  }
}

function runWithInput(ns: string, cmd: string, args: string[], input: string): void {
  const [c, a] = inNetns(ns, cmd, args);
  execFileSync(c, a, { input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
}
