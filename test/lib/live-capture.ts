// SPDX-License-Identifier: Apache-2.0
// A packet capture in a namespace: tcpdump on one interface, inbound frames only, written as pcap
// to its stdout packet by packet (-U) and parsed here as it streams, so a test can wait for the
// fact it needs (a marker frame) instead of sleeping. `describe()` prints frames the way tcpdump
// does, for reports. Owns only its tcpdump child.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { spawnIn } from '../../src/demo/topology.js';
import { Arrivals } from './arrivals.js';

const LINKTYPE_ETHERNET = 1;
/** Bytes kept of each frame: more than any crafted frame. */
const SNAPLEN = 2048;

/** A pcap file holding `frames` (Ethernet), timestamps zero. */
export function pcapOf(frames: Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262_144, 16);
  head.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  const records = frames.map((f) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([head, ...records]);
}

/** tcpdump's one-line (-v: a few lines) rendering of each frame. */
export function describeFrames(frames: Buffer[]): string[] {
  return frames.map((f) => {
    try {
      return execFileSync('tcpdump', ['-nn', '-e', '-v', '-r', '-'], { input: pcapOf([f]), encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] })
        .trim()
        .replace(/\s*\n\s*/g, ' | ');
    } catch {
      return `(tcpdump could not print it) ${f.toString('hex')}`;
    }
  });
}

/** Inbound frames of one interface, as they arrive. */
export class Capture {
  readonly frames: Buffer[] = [];
  private readonly child: ChildProcess;
  private readonly arrivals = new Arrivals({
    gone: () => (this.child.exitCode !== null || this.child.signalCode !== null ? 'tcpdump exited' : undefined),
  });
  private stderr = '';
  private pending = Buffer.alloc(0);
  private littleEndian: boolean | undefined;
  /** Resolves once tcpdump says it is listening. */
  readonly ready: Promise<void>;

  constructor(readonly where: string, ns: string, ifname: string, own: (c: ChildProcess) => ChildProcess) {
    // immediate mode makes libpcap use a TPACKET_V2 ring of snaplen-sized slots: a small snaplen
    // and a large buffer give it thousands of slots (with -s 0, 2 MiB held 8 frames and bursts lost)
    this.child = own(spawnIn(ns, 'tcpdump', ['-i', ifname, '-Q', 'in', '-nn', '-s', String(SNAPLEN), '-B', '16384', '--immediate-mode', '-U', '-w', '-']));
    this.child.stdout!.on('data', (d: Buffer) => this.feed(d));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump on ${where} did not start: ${this.stderr.trim()}`)), 10_000);
      this.child.stderr!.on('data', (d: Buffer) => {
        this.stderr += d.toString();
        if (/listening on/.test(this.stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump on ${where} exited (${code}): ${this.stderr.trim()}`));
        this.arrivals.notify();
      });
    });
  }

  private feed(data: Buffer): void {
    let b = Buffer.concat([this.pending, data]);
    if (this.littleEndian === undefined) {
      if (b.length < 24) {
        this.pending = b;
        return;
      }
      this.littleEndian = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
      b = b.subarray(24);
    }
    const u32 = (at: number) => (this.littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));
    while (b.length >= 16 && b.length >= 16 + u32(8)) {
      const len = u32(8);
      this.frames.push(Buffer.from(b.subarray(16, 16 + len)));
      b = b.subarray(16 + len);
    }
    this.pending = Buffer.from(b);
    this.arrivals.notify();
  }

  /** Resolves when a frame matching `match` has arrived (counting those already captured). */
  waitFor(match: (frame: Buffer) => boolean, what: string, ms = 10_000): Promise<void> {
    return this.arrivals.until(() => (this.frames.some(match) ? true : undefined), `${what} on ${this.where}`, ms).then(() => undefined);
  }

  /** Stops tcpdump; resolves with what it says the kernel dropped (frames it never saw). */
  stop(): Promise<{ dropped: number }> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.on('close', () => resolve());
    });
    this.child.kill('SIGTERM');
    return exited.then(() => {
      const m = /(\d+) packets? dropped by kernel/.exec(this.stderr);
      if (!m) throw new Error(`tcpdump on ${this.where} did not say what it dropped: ${this.stderr.trim()}`);
      return { dropped: Number(m[1]) };
    });
  }
}
