// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics for one agent: the datapath's counters, per-rule hits, sessions, the audit
// pipeline and the active policy, read from a MetricsSource at scrape time, plus the controller's
// install timings. Owns its own prom-client Registry and, when asked, one HTTP listener; touches
// nothing else. docs/metrics.md lists every metric.
//
// Counters that the kernel keeps (per-CPU sums that only grow) are exposed as prom-client
// Counters whose collect() callback does reset() + inc(value): prom-client has no Counter.set(),
// and this keeps the exposition TYPE `counter` (so rate() and PromQL linting treat them right)
// instead of faking counters with Gauges. The source is read once per scrape (one snapshot shared
// by every collect callback), so one scrape costs one per-CPU stats read, and scrapes are
// serialized.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter as PromCounter, Gauge, Histogram, Registry } from 'prom-client';
import { Reason } from '../abi/generated.js';
import { type CounterName, type CpuStats, type ReasonName, reasonLabel } from '../abi/records.js';
import { DoorstepError } from '../errors.js';

export interface MetricsSource {
  enforcer: string;
  /** Engine.stats(): the per-CPU global counters, summed. */
  stats(): CpuStats;
  /** Per-rule hits of the active version: rule id (`policy/rule` or `policy/default`) → counts. */
  ruleStats(): Map<string, { packets: number; bytes: number }>;
  /** Entries in the session caches (the agent counts them a slice at a time: a Promise). */
  sessionCount(): number | Promise<number>;
  /** The agent's longest event-loop stalls: since the start, and since the previous scrape. */
  eventLoop?(): { maxStallMs: number; maxStallSinceLastReadMs: number };
  /** From the audit pipeline. */
  events(): { read: number; lost: number };
  /** The active policy generation (0 = none) and version. */
  policy(): { generation: number; version: string | null };
  interfaces(): { name: string; mode: 'native' | 'generic' }[];
  /** Audit destinations that buffer (the NATS stream): records published, waiting, dropped. */
  auditSinks?(): AuditSinkStats[];
  /** With --history: whether the flow history is there (opened, and not failed since). */
  historyAvailable?(): boolean | undefined;
}

export interface AuditSinkStats {
  sink: string;
  published: number;
  buffered: number;
  dropped: number;
}

export interface MetricsServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Where each datapath global counter is exposed. null: exposed elsewhere — PASS_* and DROP_* are
 * the sums over reasons of doorstep_packets_total / doorstep_bytes_total{action}. Typed over every
 * CounterName, so a counter appended to abi.h does not compile until it is given a metric here.
 */
const COUNTER_METRICS: Record<CounterName, { name: string; help: string } | null> = {
  RX_PACKETS: { name: 'doorstep_received_packets_total', help: 'Packets seen by the XDP engine' },
  RX_BYTES: { name: 'doorstep_received_bytes_total', help: 'Bytes seen by the XDP engine' },
  PASS_PACKETS: null,
  PASS_BYTES: null,
  DROP_PACKETS: null,
  DROP_BYTES: null,
  CACHE_HITS: { name: 'doorstep_session_cache_hits_total', help: 'Packets decided by a session of the current generation' },
  CACHE_MISSES: { name: 'doorstep_session_cache_misses_total', help: 'Packets with no session: classified' },
  CACHE_STALE: { name: 'doorstep_session_cache_stale_total', help: 'Packets whose session was from an older policy generation: re-classified' },
  PARSE_ERRORS: { name: 'doorstep_parse_errors_total', help: 'Packets with truncated or malformed headers (denied)' },
  EVENTS: { name: 'doorstep_datapath_events_total', help: 'Session events written to the ring buffer' },
  EVENTS_LOST: { name: 'doorstep_datapath_events_lost_total', help: 'Session events dropped because the ring buffer was full' },
  FRAGMENTS: { name: 'doorstep_fragments_total', help: 'IP fragments seen (first and later)' },
  FRAG_UNKNOWN: { name: 'doorstep_fragments_unknown_total', help: 'Later fragments whose first fragment was not seen (denied)' },
  ICMP_RELATED: { name: 'doorstep_icmp_related_total', help: 'ICMP errors passed with the session they quote' },
  FAILSAFE: { name: 'doorstep_failsafe_total', help: 'Packets passed by the failsafe (ARP, neighbour discovery, management)' },
  SESSION_FULL: { name: 'doorstep_session_insert_failures_total', help: 'Session inserts that failed (verdict still applied)' },
  REPLIES: { name: 'doorstep_fabric_replies_total', help: 'Packets on fabric interfaces passed as replies of sessions allowed from a source network' },
  EVENTS_HELD: { name: 'doorstep_datapath_events_held_total', help: 'Logged denied sessions past the admission budget: their event held back (counted, not lost)' },
  STATELESS: { name: 'doorstep_stateless_denies_total', help: 'New denied sessions past the per-CPU admission budget, decided without a cache entry' },
  DIRTY_LOST: { name: 'doorstep_summary_marks_lost_total', help: 'Sessions marked for a summary whose ds_dirty record found the ring full (the next summary scans the caches instead)' },
};


const REASONS = (Object.keys(Reason) as (keyof typeof Reason)[]).filter((k): k is ReasonName => k !== 'COUNT');

/** Seconds; an install compiles nothing (that happens before) but writes maps, which grows with the policy. */
const INSTALL_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Snapshot {
  stats: CpuStats;
  rules: Map<string, { packets: number; bytes: number }>;
  sessions: number;
  events: { read: number; lost: number };
  policy: { generation: number; version: string | null };
  interfaces: { name: string; mode: 'native' | 'generic' }[];
  auditSinks: AuditSinkStats[];
  historyAvailable: boolean | undefined;
  eventLoop: { maxStallMs: number; maxStallSinceLastReadMs: number } | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly source: MetricsSource;
  private readonly installSeconds: Histogram<'outcome'>;
  private readonly installs: PromCounter<'outcome'>;
  private snap: Snapshot | undefined;
  /** The last session count read (a direct registry read cannot wait for a sliced count). */
  private lastSessions = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(source: MetricsSource) {
    this.source = source;
    this.registry.setDefaultLabels({ enforcer: source.enforcer });
    const registers = [this.registry];
    const snapshot = (): Snapshot => this.snapshot();

    const byReason = (field: 'packets' | 'bytes') =>
      function collect(this: PromCounter<'action' | 'reason'>): void {
        const { byReason: r } = snapshot().stats;
        this.reset();
        for (const reason of REASONS) {
          const label = reasonLabel(Reason[reason]);
          this.inc({ action: 'pass', reason: label }, r[reason].pass[field]);
          this.inc({ action: 'drop', reason: label }, r[reason].drop[field]);
        }
      };
    new PromCounter({
      name: 'doorstep_packets_total',
      help: 'Packets passed or dropped by the XDP engine, by the reason for the verdict',
      labelNames: ['action', 'reason'] as const,
      registers,
      collect: byReason('packets'),
    });
    new PromCounter({
      name: 'doorstep_bytes_total',
      help: 'Bytes passed or dropped by the XDP engine, by the reason for the verdict',
      labelNames: ['action', 'reason'] as const,
      registers,
      collect: byReason('bytes'),
    });

    for (const [counter, metric] of Object.entries(COUNTER_METRICS) as [CounterName, (typeof COUNTER_METRICS)[CounterName]][]) {
      if (!metric) continue;
      new PromCounter({
        ...metric,
        registers,
        collect(this: PromCounter) {
          this.reset();
          this.inc(snapshot().stats.counters[counter]);
        },
      });
    }

    const perRule = (field: 'packets' | 'bytes') =>
      function collect(this: PromCounter<'rule'>): void {
        this.reset(); // a rule that left the active version leaves the exposition
        for (const [rule, hits] of snapshot().rules) this.inc({ rule }, hits[field]);
      };
    new PromCounter({
      name: 'doorstep_rule_packets_total',
      help: 'Packets that matched each rule of the active policy version (rule: policy/rule or policy/default)',
      labelNames: ['rule'] as const,
      registers,
      collect: perRule('packets'),
    });
    new PromCounter({
      name: 'doorstep_rule_bytes_total',
      help: 'Bytes that matched each rule of the active policy version',
      labelNames: ['rule'] as const,
      registers,
      collect: perRule('bytes'),
    });

    new Gauge({
      name: 'doorstep_sessions',
      help: 'Sessions in the session cache',
      registers,
      collect(this: Gauge) {
        this.set(snapshot().sessions);
      },
    });
    new Gauge({
      name: 'doorstep_agent_event_loop_stall_max_seconds',
      help: "The agent's longest event-loop stall since it started (perf_hooks.monitorEventLoopDelay); the target is at most 0.05",
      registers,
      collect(this: Gauge) {
        const e = snapshot().eventLoop;
        if (e) this.set(e.maxStallMs / 1000);
      },
    });
    new Gauge({
      name: 'doorstep_agent_event_loop_stall_recent_max_seconds',
      help: "The agent's longest event-loop stall since the previous scrape",
      registers,
      collect(this: Gauge) {
        const e = snapshot().eventLoop;
        if (e) this.set(e.maxStallSinceLastReadMs / 1000);
      },
    });
    new PromCounter({
      name: 'doorstep_events_read_total',
      help: 'Session events read from the ring buffer by the audit pipeline',
      registers,
      collect(this: PromCounter) {
        this.reset();
        this.inc(snapshot().events.read);
      },
    });
    new PromCounter({
      name: 'doorstep_events_lost_total',
      help: 'Session events the audit pipeline knows it missed (sequence gaps)',
      registers,
      collect(this: PromCounter) {
        this.reset();
        this.inc(snapshot().events.lost);
      },
    });
    new Gauge({
      name: 'doorstep_policy_generation',
      help: 'Generation of the active policy version (0: none installed, default deny)',
      registers,
      collect(this: Gauge) {
        this.set(snapshot().policy.generation);
      },
    });
    new Gauge({
      name: 'doorstep_policy_info',
      help: 'The active policy version (content hash); absent while none is installed',
      labelNames: ['version'] as const,
      registers,
      collect(this: Gauge<'version'>) {
        this.reset();
        const { version } = snapshot().policy;
        if (version !== null) this.set({ version }, 1);
      },
    });
    new Gauge({
      name: 'doorstep_interface_info',
      help: 'Interfaces the engine is attached to, with the XDP mode',
      labelNames: ['interface', 'mode'] as const,
      registers,
      collect(this: Gauge<'interface' | 'mode'>) {
        this.reset();
        for (const i of snapshot().interfaces) this.set({ interface: i.name, mode: i.mode }, 1);
      },
    });

    const perSink = (field: 'published' | 'dropped') =>
      function collect(this: PromCounter<'sink'>): void {
        this.reset();
        for (const a of snapshot().auditSinks) this.inc({ sink: a.sink }, a[field]);
      };
    new PromCounter({
      name: 'doorstep_audit_records_published_total',
      help: 'Audit records a buffering destination (the NATS stream) has had acknowledged',
      labelNames: ['sink'] as const,
      registers,
      collect: perSink('published'),
    });
    new PromCounter({
      name: 'doorstep_audit_records_dropped_total',
      help: 'Audit records a buffering destination dropped (its buffer was full, or it stopped with records left); reported as lost records',
      labelNames: ['sink'] as const,
      registers,
      collect: perSink('dropped'),
    });
    new Gauge({
      name: 'doorstep_audit_records_buffered',
      help: 'Audit records waiting for a buffering destination (the NATS stream) to take them',
      labelNames: ['sink'] as const,
      registers,
      collect(this: Gauge<'sink'>) {
        this.reset();
        for (const a of snapshot().auditSinks) this.set({ sink: a.sink }, a.buffered);
      },
    });

    new Gauge({
      name: 'doorstep_history_available',
      help: 'With --history: 1 while the flow history is open and healthy, 0 once it could not be opened or written (the agent runs on without it)',
      registers,
      collect(this: Gauge) {
        this.reset();
        const available = snapshot().historyAvailable;
        if (available !== undefined) this.set(available ? 1 : 0);
      },
    });

    this.installSeconds = new Histogram({
      name: 'doorstep_policy_install_seconds',
      help: 'Time to install a policy candidate, from the controller receiving it to its outcome',
      labelNames: ['outcome'] as const,
      buckets: INSTALL_BUCKETS,
      registers,
    });
    this.installs = new PromCounter({
      name: 'doorstep_policy_installs_total',
      help: 'Policy candidates by outcome (installed, or rejected with the policy in force kept)',
      labelNames: ['outcome'] as const,
      registers,
    });
    for (const outcome of ['installed', 'rejected']) {
      this.installSeconds.zero({ outcome });
      this.installs.inc({ outcome }, 0);
    }
  }

  /** Record one install attempt. */
  observeInstall(durationMs: number, outcome: 'installed' | 'rejected'): void {
    this.installSeconds.observe({ outcome }, Math.max(0, durationMs) / 1000);
    this.installs.inc({ outcome });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string> {
    const run = this.queue.then(async () => {
      this.snap = this.readSource(await this.source.sessionCount());
      try {
        return await this.registry.metrics();
      } finally {
        this.snap = undefined;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Serve `GET /metrics` on host:port (port 0: any free port). */
  serve(host: string, port: number): Promise<MetricsServer> {
    const server = createServer((req, res) => void this.handle(req, res));
    return new Promise((resolve, reject) => {
      const where = formatAddress(host, port);
      const onError = (err: NodeJS.ErrnoException): void => {
        server.close();
        const why =
          err.code === 'EADDRINUSE'
            ? 'the address is already in use'
            : err.code === 'EADDRNOTAVAIL'
              ? 'the address is not configured on this host'
              : err.code === 'EACCES'
                ? 'permission denied'
                : err.message;
        reject(
          new DoorstepError('DS_E_METRICS_LISTEN', `cannot serve metrics on ${where}: ${why}`, {
            hint:
              err.code === 'EADDRINUSE'
                ? `stop whatever listens on ${where} (ss -ltnp 'sport = :${port}') or configure another metrics port`
                : 'configure another metrics address or port',
            cause: err,
          }),
        );
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        const bound = server.address() as AddressInfo;
        resolve({
          address: bound.address,
          port: bound.port,
          close: () =>
            new Promise<void>((done) => {
              server.close(() => done());
              server.closeAllConnections(); // keep-alive scrapers must not hold close() open
            }),
        });
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    try {
      const body = await this.text();
      res.writeHead(200, { 'Content-Type': this.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`cannot collect metrics: ${message}\n`);
    }
  }

  /** The snapshot of the scrape in progress, or a fresh one for a direct registry read. */
  private snapshot(): Snapshot {
    if (this.snap) return this.snap;
    const sessions = this.source.sessionCount();
    if (typeof sessions !== 'number') sessions.catch(() => undefined);
    return this.readSource(typeof sessions === 'number' ? sessions : this.lastSessions);
  }

  private readSource(sessions: number): Snapshot {
    const s = this.source;
    this.lastSessions = sessions;
    return {
      stats: s.stats(),
      rules: s.ruleStats(),
      sessions,
      eventLoop: s.eventLoop?.(),
      events: s.events(),
      policy: s.policy(),
      interfaces: s.interfaces(),
      auditSinks: s.auditSinks?.() ?? [],
      historyAvailable: s.historyAvailable?.(),
    };
  }
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
