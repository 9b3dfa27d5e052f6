// SPDX-License-Identifier: Apache-2.0
// What the web UI shows, one small data source per view. The agent fills them from what it has
// live (recent records, the engine's rule counters, the installed policy); `doorstep fleet ui`
// fills only the fleet view. A flow-history store can later stand behind `verdicts` and
// `deniedSources` (`history` then says what it holds); without one they cover the agent's life.
import type { AuditRecord } from '../audit/records.js';
import type { LintFindingView } from '../controller/lint-worker.js';

/** Where a time view's data comes from, shown by the UI so nobody reads a live window as history. */
export interface HistoryNote {
  /** `live`: counted in memory since `since` (the agent's start); `history`: read from a store. */
  kind: 'live' | 'history';
  since: string;
  message: string;
}

/** Allowed and denied sessions per interval (denies held back by a flood counted in `denied`). */
export interface VerdictBucket {
  /** Start of the interval, RFC 3339. */
  at: string;
  allowed: number;
  denied: number;
}

export interface VerdictsOverTime {
  read(): { intervalMs: number; buckets: VerdictBucket[]; history: HistoryNote };
}

export interface DeniedSource {
  source: string;
  /** Denied sessions from it (flood records' estimates included, marked by `estimated`). */
  sessions: number;
  estimated: boolean;
  lastSeen: string;
}

export interface TopDeniedSources {
  read(limit: number): { sources: DeniedSource[]; history: HistoryNote };
}

/** Every rule of the version in force with its hits; `hit: false` are the rules never hit. */
export interface RuleHitsView {
  read(): Promise<{ version: string | null; rules: { id: string; action: string; packets: number; bytes: number; hit: boolean }[] }>;
}

export interface LintView {
  read(): Promise<{ version: string | null; findings: LintFindingView[] }>;
}

/** A policy version installed, adopted, restored or rejected, newest first. */
export interface PolicyHistoryView {
  read(): { entries: PolicyEntry[]; inForce: { version: string | null; generation: number } | null };
}

export interface PolicyEntry {
  time: string;
  status: string;
  source: string;
  version?: string;
  generation?: number;
  rules?: number;
  problems?: string[];
}

export interface FleetEnforcerView {
  enforcer: string;
  labels: Record<string, string>;
  health: string;
  version: string | null;
  expected: string;
  inSync: boolean;
  reportedAt: string;
  wireguardKey?: string;
}

export interface FleetViewSource {
  read(): Promise<{ converged: boolean; enforcers: FleetEnforcerView[] }>;
}

/** The live flow table: the records kept in memory, then new ones, with `observe`'s filters. */
export interface FlowSource {
  /** Sends the kept records that pass, then each new one until the returned stop is called. */
  follow(query: URLSearchParams, send: (record: AuditRecord) => void): () => void;
}

/** The views one UI server offers; absent views are not shown. */
export interface UiViews {
  /** Who serves: an enforcer id, or `fleet`. */
  title: string;
  flows?: FlowSource;
  verdicts?: VerdictsOverTime;
  deniedSources?: TopDeniedSources;
  ruleHits?: RuleHitsView;
  lint?: LintView;
  policyHistory?: PolicyHistoryView;
  fleet?: FleetViewSource;
}
