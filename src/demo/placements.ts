// SPDX-License-Identifier: Apache-2.0
// The placement demo (`npm start`), also the placement tests' fixture: the network of
// placement-topology.ts, one `doorstep agent` per enforcer (a child process in its namespace,
// with its example config and the example policy), real flows between the networks, and what
// each one delivered and echoed back, and what the underlay carried meanwhile. With WireGuard
// tunnels the demo is also the edge's operator: it makes the edge's key pair (and writes its
// public key into a copy of each config) and each enforcer's, in the state dir its agent will
// use, before the agents start. Everything it creates goes on return, on error and on Ctrl-C.
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AgentClient } from '../controller/agent-client.js';
import type { StatusReport } from '../controller/routes.js';
import { packageRoot } from '../paths.js';
import { parseDocument } from 'yaml';
import { loadOrCreateKeyPair, newWireguardPrivateKey, wireguardPublicKey } from '../placement/wireguard-keys.js';
import { socketDirOf, withSocketDir } from '../placement/wireguard-sockets.js';
import { PlacementTopology, type WireguardKeys } from './placement-topology.js';
import { summariseUnderlay, UnderlayCapture, type UnderlaySummary } from './underlay-capture.js';
import { exitOutput, waitForLine } from './run.js';
import { execIn, spawnIn } from './topology.js';
import type { DetachOutcome } from '../controller/detach.js';

export interface PlacementFlow {
  name: string;
  from: string;
  to: string;
  proto: 'tcp' | 'udp';
  port: number;
  /** What the policy says end to end. */
  expect: 'allow' | 'deny';
}

export interface PlacementFlowResult extends PlacementFlow {
  sent: number;
  delivered: number;
  echoed: number;
  /** Packets the edge's tunnels carried during the flow (0 for a hairpin). */
  edgePackets: number;
  /** Packets the source network's enforcer sent into (and received from) its tunnels during the flow: 0 for a denied flow. */
  tunnelPackets: number;
  /** What the underlay (the edge's bridge) carried during the flow. */
  underlay: UnderlaySummary;
}

/** The payload marker: peer.ts sends bytes of 0x78 ('x'); sixteen of them in a row show a payload in clear. */
export const PAYLOAD_MARKER = Buffer.alloc(16, 0x78);

/** The example configs, by enforcer name. */
export const DEMO_ENFORCERS: Record<string, string> = {
  infra: join(packageRoot, 'examples/placement/infra.yaml'),
  workload: join(packageRoot, 'examples/placement/workload.yaml'),
  datacenter: join(packageRoot, 'examples/placement/datacenter.yaml'),
};
export const DEMO_POLICY = join(packageRoot, 'examples/placement/policy.yaml');

/**
 * Copies of the example configs `names` in `dir` (as `<prefix><name>.yaml`), by name; with
 * `tunnel: 'vxlan'` their edge tunnel is VXLAN (clear text), for comparisons with WireGuard.
 */
export function exampleConfigs(dir: string, names: readonly string[], tunnel: 'wireguard' | 'vxlan', prefix = ''): Record<string, string> {
  const configs: Record<string, string> = {};
  for (const name of names) {
    const doc = parseDocument(readFileSync(DEMO_ENFORCERS[name] ?? join(packageRoot, `examples/placement/${name}.yaml`), 'utf8'));
    if (tunnel === 'vxlan') {
      doc.setIn(['edge', 'tunnel'], 'vxlan');
      for (const key of ['publicKey', 'port']) doc.deleteIn(['edge', key]);
    }
    configs[name] = join(dir, `${prefix}${name}.yaml`);
    writeFileSync(configs[name], doc.toString());
  }
  return configs;
}

export const DEMO_PLACEMENT_FLOWS: PlacementFlow[] = [
  { name: 'vpc-a → vpc-b web', from: 'vpc-a', to: 'vpc-b', proto: 'tcp', port: 8080, expect: 'allow' },
  { name: 'vpc-a → vpc-b ssh', from: 'vpc-a', to: 'vpc-b', proto: 'tcp', port: 22, expect: 'deny' },
  { name: 'vpc-b → remote api', from: 'vpc-b', to: 'vpc-r', proto: 'tcp', port: 8443, expect: 'allow' },
  { name: 'vpc-b → dc syslog', from: 'vpc-b', to: 'dc-fra', proto: 'udp', port: 514, expect: 'allow' },
  { name: 'vpc-a → dc syslog', from: 'vpc-a', to: 'dc-fra', proto: 'udp', port: 514, expect: 'deny' },
  { name: 'dc → remote db', from: 'dc-fra', to: 'vpc-r', proto: 'tcp', port: 5432, expect: 'allow' },
  { name: 'remote → vpc-a probe', from: 'vpc-r', to: 'vpc-a', proto: 'tcp', port: 9000, expect: 'deny' },
  { name: 'remote → dc ssh', from: 'vpc-r', to: 'dc-fra', proto: 'tcp', port: 22, expect: 'deny' },
];

const mainJs = () => join(packageRoot, 'dist/src/cli/main.js');
const peerJs = () => join(packageRoot, 'dist/src/demo/peer.js');

/** The last stdout line as JSON once the child exits (killed after `ms`). */
async function lastJson<T>(child: ChildProcess, ms: number): Promise<T> {
  return JSON.parse((await exitOutput(child, ms)).trim().split('\n').pop() || '{}') as T;
}

export interface RunningEnforcer {
  name: string;
  socket: string;
  child: ChildProcess;
}

export interface PlacementDemoOptions {
  enforcers?: Record<string, string>;
  policy?: string;
  flows?: PlacementFlow[];
  onRecord?: (enforcer: string, record: Record<string, unknown>) => void;
  /** Called with the network up and every agent enforcing, before the flows; tests look around here. */
  onReady?: (topology: PlacementTopology, enforcers: RunningEnforcer[], demo: PlacementDemo) => Promise<void>;
  onFlow?: (flow: PlacementFlow) => void;
  onFlowDone?: (result: PlacementFlowResult) => void;
  /** Each agent also serves the web UI at this HOST:PORT, on its own namespace's loopback. */
  ui?: string;
}

export interface PlacementDemoResult {
  flows: PlacementFlowResult[];
  /** Enforcer → its status just before it stopped. */
  status: Record<string, StatusReport>;
  records: { enforcer: string; record: Record<string, unknown> }[];
  /** Enforcer → what was left in its namespace after it stopped and was detached (tunnels, rules of its tables). */
  leftovers: Record<string, string[]>;
  /** Enforcer → what `doorstep detach` took back after the agent stopped. */
  detached: Record<string, DetachOutcome>;
}

export class PlacementDemo {
  readonly topology: PlacementTopology;
  readonly enforcers: RunningEnforcer[] = [];
  readonly records: { enforcer: string; record: Record<string, unknown> }[] = [];
  private readonly stateDir = mkdtempSync(join(tmpdir(), 'doorstep-placement-'));
  private readonly pins: string[] = [];
  /** Enforcer → what `doorstep detach` took back at stopAgents(). */
  readonly detached: Record<string, DetachOutcome> = {};
  /** The edge's private key (base64). */
  readonly edgePrivateKey = newWireguardPrivateKey();
  private readonly keys: WireguardKeys;

  constructor(private readonly options: PlacementDemoOptions = {}) {
    const configs = Object.fromEntries(Object.entries(options.enforcers ?? DEMO_ENFORCERS).map(([name, path]) => [name, this.withEdgeKey(name, path)]));
    this.topology = new PlacementTopology(configs);
    this.keys = {
      edgePrivateKey: this.edgePrivateKey,
      dir: this.stateDir,
      enforcers: Object.fromEntries(this.topology.enforcers.map((e) => [e.name, loadOrCreateKeyPair(this.enforcerStateDir(e.name)).publicKey])),
    };
  }

  /** The state dir of an enforcer's agent (its WireGuard key pair is made there first). */
  enforcerStateDir(name: string): string {
    const dir = join(this.stateDir, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** `wg args` in an enforcer's namespace, speaking to its agent's wireguard-go (their sockets are that agent's alone) or the kernel's devices. */
  wg(name: string, args: string[]): string {
    return execIn(this.topology.enforcer(name).ns, ...withSocketDir(socketDirOf(this.enforcerStateDir(name)), 'wg', args));
  }

  /** A WireGuard config's copy with this run's edge public key; VXLAN configs as they are. */
  private withEdgeKey(name: string, path: string): string {
    const doc = parseDocument(readFileSync(path, 'utf8'));
    if ((doc.getIn(['edge', 'tunnel']) ?? 'wireguard') !== 'wireguard') return path;
    doc.setIn(['edge', 'publicKey'], wireguardPublicKey(this.edgePrivateKey));
    const copy = join(this.stateDir, `${name}.yaml`);
    writeFileSync(copy, doc.toString());
    return copy;
  }

  /** Network up, then every agent attached, forwarding and enforcing the policy. */
  async start(): Promise<void> {
    this.topology.create(this.keys);
    await Promise.all(this.topology.enforcers.map((e) => this.startAgent(e.name)));
  }

  /**
   * Start (or start again, after it stopped or was killed) one enforcer's agent; resolves once its
   * policy is in force (installed, restored from its state dir, or adopted from the engine a killed agent left).
   */
  async startAgent(name: string): Promise<RunningEnforcer> {
    const e = this.topology.enforcer(name);
    const socket = join(this.stateDir, `${e.name}.sock`);
    const pinRoot = `/sys/fs/bpf/doorstep-demo-${this.topology.token}-${e.name}`;
    if (!this.pins.includes(pinRoot)) this.pins.push(pinRoot);
    const child = this.topology.own(
      spawnIn(e.ns, process.execPath, [
        mainJs(), 'agent', '--config', e.config, '--policy', this.options.policy ?? DEMO_POLICY,
        '--enforcer-id', e.name, '--pin-root', pinRoot, '--state-dir', this.enforcerStateDir(e.name), '--socket', socket,
        ...(this.options.ui ? ['--ui', this.options.ui] : []),
      ]),
    );
    const inForce = waitForLine(child, (l) => l.includes('"type":"policy"') && /"status":"(installed|unchanged|adopted|restored)"/.test(l), 30_000, `${e.name} to enforce the policy`);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      this.records.push({ enforcer: e.name, record });
      this.options.onRecord?.(e.name, record);
    });
    await inForce;
    const running = { name: e.name, socket, child };
    const at = this.enforcers.findIndex((x) => x.name === name);
    if (at >= 0) this.enforcers[at] = running;
    else this.enforcers.push(running);
    return running;
  }

  /** One flow: a server (echoing) in the destination network, a bounded sender in the source. */
  async flow(f: PlacementFlow, timeoutMs = 1500): Promise<PlacementFlowResult> {
    const from = this.topology.host(f.from);
    const to = this.topology.host(f.to);
    const enforcer = this.topology.enforcer(from.enforcer);
    const tunnelPackets = () => {
      const s = this.topology.enforcerTunnelPackets(enforcer);
      return s.rx + s.tx;
    };
    const edgeBefore = this.topology.edgeTunnelPackets().rx;
    const tunnelBefore = tunnelPackets();
    const capture = new UnderlayCapture(this.topology.edgeNs, 'ul', join(this.stateDir, 'underlay.pcap'), (c) => this.topology.own(c));
    await capture.start();
    const server = this.topology.own(spawnIn(to.ns, process.execPath, [peerJs(), 'serve', f.proto, '0.0.0.0', String(f.port), '20', 'echo']));
    await waitForLine(server, (l) => l === 'ready', 10_000, `the server in ${f.to}`);
    const count = f.proto === 'tcp' ? 8 : 20;
    const client = this.topology.own(
      spawnIn(from.ns, process.execPath, [peerJs(), 'send', f.proto, to.address, String(f.port), String(count), '500', String(timeoutMs), 'echo']),
    );
    const sent = await lastJson<{ sent?: number; echoed?: number }>(client, timeoutMs + 5_000);
    const done = lastJson<{ bytes?: number }>(server, 5_000);
    server.kill('SIGTERM');
    const delivered = (await done).bytes ?? 0;
    const frames = await capture.stop();
    const ports = new Set(this.topology.enforcers.flatMap((e) => e.placement.tunnels.flatMap((t) => (t.wireguard ? [t.wireguard.listenPort, Number(t.wireguard.endpoint.split(':').pop())] : []))));
    return {
      ...f,
      sent: sent.sent ?? 0,
      delivered,
      echoed: sent.echoed ?? 0,
      edgePackets: this.topology.edgeTunnelPackets().rx - edgeBefore,
      tunnelPackets: tunnelPackets() - tunnelBefore,
      underlay: summariseUnderlay(frames, ports, [from.address, to.address], PAYLOAD_MARKER),
    };
  }

  async status(): Promise<Record<string, StatusReport>> {
    const out: Record<string, StatusReport> = {};
    for (const e of this.enforcers) out[e.name] = await new AgentClient(e.socket).call<StatusReport>('GET', '/v1/status');
    return out;
  }

  /**
   * Stop every agent the way a service manager does (SIGTERM: the engine, tunnels and routes keep
   * enforcing), then take each enforcer apart with `doorstep detach`, and say what each left behind.
   */
  async stopAgents(): Promise<Record<string, string[]>> {
    await Promise.all(
      this.enforcers.map(async (e) => {
        const exited = new Promise<void>((resolve) => {
          if (e.child.exitCode !== null) resolve();
          else e.child.once('exit', () => resolve());
        });
        e.child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      }),
    );
    for (const e of this.topology.enforcers) {
      const out = execIn(e.ns, process.execPath, [mainJs(), 'detach', '--state-dir', this.enforcerStateDir(e.name), '-o', 'json'], 60_000);
      this.detached[e.name] = JSON.parse(out) as DetachOutcome;
    }
    const leftovers: Record<string, string[]> = {};
    for (const e of this.topology.enforcers) leftovers[e.name] = this.topology.forwardingLeftovers(e);
    return leftovers;
  }

  destroy(): void {
    this.topology.destroy();
    for (const p of this.pins) rmSync(p, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** The whole demo: start, every flow, status, stop, teardown (also on Ctrl-C). */
export async function runPlacementDemo(options: PlacementDemoOptions = {}): Promise<PlacementDemoResult> {
  const demo = new PlacementDemo(options);
  // `on`, not `once`: a second signal (a terminal's Ctrl-C twice, a wrapper forwarding it) must
  // not fall through to the default exit halfway through the teardown
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    demo.destroy();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await demo.start();
    await options.onReady?.(demo.topology, demo.enforcers, demo);
    const flows: PlacementFlowResult[] = [];
    for (const f of options.flows ?? DEMO_PLACEMENT_FLOWS) {
      options.onFlow?.(f);
      const r = await demo.flow(f);
      options.onFlowDone?.(r);
      flows.push(r);
    }
    const status = await demo.status();
    const leftovers = await demo.stopAgents();
    return { flows, status, records: demo.records, leftovers, detached: demo.detached };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    demo.destroy();
  }
}
