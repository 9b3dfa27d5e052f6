// SPDX-License-Identifier: Apache-2.0
// `npm run bench:audit`: the audit pipeline's throughput and the policy install time.
//
// 1. JS cost per event, in one process pinned to CPU 0: synthetic ring-buffer batches (the native
//    reader's format) through the naive path (decodeEvent + sessionRecord + JSON.stringify) and
//    through the real one (decodeEventBatch + AuditPipeline + JsonLinesSink to a file).
// 2. Ring buffer → JSON-lines file, end to end: a consumer process pinned to CPU 0 (the agent's
//    path: NativeEngine.onEvents → AuditPipeline → JsonLinesSink, to a temporary file rotated at
//    100 MiB, 5 kept) and a generator process pinned to CPU 1 (bpf/bench_events.bpf.c through
//    BPF_PROG_TEST_RUN, writing into the consumer engine's own ring buffer and counters). After a
//    warm-up, it offers 500,000 and 1,000,000 events/s, then as many as it can, 5 s each
//    (BENCH_SECONDS). Every phase checks that events read + events reported lost = events
//    generated, that the lost records add up to the kernel's lost counter, and that every record
//    was written.
// 3. Policy install time (compile + map image + NativeEngine.install) for 1,000 and 100,000 rules.
// Prints a table of figures against targets. Cleans up its pins and files, also on failure.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { JsonLineChild } from './json-line-child.js';
import { fileURLToPath } from 'node:url';
import { writeStruct } from '../src/abi/codec.js';
import { decodeEvent, EVENT_SIZE } from '../src/abi/records.js';
import { decodeEventBatch } from '../src/abi/records-fast.js';
import { JsonLinesSink } from '../src/audit/json-lines-sink.js';
import { AuditPipeline } from '../src/audit/pipeline.js';
import { type EnrichContext, monotonicToWall, sessionRecord } from '../src/audit/session-record.js';
import { NativeEngine } from '../src/engine/engine.js';
import { EventGenerator } from './lib/event-generator.js';
import { compileSources } from '../src/policy/compile.js';
import { buildImage } from '../src/policy/tables/image.js';
import { prng, Random } from '../test/lib/random-policy.js';
import { ruleNamesOf } from '../src/audit/rule-names.js';

const SCRIPT = fileURLToPath(import.meta.url);
const PHASE_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PHASES: { name: string; rate: number; warmup?: boolean }[] = [
  // fills the rotated file set once, so that page-cache pages are recycled as in an agent that
  // has run for a while (the first write to a never-touched page costs ~4× here; docs/audit.md)
  { name: 'warm-up', rate: 0, warmup: true },
  { name: '500k/s offered', rate: 500_000 },
  { name: '1M/s offered', rate: 1_000_000 },
  { name: 'as fast as possible', rate: 0 },
];
const INSTALL_RULES = [1_000, 100_000];
const CONSUMER_CPU = 0;
const GENERATOR_CPU = 1;
/** The audit file's rotation, as in examples/agent.yaml (auditMaxBytes 100M, auditKeep 5). It also
 *  keeps the page cache's working set bounded, which matters in a VM where the first write to a
 *  never-touched guest page costs ~4× a write to a recycled one (docs/audit.md). */
const ROTATE_BYTES = 100 * 1024 * 1024;
const ROTATE_KEEP = 5;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

// ---- policies ----

const dotted = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** A realistic rule set: distinct sources (feeds of /32 and /24), distinct destinations (/28 in
 *  10/8), tcp and udp services with single ports, lists and ranges; mostly allows. */
export function makeRules(count: number, seed = 0xa0d17): string {
  const r = new Random(prng(seed));
  const used = new Set<number>();
  const source = (): string => {
    for (;;) {
      const addr = r.int(0x01000000, 0xdfffffff) >>> 0;
      if (addr >>> 24 === 10 || addr >>> 24 === 127) continue;
      const len = r.chance(0.7) ? 32 : 24;
      const net = len === 32 ? addr : (addr & 0xffffff00) >>> 0;
      if (used.has(net)) continue;
      used.add(net);
      return `${dotted(net)}/${len}`;
    }
  };
  const common = [443, 80, 22, 53, 5432, 6379, 8443, 9092];
  const rules = [];
  for (let i = 0; i < count; i++) {
    const udp = r.chance(0.2);
    const p = r.next();
    const ports = p < 0.5 ? [r.pick(common)] : p < 0.8 ? [r.pick(common), r.int(1024, 65535)] : [`${(i % 60) * 1000 + 1024}-${(i % 60) * 1000 + 1123}`];
    rules.push({
      name: `rule-${i}`,
      action: r.chance(0.9) ? 'allow' : 'deny',
      from: Array.from({ length: r.chance(0.2) ? 2 : 1 }, source),
      to: [`${dotted((0x0a000000 | ((i & 0xfffff) << 4)) >>> 0)}/28`],
      protocol: udp ? 'udp' : 'tcp',
      ports,
    });
  }
  return JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'bench' }, spec: { defaultAction: 'deny', rules } });
}

// ---- 1. JS cost per event (synthetic batches) ----

const PER_BATCH = 2_800; // what the native reader delivers: 256 KiB of [u32 length][ds_event]

function syntheticBatches(batches: number, rules: number, generation: number): Buffer[] {
  const stride = 4 + EVENT_SIZE;
  const t0 = process.hrtime.bigint();
  return Array.from({ length: batches }, (_, b) => {
    const buf = Buffer.alloc(PER_BATCH * stride);
    for (let i = 0; i < PER_BATCH; i++) {
      const n = b * PER_BATCH + i;
      const h = Math.imul(n + 1, 0x9e3779b1) >>> 0;
      const src = new Uint8Array(16);
      src.set([0xff, 0xff, 198, 18 | ((h >>> 16) & 1), (h >>> 8) & 255, h & 255], 10);
      const dst = new Uint8Array(16);
      dst.set([0xff, 0xff, 10, 20, (h >>> 20) & 15, 1 + ((h >>> 24) & 7)], 10);
      buf.writeUInt32LE(EVENT_SIZE, i * stride);
      writeStruct('ds_event', buf, i * stride + 4, {
        time_ns: t0 + BigInt(n * 1000),
        seq: n + 1,
        src,
        dst,
        ifindex: 1,
        rule: 1 + (h % rules),
        generation,
        cpu: 1,
        len: 60 + (h & 1023),
        sport: 1024 + (n % 60000),
        dport: [443, 80, 53, 22][h >>> 30] ?? 443,
        proto: h >>> 30 === 2 ? 17 : 6,
        family: 4,
        action: (h >>> 27) & 1,
        reason: 1,
        kind: 1,
      });
    }
    return buf;
  });
}

interface JsCost {
  naiveUs: number;
  fastUserUs: number;
  fastSysUs: number;
  fastWallUs: number;
}

async function jsCost(): Promise<JsCost> {
  const { ir } = compileSources([{ file: 'bench.json', text: makeRules(1_000) }]);
  const context: EnrichContext = { enforcer: 'bench', interfaces: new Map([[1, 'eth0']]), policies: new Map([[1, ruleNamesOf(ir)]]) };
  const batches = syntheticBatches(16, ir.rules.length, 1);
  const file = join(tmpdir(), `doorstep-bench-js-${randomBytes(4).toString('hex')}.jsonl`);
  try {
    // before: the general codec, the reference enrichment, JSON.stringify, one write per batch
    const toWall = monotonicToWall();
    const naiveRounds = 12;
    const fd = openSync(file, 'w');
    const c0 = process.cpuUsage();
    for (let round = 0; round < naiveRounds; round++) {
      const batch = batches[round % batches.length] as Buffer;
      const lines: string[] = [];
      let at = 0;
      for (let i = 0; i < PER_BATCH; i++) {
        const len = batch.readUInt32LE(at);
        lines.push(JSON.stringify(sessionRecord(decodeEvent(batch, at + 4), context, toWall)));
        at += 4 + len;
      }
      writeSync(fd, `${lines.join('\n')}\n`);
    }
    const naive = process.cpuUsage(c0);
    closeSync(fd);
    rmSync(file, { force: true });

    // after: the agent's path
    const sink = new JsonLinesSink({ path: file, maxBytes: ROTATE_BYTES, keep: ROTATE_KEEP });
    const pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0 });
    const rounds = 400;
    for (let w = 0; w < 40; w++) pipeline.handleEvents(decodeEventBatch(batches[w % batches.length] as Buffer, PER_BATCH));
    await sink.flush();
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    for (let round = 0; round < rounds; round++) {
      pipeline.handleEvents(decodeEventBatch(batches[round % batches.length] as Buffer, PER_BATCH));
      if (round % 8 === 7) await sink.flush(); // as the ring buffer paces the reader
    }
    await sink.flush();
    const wall = performance.now() - t1;
    const fast = process.cpuUsage(c1);
    await pipeline.close();
    const n = rounds * PER_BATCH;
    return {
      naiveUs: (naive.user + naive.system) / (naiveRounds * PER_BATCH),
      fastUserUs: fast.user / n,
      fastSysUs: fast.system / n,
      fastWallUs: (wall * 1000) / n,
    };
  } finally {
    removeAuditFiles(file);
  }
}

function removeAuditFiles(file: string): void {
  for (let k = 0; k <= ROTATE_KEEP; k++) rmSync(k === 0 ? file : `${file}.${k}`, { force: true });
}

// ---- 2. consumer and generator processes ----

interface PhaseReport {
  eventsRead: number;
  ringLost: number;
  kernelLost: number;
  lostRecords: number;
  linesWritten: number;
  sinkDropped: number;
  cpuUs: number;
  busySeconds: number;
  drained: boolean;
}

function send(msg: object): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

async function consumer(pinRoot: string, file: string): Promise<void> {
  const engine = NativeEngine.open({ pinRoot });
  const { ir, tables } = compileSources([{ file: 'bench.json', text: makeRules(1_000) }]);
  const installed = engine.install(buildImage(ir, tables));
  const context: EnrichContext = { enforcer: 'bench', interfaces: new Map([[1, 'lo']]), policies: new Map([[installed.generation, ruleNamesOf(ir)]]) };
  const sink = new JsonLinesSink({ path: file, maxBytes: ROTATE_BYTES, keep: ROTATE_KEEP });
  const pipeline = new AuditPipeline({ context, sinks: [sink], summaryIntervalMs: 0, kernelStats: () => engine.stats() });
  let first = 0;
  let last = 0;
  engine.onEvents((events) => {
    const t = performance.now();
    if (first === 0) first = t;
    pipeline.handleEvents(events);
    last = t;
  });
  send({ ready: true, generation: installed.generation, rules: ir.rules.length });

  let base = { stats: pipeline.stats(), sink: sink.stats(), kernelLost: engine.stats().counters.EVENTS_LOST, cpu: process.cpuUsage() };
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const cmd = JSON.parse(line) as { cmd: string; generated?: number };
    if (cmd.cmd === 'start') {
      first = 0;
      base = { stats: pipeline.stats(), sink: sink.stats(), kernelLost: engine.stats().counters.EVENTS_LOST, cpu: process.cpuUsage() };
      send({ started: true });
    } else if (cmd.cmd === 'end') {
      // wait (bounded) until every generated event was read or reported lost
      const target = base.stats.eventsRead + base.stats.eventsLost + (cmd.generated ?? 0);
      const until = Date.now() + 30_000;
      let s = pipeline.stats();
      while (s.eventsRead + s.eventsLost < target && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        pipeline.checkKernelLost(engine.stats());
        s = pipeline.stats();
      }
      await sink.flush();
      const cpu = process.cpuUsage(base.cpu);
      const k = sink.stats();
      const report: PhaseReport = {
        eventsRead: s.eventsRead - base.stats.eventsRead,
        ringLost: s.eventsLost - base.stats.eventsLost,
        kernelLost: engine.stats().counters.EVENTS_LOST - base.kernelLost,
        lostRecords: s.lostRecords - base.stats.lostRecords,
        linesWritten: k.written - base.sink.written,
        sinkDropped: k.dropped - base.sink.dropped,
        cpuUs: cpu.user + cpu.system,
        busySeconds: first > 0 ? (last - first) / 1000 : 0,
        drained: s.eventsRead + s.eventsLost >= target,
      };
      send(report);
    } else if (cmd.cmd === 'close') {
      break;
    }
  }
  await pipeline.close();
  engine.close();
  // what is on disk: every line of the current file parses, and the counts add up
  const written = sink.stats().written;
  const onDisk = await checkLines(file);
  send({ closed: true, written, rotations: sink.stats().rotations, onDisk });
  process.stdin.destroy(); // nothing more to read: let the process end
}

/** Count the lines of a file and parse every 1,000th of them (all when small). */
async function checkLines(file: string): Promise<{ lines: number; parsed: number; bad: number }> {
  let lines = 0;
  let parsed = 0;
  let bad = 0;
  if (!existsSync(file)) return { lines, parsed, bad };
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    if (lines++ % 1000 !== 0) continue;
    parsed++;
    try {
      JSON.parse(line);
    } catch {
      bad++;
    }
  }
  return { lines, parsed, bad };
}

async function generator(pinRoot: string, rate: number, seconds: number): Promise<void> {
  const gen = EventGenerator.open(pinRoot);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let done = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  try {
    for (let now = start; now < end; now = performance.now()) {
      const due = rate > 0 ? Math.floor((rate * (now - start)) / 1000) : done + 16_384;
      const n = Math.min(due - done, 65_536);
      if (n <= 0) {
        Atomics.wait(sleeper, 0, 0, 0.2);
        continue;
      }
      gen.emit(n);
      done += n;
    }
  } finally {
    gen.close();
  }
  send({ generated: done, seconds: (performance.now() - start) / 1000 });
}

// ---- orchestration ----

class Child extends JsonLineChild {
  static spawn(cpu: number, args: string[]): Child {
    return new Child(spawn('taskset', ['-c', String(cpu), process.execPath, SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }), 'the benchmark child');
  }

  send(msg: object): void {
    this.sendLine(JSON.stringify(msg));
  }
}

interface Row {
  metric: string;
  figure: string;
  target: string;
  verdict: string;
}

function printTable(rows: Row[]): void {
  const header: Row = { metric: 'metric', figure: 'figure', target: 'target', verdict: 'ratio / pass' };
  const all = [header, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const line = (r: Row) => `${r.metric.padEnd(w('metric'))}  ${r.figure.padStart(w('figure'))}  ${r.target.padEnd(w('target'))}  ${r.verdict}`;
  console.log(line(header));
  console.log('-'.repeat(line(header).length));
  for (const r of rows) console.log(line(r));
}

async function installTimes(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const count of INSTALL_RULES) {
    const text = makeRules(count);
    const t0 = performance.now();
    const compiled = compileSources([{ file: `bench-${count}.json`, text }]);
    const t1 = performance.now();
    const image = buildImage(compiled.ir, compiled.tables);
    const t2 = performance.now();
    const engine = NativeEngine.open({ pinRoot: null, ruleStatsCapacity: Math.max(65_536, count + 1) });
    try {
      const t3 = performance.now();
      engine.install(image);
      const t4 = performance.now();
      const total = t1 - t0 + (t2 - t1) + (t4 - t3);
      const target = count <= 1_000 ? 1_000 : 5_000;
      console.log(`  install ${fmt(count)} rules: compile ${fmt(t1 - t0)} ms, image ${fmt(t2 - t1)} ms, NativeEngine.install ${fmt(t4 - t3)} ms`);
      rows.push({
        metric: `policy install, ${fmt(count)} rules (compile + image + install)`,
        figure: `${fmt(total / 1000, 2)} s`,
        target: `< ${fmt(target / 1000)} s`,
        verdict: `${fmt(total / target, 2)}× ${total < target ? 'pass' : 'FAIL'}`,
      });
    } finally {
      engine.close();
    }
  }
  return rows;
}

async function main(): Promise<void> {
  if (availableParallelism() < 2) throw new Error('bench:audit needs two CPUs: one for the consumer, one for the generator');
  const id = randomBytes(6).toString('hex');
  const pinRoot = `/sys/fs/bpf/doorstep-bench-${id}`;
  const file = join(tmpdir(), `doorstep-bench-audit-${id}.jsonl`);
  const children: Child[] = [];
  const cleanup = async () => {
    for (const c of children) await c.stop();
    rmSync(pinRoot, { recursive: true, force: true });
    removeAuditFiles(file);
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rows: Row[] = [];
  console.log(`doorstep audit benchmark — consumer on CPU ${CONSUMER_CPU}, generator on CPU ${GENERATOR_CPU}, ${PHASE_SECONDS} s per phase\n`);
  try {
    // 1. JS cost per event
    const js = Child.spawn(CONSUMER_CPU, ['--js-cost']);
    children.push(js);
    const cost = await js.reply<JsCost>();
    await js.exited;
    console.log(
      `JS per event (synthetic batches, one core): naive ${fmt(cost.naiveUs, 2)} µs; pipeline + sink ${fmt(cost.fastUserUs, 3)} µs user + ${fmt(cost.fastSysUs, 3)} µs system (write), ${fmt(cost.fastWallUs, 3)} µs wall`,
    );
    rows.push({ metric: 'JS per event before: decodeEvent + sessionRecord + JSON.stringify', figure: `${fmt(cost.naiveUs, 2)} µs`, target: '—', verdict: '' });
    rows.push({
      metric: 'JS per event now: decode + enrich + encode (user CPU)',
      figure: `${fmt(cost.fastUserUs, 3)} µs`,
      target: '< 1 µs',
      verdict: `${fmt(cost.fastUserUs, 2)}× ${cost.fastUserUs < 1 ? 'pass' : 'FAIL'}`,
    });

    // 2. ring buffer → file, end to end
    const consumerChild = Child.spawn(CONSUMER_CPU, ['--consumer', pinRoot, file]);
    children.push(consumerChild);
    const ready = await consumerChild.reply<{ ready: boolean; generation: number; rules: number }>();
    console.log(`consumer ready: policy generation ${ready.generation}, ${fmt(ready.rules)} rules; audit file ${file}`);
    let accountingExact = true;
    for (const phase of PHASES) {
      consumerChild.send({ cmd: 'start' });
      await consumerChild.reply();
      const gen = Child.spawn(GENERATOR_CPU, ['--generator', pinRoot, String(phase.rate), String(PHASE_SECONDS)]);
      children.push(gen);
      const g = await gen.reply<{ generated: number; seconds: number }>();
      await gen.exited;
      consumerChild.send({ cmd: 'end', generated: g.generated });
      const r = await consumerChild.reply<PhaseReport>();
      const rate = r.busySeconds > 0 ? r.eventsRead / r.busySeconds : 0;
      const offered = g.generated / g.seconds;
      const exact = r.drained && r.eventsRead + r.ringLost === g.generated && r.ringLost === r.kernelLost && r.linesWritten === r.eventsRead + r.lostRecords && r.sinkDropped === 0;
      accountingExact &&= exact;
      console.log(
        `  ${phase.name.padEnd(20)} offered ${fmt(offered)}/s: read ${fmt(r.eventsRead)} at ${fmt(rate)}/s, lost ${fmt(r.ringLost)} (kernel ${fmt(r.kernelLost)}, in ${fmt(r.lostRecords)} records), ` +
          `lines ${fmt(r.linesWritten)}, sink dropped ${fmt(r.sinkDropped)}, ${fmt(r.cpuUs / Math.max(1, r.eventsRead), 3)} µs CPU/event, accounting ${exact ? 'exact' : 'MISMATCH'}`,
      );
      if (phase.warmup) continue;
      if (phase.rate === 0) {
        rows.push({
          metric: 'ring buffer → JSON-lines file, events/s, one core (saturated)',
          figure: fmt(rate),
          target: '≥ 1,000,000',
          verdict: `${fmt(rate / 1_000_000, 2)}× ${rate >= 1_000_000 ? 'pass' : 'FAIL'}`,
        });
        rows.push({
          metric: 'consumer CPU per event (JS + reader thread + write syscalls)',
          figure: `${fmt(r.cpuUs / Math.max(1, r.eventsRead), 3)} µs`,
          target: '≤ 1 µs',
          verdict: r.cpuUs / Math.max(1, r.eventsRead) <= 1 ? 'pass' : 'FAIL',
        });
      } else {
        rows.push({
          metric: `events lost at ${fmt(phase.rate)}/s offered (${fmt(r.eventsRead)} read, ${fmt(r.cpuUs / Math.max(1, r.eventsRead), 2)} µs CPU each)`,
          figure: fmt(r.ringLost),
          target: '0',
          verdict: r.ringLost === 0 ? 'pass' : 'FAIL',
        });
      }
    }
    rows.push({ metric: 'read + lost = generated; lost records = kernel counter; lines = records', figure: accountingExact ? 'exact' : 'mismatch', target: 'exact', verdict: accountingExact ? 'pass' : 'FAIL' });
    consumerChild.send({ cmd: 'close' });
    consumerChild.end();
    const closed = await consumerChild.reply<{ written: number; rotations: number; onDisk: { lines: number; parsed: number; bad: number } }>();
    await consumerChild.exited;
    const size = existsSync(file) ? statSync(file).size : 0;
    console.log(`  audit file: ${fmt(closed.written)} lines written, ${closed.rotations} rotations; current file ${fmt(size / 2 ** 20)} MiB, ${fmt(closed.onDisk.lines)} lines, ${fmt(closed.onDisk.parsed)} parsed, ${closed.onDisk.bad} invalid`);

    // 3. install time
    console.log('');
    rows.push(...(await installTimes()));
  } finally {
    await cleanup();
  }
  console.log('');
  printTable(rows);
}

const [mode, ...args] = process.argv.slice(2);
if (process.argv[1] !== SCRIPT) {
  // imported (makeRules): run nothing
} else if (mode === '--js-cost') send(await jsCost());
else if (mode === '--consumer') await consumer(args[0] as string, args[1] as string);
else if (mode === '--generator') await generator(args[0] as string, Number(args[1]), Number(args[2]));
else if (mode === '--install') printTable(await installTimes());
else await main();
