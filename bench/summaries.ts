// SPDX-License-Identifier: Apache-2.0
// `npm run bench:summaries`: what an idle agent costs with full session caches. A real `doorstep
// agent` (generic XDP on a veth in a namespace of its own, default 10 s summaries) whose pinned
// ds_sessions and ds_denies are filled to capacity (262,144 entries each) by batch map writes:
// sessions with a few packets each and no traffic from then on. Over several summary ticks with
// nobody asking, it prints the agent's CPU (% of a core), its RSS (min–max) and, where the agent
// reports it, its longest event-loop stall; then the same while `status` is polled 4 times a
// second, with how long the local API took to answer (the event loop's stalls show there
// whatever the agent's version). BENCH_AGENT_MAIN runs another
// build's agent (dist/src/cli/main.js of that tree) against the same fill, for before/after
// figures; BENCH_SECONDS sets the measured time (default 45); BENCH_NODE_ARGS adds node flags
// to the agent's command line (e.g. --cpu-prof).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MapName } from '../src/abi/generated.js';
import { encodeSessionKey, SESSION_KEY_SIZE } from '../src/abi/records.js';
import { offsetOf } from '../src/abi/codec.js';
import { ip, NamespaceOwner, runToken, spawnIn } from '../src/demo/topology.js';
import { PinnedMap } from './lib/packet-flood.js';
import { processCpuNs as cpuNs, rssBytes } from './lib/proc-stats.js';
import { addon } from '../src/engine/native.js';
import { frame } from '../src/engine/frame.js';

const MAIN = process.env.BENCH_AGENT_MAIN ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 45);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

class Bench extends NamespaceOwner {
  readonly token = runToken();
  readonly ns = `h6sum-${this.token}`;
  readonly ifname = `h6s${this.token}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'h6-summaries-'));
  readonly pinRoot = `/sys/fs/bpf/h6-summaries-${this.token}`;
  readonly socket = join(this.dir, 'agent.sock');

  create(): this {
    ip('netns', 'add', this.ns);
    this.namespaces.push(this.ns);
    ip('-n', this.ns, 'link', 'add', this.ifname, 'type', 'veth', 'peer', 'name', `${this.ifname}p`);
    ip('-n', this.ns, 'link', 'set', this.ifname, 'up');
    ip('-n', this.ns, 'link', 'set', `${this.ifname}p`, 'up');
    execFileSync('mkdir', ['-p', join(this.dir, 'policy')]);
    writeFileSync(
      join(this.dir, 'policy', 'p.json'),
      JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'idle' }, spec: { defaultAction: 'deny', rules: [{ name: 'web', action: 'allow', protocol: 'tcp', ports: [443] }] } }),
    );
    return this;
  }

  ifindex(): number {
    return (JSON.parse(ip('-n', this.ns, '-j', 'link', 'show', 'dev', this.ifname)) as { ifindex: number }[])[0]!.ifindex;
  }

  cleanup(): void {
    this.destroy();
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.pinRoot, { recursive: true, force: true });
  }
}

function status(socket: string): Promise<{ ms: number; body: { sessions: number; agent?: { maxStallMs: number; maxStallSinceLastReadMs: number; summaryScans?: number } } }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/v1/status' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        try {
          resolve({ ms: performance.now() - t0, body: JSON.parse(text) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}


/** Fill a pinned session cache to capacity: idle sessions of 5 packets, first seen a minute ago
 *  (before the agent started), keyed on ifindex 1 (lo: where a test run from this namespace arrives). */
function fill(path: string, ifindex: number, base: number, action: number): number {
  const map = PinnedMap.open(path);
  try {
    const n = map.maxEntries();
    const keys = Buffer.alloc(n * map.keySize);
    const values = Buffer.alloc(n * map.valueSize);
    const now = process.hrtime.bigint();
    // ds_denies holds the flow beside its value, in every way of its array (any way will do: these
    // sessions are only read, never met by a packet)
    const denies = map.keySize !== SESSION_KEY_SIZE;
    const [flowAt, valueAt] = denies ? [offsetOf('ds_deny_entry', 'key'), offsetOf('ds_deny_entry', 'value')] : [0, 0];
    for (let i = 0; i < n; i++) {
      const h = base + i;
      const src = new Uint8Array(16);
      src.set([0xff, 0xff, 10, (h >> 16) & 255, (h >> 8) & 255, h & 255], 10);
      const flow = encodeSessionKey({ family: 4, src, dst: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]), ifindex, vlanOuter: 0, vlanInner: 0, proto: 6, sport: 40000, dport: action ? 443 : 22 });
      if (denies) {
        keys.writeUInt32LE(i, i * map.keySize);
        flow.copy(values, i * map.valueSize + flowAt);
      } else {
        flow.copy(keys, i * map.keySize);
      }
      // the fields every layout shares: first_seen, last_seen, packets, bytes, rule, generation, action, reason, flags
      const v = values.subarray(i * map.valueSize + valueAt);
      v.writeBigUInt64LE(now - 60_000_000_000n, 0);
      v.writeBigUInt64LE(now - 30_000_000_000n, 8);
      v.writeBigUInt64LE(5n, 16);
      v.writeBigUInt64LE(500n, 24);
      v.writeUInt32LE(1, 36);
      v[40] = action;
      v[41] = 1;
      v[42] = 1;
    }
    map.updateBatch(keys, values, n);
    return n;
  } finally {
    map.close();
  }
}

async function main(): Promise<void> {
  const b = new Bench().create();
  const onSignal = () => {
    b.cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  try {
    const child = b.own(
      spawnIn(b.ns, process.execPath, [
        ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), MAIN, 'agent', '--interface', b.ifname, '--xdp-mode', 'generic', '--policy', join(b.dir, 'policy'), '--pin-root', b.pinRoot,
        '--state-dir', join(b.dir, 'state'), '--socket', b.socket, '--enforcer-id', 'bench', '--audit', join(b.dir, 'audit.jsonl'),
      ]),
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    for (let i = 0; ; i++) {
      try {
        const s = await status(b.socket);
        if ((s.body as { policy?: unknown }).policy) break; // up, and its policy installed
        await sleep(100);
      } catch {
        if (child.exitCode !== null || i > 300) throw new Error(`the agent did not come up: ${stderr}`);
        await sleep(100);
      }
    }
    const pid = child.pid!;
    const filled = process.env.BENCH_FILL === '0' ? 0 : fill(join(b.pinRoot, 'maps', MapName.SESSIONS), 1, 0, 1) + fill(join(b.pinRoot, 'maps', MapName.DENIES), 1, 1 << 20, 0);
    console.log(`doorstep idle-agent benchmark — ${MAIN}\n${fmt(filled)} idle sessions written (ds_sessions and ds_denies full), default 10 s summaries, measured for ${SECONDS} s\n`);

    // phase 1: idle, nobody asking (the summary ticks alone); phase 2: `status` polled 4 times a second
    const phase = async (seconds: number, poll: boolean) => {
      const cpu0 = cpuNs(pid);
      const t0 = performance.now();
      let rssMin = Infinity;
      let rssMax = 0;
      let stallMax: number | undefined;
      const statusMs: number[] = [];
      if (!poll) await status(b.socket); // restarts the agent's stall window
      while (performance.now() - t0 < seconds * 1000) {
        const rss = rssBytes(pid);
        rssMin = Math.min(rssMin, rss);
        rssMax = Math.max(rssMax, rss);
        if (poll) {
          const s = await status(b.socket);
          statusMs.push(s.ms);
          if (s.body.agent) stallMax = Math.max(stallMax ?? 0, s.body.agent.maxStallSinceLastReadMs);
        }
        await sleep(250);
      }
      const wallS = (performance.now() - t0) / 1000;
      const cpuS = (cpuNs(pid) - cpu0) / 1e9;
      if (!poll) {
        const s = await status(b.socket);
        if (s.body.agent) stallMax = s.body.agent.maxStallSinceLastReadMs;
      }
      statusMs.sort((x, y) => x - y);
      return { wallS, cpuS, rssMin, rssMax, stallMax, statusMs };
    };
    const idle = await phase(SECONDS, false);
    const polled = await phase(Math.min(SECONDS, 20), true);
    // phase 3: every allowed session has traffic, twice, a summary interval apart (the first time
    // marks sessions older than the agent, which count from their next epoch on); then one summary
    // interval is measured: the tick that summarizes them all (249,036)
    const active = { summaries: 0, cpuS: 0, wallS: 0, stall: undefined as number | undefined, rssMax: 0, scans: undefined as number | undefined };
    if (process.env.BENCH_FILL !== '0') {
      const native = addon();
      const linkFd = native.objGet(join(b.pinRoot, 'links', b.ifname));
      const progFd = native.progFdById(native.linkInfo(linkFd).progId);
      native.closeFd(linkFd);
      const sessions = PinnedMap.open(join(b.pinRoot, 'maps', MapName.SESSIONS));
      // 95 % of the cache: these flows are new keys (test runs arrive on another ifindex than the
      // written sessions), and an LRU hash fed from two CPUs evicts before it is full (each CPU
      // keeps free nodes of its own), which at 100 % turns two passes over a cycle of keys into
      // two passes of misses
      const n = Math.floor(sessions.maxEntries() * 0.95);
      sessions.close();
      const one = frame({ src: '10.0.0.0', dst: '10.1.2.3', proto: 6, sport: 40000, dport: 443 });
      const frames = Buffer.alloc(one.length * n);
      for (let h = 0; h < n; h++) frame({ src: `10.${(h >> 16) & 255}.${(h >> 8) & 255}.${h & 255}`, dst: '10.1.2.3', proto: 6, sport: 40000, dport: 443 }).copy(frames, h * one.length);
      // the file rotates at 100 MiB: count over the rotated ones too
      const auditLines = () =>
        readdirSync(b.dir)
          .filter((f) => /^audit\.jsonl(\.\d+)?$/.test(f))
          .reduce((n, f) => n + readFileSync(join(b.dir, f), 'utf8').split('\n').filter((l) => l.includes('"type":"summary"')).length, 0);
      native.testRunEach(progFd, frames, one.length, n);
      await sleep(10_500);
      native.testRunEach(progFd, frames, one.length, n);
      native.closeFd(progFd);
      const before = auditLines();
      const scans0 = (await status(b.socket)).body.agent?.summaryScans;
      const cpu0 = cpuNs(pid);
      const t0 = performance.now();
      while (performance.now() - t0 < 10_500) {
        active.rssMax = Math.max(active.rssMax, rssBytes(pid));
        await sleep(250);
      }
      active.wallS = (performance.now() - t0) / 1000;
      active.cpuS = (cpuNs(pid) - cpu0) / 1e9;
      const s = await status(b.socket);
      active.stall = s.body.agent?.maxStallSinceLastReadMs;
      if (scans0 !== undefined) active.scans = s.body.agent!.summaryScans! - scans0;
      await sleep(2000); // the last slices' records reach the file
      active.summaries = auditLines() - before;
    }
    const counted = (await status(b.socket)).body.sessions;
    const stall = (x: number | undefined) => (x === undefined ? 'not reported by this agent' : `${fmt(x, 1)} ms`);
    const rows = [
      ['sessions the agent counts', fmt(counted), ''],
      ['idle: agent CPU', `${fmt(idle.cpuS, 2)} s in ${fmt(idle.wallS, 1)} s = ${fmt((idle.cpuS / idle.wallS) * 100, 1)} % of a core`, 'target ≤ 25 %'],
      ['idle: agent RSS', `${fmt(idle.rssMin / 2 ** 20)}–${fmt(idle.rssMax / 2 ** 20)} MiB (swing ${fmt((idle.rssMax - idle.rssMin) / 2 ** 20)} MiB)`, 'flat'],
      ['idle: longest event-loop stall', stall(idle.stallMax), 'target ≤ 50 ms'],
      ['status polled 4/s: agent CPU', `${fmt(polled.cpuS, 2)} s in ${fmt(polled.wallS, 1)} s = ${fmt((polled.cpuS / polled.wallS) * 100, 1)} % of a core`, ''],
      ['status polled 4/s: RSS', `${fmt(polled.rssMin / 2 ** 20)}–${fmt(polled.rssMax / 2 ** 20)} MiB`, ''],
      ['status answered in', `median ${fmt(polled.statusMs[polled.statusMs.length >> 1]!, 1)} ms, max ${fmt(polled.statusMs.at(-1)!, 1)} ms (${polled.statusMs.length} calls)`, ''],
      ['status polled: longest stall', stall(polled.stallMax), 'target ≤ 50 ms'],
      ['all active: summaries in a tick', `${fmt(active.summaries)}${active.scans ? ` (from a walk of the caches: the ring overflowed)` : active.scans === 0 ? ' (from the ring)' : ''}`, ''],
      ['all active: agent CPU', `${fmt(active.cpuS, 2)} s in ${fmt(active.wallS, 1)} s (one tick)`, ''],
      ['all active: RSS max', `${fmt(active.rssMax / 2 ** 20)} MiB`, ''],
      ['all active: longest stall', stall(active.stall), 'target ≤ 50 ms'],
    ];
    for (const [k, v, t] of rows) console.log(`  ${k!.padEnd(32)} ${v!.padEnd(58)} ${t}`);
    if (process.env.BENCH_NODE_ARGS) console.log(`\nthe agent's output:\n${stdout.slice(-20_000)}\n${stderr.slice(-20_000)}`);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  } finally {
    b.cleanup();
  }
}

await main();
