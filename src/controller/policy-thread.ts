// SPDX-License-Identifier: Apache-2.0
// The agent's policy thread, its side: compiles candidates (compileSources + buildImage) off the
// event loop, and keeps the IRs the event loop does not. It holds two: the installed version's and
// the newest compile's (a candidate on its way in). Of a compile the event loop gets the image,
// the rules' names and the sources encoded for the state file only; whatever else reads an IR asks here: explain, diff, the rule list, lint.
// Answers each call of policy-worker-protocol.ts (policy-worker.ts is the event loop's side) in
// arrival order, except lint's, which runs on a thread of its own and answers when done.
import { getPriority, setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SLOT_TABLES } from '../abi/generated.js';
import { ruleNamesBuffers, ruleNamesOf } from '../audit/rule-names.js';
import { DoorstepError } from '../errors.js';
import { compileIr, compileSources } from '../policy/compile.js';
import type { PolicyIr } from '../policy/ir/ir.js';
import { buildImage, type PolicyImage } from '../policy/tables/image.js';
import { defaultRef, explain, formatExplanation } from '../policy/tools/explain.js';
import { type LintFindingView, lintOnWorker } from './lint-worker.js';
import { SessionDiff } from './diff-report.js';
import { type AnswerOf, type Ask, POLICY_THREAD, type PolicyCall, type PolicyReply, type PolicyRequest, toWire } from './policy-worker-protocol.js';

/** An IR the thread holds, and its lint findings once asked for. */
interface Held {
  ir: PolicyIr;
  lint?: Promise<LintFindingView[]>;
}

/** A call's handler: its answer, and what of it to move rather than copy. */
type Handlers = { [C in PolicyCall]: (ask: Ask<C>, transfer: ArrayBuffer[]) => AnswerOf<C> | Promise<AnswerOf<C>> };

/**
 * How much nicer than the agent this thread runs. On Linux a nice value is a thread's own
 * (setpriority of "process" 0 is the calling thread), so a compile of seconds no longer shares the
 * CPU half and half with the event loop that wakes beside it (the agent may be pinned to one CPU):
 * the event loop runs first, the compile in the time it leaves.
 */
const POLICY_THREAD_NICE = 10;

function yieldToEventLoopThread(): void {
  try {
    setPriority(0, Math.min(19, getPriority(0) + POLICY_THREAD_NICE));
  } catch {
    // a priority that cannot be lowered leaves the thread as it was: slower answers, nothing else
  }
}

function runPolicyThread(): void {
  const port = parentPort!;
  yieldToEventLoopThread();
  let installed: Held | undefined;
  let newest: Held | undefined;
  const diffs = new Map<number, SessionDiff>();
  let nextDiff = 1;

  const held = (version: string): Held => {
    if (installed?.ir.version === version) return installed;
    if (newest?.ir.version === version) return newest;
    throw new DoorstepError('DS_E_AGENT_API', `the policy thread does not hold version ${version}`, { hint: 'another version was installed meanwhile: ask again' });
  };
  const diffOf = (id: number): SessionDiff => {
    const diff = diffs.get(id);
    if (!diff) throw new Error(`the policy thread has no diff ${id}`);
    return diff;
  };

  const handlers: Handlers = {
    compile: ({ sources }, transfer) => {
      const { ir, tables, warnings } = compileSources(sources);
      const image = buildImage(ir, tables);
      if (ir.version !== installed?.ir.version) newest = { ir }; // the installed version's IR serves for itself
      const names = ruleNamesOf(ir);
      // its own ArrayBuffer (not a Buffer: a small one could be a slice of the shared pool), moved
      const sourcesJson = new TextEncoder().encode(JSON.stringify(sources));
      transfer.push(...imageBuffers(image), ...ruleNamesBuffers(names), sourcesJson.buffer);
      return { version: ir.version, names, image, warnings, sourcesJson };
    },
    installed: ({ version, sources }) => {
      if (installed?.ir.version === version) return null;
      if (newest?.ir.version === version) {
        installed = newest;
        newest = undefined;
        return null;
      }
      // not held: this thread started after the install (the one before it stopped)
      const { ir } = compileIr(sources);
      if (ir.version !== version) throw new DoorstepError('DS_E_AGENT_API', `the installed policy's documents compile to ${ir.version} on the policy thread, not ${version}`);
      installed = { ir };
      return null;
    },
    ir: ({ version }) => held(version).ir,
    explain: ({ version, tuple }) => {
      const e = explain(held(version).ir, tuple);
      return { action: e.action, rule: e.decidedBy.id, index: e.rule, why: formatExplanation(e) };
    },
    rules: ({ version }) => {
      const { ir } = held(version);
      return [...ir.rules.map((r) => ({ id: r.id, action: r.action })), { id: defaultRef(ir).id, action: ir.defaultAction }];
    },
    lint: ({ version }) => {
      const h = held(version);
      const findings = (h.lint ??= lintOnWorker(h.ir));
      // a failed lint is tried again on the next call, not kept
      return findings.catch((err: unknown) => {
        if (h.lint === findings) delete h.lint;
        throw err;
      });
    },
    diffOpen: ({ version, sources, generation }) => {
      const from = version === null ? null : held(version).ir;
      const id = nextDiff++;
      diffs.set(id, new SessionDiff(from, compileIr(sources).ir, generation));
      return id;
    },
    diffSessions: ({ diff, sessions }) => {
      diffOf(diff).add(sessions);
      return null;
    },
    diffReport: ({ diff }) => {
      const report = diffOf(diff).report();
      diffs.delete(diff);
      return report;
    },
    diffDrop: ({ diff }) => {
      diffs.delete(diff);
      return null;
    },
  };

  port.on('message', async (request: PolicyRequest) => {
    const transfer: ArrayBuffer[] = [];
    try {
      // a handler's synchronous part runs now, before the next message: compiles keep their order
      const answer = await (handlers[request.call] as (ask: unknown, transfer: ArrayBuffer[]) => unknown)(request.ask, transfer);
      port.postMessage({ id: request.id, ok: true, answer } satisfies PolicyReply, transfer);
    } catch (err) {
      port.postMessage({ id: request.id, ok: false, error: toWire(err) } satisfies PolicyReply);
    }
  });
}

/**
 * Every buffer of `image` once (the array maps' keys share one). Moved, the shared keys are
 * detached here, and policy/tables/image.ts's counting() sees them empty and builds them again.
 */
function imageBuffers(image: PolicyImage): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const name of SLOT_TABLES) {
    const t = image.tables[name];
    for (const b of [t.keys, t.values]) if (b.buffer instanceof ArrayBuffer && b.byteLength > 0) buffers.add(b.buffer);
  }
  return [...buffers];
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === POLICY_THREAD) runPolicyThread();
