// SPDX-License-Identifier: Apache-2.0
// An agent under test: `doorstep agent` with its own pin folder, state dir, socket and policy
// folder (all unique per run) on the enforced interface of a topology (`AgentHarness`), the CLI
// pointed at it; `AgentRig` is the common case, two namespaces joined by a veth pair with the
// agent on the server side and numbered UDP streams from the client. A stopped agent leaves the
// engine enforcing (`detach()` takes it off); `cleanup()` removes everything — namespaces, what
// runs in them, pins, folders — and is safe to call twice, also after a failure.
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runToken, spawnIn, Topology } from '../../src/demo/topology.js';
import { packageRoot } from '../../src/paths.js';
import { Arrivals } from './arrivals.js';

export const mainJs = join(packageRoot, 'dist/src/cli/main.js');
const peerJs = join(packageRoot, 'dist/src/demo/peer.js');

export type Rec = Record<string, unknown> & { type: string };

/** One agent process: its audit records (stdout) as they arrive, and its stderr. */
export class AgentProcess {
  readonly records: Rec[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly arrivals = new Arrivals({
    gone: () => (this.child.exitCode !== null || this.child.signalCode !== null ? `agent exited (${this.child.exitCode ?? this.child.signalCode})` : undefined),
    detail: () => `; stderr: ${this.stderr.trim()}`,
  });

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.records.push(JSON.parse(line) as Rec);
      } catch {
        this.stderr += `(not JSON on stdout) ${line}\n`;
      }
      this.arrivals.notify();
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code) => {
      this.arrivals.notify();
      resolve(code);
    }));
  }

  /** The first record (from index `from`) matching `match`; rejects after `ms` or if the agent exits. */
  waitFor(match: (r: Rec) => boolean, what: string, ms = 20_000, from = 0): Promise<Rec> {
    return this.arrivals.until(() => this.records.slice(from).find(match), what, ms);
  }

  async terminate(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export interface StreamResult {
  sent: number;
}

/** What a sink has received so far (from its progress lines). */
export interface SinkProgress {
  count: number;
  /** The highest sequence number received (-1: none yet). */
  highest: number;
  /** When that datagram was sent (CLOCK_MONOTONIC ns, as process.hrtime.bigint() in any namespace; 0: none yet). */
  highestSentNs: bigint;
}

export interface SinkHandle {
  /** Wait (to the deadline `ms`) until what the sink received so far satisfies `holds`. */
  until(holds: (p: SinkProgress) => boolean, what: string, ms?: number): Promise<SinkProgress>;
  /** What it has received so far. */
  progress(): SinkProgress;
  stop(): Promise<[number, bigint][]>;
}

/** What an agent under test enforces: the namespace and interface it runs on, and an owner of the
 *  namespaces and child processes that `cleanup()` destroys. */
export interface EnforcedTopology {
  readonly enforced: { ns: string; ifname: string };
  own(child: ChildProcess): ChildProcess;
  destroy(): void;
}

/** An agent's pin folder, state dir, socket and policy folder (unique per run), on any topology. */
export class AgentHarness<T extends EnforcedTopology> {
  readonly pinRoot = `/sys/fs/bpf/doorstep-test-${runToken()}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'doorstep-agent-'));
  readonly stateDir = join(this.dir, 'state');
  readonly socket = join(this.dir, 'agent.sock');
  readonly policyDir = join(this.dir, 'policy');
  private cleaned = false;

  /** `topo` is already created; cleanup() destroys it. */
  constructor(readonly topo: T) {
    spawnSync('mkdir', ['-p', this.policyDir]);
  }

  writePolicy(name: string, text: string): string {
    const path = join(this.policyDir, name);
    writeFileSync(`${path}.tmp`, text);
    spawnSync('mv', [`${path}.tmp`, path]);
    return path;
  }

  /** `doorstep agent` on the enforced interface; `folder: false` leaves out the policy folder. */
  startAgent(extra: string[] = [], o: { folder?: boolean; enforcerId?: string } = {}): AgentProcess {
    const { ns, ifname } = this.topo.enforced;
    const child = this.topo.own(
      spawnIn(ns, process.execPath, [
        mainJs, 'agent', '--interface', ifname, ...(o.folder === false ? [] : ['--policy', this.policyDir]),
        '--pin-root', this.pinRoot, '--state-dir', this.stateDir, '--socket', this.socket,
        '--enforcer-id', o.enforcerId ?? 'test', '--xdp-mode', 'native', ...extra,
      ]),
    );
    return new AgentProcess(child);
  }

  /** `doorstep detach` for this harness's state dir and pins, in the enforced namespace (a stopped
   *  agent leaves the engine enforcing; this is the explicit act that removes it). */
  detach(extra: string[] = []): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('nsenter', [`--net=/run/netns/${this.topo.enforced.ns}`, process.execPath, mainJs, 'detach', '--state-dir', this.stateDir, '--pin-root', this.pinRoot, ...extra], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Run the CLI against this agent; `--socket` is added. */
  cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [mainJs, ...args, '--socket', this.socket], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  cliJson<U>(args: string[]): U {
    const r = this.cli([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(`doorstep ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as U;
  }

  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    this.topo.destroy();
    rmSync(this.pinRoot, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The agent on the server side of a client–server veth pair, with numbered UDP streams. */
export class AgentRig extends AgentHarness<Topology & EnforcedTopology> {
  constructor(prefix = 'dsa') {
    const topo = new Topology(prefix).create();
    super(Object.assign(topo, { enforced: topo.server }));
  }

  /**
   * A receiver of numbered datagrams on the server; resolves with [seq, sentNs] pairs once stopped.
   * `until` waits (to a deadline) for what it has received so far: how many, and the highest seq.
   */
  async sink(port: number, seconds: number): Promise<SinkHandle> {
    const child = this.topo.own(spawnIn(this.topo.server.ns, process.execPath, [peerJs, 'sink', 'udp', '0.0.0.0', String(port), String(seconds)]));
    await lineFrom(child, (l) => l === 'ready', 10_000);
    const progress: SinkProgress = { count: 0, highest: -1, highestSentNs: 0n };
    const arrivals = new Arrivals({ gone: () => (child.exitCode !== null || child.signalCode !== null ? 'the sink exited' : undefined) });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^progress (\d+) (-?\d+) (\d+)$/.exec(line);
      if (!m) return;
      progress.count = Number(m[1]);
      progress.highest = Number(m[2]);
      progress.highestSentNs = BigInt(m[3]!);
      arrivals.notify();
    });
    child.on('exit', () => arrivals.notify());
    let stopped: Promise<[number, bigint][]> | undefined;
    return {
      progress: () => ({ ...progress }),
      until: (holds, what, ms = 20_000) => arrivals.until(() => (holds(progress) ? { ...progress } : undefined), what, ms),
      // idempotent: a second call (a `finally`) gets the same result
      stop: () =>
        (stopped ??= (async () => {
          const out = collect(child);
          child.kill('SIGTERM');
          const { received } = JSON.parse((await out).trim().split('\n').pop() || '{"received":[]}') as { received: [number, string][] };
          return received.map(([seq, ns]) => [seq, BigInt(ns)] as [number, bigint]);
        })()),
    };
  }

  /** Numbered datagrams from the client to the server, `perSecond` for at most `seconds`. */
  stream(port: number, perSecond: number, seconds: number): { stop: () => Promise<StreamResult>; done: Promise<StreamResult> } {
    const child = this.topo.own(
      spawnIn(this.topo.client.ns, process.execPath, [peerJs, 'stream', 'udp', this.topo.server.v4, String(port), String(perSecond), String(seconds)]),
    );
    const out = collect(child).then((text) => JSON.parse(text.trim().split('\n').pop() || '{"sent":0}') as StreamResult);
    return {
      done: out,
      stop: () => {
        child.kill('SIGTERM');
        return out;
      },
    };
  }

}

function collect(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out));
  });
}

function lineFrom(child: ChildProcess, match: (line: string) => boolean, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching line within ${ms} ms`)), ms);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.on('exit', () => reject(new Error('process exited')));
  });
}

/** Received sequence numbers (a sink's [seq, sentNs] pairs), sorted, as maximal runs [first, last]. */
export function sequenceRuns(received: [number, bigint][]): [number, number][] {
  const seqs = [...new Set(received.map(([s]) => s))].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const s of seqs) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The e2e tests' policy for an AgentRig: `web` allows UDP to `open` from the client's /24 to the
 * server and denies UDP to `shut` from it; `extra` appends rule lines (each `    - { … }\n`).
 */
export function twoPortPolicy(open: number, shut: number, extra = ''): string {
  return `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - { name: allow-${open}, action: allow, from: [10.231.0.0/24], to: [10.231.0.2/32], protocol: udp, ports: [${open}] }
    - { name: deny-${shut}, action: deny, from: [10.231.0.0/24], protocol: udp, ports: [${shut}] }
${extra}`;
}
