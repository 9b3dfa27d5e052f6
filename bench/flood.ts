// SPDX-License-Identifier: Apache-2.0
// `npm run bench:flood` (issue 12, point 5): doorstep under floods, beside xdp-filter, an nftables
// set and iptables raw, on the same veth topology (bench/flood-rig.ts) and the same frames, in one
// run with ratios paired per round. Frames come from the native AF_PACKET sender (packetFlood:
// sendmmsg, qdisc bypass) pinned to CPU 1; each receiving veth runs threaded NAPI pinned to CPU 0,
// and receive CPU per frame is that NAPI thread's own CPU time (/proc/PID/schedstat) over the
// frames the veth received. For doorstep, a real `doorstep agent` enforces: its audit bytes (JSON
// lines file), its CPU (/proc/PID/stat), its longest event-loop stall (`doorstep status`) and the
// allowed sessions a flood evicted are printed too.
// Beside the live figures: BPF_PROG_TEST_RUN ns per packet of doorstep's and xdp-filter's programs
// on the same frames. Prints figures and ratios; asserts nothing.
// FLOOD_FRAMES (frames per flood) and FLOOD_ROUNDS override the defaults for quick runs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { availableParallelism, setPriority } from 'node:os';
import { join } from 'node:path';
import { MapName } from '../src/abi/generated.js';
import { encodeSessionKey } from '../src/abi/records.js';
import { DEFAULT_DENY_EVENT_BUDGET, DEFAULT_DENY_EVENT_CAP } from '../src/controller/config.js';
import { NativeEngine } from '../src/engine/engine.js';
import { addon } from '../src/engine/native.js';
import { runEach, runRepeat } from './lib/floor.js';
import { frame, type FrameSpec } from '../src/engine/frame.js';
import { ForeignProgram, packetFlood, PinnedMap } from './lib/packet-flood.js';
import { processCpuNs, rssBytes, USER_HZ } from './lib/proc-stats.js';
import { compileSources } from '../src/policy/compile.js';
import { buildImage } from '../src/policy/tables/image.js';
import { AgentHarness, type AgentProcess } from '../test/lib/agent-rig.js';
import { sessionKeyOf } from '../test/lib/datapath.js';
import { prng, Random } from '../test/lib/random-policy.js';
import {
  ALLOWED_PORT, CLIENT_V4, DENIED_PORT, ENFORCERS, type EnforcerName, feedSources, FloodTopology, type Host, IptablesPeer, NAPI_CPU, NftPeer,
  type Peer, SENDER_CPU, SENDER_NICE, SERVER_V4, withIpv4Checksum, XdpDropPeer, XdpFilterPeer,
} from './flood-rig.js';

const FRAMES = Number(process.env.FLOOD_FRAMES ?? 400_000);
const ROUNDS = Number(process.env.FLOOD_ROUNDS ?? 5); // a median of 5 paired ratios: rounds spread by ±10–30 %
const MAX_SECONDS = 5; // every flood is bounded in time as well as in count
const ALLOWED_SESSIONS = 300;
const SPOOF_BITS = 22; // 4,194,304 spoofed sources: 10.64.0.0/10
const SPOOF_NET = '10.64.0.0';
const TEST_RUNS = 9; // BPF_PROG_TEST_RUN figures are the median of this many alternating runs
const PROGRAM_ROUNDS = Number(process.env.FLOOD_PROGRAM_ROUNDS ?? 5); // rounds of the XDP programs' live run time
const XDP_PROGRAMS: EnforcerName[] = ['doorstep', 'xdp-filter', 'XDP_DROP floor'];

interface Flood {
  name: string;
  specs: FrameSpec[];
  spoofBits: number;
  rules10k: boolean;
}

const udp = (src: string, sport: number, dport = DENIED_PORT): FrameSpec => ({ src, dst: SERVER_V4, proto: 17, sport, dport, payload: 18 });
const FLOODS: Flood[] = [
  { name: 'one cached flow', specs: [udp(CLIENT_V4, 40_000)], spoofBits: 0, rules10k: false },
  { name: '64 flows', specs: Array.from({ length: 64 }, (_, i) => udp(CLIENT_V4, 40_000 + i)), spoofBits: 0, rules10k: false },
  { name: `spoofed (${fmt(2 ** SPOOF_BITS / 1e6, 1)} M pool)`, specs: [udp(SPOOF_NET, 40_000)], spoofBits: SPOOF_BITS, rules10k: false },
  { name: '10,000 rules + spoofed', specs: [udp(SPOOF_NET, 40_000)], spoofBits: SPOOF_BITS, rules10k: true },
];
const ALLOWED_SPECS = Array.from({ length: ALLOWED_SESSIONS }, (_, i) => udp(CLIENT_V4, 20_000 + i, ALLOWED_PORT));

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';
}
const pad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Frames as the sender writes them: the builder's frame with the pair's MAC addresses. */
function wire(specs: FrameSpec[], sender: Host, receiver: Host): Buffer {
  const mac = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
  return Buffer.concat(
    specs.map((s) => {
      const f = frame(s);
      mac(receiver.mac).copy(f, 0);
      mac(sender.mac).copy(f, 6);
      return withIpv4Checksum(f);
    }),
  );
}

// ---- doorstep: the real agent ----

function policyText(rules10k: boolean): string {
  const feed = rules10k ? feedSources(10_000).map((a, i) => ({ name: `feed-${i}`, action: 'deny', from: [`${a}/32`], protocol: 'udp', ports: [DENIED_PORT] })) : [];
  const rules = [
    { name: 'allow-app', action: 'allow', from: ['any'], protocol: 'udp', ports: [ALLOWED_PORT] },
    ...feed,
    { name: 'deny-flood', action: 'deny', from: ['any'], protocol: 'udp', ports: [DENIED_PORT] },
  ];
  return JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'flood' }, spec: { defaultAction: 'deny', rules } });
}

/** What bench:flood reads from `doorstep status -o json`. */
interface StatusWithAgent {
  policy: { version: string | null } | null;
  agent?: { maxStallMs: number; maxStallSinceLastReadMs: number };
  counters?: Record<string, number>;
}

class DoorstepPeer implements Peer {
  readonly name = 'doorstep';
  readonly rulesNote = 'a policy of 10,000 rules (deny 172.16.x.y/32 → UDP 9999, no match) between the allow rule and the deny';
  readonly harness: AgentHarness<FloodTopology>;
  readonly auditFile: string;
  private agent: AgentProcess | undefined;
  private version: string | null = null;
  private rules10k: boolean | undefined;

  constructor(private readonly topo: FloodTopology) {
    this.harness = new AgentHarness(topo);
    this.auditFile = join(this.harness.dir, 'audit.jsonl');
  }

  get pid(): number {
    return this.agent!.child.pid!;
  }

  async start(): Promise<void> {
    this.harness.writePolicy('flood.json', policyText(false));
    this.rules10k = false;
    this.agent = this.harness.startAgent(['--audit', this.auditFile, '--audit-max-bytes', '64G']);
    await this.installed('starting');
    execFileSync('taskset', ['-a', '-p', String(1 << SENDER_CPU), String(this.pid)], { stdio: 'ignore' });
  }

  /** The longest event-loop stall any status reading saw since resetStall() (ms), and what the window before that reading held. */
  runMaxStallMs = 0;
  runMaxStallWindow = '';

  /** Read the agent's status: its longest event-loop stall since the previous status (ms), kept in runMaxStallMs; `window` says what happened since that status. */
  stallSinceLastRead(window: string): number {
    return this.noteStall(this.status(), window);
  }

  /** Session events the datapath could not queue so far (EVENTS_LOST: the ring buffer was full), and the longest stall since the previous status (ms). */
  reading(window: string): { eventsLost: number; stallMs: number } {
    const s = this.status();
    return { eventsLost: s.counters?.EVENTS_LOST ?? 0, stallMs: this.noteStall(s, window) };
  }

  /** The agent's resident memory at every status reading since resetRss() (bytes). */
  rss: number[] = [];

  resetRss(): void {
    this.rss = [];
  }

  private status(): StatusWithAgent {
    this.rss.push(rssBytes(this.pid));
    const r = this.harness.cli(['status', '-o', 'json']);
    if (r.code !== 0) throw new Error(`doorstep status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusWithAgent;
  }

  private noteStall(s: StatusWithAgent, window: string): number {
    const ms = s.agent?.maxStallSinceLastReadMs ?? 0;
    if (ms > this.runMaxStallMs) {
      this.runMaxStallMs = ms;
      this.runMaxStallWindow = window;
    }
    return ms;
  }

  /** Wait until the agent enforces a policy version other than the last one seen. */
  private async installed(window: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = this.harness.cli(['status', '-o', 'json']);
      if (r.code === 0) {
        const status = JSON.parse(r.stdout) as StatusWithAgent;
        this.noteStall(status, window);
        const v = status.policy?.version ?? null;
        if (v && v !== this.version) {
          this.version = v;
          return;
        }
      }
      if (this.agent!.child.exitCode !== null) throw new Error(`the agent exited: ${this.agent!.stderr}`);
      await sleep(100);
    }
    throw new Error(`the agent did not install the policy within 60 s: ${this.agent!.stderr}`);
  }

  async configure(rules10k: boolean): Promise<void> {
    if (rules10k === this.rules10k) return;
    this.harness.writePolicy('flood.json', policyText(rules10k));
    this.rules10k = rules10k;
    await this.installed(`installing the ${rules10k ? '10,000-rule' : '2-rule'} policy`);
  }

  dropped(): number {
    return this.topo.xdpDrops(this.topo.pair('doorstep').receiver);
  }

  /** CPU time of the agent (all its threads) so far, in ns. */
  cpuNs(): number {
    return processCpuNs(this.pid);
  }

  auditBytes(): number {
    return readdirSync(this.harness.dir)
      .filter((f) => f.startsWith('audit.jsonl'))
      .reduce((n, f) => n + statSync(join(this.harness.dir, f)).size, 0);
  }

  /** Wait until the audit file stops growing (the agent drained its ring buffer), at most `ms`. */
  async drained(ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    let last = -1;
    while (Date.now() < deadline) {
      const now = this.auditBytes();
      if (now === last) return;
      last = now;
      await sleep(400);
    }
  }

  /** Bytes written to the audit file and truncated away so far (the whole run's total, with auditBytes()). */
  auditTruncated = 0;

  /** Start the file afresh (the agent appends; a flood's records need not pile up on disk). */
  truncateAudit(): void {
    this.auditTruncated += this.auditBytes();
    truncateSync(this.auditFile);
  }

  /** How many of the allowed sessions' keys are in ds_sessions now. */
  allowedPresent(ifindex: number): number {
    const map = PinnedMap.open(join(this.harness.pinRoot, 'maps', MapName.SESSIONS));
    try {
      return ALLOWED_SPECS.filter((s) => map.has(encodeSessionKey(sessionKeyOf(s, ifindex)))).length;
    } finally {
      map.close();
    }
  }

  stop(): void {
    // the agent is stopped (and everything removed) by stopAgent() and harness.cleanup()
  }

  async stopAgent(): Promise<void> {
    await this.agent?.terminate();
  }
}

// ---- measuring ----

function schedNs(pids: number[]): number {
  return pids.reduce((n, pid) => n + Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]), 0);
}

/** Busy time of one CPU from /proc/stat (user, nice, system, irq, softirq, steal), in ns. */
function cpuBusyNs(cpu: number): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `))!;
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number) as number[];
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1e9) / USER_HZ;
}

/** NET_RX softirqs raised so far, per CPU: threaded NAPI wakes its thread instead of raising them. */
function netRxSoftirqs(): number[] {
  const line = readFileSync('/proc/softirqs', 'utf8').split('\n').find((l) => l.trim().startsWith('NET_RX:'))!;
  return line.trim().split(/\s+/).slice(1).map(Number);
}

/** The CPU a task last ran on (/proc/PID/stat field 39). */
function lastCpu(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[36]);
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

interface Sample {
  sent: number;
  seen: number;
  dropped: number;
  wallNs: number;
  senderNs: number;
  napiNs: number;
  napiCpus: number[];
  netRx: number[];
  cpu0Ns: number;
  auditBytesPerS?: number;
  agentCpu?: number;
  /** The agent's CPU seconds from the flood's start until its audit file stopped growing. */
  agentCpuS?: number;
  /** The agent's longest event-loop stall from the flood's start until its audit file stopped growing (ms). */
  agentStallMs?: number;
  evicted?: number;
  /** Session events lost over the flood (the datapath's EVENTS_LOST). */
  eventsLost?: number;
}

async function settle(count: () => number): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = count();
    if (now === last) return;
    last = now;
    await sleep(30);
  }
}

async function sample(topo: FloodTopology, peer: Peer, doorstep: DoorstepPeer, flood: Flood): Promise<Sample> {
  const { sender, receiver } = topo.pair(peer.name);
  const napi = topo.napiThreads(receiver);
  const netns = `/run/netns/${sender.ns}`;
  const ifindex = (JSON.parse(execFileSync('ip', ['-n', receiver.ns, '-j', 'link', 'show', 'dev', receiver.ifname], { encoding: 'utf8' })) as { ifindex: number }[])[0]!.ifindex;
  const isDoorstep = peer === doorstep;
  if (isDoorstep) {
    // the allowed sessions: their first packets, until every one is in the session cache
    const allowed = wire(ALLOWED_SPECS, sender, receiver);
    for (let i = 0; i < 20 && doorstep.allowedPresent(ifindex) < ALLOWED_SESSIONS; i++) {
      await packetFlood({ netns, ifname: sender.ifname, frames: allowed, frameSize: allowed.length / ALLOWED_SESSIONS, count: ALLOWED_SESSIONS, cpu: SENDER_CPU, nice: SENDER_NICE });
      await settle(() => topo.received(receiver));
    }
    await doorstep.drained(2_000);
    doorstep.truncateAudit();
  }
  const frames = wire(flood.specs, sender, receiver);
  // this reading ends the window between doorstep's floods; the next one, after the flood, reads the flood's
  const lost = isDoorstep ? doorstep.reading('between its floods: the other enforcers\' floods, installs').eventsLost : 0;
  const before = { seen: topo.received(receiver), dropped: peer.dropped(), napi: schedNs(napi), cpu0: cpuBusyNs(NAPI_CPU), agent: isDoorstep ? doorstep.cpuNs() : 0, netRx: netRxSoftirqs() };
  const r = await packetFlood({
    netns, ifname: sender.ifname, frames, frameSize: frames.length / flood.specs.length, count: FRAMES, maxSeconds: MAX_SECONDS, cpu: SENDER_CPU, nice: SENDER_NICE, spoofBits: flood.spoofBits,
  });
  const agentAfter = isDoorstep ? doorstep.cpuNs() : 0;
  await settle(() => topo.received(receiver));
  const s: Sample = {
    sent: r.sent,
    seen: topo.received(receiver) - before.seen,
    dropped: peer.dropped() - before.dropped,
    wallNs: r.wallNs,
    senderNs: r.userNs + r.systemNs,
    napiNs: schedNs(napi) - before.napi,
    napiCpus: napi.map(lastCpu),
    netRx: netRxSoftirqs().map((n, cpu) => n - (before.netRx[cpu] ?? 0)),
    cpu0Ns: cpuBusyNs(NAPI_CPU) - before.cpu0,
  };
  if (isDoorstep) {
    await doorstep.drained();
    s.auditBytesPerS = doorstep.auditBytes() / (r.wallNs / 1e9);
    s.agentCpu = (agentAfter - before.agent) / r.wallNs;
    s.agentCpuS = (doorstep.cpuNs() - before.agent) / 1e9;
    s.evicted = ALLOWED_SESSIONS - doorstep.allowedPresent(ifindex);
    // one reading: the stall since the one before the flood is the flood's (a second reading would see only the time between the two)
    const after = doorstep.reading(`its own flood: ${flood.name}`);
    s.eventsLost = after.eventsLost - lost;
    s.agentStallMs = after.stallMs;
    doorstep.truncateAudit();
  }
  return s;
}

/**
 * The order of one round's floods: doorstep and xdp-filter back to back (their ratio is the one the
 * targets are about, so the two share the machine's state of the moment), which of them first
 * alternating by round; that pair and the other lanes rotate by round.
 */
function roundOrder(round: number, doorstep: Peer, xdpFilter: Peer, others: Peer[]): Peer[] {
  const units: Peer[][] = [round % 2 === 0 ? [doorstep, xdpFilter] : [xdpFilter, doorstep], ...others.map((p) => [p])];
  const k = round % units.length;
  return [...units.slice(k), ...units.slice(0, k)].flat();
}

// ---- the XDP programs' own run time, live ----

/** Per flood and XDP program: the program's ns per run, one figure per round. */
type ProgramCosts = Map<EnforcerName, number[]>[];

/**
 * The XDP programs alone, on the live path: with the kernel's run-time statistics on
 * (BPF_ENABLE_STATS), each program's run time over its runs during a flood of its own. The receive
 * CPU per frame holds veth's copy of every frame and the NAPI thread's wake-ups, which change with
 * how fast a program lets the ring drain; this is the program's part of it. The statistics cost
 * each run two clock reads (the XDP_DROP floor's figure is about that), so they are on only here,
 * after the live rounds, not while the receive CPU is measured.
 */
async function programCosts(topo: FloodTopology, peers: Peer[]): Promise<ProgramCosts> {
  const costs: ProgramCosts = FLOODS.map(() => new Map(peers.map((p) => [p.name, []])));
  const native = addon();
  const statsFd = native.enableRunTimeStats();
  try {
    for (let round = 0; round < PROGRAM_ROUNDS; round++) {
      for (const [f, flood] of FLOODS.entries()) {
        for (const p of peers) await p.configure(flood.rules10k);
        for (let k = 0; k < peers.length; k++) {
          const peer = peers[(k + round) % peers.length]!;
          const { sender, receiver } = topo.pair(peer.name);
          topo.napiThreads(receiver);
          const fd = native.progFdById(topo.xdpProgId(receiver)!);
          try {
            const before = native.progInfo(fd);
            const frames = wire(flood.specs, sender, receiver);
            await packetFlood({
              netns: `/run/netns/${sender.ns}`, ifname: sender.ifname, frames, frameSize: frames.length / flood.specs.length, count: FRAMES, maxSeconds: MAX_SECONDS, cpu: SENDER_CPU, nice: SENDER_NICE, spoofBits: flood.spoofBits,
            });
            await settle(() => topo.received(receiver));
            const after = native.progInfo(fd);
            costs[f]!.get(peer.name)!.push((after.runTimeNs - before.runTimeNs) / (after.runCount - before.runCount));
          } finally {
            native.closeFd(fd);
          }
        }
      }
    }
  } finally {
    native.closeFd(statsFd);
  }
  return costs;
}

// ---- BPF_PROG_TEST_RUN beside it ----

interface TestRunRow {
  flood: string;
  doorstep: number;
  xdpFilter: number;
}

function spoofedBatch(r: Random, count: number): { buf: Buffer; size: number } {
  const frames = Array.from({ length: count }, () => frame(udp(`10.${64 + r.int(0, 63)}.${r.int(0, 255)}.${r.int(0, 255)}`, r.int(1024, 65000))));
  return { buf: Buffer.concat(frames), size: frames[0]!.length };
}

function testRuns(xdpFilter: XdpFilterPeer, xdpFilterProg: ForeignProgram, runs: number): TestRunRow[] {
  const rows: TestRunRow[] = [];
  const r = new Random(prng(0xf100d));
  const engines = [false, true].map((rules10k) => {
    const compiled = compileSources([{ file: 'flood.json', text: policyText(rules10k) }]);
    const engine = NativeEngine.open({ pinRoot: null, sessionEntries: 1 << 18, ruleStatsCapacity: 65_536 });
    engine.onEvents(() => undefined); // drain the ring buffer as an agent would
    engine.setDenyEventBudget(DEFAULT_DENY_EVENT_BUDGET); // the agent's admission budget and cap
    engine.setDenyEventCap(DEFAULT_DENY_EVENT_CAP);
    engine.install(buildImage(compiled.ir, compiled.tables));
    return engine;
  });
  try {
    const [small, large] = engines as [NativeEngine, NativeEngine];
    // paired: doorstep and xdp-filter alternate run by run; the medians are printed
    const paired = (d: () => number, x: () => number) => {
      const pairs = Array.from({ length: runs }, () => [d(), x()] as const);
      return { doorstep: median(pairs.map((p) => p[0])), xdpFilter: median(pairs.map((p) => p[1])) };
    };
    const one = frame(FLOODS[0]!.specs[0]!);
    runEach(small.programFd, one, one.length, 1); // the flow's session now exists
    rows.push({ flood: FLOODS[0]!.name, ...paired(() => runRepeat(small.programFd, one, 200_000).nsPerRun, () => xdpFilterProg.runRepeat(one, 200_000).nsPerRun) });
    const flows = Buffer.concat(Array.from({ length: 100 }, () => Buffer.concat(FLOODS[1]!.specs.map((s) => frame(s)))));
    runEach(small.programFd, flows, one.length, 64);
    rows.push({ flood: FLOODS[1]!.name, ...paired(() => runEach(small.programFd, flows, one.length, 6_400).nsPerRun, () => xdpFilterProg.runEach(flows, one.length, 6_400).nsPerRun) });
    for (const [flood, engine] of [[FLOODS[2]!, small], [FLOODS[3]!, large]] as const) {
      xdpFilter.configure(flood.rules10k);
      // every doorstep run gets frames it has never seen (new sessions); xdp-filter the same frames
      const batches = Array.from({ length: runs }, () => spoofedBatch(r, 20_000));
      let i = 0;
      let j = 0;
      rows.push({
        flood: flood.name,
        ...paired(
          () => runEach(engine.programFd, batches[i]!.buf, batches[i++]!.size, 20_000).nsPerRun,
          () => xdpFilterProg.runEach(batches[j]!.buf, batches[j++]!.size, 20_000).nsPerRun,
        ),
      });
    }
    xdpFilter.configure(false);
  } finally {
    for (const e of engines) e.close();
  }
  return rows;
}

// ---- the run ----

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows].map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : pad(c, widths[i]!))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  if (availableParallelism() < 2) {
    console.log('bench:flood needs two CPUs: the sender on one, the receiving NAPI threads on the other');
    return;
  }
  // the bench's own threads (and the agent, below) share CPU 1 with the sender; CPU 0 is the NAPI threads'
  execFileSync('taskset', ['-a', '-p', String(1 << SENDER_CPU), String(process.pid)], { stdio: 'ignore' });
  const topo = new FloodTopology().create();
  const doorstep = new DoorstepPeer(topo);
  const peers: Peer[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const p of peers) {
      try {
        p.stop();
      } catch (err) {
        console.error(`cleanup: ${p.name}: ${(err as Error).message}`);
      }
    }
    await doorstep.stopAgent().catch(() => undefined);
    doorstep.harness.cleanup();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const loadBefore = loadavg();
    console.log(`doorstep flood benchmark — ${ROUNDS} rounds × ${FLOODS.length} floods × ${ENFORCERS.length} lanes (4 enforcers and an XDP_DROP floor), then ${PROGRAM_ROUNDS} rounds of the XDP programs' run time, ≤ ${fmt(FRAMES)} frames and ≤ ${MAX_SECONDS} s per flood (64-byte UDP frames to port ${DENIED_PORT}, denied by every enforcer)\n`);
    await doorstep.start();
    // the bench's own work shares SENDER_CPU with the agent, and yields to it as the sender does: its
    // status readings (a Node process each, polled every 100 ms while a policy installs), nft,
    // iptables-restore and xdp-filter run at this nice value too (children inherit it), so a stall
    // the bench prints is the agent's own, not the time slices of the bench's tools
    setPriority(SENDER_NICE);
    const xdpFilter = new XdpFilterPeer(topo, topo.pair('xdp-filter').receiver);
    const others = [new XdpDropPeer(topo, topo.pair('XDP_DROP floor').receiver), new NftPeer(topo.pair('nft set').receiver), new IptablesPeer(topo.pair('iptables raw').receiver)];
    peers.push(doorstep, xdpFilter, ...others);
    for (const p of peers) if (p !== doorstep) await p.configure(false);
    const napiCheck = topo.pairs.map((p) => `${p.name}: ${topo.napiThreads(p.receiver).length}`).join(', ');

    // samples[flood][enforcer][round]
    const samples = FLOODS.map(() => new Map<EnforcerName, Sample[]>(ENFORCERS.map((e) => [e, []])));
    const t0 = performance.now();
    const whole = { agentNs: doorstep.cpuNs(), audit: doorstep.auditTruncated + doorstep.auditBytes() };
    doorstep.stallSinceLastRead('before the live phase');
    doorstep.runMaxStallMs = 0; // from here on, every status reading of the live phase counts
    doorstep.resetRss();
    const roundRss: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [f, flood] of FLOODS.entries()) {
        for (const p of peers) await p.configure(flood.rules10k);
        for (const peer of roundOrder(round, doorstep, xdpFilter, others)) {
          samples[f]!.get(peer.name)!.push(await sample(topo, peer, doorstep, flood));
        }
      }
      roundRss.push(rssBytes(doorstep.pid)); // the same point of every round: after its 10,000-rule flood
      process.stderr.write(`round ${round + 1}/${ROUNDS} done (${fmt((performance.now() - t0) / 1000, 1)} s)\n`);
    }
    const wholeS = (performance.now() - t0) / 1000;
    const wholeAgentS = (doorstep.cpuNs() - whole.agentNs) / 1e9;
    doorstep.stallSinceLastRead('after the last flood');
    const wholeStallMs = doorstep.runMaxStallMs;
    const wholeAudit = doorstep.auditTruncated + doorstep.auditBytes() - whole.audit;
    const rss = doorstep.rss;
    const mb = (b: number) => fmt(b / 2 ** 20, 1);
    const programs = await programCosts(topo, peers.filter((p) => XDP_PROGRAMS.includes(p.name)));
    for (const p of peers) await p.configure(false);

    const rows: string[][] = [];
    for (const [f, flood] of FLOODS.entries()) {
      const ref = samples[f]!.get('xdp-filter')!;
      for (const name of ENFORCERS) {
        const ss = samples[f]!.get(name)!;
        const perFrame = ss.map((s) => s.napiNs / s.seen);
        const ratios = ss.map((s, i) => s.napiNs / s.seen / (ref[i]!.napiNs / ref[i]!.seen));
        const d = name === 'doorstep';
        rows.push([
          name === ENFORCERS[0] ? flood.name : '',
          name,
          fmt(median(perFrame)),
          fmt(median(ratios), 2),
          `${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)}`,
          fmt(median(ss.map((s) => s.cpu0Ns / s.seen))),
          fmt(median(ss.map((s) => s.sent))),
          fmt(median(ss.map((s) => s.seen))),
          fmt(median(ss.map((s) => s.dropped))),
          fmt(median(ss.map((s) => s.seen / (s.wallNs / 1e9) / 1000))),
          d ? fmt(median(ss.map((s) => s.auditBytesPerS! / 1e6)), 1) : '',
          d ? fmt(median(ss.map((s) => s.agentCpu! * 100))) : '',
          d ? fmt(median(ss.map((s) => s.agentCpuS!)), 2) : '',
          d ? fmt(Math.max(...ss.map((s) => s.agentStallMs!)), 1) : '',
          d ? `${fmt(median(ss.map((s) => s.evicted!)))}/${ALLOWED_SESSIONS}` : '',
        ]);
      }
    }
    console.log('live floods (medians over rounds; ratio = ns/frame ÷ xdp-filter\'s ns/frame in the same round and flood)\n');
    console.log(
      table(
        ['flood', 'enforcer', 'rx ns/frame', '÷ xdp-filter', 'range', 'CPU0 ns/frame', 'sent', 'seen', 'dropped', 'kframes/s', 'audit MB/s', 'agent %CPU (≤ 25)', 'agent CPU s', 'max stall ms (≤ 50)', 'evicted'],
        rows,
      ),
    );

    const own = (f: number, name: EnforcerName) => {
      const c = programs[f]!;
      return c.get(name)!.map((ns, i) => ns - c.get('XDP_DROP floor')![i]!);
    };
    const progRatio = (f: number) => median(own(f, 'doorstep').map((d, i) => d / own(f, 'xdp-filter')[i]!));
    console.log(`\nthe XDP programs alone, live (${PROGRAM_ROUNDS} more rounds of the same floods with the kernel's run-time statistics on: ns per run, medians; "own" is less the XDP_DROP floor's, i.e. less the statistics' two clock reads; ratios paired per round)\n`);
    console.log(
      table(
        ['flood', 'doorstep ns', 'xdp-filter ns', 'XDP_DROP floor ns', 'doorstep ÷ xdp-filter', 'own: doorstep', 'own: xdp-filter', 'own ratio'],
        FLOODS.map((flood, f) => {
          const c = programs[f]!;
          const m = (name: EnforcerName) => fmt(median(c.get(name)!), 1);
          return [
            flood.name, m('doorstep'), m('xdp-filter'), m('XDP_DROP floor'),
            fmt(median(c.get('doorstep')!.map((d, i) => d / c.get('xdp-filter')![i]!)), 2),
            fmt(median(own(f, 'doorstep')), 1), fmt(median(own(f, 'xdp-filter')), 1), fmt(progRatio(f), 2),
          ];
        }),
      ),
    );

    const floodedS = samples.reduce((n, m) => n + m.get('doorstep')!.reduce((t, x) => t + x.wallNs / 1e9, 0), 0);
    console.log(
      `\ndoorstep's agent over the whole live phase (${fmt(wholeS, 1)} s, of which doorstep was flooded ${fmt(floodedS, 1)} s; periodic summary and flood records included): ` +
        `CPU ${fmt(wholeAgentS, 2)} s (${fmt((wholeAgentS / wholeS) * 100)} % of a core; target ≤ 25 %), longest event-loop stall ${fmt(wholeStallMs, 1)} ms (target ≤ 50 ms; in the window: ${doorstep.runMaxStallWindow}), ` +
        `audit ${fmt(wholeAudit / 1e6, 2)} MB (${fmt(wholeAudit / 1e6 / floodedS, 2)} MB per second flooded)`,
    );
    const all = samples.flatMap((m) => [...m.values()].flat());
    const cpus = [...new Set(all.flatMap((s) => s.napiCpus))].sort();
    const netRx = all.reduce((acc, s) => acc.map((n, cpu) => n + (s.netRx[cpu] ?? 0)), netRxSoftirqs().map(() => 0));
    const frames = all.reduce((n, s) => n + s.seen, 0);
    console.log(
      `\nwhere the receive work ran (measured): the NAPI threads last ran on CPU ${cpus.join(', ')}; NET_RX softirqs raised during all floods: ${netRx.map((n, cpu) => `CPU${cpu} ${fmt(n)}`).join(', ')}, for ${fmt(frames)} frames received (threaded NAPI wakes its thread instead, so few means the work was the threads')`,
    );
    console.log(`load average before / after: ${loadBefore} / ${loadavg()} (2 CPUs; anything else running shares them)`);

    const at = (f: number, name: EnforcerName) => samples[f]!.get(name)!;
    const ratioOf = (f: number, name: EnforcerName) => median(at(f, name).map((s, i) => s.napiNs / s.seen / (at(f, 'xdp-filter')[i]!.napiNs / at(f, 'xdp-filter')[i]!.seen)));
    const ratio = (f: number) => ratioOf(f, 'doorstep');
    const worst = (pick: (s: Sample) => number) => Math.max(...FLOODS.map((_, f) => median(at(f, 'doorstep').map(pick))));
    console.log('\ntargets (issue 12)');
    console.log(`  cached deny, rx CPU ÷ xdp-filter         ${fmt(ratio(0), 2)}×   (64 flows ${fmt(ratio(1), 2)}×; the XDP_DROP floor ${fmt(ratioOf(0, 'XDP_DROP floor'), 2)}× / ${fmt(ratioOf(1, 'XDP_DROP floor'), 2)}×)   target ≤ 1.00×`);
    console.log(`  spoofed deny, rx CPU ÷ xdp-filter        ${fmt(ratio(2), 2)}×   (10,000 rules ${fmt(ratio(3), 2)}×; the XDP_DROP floor ${fmt(ratioOf(2, 'XDP_DROP floor'), 2)}×)   target ≤ 1.10×`);
    console.log(`  the program alone, live, own ns ÷ xdp-filter's: cached ${fmt(progRatio(0), 2)}×, 64 flows ${fmt(progRatio(1), 2)}×, spoofed ${fmt(progRatio(2), 2)}×, 10,000 rules ${fmt(progRatio(3), 2)}×`);
    console.log(`  audit output, worst flood                ${fmt(worst((s) => s.auditBytesPerS! / 1e6), 1)} MB/s   target ≤ 1 MB/s`);
    console.log(`  agent CPU, worst flood                   ${fmt(worst((s) => s.agentCpu! * 100))} % of a core   target ≤ 25 %`);
    console.log(`  agent memory (RSS)                       ${roundRss.map(mb).join(', ')} MB at the end of each round; ${mb(Math.min(...rss))}–${mb(Math.max(...rss))} MB over the live phase's ${fmt(rss.length)} readings   target: flat`);
    console.log(`  agent event-loop stall, worst flood      ${fmt(Math.max(...samples.flatMap((m) => m.get('doorstep')!.map((s) => s.agentStallMs!))), 1)} ms (whole run ${fmt(wholeStallMs, 1)} ms)   target ≤ 50 ms`);
    console.log(`  allowed sessions evicted, worst flood    ${fmt(worst((s) => s.evicted!))} of ${ALLOWED_SESSIONS}   target 0`);
    console.log(`  session events lost, worst flood         ${fmt(worst((s) => s.eventsLost!))}   target 0`);

    const xdpFilterProg = ForeignProgram.byId(topo.xdpProgId(topo.pair('xdp-filter').receiver)!);
    const xdpFilterName = xdpFilterProg.name;
    let trRows: TestRunRow[];
    try {
      trRows = testRuns(xdpFilter, xdpFilterProg, TEST_RUNS);
    } finally {
      xdpFilterProg.close();
    }
    console.log(`\nBPF_PROG_TEST_RUN, kernel-timed ns per packet on the same frames (median of ${TEST_RUNS} alternating runs): doorstep's ds_xdp_ingress in an unpinned engine of this process with the same policies; xdp-filter's ${xdpFilterName} as \`xdp-filter load\` attached it (found by id, its live maps)\n`);
    console.log(
      table(
        ['flood', 'doorstep ns', 'xdp-filter ns', 'ratio'],
        trRows.map((t) => [t.flood, fmt(t.doorstep, 1), fmt(t.xdpFilter, 1), fmt(t.doorstep / t.xdpFilter, 2)]),
      ),
    );

    console.log(`
how it is measured
  sender     packetFlood (native/src/flood.cc): one AF_PACKET socket, PACKET_QDISC_BYPASS, sendmmsg of 64, on a
             thread pinned to CPU ${SENDER_CPU} at nice ${SENDER_NICE} (the agent shares that CPU: the sender yields to it, so
             a stall is the agent's own, not a busy process's time slice; the bench itself, its status readings and its tools run at
             nice ${SENDER_NICE} as well, after the agent started) inside the client namespace; spoofed floods rewrite the IPv4 source
             (random in ${SPOOF_NET}/${32 - SPOOF_BITS}) and the source port per frame, and fix the IPv4 header checksum. TSO is off on every sending veth.
  rx ns/frame  each receiving veth runs threaded NAPI (its kernel thread pinned to CPU ${NAPI_CPU}; threads found: ${napiCheck});
             the NAPI thread's own CPU time (/proc/PID/schedstat, ns) over the flood ÷ frames the veth received
             ("seen", its rx packets). For the XDP enforcers that is veth's copy of the frame into a fresh page
             plus the program; for nft/iptables, the skb path up to the raw PREROUTING hook.
             It is not the program's cost alone: the thread also pays its wake-ups, and a program that
             drains the ring faster lets the thread sleep and be woken more often, so the XDP_DROP floor
             (bpf/floor.bpf.c's ds_xdp_drop: every frame dropped at once) shows the least an XDP program
             can measure here. doorstep and xdp-filter run back to back in every round (which first
             alternates); that pair and the other lanes rotate by round.
             CPU0 ns/frame is the cross-check: all busy time of CPU ${NAPI_CPU} (/proc/stat, 10 ms ticks) ÷ frames seen;
             it also holds whatever else ran on CPU ${NAPI_CPU} (other processes of the machine, ring-buffer wake-ups).
  programs   the XDP programs alone: after the live rounds, ${PROGRAM_ROUNDS} rounds of the same floods to doorstep, xdp-filter
             and the floor with the kernel's run-time statistics on (BPF_ENABLE_STATS): each program's
             run_time_ns ÷ run_cnt over its flood (bpf_prog_info). The statistics add two clock reads to every
             run, which is about what the floor shows; "own" subtracts the floor's figure of the same round.
  sent/seen/dropped  frames the sender wrote · frames the receiving veth took in · frames the enforcer dropped
             (XDP: the veth's rx_queue_0_xdp_drops; nft: its rule counters; iptables: its rule counters)
  audit MB/s bytes the agent wrote to its JSON-lines file (--audit FILE) from the flood's start until the file stopped
             growing, ÷ the flood's duration (doorstep only; the others write nothing)
  agent %CPU the agent's utime+stime (/proc/PID/stat, all threads) during the flood, % of one core (it shares CPU ${SENDER_CPU}
             with the sender); agent CPU s: the same from the flood's start until the audit file stopped growing
  agent RSS  the agent's VmRSS (/proc/PID/status) at every status reading of the live phase (before and after each
             of its floods, and while it installs the policies)
  max stall  the agent's longest event-loop stall (perf_hooks.monitorEventLoopDelay, as \`doorstep status\` reports it
             since its previous reading) from the flood's start until the audit file stopped growing; worst round
  evicted    ${ALLOWED_SESSIONS} allowed UDP sessions (to port ${ALLOWED_PORT}) are set up by their first packets before each flood;
             how many of them are missing from the agent's pinned ds_sessions after it
  10,000 rules, per enforcer:
${peers.map((p) => `    ${p.name.padEnd(13)} ${p.rulesNote}`).join('\n')}
`);
  } finally {
    await cleanup();
  }
}

await main();
