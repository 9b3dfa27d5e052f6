// SPDX-License-Identifier: Apache-2.0
// What the underlay carried during a flow: tcpdump on the edge's underlay bridge (IP only: ARP is
// not traffic), written to a pcap file, then each packet classified: WireGuard (UDP to or from one
// of the tunnels' ports, a WireGuard message type with its three reserved zero bytes) or other;
// and whether any packet shows the flow in clear (an IP header with the flow's two addresses, or
// the payload marker). Owns its tcpdump child and its file.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { formatAddress } from '../policy/ir/cidr.js';
import { spawnIn } from './topology.js';

export interface UnderlaySummary {
  packets: number;
  bytes: number;
  /** UDP to or from a WireGuard port, carrying a WireGuard message. */
  wireguard: number;
  /** Any other IP packet (e.g. VXLAN). */
  other: number;
  /** Packets that show the flow in clear: its addresses as an IP header, or its payload marker. */
  clear: number;
  /** `src:port → dst:port` of the UDP packets seen, distinct. */
  udp: string[];
}

/** A WireGuard message: type 1–4, then three reserved zero bytes. */
const isWireguardMessage = (p: Buffer) => p.length >= 4 && p[0]! >= 1 && p[0]! <= 4 && p[1] === 0 && p[2] === 0 && p[3] === 0;

/** Classic pcap records (Ethernet), either byte order. */
function pcapRecords(bytes: Buffer): Buffer[] {
  if (bytes.length < 24) return [];
  const le = bytes.readUInt32LE(0) === 0xa1b2c3d4 || bytes.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (at: number) => (le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= bytes.length; ) {
    const len = u32(off + 8);
    if (off + 16 + len > bytes.length) break;
    out.push(bytes.subarray(off + 16, off + 16 + len));
    off += 16 + len;
  }
  return out;
}

/** Summarise Ethernet frames: `ports` are the WireGuard ports; `inner` the flow's two IPv4 addresses; `marker` its payload marker. */
export function summariseUnderlay(frames: readonly Buffer[], ports: ReadonlySet<number>, inner: [string, string], marker: Buffer): UnderlaySummary {
  const s: UnderlaySummary = { packets: 0, bytes: 0, wireguard: 0, other: 0, clear: 0, udp: [] };
  const pairs = [Buffer.from(inner[0].split('.').map(Number).concat(inner[1].split('.').map(Number))), Buffer.from(inner[1].split('.').map(Number).concat(inner[0].split('.').map(Number)))];
  const udp = new Set<string>();
  for (const f of frames) {
    s.packets++;
    s.bytes += f.length;
    if (pairs.some((p) => f.includes(p)) || f.includes(marker)) s.clear++;
    const ip = f.subarray(14);
    if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || ip[0]! >> 4 !== 4 || ip[9] !== 17) {
      s.other++;
      continue;
    }
    const l4 = ip.subarray((ip[0]! & 0x0f) * 4);
    const sport = l4.readUInt16BE(0);
    const dport = l4.readUInt16BE(2);
    udp.add(`${formatAddress(4, ip.subarray(12, 16))}:${sport} → ${formatAddress(4, ip.subarray(16, 20))}:${dport}`);
    if ((ports.has(sport) || ports.has(dport)) && isWireguardMessage(l4.subarray(8))) s.wireguard++;
    else s.other++;
  }
  s.udp = [...udp].sort();
  return s;
}

/** tcpdump on `ifname` in `ns` into `file`, from start() (resolves once it listens) to stop(). */
export class UnderlayCapture {
  private child: ChildProcess | undefined;

  constructor(
    private readonly ns: string,
    private readonly ifname: string,
    private readonly file: string,
    private readonly own: (c: ChildProcess) => ChildProcess,
  ) {}

  start(): Promise<void> {
    const child = this.own(spawnIn(this.ns, 'tcpdump', ['-i', this.ifname, '-nn', '--immediate-mode', '-B', '16384', '-U', '-s', '2048', '-w', this.file, 'ip', 'or', 'ip6']));
    this.child = child;
    return new Promise((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => reject(new Error(`tcpdump on ${this.ifname} did not start: ${stderr}`)), 10_000);
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/listening on/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump on ${this.ifname} exited (${code}): ${stderr}`));
      });
    });
  }

  /** Stop tcpdump (it writes out what it holds) and return the frames it captured. */
  async stop(): Promise<Buffer[]> {
    const child = this.child;
    if (!child) return [];
    if (child.exitCode === null && child.signalCode === null) {
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGTERM');
      await closed;
    }
    try {
      return pcapRecords(readFileSync(this.file));
    } finally {
      rmSync(this.file, { force: true });
    }
  }
}
