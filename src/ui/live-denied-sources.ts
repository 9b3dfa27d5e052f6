// SPDX-License-Identifier: Apache-2.0
// Top denied sources from the live audit trail: an audit sink that counts denied sessions per
// source (session records exactly, flood records' top sources as estimates), bounded to the
// most recently seen sources. No history: the UI says so.
import type { AuditRecord, AuditSink } from '../audit/records.js';
import { liveNote } from './live-verdicts.js';
import type { DeniedSource, HistoryNote, TopDeniedSources } from './views.js';

export class LiveDeniedSources implements AuditSink, TopDeniedSources {
  /** Insertion order = last seen order: the least recently seen source is evicted first. */
  private readonly sources = new Map<string, DeniedSource>();
  private readonly since = new Date().toISOString();

  constructor(readonly capacity = 10_000) {}

  write(records: readonly AuditRecord[]): void {
    for (const r of records) {
      if (r.type === 'session' && r.event === 'new' && r.verdict === 'deny') this.add(r.src, 1, false, r.time);
      else if (r.type === 'flood') for (const t of r.topSources ?? []) this.add(t.source, t.sessions, true, r.to);
    }
  }

  private add(source: string, sessions: number, estimated: boolean, time: string): void {
    const prev = this.sources.get(source);
    this.sources.delete(source);
    this.sources.set(source, { source, sessions: (prev?.sessions ?? 0) + sessions, estimated: (prev?.estimated ?? false) || estimated, lastSeen: time });
    if (this.sources.size > this.capacity) this.sources.delete(this.sources.keys().next().value as string);
  }

  read(limit: number): { sources: DeniedSource[]; history: HistoryNote } {
    const sources = [...this.sources.values()].sort((a, b) => b.sessions - a.sessions || a.source.localeCompare(b.source)).slice(0, limit);
    return { sources, history: liveNote(this.since) };
  }

  async close(): Promise<void> {}
}
