// SPDX-License-Identifier: Apache-2.0
// The UI's lint view computed off the agent's event loop: `doorstep lint`'s analysis of the
// installed IR on a worker thread of its own, ended once it has answered. The agent's policy
// thread (policy-thread.ts), which holds the IR, starts it: a large policy takes seconds, and
// that thread must keep compiling meanwhile. The findings as the UI shows them (ui/views.ts).
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { flowText, lintIr } from '../policy/tools/lint.js';
import type { PolicyIr } from '../policy/ir/ir.js';

const KIND = 'doorstep-ui-lint';

/** A lint finding as the UI shows it. */
export interface LintFindingView {
  kind: string;
  message: string;
  rules: { id: string; file: string; line: number }[];
  example?: string;
}

/** The findings of `ir`, as the UI shows them (the same on either side of the thread). */
export function lintFindings(ir: PolicyIr): LintFindingView[] {
  return lintIr(ir).report.findings.map((f) => ({
    kind: f.kind,
    message: f.message,
    rules: f.rules.map((r) => ({ id: r.id, file: r.file, line: r.line })),
    ...(f.example && { example: flowText(f.example) }),
  }));
}

/** The findings of `ir`, computed on a worker thread. */
export function lintOnWorker(ir: PolicyIr): Promise<LintFindingView[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { kind: KIND, ir }, execArgv: [] });
    worker.once('message', (findings: LintFindingView[]) => {
      resolve(findings);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the lint worker exited (${code}) without an answer`)));
  });
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === KIND) {
  parentPort!.postMessage(lintFindings((workerData as { ir: PolicyIr }).ir));
}
