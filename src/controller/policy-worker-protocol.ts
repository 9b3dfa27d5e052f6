// SPDX-License-Identifier: Apache-2.0
// The messages between the agent's event loop and its policy thread, in one place: every call,
// what it asks and what it answers (policy-worker.ts sends them, policy-thread.ts answers them),
// and errors as data, rebuilt on the event loop as the same PolicyError (problems) or
// DoorstepError (code, message, hint). Types and the error codec only.
import { DoorstepError, type ErrorCode, PolicyError, type PolicyProblem } from '../errors.js';
import type { RuleNames } from '../audit/rule-names.js';
import type { PolicySource } from '../policy/parse/documents.js';
import type { Action, FlowTuple, PolicyIr } from '../policy/ir/ir.js';
import type { PolicyImage } from '../policy/tables/image.js';
import type { CachedSession } from '../policy/tools/diff.js';
import type { LintFindingView } from './lint-worker.js';
import type { DiffReport } from './diff-report.js';

/** workerData.kind of the policy thread. */
export const POLICY_THREAD = 'doorstep-policy-thread';

/** A compile as the event loop receives it: the image (the maps' bytes) and the rules' names, not the IR. */
export interface CompiledVersion {
  version: string;
  names: RuleNames;
  image: PolicyImage;
  warnings: string[];
  /** The sources as the state file holds them: JSON.stringify(sources), UTF-8 (StateStore.save's
   *  `encoded`), so the event loop neither escapes nor encodes a megabyte to persist an install. */
  sourcesJson: Uint8Array;
}

/** Explain's policy half: the rule that decides a flow, and why the rules before it did not. */
export interface IrExplanation {
  action: Action;
  /** The deciding rule's id (`<policy>/default` for the default). */
  rule: string;
  /** Its index (0: the default), as the datapath reports it. */
  index: number;
  why: string[];
}

/** A rule of the list the UI shows: every rule in order, the default last. */
export interface RuleListEntry {
  id: string;
  action: Action;
}

/**
 * Every call: what it asks, what it answers. A call about an IR names its version; the thread
 * holds the installed version's IR and the newest compile's (policy-thread.ts).
 */
export interface PolicyCalls {
  /** Compile a candidate (and build its image); the thread keeps its IR as the newest compile. */
  compile: { ask: { sources: readonly PolicySource[] }; answer: CompiledVersion };
  /** The version now installed, and its sources (to compile it again on a thread that does not hold it). */
  installed: { ask: { version: string; sources: readonly PolicySource[] }; answer: null };
  /** A whole IR: only for an engine that decides by it (the in-memory one). */
  ir: { ask: { version: string }; answer: PolicyIr };
  explain: { ask: { version: string; tuple: FlowTuple }; answer: IrExplanation };
  rules: { ask: { version: string }; answer: RuleListEntry[] };
  /** The UI's lint findings (computed once per version, on a thread of their own). */
  lint: { ask: { version: string }; answer: LintFindingView[] };
  /** Compile a candidate for a diff against `version` (null: none installed); answers the diff's id. */
  diffOpen: { ask: { version: string | null; sources: readonly PolicySource[]; generation: number }; answer: number };
  diffSessions: { ask: { diff: number; sessions: readonly CachedSession[] }; answer: null };
  /** The report, and the diff forgotten. */
  diffReport: { ask: { diff: number }; answer: DiffReport };
  diffDrop: { ask: { diff: number }; answer: null };
}

export type PolicyCall = keyof PolicyCalls;
export type Ask<C extends PolicyCall> = PolicyCalls[C]['ask'];
export type AnswerOf<C extends PolicyCall> = PolicyCalls[C]['answer'];

/** Event loop → thread. */
export type PolicyRequest = { [C in PolicyCall]: { id: number; call: C; ask: Ask<C> } }[PolicyCall];
/** Thread → event loop: the request's id, and its answer or its error. */
export type PolicyReply = { id: number; ok: true; answer: unknown } | { id: number; ok: false; error: WireError };

/** An error as data: what it takes to rebuild it on the other side. */
export type WireError =
  | { kind: 'policy'; problems: PolicyProblem[] }
  | { kind: 'doorstep'; code: ErrorCode; message: string; hint?: string }
  | { kind: 'other'; name: string; message: string };

export function toWire(err: unknown): WireError {
  if (err instanceof PolicyError) return { kind: 'policy', problems: err.problems };
  if (err instanceof DoorstepError) return { kind: 'doorstep', code: err.code, message: err.message, ...(err.hint !== undefined && { hint: err.hint }) };
  if (err instanceof Error) return { kind: 'other', name: err.name, message: err.message };
  return { kind: 'other', name: 'Error', message: String(err) };
}

export function fromWire(e: WireError): Error {
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
