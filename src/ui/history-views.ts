// SPDX-License-Identifier: Apache-2.0
// The web UI's time views from the flow history (src/history/), when the agent keeps one: verdicts
// per minute over the last hour and the top denied sources of the last day, instead of what the
// agent counted live since it started. The views are read synchronously by the UI server, so each
// keeps the last answer of its query and asks again (on DuckDB's thread) when it is older than
// REFRESH_MS; the first read says the history is being read. A history that is unavailable says
// why.
import type { HistorySink } from '../history/sink.js';
import { deniedSources, verdictsOverTime } from '../history/queries.js';
import type { DeniedSource, HistoryNote, TopDeniedSources, VerdictBucket, VerdictsOverTime } from './views.js';

const REFRESH_MS = 2_000;
const CHART_SPAN_MS = 3_600_000;
const CHART_STEP_MS = 60_000;
const SOURCES_SPAN_MS = 86_400_000;

/** The last answer of an async query, asked again when stale; `empty` until the first answer. */
class CachedQuery<T> {
  private value: T;
  private at = 0;
  private running = false;
  private failure: string | undefined;

  constructor(
    empty: T,
    private readonly ask: () => Promise<T>,
  ) {
    this.value = empty;
  }

  read(): { value: T; fresh: boolean; failure: string | undefined } {
    if (!this.running && Date.now() - this.at >= REFRESH_MS) {
      this.running = true;
      this.ask()
        .then((v) => {
          this.value = v;
          this.failure = undefined;
        })
        .catch((err: unknown) => (this.failure = err instanceof Error ? err.message : String(err)))
        .finally(() => {
          this.at = Date.now();
          this.running = false;
        });
    }
    return { value: this.value, fresh: this.at > 0, failure: this.failure };
  }
}

/** The chart and the list from the history `sink()` holds (undefined while the agent has none yet). */
export function historyViews(sink: () => HistorySink | undefined): { verdicts: VerdictsOverTime; deniedSources: TopDeniedSources } {
  const note = (since: number, what: string, fresh: boolean, failure: string | undefined): HistoryNote => {
    const s = sink();
    const unavailable = !s ? 'the flow history is opening' : !s.available ? `no flow history: ${s.failure?.toLine() ?? 'unavailable'}` : failure;
    return { kind: 'history', since: new Date(since).toISOString(), message: unavailable ?? (fresh ? `from the flow history: ${what}` : 'reading the flow history…') };
  };
  const chart = new CachedQuery<VerdictBucket[]>([], async () => {
    const s = sink();
    if (!s?.available) return [];
    return verdictsOverTime(s.history(), Date.now() - CHART_SPAN_MS, CHART_STEP_MS);
  });
  const sources = new Map<number, CachedQuery<DeniedSource[]>>();
  return {
    verdicts: {
      read: () => {
        const r = chart.read();
        return { intervalMs: CHART_STEP_MS, buckets: r.value, history: note(Date.now() - CHART_SPAN_MS, 'sessions per minute over the last hour', r.fresh, r.failure) };
      },
    },
    deniedSources: {
      read: (limit) => {
        let q = sources.get(limit);
        if (!q) {
          q = new CachedQuery<DeniedSource[]>([], async () => {
            const s = sink();
            if (!s?.available) return [];
            return (await deniedSources(s.history(), Date.now() - SOURCES_SPAN_MS, limit)).map((d) => ({ ...d, estimated: false }));
          });
          sources.set(limit, q);
        }
        const r = q.read();
        return { sources: r.value, history: note(Date.now() - SOURCES_SPAN_MS, 'denied sessions of the last 24 hours', r.fresh, r.failure) };
      },
    },
  };
}
