// SPDX-License-Identifier: Apache-2.0
// `npm run bench:tunnel` (issue 13, point 7): TCP throughput and CPU through the tunnel to the
// edge with the enforcer on, VXLAN against WireGuard (wireguard-go here; the kernel's where the
// kernel has it). The network of the placement demo with two enforcers (datacenter and workload,
// from examples/placement/, the VXLAN runs with `edge.tunnel: vxlan`), an enforcing agent each:
// iperf3 from a data-center host to a host of the remote VPC, so every byte crosses two enforcers
// (source XDP, then the tunnel, the edge, the tunnel and the fabric XDP). Reported per tunnel:
// iperf3's received Mbit/s, the CPU seconds the host spent during the run (all CPUs, from
// /proc/stat: the kernel's softirq work included, and anything else running on the machine),
// and those of the wireguard-go processes. TUNNEL_SECONDS (default 10) and TUNNEL_ROUNDS
// (default 3) override the length. Needs root, iperf3, wireguard-go.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleConfigs, PlacementDemo } from '../src/demo/placements.js';
import { waitForLine } from '../src/demo/run.js';
import { spawnIn } from '../src/demo/topology.js';
import { processesInNetns } from '../src/placement/netns-processes.js';

const SECONDS = Number(process.env.TUNNEL_SECONDS ?? 10);
const ROUNDS = Number(process.env.TUNNEL_ROUNDS ?? 3);
const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: bench }
spec:
  defaultAction: deny
  rules:
    - { name: iperf, action: allow, from: [10.50.0.0/24], to: [10.9.0.0/24], protocol: tcp, ports: [5201] }
`;

const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds all CPUs spent busy so far (everything but idle and iowait). */
function busySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) / ticks;
}

/** CPU seconds (user + system) of processes. */
function processSeconds(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      sum += (Number(f[11]) + Number(f[12])) / ticks;
    } catch {
      // gone
    }
  }
  return sum;
}

interface Round {
  mbps: number;
  busy: number;
  wireguardGo: number;
}

async function measure(kind: 'vxlan' | 'wireguard', dir: string): Promise<Round[]> {
  const configs = exampleConfigs(dir, ['datacenter', 'workload'], kind, `${kind}-`);
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const demo = new PlacementDemo({ enforcers: configs, policy });
  try {
    await demo.start();
    const server = demo.topology.host('vpc-r');
    const client = demo.topology.host('dc-fra');
    const iperf = demo.topology.own(spawnIn(server.ns, 'iperf3', ['-s', '-B', server.address, '-1', '--forceflush']));
    const rounds: Round[] = [];
    const wgPids = () => [demo.topology.edgeNs, ...demo.topology.enforcers.map((e) => e.ns)].flatMap((ns) => processesInNetns(`/run/netns/${ns}`, (a) => a[0]!.endsWith('wireguard-go')));
    for (let r = 0; r < ROUNDS; r++) {
      const srv = r === 0 ? iperf : demo.topology.own(spawnIn(server.ns, 'iperf3', ['-s', '-B', server.address, '-1', '--forceflush']));
      await waitForLine(srv, (l) => l.includes('Server listening'), 10_000, 'iperf3 -s');
      const busy0 = busySeconds();
      const wg0 = processSeconds(wgPids());
      const out = execFileSync('nsenter', [`--net=/run/netns/${client.ns}`, 'iperf3', '-c', server.address, '-t', String(SECONDS), '-J'], { encoding: 'utf8', timeout: (SECONDS + 20) * 1000 });
      const busy = busySeconds() - busy0;
      const wireguardGo = processSeconds(wgPids()) - wg0;
      const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
      rounds.push({ mbps: j.end.sum_received.bits_per_second / 1e6, busy, wireguardGo });
    }
    return rounds;
  } finally {
    await demo.stopAgents().catch(() => undefined);
    demo.destroy();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'doorstep-bench-tunnel-'));
try {
  const cores = readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
  console.log(`bench:tunnel: iperf3 TCP, ${SECONDS} s × ${ROUNDS} rounds, dc-fra host → datacenter enforcer → edge → workload enforcer → vpc-r host; ${cores} CPUs`);
  console.log('tunnel      Mbit/s (each round)            host CPU s per run   wireguard-go CPU s   host CPU s per GB');
  for (const kind of ['vxlan', 'wireguard'] as const) {
    const rounds = await measure(kind, dir);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const gb = rounds.map((r) => (r.mbps * SECONDS) / 8000);
    console.log(
      `${kind.padEnd(11)} ${med(rounds.map((r) => r.mbps)).toFixed(0).padStart(6)} (${rounds.map((r) => r.mbps.toFixed(0)).join(', ')})`.padEnd(43) +
        `${med(rounds.map((r) => r.busy)).toFixed(1).padStart(6)}               ${med(rounds.map((r) => r.wireguardGo)).toFixed(1).padStart(6)}               ${med(rounds.map((r, i) => r.busy / gb[i]!)).toFixed(1).padStart(6)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
