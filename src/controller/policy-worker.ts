// SPDX-License-Identifier: Apache-2.0
// PolicyWorker: the agent's policy thread (policy-thread.ts) as the event loop sees it. The thread
// compiles (a 10,000-rule policy is 0.2–1 s of compile) and keeps the IRs; the event loop receives
// of a compile only the image (its buffers moved, not copied) and the rules' names
// (audit/rule-names.ts), and asks the thread whatever else needs an IR: explain, diff, the rule
// list, lint. Why: a 10,000-rule IR is ~100,000 objects, and the event loop's garbage collector
// took 45–75 ms stretches over it while it arrived and was kept (docs/datapath.md).
// Owns one long-lived thread, started at the first call and unref'd whenever no call is pending
// (it never keeps the process alive), terminated by close(). Calls are answered in call order
// (lint's excepted). If the thread stops, the calls pending reject with an error that says so,
// and the next call starts a new one, given the installed version's sources first (it compiles
// them again), so explain and diff go on answering about the version in force. The messages are
// policy-worker-protocol.ts's. The one-shot CLI commands compile inline (src/policy/compile.ts).
import { Worker } from 'node:worker_threads';
import { DoorstepError } from '../errors.js';
import { SLOT_TABLES } from '../abi/generated.js';
import type { PolicySource } from '../policy/parse/documents.js';
import type { FlowTuple, PolicyIr } from '../policy/ir/ir.js';
import type { PolicyImage } from '../policy/tables/image.js';
import type { CachedSession } from '../policy/tools/diff.js';
import type { LintFindingView } from './lint-worker.js';
import type { DiffReport } from './diff-report.js';
import {
  type AnswerOf,
  type Ask,
  type CompiledVersion,
  fromWire,
  type IrExplanation,
  POLICY_THREAD,
  type PolicyCall,
  type PolicyReply,
  type PolicyRequest,
  type RuleListEntry,
} from './policy-worker-protocol.js';

export class PolicyWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: (answer: unknown) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private closed = false;
  /** The version in force and its documents: what a new thread is given first. */
  private inForce: Ask<'installed'> | undefined;

  /** Compile on the thread, which keeps the IR; rejects as compileSources throws. */
  async compile(sources: readonly PolicySource[]): Promise<CompiledVersion> {
    const compiled = await this.call('compile', { sources });
    return { ...compiled, image: asBuffers(compiled.image) };
  }

  /** `version` (compiled from `sources`) is the one in force now: the thread keeps its IR, and drops the one before. */
  installed(version: string, sources: readonly PolicySource[]): Promise<void> {
    this.inForce = { version, sources };
    return this.call('installed', this.inForce).then(() => undefined);
  }

  /** The whole IR of `version`: for an engine that decides by it (Engine.decidesByIr), never the native one. */
  ir(version: string): Promise<PolicyIr> {
    return this.call('ir', { version });
  }

  explain(version: string, tuple: FlowTuple): Promise<IrExplanation> {
    return this.call('explain', { version, tuple });
  }

  /** The rules of `version` in order, its default last. */
  rules(version: string): Promise<RuleListEntry[]> {
    return this.call('rules', { version });
  }

  /** The lint findings of `version`, as the UI shows them (the thread computes them once per version). */
  lint(version: string): Promise<LintFindingView[]> {
    return this.call('lint', { version });
  }

  /**
   * `sources` against `version` (null: none installed), with every session of `sessions` through
   * both; the sessions cross to the thread a slice at a time, each once the one before is in.
   */
  async diff(version: string | null, sources: readonly PolicySource[], generation: number, sessions: AsyncIterable<readonly CachedSession[]>): Promise<DiffReport> {
    const diff = await this.call('diffOpen', { version, sources, generation });
    const thread = this.worker;
    const same = () => {
      if (this.worker !== thread) throw threadStopped('the policy thread stopped during the diff');
    };
    try {
      for await (const slice of sessions) {
        same();
        await this.call('diffSessions', { diff, sessions: slice });
      }
      same();
      return await this.call('diffReport', { diff });
    } catch (err) {
      if (this.worker === thread) this.call('diffDrop', { diff }).catch(() => undefined);
      throw err;
    }
  }

  /** Stop the thread (pending calls reject). Idempotent; calls afterwards reject. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.rejectPending('the policy thread was closed');
    if (worker) await worker.terminate();
  }

  private call<C extends PolicyCall>(call: C, ask: Ask<C>): Promise<AnswerOf<C>> {
    return new Promise<AnswerOf<C>>((resolve, reject) => {
      let worker: Worker;
      try {
        worker = this.start();
      } catch (err) {
        reject(err as Error);
        return;
      }
      this.post(worker, call, ask, { resolve: resolve as (answer: unknown) => void, reject });
    });
  }

  private post<C extends PolicyCall>(worker: Worker, call: C, ask: Ask<C>, settle: { resolve: (answer: unknown) => void; reject: (err: Error) => void }): void {
    const id = this.nextId++;
    if (this.pending.size === 0) worker.ref(); // a pending call keeps the process alive; an idle thread does not
    this.pending.set(id, settle);
    worker.postMessage({ id, call, ask } as PolicyRequest);
  }

  private settled(worker: Worker, reply: PolicyReply): void {
    const settle = this.pending.get(reply.id);
    if (!settle) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0 && this.worker === worker) worker.unref();
    if (reply.ok) settle.resolve(reply.answer);
    else settle.reject(fromWire(reply.error));
  }

  private rejectPending(why: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(threadStopped(why));
  }

  private start(): Worker {
    if (this.closed) throw new Error('the policy thread was closed');
    if (this.worker) return this.worker;
    // none of this process's flags (--test, --inspect, …): the thread only compiles and answers
    const worker = new Worker(new URL('./policy-thread.js', import.meta.url), { workerData: { kind: POLICY_THREAD }, execArgv: [] });
    worker.unref();
    const gone = (why: string) => {
      if (this.worker !== worker) return; // closed, or already gone
      this.worker = undefined; // the next call starts a new one
      this.rejectPending(`the policy thread stopped (${why}); the next request starts it again`);
    };
    worker.on('message', (reply: PolicyReply) => this.settled(worker, reply));
    worker.on('error', (err) => gone(err.message));
    worker.on('exit', (code) => gone(`exit code ${code}`));
    this.worker = worker;
    // the version in force first: the thread compiles it again, and explain and diff answer about it
    if (this.inForce) this.post(worker, 'installed', this.inForce, { resolve: () => undefined, reject: () => undefined });
    return worker;
  }
}

function threadStopped(why: string): DoorstepError {
  return new DoorstepError('DS_E_POLICY_THREAD', why, { hint: "send the request again (it starts the thread again); if the thread keeps stopping, the agent's log says why" });
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
