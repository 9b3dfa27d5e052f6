// SPDX-License-Identifier: Apache-2.0
// CompileWorker: the agent's policy compiles (compileSources + buildImage) on a thread of their
// own, so the event loop never runs one (a 10,000-rule policy is 0.2–1 s of compile). Owns one
// long-lived worker thread, started at the first compile and unref'd whenever it is idle (it never
// keeps the process alive), restarted if it dies, terminated by close(). Jobs run one at a time,
// in call order. What reaches the event loop is only the result, in slices the size of a few
// milliseconds each: the image's buffers are transferred (not copied) with the first, and the
// IR's rules come a slice per message, the next one asked for only after the event loop has had
// a turn (a 10,000-rule IR arriving in one message costs 70–180 ms to deserialize). Prefix lists
// that rules share (an AddressGroup's) cross once and stay shared. Errors cross as data and are
// rebuilt as the same PolicyError (problems) or DoorstepError (code, message, hint).
// The one-shot CLI commands compile inline (src/policy/compile.ts); this is for the agent.
import { setImmediate as turn } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DoorstepError, type ErrorCode, PolicyError, type PolicyProblem } from '../errors.js';
import { compileSources } from '../policy/compile.js';
import type { PolicySource } from '../policy/parse/documents.js';
import { SLOT_TABLES } from '../abi/generated.js';
import { buildImage, type PolicyImage } from '../policy/tables/image.js';
import type { Cidr, IrRule, PolicyIr } from '../policy/ir/ir.js';

/** What the controller installs: the IR (names for events), the image (the maps' bytes), the notes. */
export interface CompiledImage {
  ir: PolicyIr;
  image: PolicyImage;
  warnings: string[];
}

const KIND = 'doorstep-policy-compiler';
/**
 * Rules plus newly sent prefixes per slice: 1–2 ms of deserializing on this VM's cores (a
 * 10,000-rule policy is ~80 slices, each one round trip). A rule with a longer prefix list than
 * this still travels whole, in a slice of its own.
 */
const SLICE_WEIGHT = 512;

/** An error as data: what it takes to rebuild it on the other side. */
type WireError =
  | { kind: 'policy'; problems: PolicyProblem[] }
  | { kind: 'doorstep'; code: ErrorCode; message: string; hint?: string }
  | { kind: 'other'; name: string; message: string };

/** A rule on the wire: a prefix list already sent in this job is a number (its position in order of sending). */
type WireRule = Omit<IrRule, 'src' | 'dst'> & { src: Cidr[] | number; dst: Cidr[] | number };

type ToWorker = { t: 'compile'; sources: PolicySource[] } | { t: 'more' };
type FromWorker =
  | { t: 'failed'; error: WireError }
  | { t: 'compiled'; ir: Omit<PolicyIr, 'rules'>; image: PolicyImage; warnings: string[]; rules: WireRule[]; done: boolean }
  | { t: 'rules'; rules: WireRule[]; done: boolean };

export class CompileWorker {
  private worker: Worker | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** The job's pending exchange: the worker's next message settles it. */
  private waiting: { resolve: (m: FromWorker) => void; reject: (err: Error) => void } | undefined;
  private closed = false;

  /** Compile on the worker thread; jobs run one at a time, in call order. Rejects as compileSources throws. */
  compile(sources: readonly PolicySource[]): Promise<CompiledImage> {
    const run = this.queue.then(() => this.run(sources));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Stop the thread (a job in progress rejects). Idempotent; compile() afterwards rejects. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private async run(sources: readonly PolicySource[]): Promise<CompiledImage> {
    const worker = this.start();
    worker.ref(); // a job in progress keeps the process alive; an idle worker does not
    try {
      let m = await this.exchange(worker, { t: 'compile', sources: [...sources] });
      if (m.t === 'failed') throw fromWire(m.error);
      if (m.t !== 'compiled') throw new Error(`the policy compiler thread answered ${m.t} to a compile`);
      const { ir: head, image, warnings } = m;
      const rules: IrRule[] = [];
      const lists: Cidr[][] = [];
      for (;;) {
        for (const r of m.rules) rules.push(fromWireRule(r, lists));
        if (m.done) break;
        await turn(); // the event loop runs between slices
        m = await this.exchange(worker, { t: 'more' });
        if (m.t !== 'rules') throw new Error(`the policy compiler thread answered ${m.t} when asked for more rules`);
      }
      return { ir: { ...head, rules }, image: asBuffers(image), warnings };
    } finally {
      worker.unref();
    }
  }

  private exchange(worker: Worker, message: ToWorker): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      worker.postMessage(message);
    });
  }

  private start(): Worker {
    if (this.closed) throw new Error('the policy compiler thread was closed');
    if (this.worker) return this.worker;
    // none of this process's flags (--test, --inspect, …): the thread only compiles
    const worker = new Worker(new URL(import.meta.url), { workerData: { kind: KIND }, execArgv: [] });
    worker.unref();
    const settle = (f: (w: NonNullable<CompileWorker['waiting']>) => void) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) f(w);
    };
    const gone = (why: string) => {
      if (this.worker === worker) this.worker = undefined; // the next job starts a new one
      settle((w) => w.reject(new Error(`the policy compiler thread stopped: ${why}`)));
    };
    worker.on('message', (m: FromWorker) => settle((w) => w.resolve(m)));
    worker.on('error', (err) => gone(err.message));
    worker.on('exit', (code) => gone(this.closed ? 'closed' : `exit code ${code}`));
    this.worker = worker;
    return worker;
  }
}

function toWire(err: unknown): WireError {
  if (err instanceof PolicyError) return { kind: 'policy', problems: err.problems };
  if (err instanceof DoorstepError) return { kind: 'doorstep', code: err.code, message: err.message, ...(err.hint !== undefined && { hint: err.hint }) };
  if (err instanceof Error) return { kind: 'other', name: err.name, message: err.message };
  return { kind: 'other', name: 'Error', message: String(err) };
}

function fromWire(e: WireError): Error {
  switch (e.kind) {
    case 'policy':
      return new PolicyError(e.problems);
    case 'doorstep':
      return new DoorstepError(e.code, e.message, e.hint === undefined ? {} : { hint: e.hint });
    default: {
      const err = new Error(e.message);
      err.name = e.name;
      return err;
    }
  }
}

function fromWireRule(r: WireRule, lists: Cidr[][]): IrRule {
  // the same order as toWireRule: src, then dst
  const list = (x: Cidr[] | number): Cidr[] => {
    if (typeof x === 'number') return lists[x]!;
    lists.push(x);
    return x;
  };
  const src = list(r.src);
  const dst = list(r.dst);
  return { ...r, src, dst };
}

/** Buffers arrive as plain Uint8Arrays: the same bytes, seen as Buffers again (no copy). */
function asBuffers(image: PolicyImage): PolicyImage {
  const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  for (const name of SLOT_TABLES) {
    const t = image.tables[name];
    t.keys = buf(t.keys);
    t.values = buf(t.values);
  }
  return image;
}

// ---- the worker thread ----

function runWorker(): void {
  const port = parentPort!;
  let pending: { rules: IrRule[]; at: number; sent: Map<Cidr[], number> } | undefined;

  /** The next slice of the pending job's rules. */
  const slice = (): { rules: WireRule[]; done: boolean } => {
    const job = pending!;
    const out: WireRule[] = [];
    let weight = 0;
    const ref = (list: Cidr[]): Cidr[] | number => {
      const id = job.sent.get(list);
      if (id !== undefined) return id;
      job.sent.set(list, job.sent.size);
      weight += list.length;
      return list;
    };
    while (job.at < job.rules.length && (out.length === 0 || weight < SLICE_WEIGHT)) {
      const r = job.rules[job.at++]!;
      const src = ref(r.src);
      const dst = ref(r.dst);
      out.push({ ...r, src, dst });
      weight++;
    }
    const done = job.at === job.rules.length;
    if (done) pending = undefined;
    return { rules: out, done };
  };

  port.on('message', (m: ToWorker) => {
    if (m.t === 'more') {
      if (pending) port.postMessage({ t: 'rules', ...slice() } satisfies FromWorker);
      return;
    }
    let ir: PolicyIr;
    let image: PolicyImage;
    let warnings: string[];
    try {
      const compiled = compileSources(m.sources);
      ({ ir, warnings } = compiled);
      image = buildImage(ir, compiled.tables);
    } catch (err) {
      pending = undefined;
      port.postMessage({ t: 'failed', error: toWire(err) } satisfies FromWorker);
      return;
    }
    const { rules, ...head } = ir;
    pending = { rules, at: 0, sent: new Map() };
    // every buffer once (the array maps' keys share one): moved, not copied. The shared keys are
    // detached here by the move, and policy/tables/image.ts's counting() sees them empty and builds them again.
    const transfer = new Set<ArrayBuffer>();
    for (const name of SLOT_TABLES) {
      const t = image.tables[name];
      for (const b of [t.keys, t.values]) if (b.buffer instanceof ArrayBuffer && b.byteLength > 0) transfer.add(b.buffer);
    }
    port.postMessage({ t: 'compiled', ir: head, image, warnings, ...slice() } satisfies FromWorker, [...transfer]);
  });
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === KIND) runWorker();
