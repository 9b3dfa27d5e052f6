// SPDX-License-Identifier: Apache-2.0
// Crafted frames from inside a namespace: one long-lived python3 with Debian's scapy
// (python3-scapy) per sender, fed scapy expressions as JSON lines; it builds each frame (scapy
// fills in checksums and the lengths a probe leaves unset), sends the bytes raw on one interface
// through an AF_PACKET socket, and answers with the bytes it sent. Owns only its child process.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { spawnIn } from '../../src/demo/topology.js';

/** Debian's interpreter: python3-scapy installs for it, whatever else `python3` names on PATH. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

const SENDER = `
import json, socket, sys, time
from scapy.all import *
conf.verb = 0
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind((sys.argv[1], 0))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        frames = [bytes(eval(e)) for e in req["frames"]]
    except Exception as err:
        print(json.dumps({"error": "%s: %s" % (type(err).__name__, err)}), flush=True)
        continue
    for i, b in enumerate(frames):
        out.send(b)
        # a short breath every 32 frames: the receiving veth's ring holds 256
        if i % 32 == 31:
            time.sleep(0.002)
    print(json.dumps({"sent": [b.hex() for b in frames]}), flush=True)
`;

/** A scapy sender on one interface of a namespace. */
export class ScapySender {
  private readonly pending: ((reply: { ready?: boolean; sent?: string[]; error?: string }) => void)[] = [];
  private stderr = '';
  private readonly ready: Promise<void>;
  private readonly child: ChildProcess;

  /** `own` tracks the child so the topology's destroy() kills it. */
  constructor(ns: string, ifname: string, own: (c: ChildProcess) => ChildProcess) {
    const child = own(spawnIn(ns, SYSTEM_PYTHON, ['-c', SENDER, ifname]));
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => this.pending.shift()?.(JSON.parse(line)));
    child.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p({ error: `the sender exited (${code}): ${this.stderr.trim()}` });
    });
    this.ready = this.reply(15_000).then(() => undefined);
  }

  private reply(ms: number): Promise<{ sent?: string[] }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the scapy sender did not answer within ${ms} ms: ${this.stderr.trim()}`)), ms);
      this.pending.push((r) => {
        clearTimeout(timer);
        if (r.error) reject(new Error(`scapy: ${r.error}`));
        else resolve(r);
      });
    });
  }

  /** Build and send the frames (scapy expressions), in order; resolves with the bytes sent. */
  async send(frames: string[]): Promise<Buffer[]> {
    await this.ready;
    const answer = this.reply(30_000);
    this.child.stdin!.write(`${JSON.stringify({ frames })}\n`);
    const { sent = [] } = await answer;
    return sent.map((h) => Buffer.from(h, 'hex'));
  }

  close(): void {
    this.child.stdin!.end();
  }
}
