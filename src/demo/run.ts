// SPDX-License-Identifier: Apache-2.0
// The demo, also the end-to-end test's fixture: two namespaces joined by a veth pair, the agent
// (`doorstep agent`, a child process) enforcing on the server side, real TCP and UDP flows from
// the client, and what arrived, what the engine dropped, and the audit records it wrote.
// Everything it creates is removed on return, on error and on Ctrl-C.
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AgentClient } from '../controller/agent-client.js';
import type { StatusReport } from '../controller/routes.js';
import { packageRoot } from '../paths.js';
import { runToken, spawnIn, Topology } from './topology.js';

export interface Flow {
  name: string;
  proto: 'tcp' | 'udp';
  /** 4 or 6 */
  family: 4 | 6;
  port: number;
  count: number;
  size: number;
}

export interface FlowResult extends Flow {
  sentBytes: number;
  connected: boolean;
  deliveredBytes: number;
}

export interface DemoResult {
  flows: FlowResult[];
  records: Record<string, unknown>[];
  /** The agent's status just before it stopped. */
  finalStats: StatusReport | undefined;
  attachMode: string | undefined;
}

export const DEMO_FLOWS: Flow[] = [
  { name: 'web over TCP (allowed)', proto: 'tcp', family: 4, port: 8080, count: 20, size: 1000 },
  { name: 'web over TCP/IPv6 (allowed)', proto: 'tcp', family: 6, port: 8080, count: 10, size: 1000 },
  { name: 'admin over TCP (denied)', proto: 'tcp', family: 4, port: 9090, count: 20, size: 1000 },
  { name: 'telemetry over UDP (allowed)', proto: 'udp', family: 4, port: 5353, count: 50, size: 200 },
  { name: 'syslog over UDP (denied)', proto: 'udp', family: 4, port: 6363, count: 50, size: 200 },
];

const mainJs = () => join(packageRoot, 'dist/src/cli/main.js');
const peerJs = () => join(packageRoot, 'dist/src/demo/peer.js');

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
}

/** Resolves with the first stdout line that matches; rejects on exit or after `ms`. */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, ms: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what}: process exited (${code}) ${stderr.trim()}`));
    });
    lines(child, (line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

/** Everything the child wrote to stdout, once it exits (killed after `ms`). */
export function exitOutput(child: ChildProcess, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(out);
    }, ms);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

export interface DemoOptions {
  policy?: string;
  flows?: Flow[];
  onRecord?: (record: Record<string, unknown>) => void;
  xdpMode?: 'auto' | 'native' | 'generic';
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const flows = options.flows ?? DEMO_FLOWS;
  const topo = new Topology('dsd').create();
  const pinRoot = `/sys/fs/bpf/doorstep-demo-${runToken()}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'doorstep-demo-'));
  const socket = join(stateDir, 'agent.sock');
  const onSignal = () => {
    topo.destroy();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  const records: Record<string, unknown>[] = [];
  let finalStats: StatusReport | undefined;
  let attachMode: string | undefined;
  try {
    const enforcer = topo.own(
      spawnIn(topo.server.ns, process.execPath, [
        mainJs(), 'agent', '--interface', topo.server.ifname,
        '--policy', options.policy ?? join(packageRoot, 'examples/demo.yaml'),
        '--pin-root', pinRoot, '--xdp-mode', options.xdpMode ?? 'auto', '--enforcer-id', 'demo',
        '--state-dir', stateDir, '--socket', socket,
        // the demo leaves nothing behind (an agent in service keeps the engine enforcing when it stops)
        '--detach-on-exit',
      ]),
    );
    lines(enforcer, (line) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.type === 'agent' && record.event === 'attached') attachMode = String(record.mode);
      records.push(record);
      options.onRecord?.(record);
    });
    await waitForLine(enforcer, (l) => l.includes('"type":"policy"') && l.includes('"status":"installed"'), 20_000, 'the agent to install the policy');

    // servers: one per distinct (proto, port), on both families
    const servers = new Map<string, ChildProcess>();
    for (const f of flows) {
      const key = `${f.proto}:${f.port}`;
      if (servers.has(key)) continue;
      const server = topo.own(spawnIn(topo.server.ns, process.execPath, [peerJs(), 'serve', f.proto, '::', String(f.port), '30']));
      await waitForLine(server, (l) => l === 'ready', 10_000, `the ${key} server`);
      servers.set(key, server);
    }

    const results: FlowResult[] = [];
    for (const f of flows) {
      const host = f.family === 4 ? topo.server.v4 : topo.server.v6;
      const client = topo.own(
        spawnIn(topo.client.ns, process.execPath, [peerJs(), 'send', f.proto, host, String(f.port), String(f.count), String(f.size), '1500']),
      );
      const out = JSON.parse((await exitOutput(client, 10_000)).trim().split('\n').pop() || '{}') as { sent?: number; connected?: boolean };
      results.push({ ...f, sentBytes: out.sent ?? 0, connected: out.connected ?? false, deliveredBytes: 0 });
    }

    // stop the servers and collect what each port received
    const delivered = new Map<string, number>();
    await Promise.all(
      [...servers].map(async ([key, server]) => {
        const done = exitOutput(server, 5_000);
        server.kill('SIGTERM');
        const totals = JSON.parse((await done).trim().split('\n').pop() || '{}') as { bytes?: number };
        delivered.set(key, totals.bytes ?? 0);
      }),
    );
    // per port, bytes are shared by the flows to it (one family after the other): attribute by order
    for (const r of results) {
      const key = `${r.proto}:${r.port}`;
      const left = delivered.get(key) ?? 0;
      r.deliveredBytes = Math.min(left, r.sentBytes);
      delivered.set(key, left - r.deliveredBytes);
    }

    finalStats = await new AgentClient(socket).call<StatusReport>('GET', '/v1/status');
    const stopped = exitOutput(enforcer, 10_000);
    enforcer.kill('SIGTERM');
    await stopped;
    return { flows: results, records, finalStats, attachMode };
  } finally {
    process.removeListener('SIGINT', onSignal);
    topo.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
