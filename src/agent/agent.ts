// SPDX-License-Identifier: Apache-2.0
// `doorstep agent`: the enforcer's daemon. Composes the parts in the order that keeps the host
// safe: checks that touch nothing (state dir, socket, audit file, metrics and web UI ports, interfaces),
// then the engine attached in default deny (or adopted from a previous agent) and the enforced
// interfaces closed to Router Advertisements, redirects and source routes, then the policy
// (adopted, restored from the state dir, or installed from the source), then the watcher.
// However it stops (SIGTERM, SIGINT, SIGKILL, a crash) the engine stays attached and pinned, the
// tunnels, routes and settings stay, and the next agent adopts them (DESIGN.md §9); what it
// leaves is written down in the state dir (host/enforcement-record.ts) for that agent and for
// `doorstep detach`. Only --detach-on-exit takes everything back at a stop (controller/detach.ts).
import { AuditPipeline } from '../audit/pipeline.js';
import { ControlRecordsSink } from '../audit/control-sink.js';
import { JsonLinesSink } from '../audit/json-lines-sink.js';
import { AgentMetrics, type MetricsServer } from '../audit/metrics.js';
import { RecentRecords } from '../audit/recent-records.js';
import { agentRecord as makeAgentRecord, type AuditSink } from '../audit/records.js';
import { monotonicToWall } from '../audit/session-record.js';
import { ruleName } from '../audit/rule-names.js';
import { type Engine, type EngineHost, FLOW_FILTER_AGING_MS } from '../engine/engine-interface.js';
import { EngineSummaryMarks } from '../engine/summary-marks.js';
import { FolderSource } from '../watcher/folder-source.js';
import { NatsAuditSink } from '../audit/nats-sink.js';
import { HistorySink } from '../history/sink.js';
import { type EnforcerStatus } from '../fleet/enforcer-status.js';
import { NatsConnections, parseNatsUrl } from '../fleet/nats-connection.js';
import { trustedKeys } from '../fleet/signing.js';
import { StatusReporter } from '../fleet/status-reporter.js';
import { NatsSource, type SourceSync } from '../watcher/nats-source.js';
import { FileMarkStore } from '../watcher/sequence-marks.js';
import { Forwarding } from '../placement/forwarding.js';
import { forwardingPlan } from '../placement/forwarding-plan.js';
import { enforcedInterfaces, peerChanges, type Placement } from '../placement/placement.js';
import { sessionAnnotator } from '../placement/session-path.js';
import { edgePeersOf, tunnelFields, tunnelSentence, tunnelStatus, type TunnelStatus } from '../placement/tunnel-status.js';
import { WireguardDevices } from '../placement/wireguard.js';
import { describeImplementation, detectWireguard } from '../placement/wireguard-implementation.js';
import { loadOrCreateKeyPair } from '../placement/wireguard-keys.js';
import { tenantId } from '../policy/ir/tenants.js';
import { join } from 'node:path';
import { formatProblem } from '../errors.js';
import { natsToken } from '../fleet/nats-connection.js';
import type { PolicySourceHandle } from '../watcher/source.js';
import type { AgentConfig } from '../controller/config.js';
import { detachEnforcement } from '../controller/detach.js';
import { NO_FORWARDING, readEnforcementRecord, removeEnforcementRecord, writeEnforcementRecord } from '../host/enforcement-record.js';
import { Hardening, type SysctlFiles } from '../controller/hardening.js';
import { hardeningPlan, hardeningRecords } from '../controller/hardening-plan.js';
import { reloadPlan } from '../controller/reload-plan.js';
import { LocalApi } from '../controller/local-api.js';
import { NetworkController } from '../controller/network-controller.js';
import { agentRoutes } from '../controller/routes.js';
import { StallMonitor } from '../controller/stall-monitor.js';
import { StateStore } from '../host/state-store.js';
import type { Routes } from '../controller/local-api.js';
import { agentViews } from '../ui/agent-views.js';
import { historyViews } from '../ui/history-views.js';
import { serveUi, type UiServer } from '../ui/ui-server.js';
import { readUiToken } from '../controller/ui-settings.js';

/** How often the agent reconciles lost events with the kernel's counters. */
const LOST_CHECK_MS = 1000;

export interface RunningAgent {
  readonly controller: NetworkController;
  readonly pipeline: AuditPipeline;
  /** Stop: the engine keeps enforcing (unless detachOnExit); the audit trail is flushed (what
   *  NATS does not take is kept in the state dir); the socket goes. */
  stop(reason: string): Promise<void>;
  /** SIGHUP: apply the deny-event budget and cap, the failsafe and the edge's WireGuard peer settings from a re-read config; other changes are named as needing a restart. */
  reload(next: AgentConfig): void;
  readonly stopped: Promise<void>;
}

/**
 * Start the agent on the engine `host` gives (the kernel's: engine/native-host.ts; tests may give
 * memory), hardening the interfaces through `sysctls` (default: /proc/sys).
 */
export async function startAgent(config: AgentConfig, host: EngineHost, options: { sysctls?: SysctlFiles } = {}): Promise<RunningAgent> {
  const startedAt = new Date();
  const agentRecord = (fields: Parameters<typeof makeAgentRecord>[1]) => makeAgentRecord(config.enforcerId, fields);

  // ---- checks that touch nothing: any failure here leaves the host as it was ----
  host.preflight();
  const store = new StateStore(config.stateDir);
  store.prepare();
  const startProblems: string[] = [];
  // what an earlier agent left enforcing: its settings' original values, if we adopt its engine
  const previous = readEnforcementRecord(config.stateDir, (m) => startProblems.push(m));
  // (a placement's tunnels are the agent's own: they are created later, the underlay must exist)
  const existing = config.placement
    ? [...config.placement.sources.map((s) => s.interface), ...(config.placement.edge.device ? [config.placement.edge.device] : [])]
    : config.interfaces;
  for (const ifname of existing) host.interfaceIndex(ifname);
  // WireGuard: which one, and our key pair (made on the first start); without WireGuard the
  // agent stops here, it never falls back to clear text
  const placement = config.placement;
  const wireguard =
    placement?.edge.tunnel === 'wireguard'
      ? new WireguardDevices(detectWireguard(placement.edge.wireguardGo, 'edge.tunnel'), loadOrCreateKeyPair(config.stateDir), config.stateDir)
      : undefined;
  const wireguardIdentity = wireguard && { implementation: describeImplementation(wireguard.implementation), publicKey: wireguard.keys.publicKey };
  const isNats = (u: string) => u.startsWith('nats://');
  const natsPolicies = config.policy.filter(isNats).map((u) => parseNatsUrl(u, 'BUCKET'));
  const natsAudits = config.audit.filter(isNats).map((u) => parseNatsUrl(u, 'STREAM'));
  const trusted = config.policyPubkeys.length > 0 ? trustedKeys(config.policyPubkeys) : undefined;
  const nats = new NatsConnections(config.nats, `doorstep-agent ${config.enforcerId}`);
  nats.check([...natsPolicies, ...natsAudits]);
  const cleanups: (() => Promise<void> | void)[] = [() => nats.close()];
  const sinks: AuditSink[] = [];
  const natsSinks: NatsAuditSink[] = [];
  for (const a of config.audit.filter((u) => !isNats(u))) {
    const sink = new JsonLinesSink(a === '-' ? { stdout: true } : { path: a, maxBytes: config.auditMaxBytes, keep: config.auditKeep });
    sinks.push(sink);
    cleanups.push(() => sink.close());
    if (a === '-') continue;
    // the records about the enforcer itself, in a file no flood of sessions rotates away
    const control = new ControlRecordsSink(new JsonLinesSink({ path: `${a}.control`, maxBytes: config.auditMaxBytes, keep: config.auditKeep }));
    sinks.push(control);
    cleanups.push(() => control.close());
  }
  const recent = new RecentRecords();
  const uiToken = config.ui?.tokenFile ? readUiToken(config.ui.tokenFile) : undefined;
  // the web UI's views read the local API's routes once it serves, and the audit pipeline from its first record
  let apiRoutes: Routes = {};
  // the UI's chart and list come from the flow history when there is one (opened below)
  let historySink: HistorySink | undefined;
  const ui = config.ui
    ? agentViews({ enforcer: config.enforcerId, routes: () => apiRoutes, controller: () => controller, ...(config.history && { history: historyViews(() => historySink) }) })
    : undefined;
  const undo = async () => {
    for (const c of cleanups.reverse()) await c();
  };

  let controller: NetworkController | undefined;
  let pipeline: AuditPipeline | undefined;
  let engine: Engine | undefined;
  let reporter: StatusReporter | undefined;
  try {
    // the socket is bound now (it is the in-use check); requests get 503 until the agent is up
    const api = new LocalApi(config.socket);
    await api.listen();
    cleanups.push(() => api.close());

    let metricsServer: MetricsServer | undefined;
    let uiServer: UiServer | undefined;
    let metrics: AgentMetrics | undefined;

    // ---- the engine, the audit trail, the metrics and web UI ports (their binds are the last checks), then attach ----
    engine = host.open({ pinRoot: config.pinRoot });
    const openedEngine = engine;
    cleanups.push(() => openedEngine.close({ keepAttached: openedEngine.adopted })); // a fresh engine leaves no pins
    const failsafeChanged = engine.setFailsafe(config.failsafe);
    engine.setDenyEventBudget(config.denyEventBudget);
    engine.setDenyEventCap(config.denyEventCap);

    controller = new NetworkController({
      engine,
      store,
      enforcer: config.enforcerId,
      emit: (record) => pipeline?.emit(record), // the controller emits from attach() on, after the pipeline exists
      onInstall: (ms, outcome) => metrics?.observeInstall(ms, outcome),
      onOutcome: () => reporter?.poke(),
      ...(config.placement && { annotate: sessionAnnotator(config.placement) }),
    });
    const ctl = controller;
    cleanups.push(() => ctl.close()); // its policy thread
    for (const target of natsAudits) {
      natsSinks.push(
        new NatsAuditSink({
          connection: () => nats.get(target),
          stream: target.name,
          enforcer: config.enforcerId,
          maxBufferedRecords: config.auditBuffer,
          spoolDir: join(config.stateDir, `audit-spool.${natsToken(target.name)}`),
          legacySpoolFile: join(config.stateDir, `audit-spool.${natsToken(target.name)}.jsonl`),
          onError: (err) => pipeline?.emit(agentRecord({ event: 'error', message: `audit: ${err.message}` })),
        }),
      );
    }
    sinks.push(...natsSinks);
    // the flow history: one that cannot be opened (or later fails) is "no history", never a stop
    const history = config.history
      ? await HistorySink.open({
          path: config.history.path,
          limits: { maxBytes: config.history.maxBytes, maxAgeMs: config.history.maxAgeMs },
          onError: (err) => pipeline?.emit(agentRecord({ event: 'warning', message: `no flow history from now on: ${err.toLine()}` })),
        })
      : undefined;
    historySink = history;
    if (history) {
      sinks.push(history);
      cleanups.push(() => history.close());
    }
    pipeline = new AuditPipeline({
      context: controller.context,
      sinks: [...sinks, recent, ...(ui?.sinks ?? [])],
      summaryIntervalMs: config.summaryIntervalMs,
      ...(config.summaryIntervalMs > 0 && { summaries: new EngineSummaryMarks(openedEngine) }),
      floods: async () => {
        const stats = openedEngine.stats();
        const retired = openedEngine.takeRetiredRuleStats();
        // the version active now, its counters read on a thread of the addon's (a 10,000-rule
        // version's are ~20,000 rows); a rule that never matched owes no flood record, nor a baseline
        const { generation, rules } = await openedEngine.ruleStatsAsync('matched');
        const reading = {
          retired,
          generation,
          rules,
          heldWithoutRule: stats.heldWithoutRule,
          sketchWithoutRule: stats.sketchWithoutRule,
          samples: openedEngine.floodSamples(),
        };
        openedEngine.advanceFloodEpoch(); // the next interval's sketches and samples start empty
        return reading;
      },
      kernelStats: () => openedEngine.stats(), // the lost-event baseline: an adopted engine's past losses are not ours
      onError: (err) => pipeline?.emit(agentRecord({ event: 'error', message: `audit: ${err instanceof Error ? err.message : String(err)}` })),
    });
    if (config.summaryIntervalMs <= 0) openedEngine.setSummaryEpoch(0); // nothing to mark for
    const pipe = pipeline;
    const stalls = new StallMonitor();
    cleanups.push(() => stalls.close());
    const sessionCount = new SessionCounter(openedEngine);
    pipe.emit(agentRecord({ event: 'started', message: `doorstep agent pid ${process.pid}` }));
    if (history && !history.available) pipe.emit(agentRecord({ event: 'warning', message: `no flow history: ${history.failure?.toLine() ?? 'unavailable'}` }));
    for (const m of startProblems) pipe.emit(agentRecord({ event: 'warning', message: m }));
    for (const n of natsSinks) {
      const { unspooled } = n.stats();
      if (unspooled > 0) pipe.emit(agentRecord({ event: 'unspooled', message: `${unspooled} audit records the previous agent could not deliver to ${n.name} go first`, count: unspooled, sink: n.name }));
    }
    engine.onEvents((events) => pipe.handleEvents(events));

    if (config.metrics) {
      metrics = new AgentMetrics({
        enforcer: config.enforcerId,
        stats: () => openedEngine.stats(),
        ruleStats: () => {
          const names = ctl.current?.names;
          const named = new Map<string, { packets: number; bytes: number }>();
          // the rules that matched: a quiet rule of a 10,000-rule blocklist costs a scrape two series for nothing
          for (const [index, stat] of openedEngine.ruleStats('matched')) named.set(ruleName(names, index), stat);
          return named;
        },
        sessionCount: () => sessionCount.count(),
        eventLoop: () => stalls.read('metrics'),
        events: () => {
          const s = pipe.stats();
          return { read: s.eventsRead, lost: s.eventsLost };
        },
        policy: () => ({ generation: openedEngine.activePolicy()?.generation ?? 0, version: ctl.current?.version ?? null }),
        interfaces: () => openedEngine.attachments().map((a) => ({ name: a.ifname, mode: a.mode })),
        auditSinks: () => [
          ...natsSinks.map((n) => {
            const st = n.stats();
            return { sink: n.name, published: st.publishedRecords, buffered: st.buffered, dropped: st.dropped };
          }),
          ...(history ? [{ sink: history.name, published: history.stored, buffered: history.buffered, dropped: history.dropped }] : []),
        ],
        historyAvailable: () => history?.available,
      });
      metricsServer = await metrics.serve(config.metrics.host, config.metrics.port);
      const server = metricsServer;
      const host = server.address.includes(':') ? `[${server.address}]` : server.address;
      pipe.emit(agentRecord({ event: 'serving', message: `metrics at http://${host}:${server.port}/metrics` }));
      cleanups.push(() => server.close());
    }
    if (config.ui && ui) {
      const server = (uiServer = await serveUi({ host: config.ui.host, port: config.ui.port, token: uiToken, views: ui.views }));
      pipe.emit(agentRecord({ event: 'serving', message: `web UI at ${server.url}${uiToken ? ' (token required)' : ''}` }));
      cleanups.push(() => server.close());
    }

    // an earlier agent's values stay the originals only while its engine is still there (a reboot
    // empties bpffs and resets the settings)
    const inherited = openedEngine.adopted ? previous : null;
    const hardening = new Hardening(hardeningPlan(config.interfaces), options.sysctls, inherited?.hardening ?? []);
    // ---- the placement's tunnels exist before the engine attaches to them; nothing is forwarded yet ----
    const forwarding = placement ? new Forwarding(placement, forwardingPlan(placement), wireguard, inherited?.forwarding.sysctls ?? []) : undefined;
    // what stays in place when this agent stops, for the next one and for `doorstep detach`
    const writeRecord = () =>
      writeEnforcementRecord(config.stateDir, {
        agentPid: process.pid,
        pinRoot: config.pinRoot,
        interfaces: config.interfaces,
        hardening: hardening.recorded(),
        forwarding: forwarding?.recorded() ?? NO_FORWARDING,
      });
    // a start that fails on a fresh engine takes everything back: nothing stays to record
    cleanups.push(() => {
      if (!openedEngine.adopted) removeEnforcementRecord(config.stateDir);
    });
    if (forwarding) {
      cleanups.push(() => forwarding.removeTunnels());
      writeRecord(); // before the tunnels exist: a crash now leaves them named
      await forwarding.createTunnels();
      const adopted = new Set(forwarding.state().adopted);
      if (wireguard?.keys.created) pipe.emit(agentRecord({ event: 'tunnel', message: `made a WireGuard key pair in ${wireguard.keys.path}; public key ${wireguard.keys.publicKey}` }));
      for (const t of forwarding.placement.tunnels) {
        const fields = tunnelFields(forwarding.placement, t, wireguardIdentity);
        pipe.emit(agentRecord({ event: 'tunnel', interface: t.device, adopted: adopted.has(t.device), tunnel: fields, message: tunnelSentence(t.device, fields) }));
      }
    }

    // ---- attached in default deny before any policy work: on a fresh engine every IP packet
    // is dropped from here until a policy is in ----
    controller.attach(config.interfaces, config.xdpMode);
    const rolesChanged = applyRoles(openedEngine, config.placement, host);
    // ---- closed to Router Advertisements, redirects and source routes before a policy could let
    // one through (a rule may allow ICMP), so no host on a source network steers the enforcer ----
    const unharden = () => {
      const { restored, failed } = hardening.restore();
      for (const r of hardeningRecords(restored, 'unhardened')) pipe.emit(agentRecord(r));
      if (failed.length > 0) pipe.emit(agentRecord({ event: 'error', message: `hardening: could not restore ${failed.join('; ')}` }));
    };
    cleanups.push(unharden); // also what a failing apply() set before it failed
    for (const r of hardeningRecords(hardening.apply(), 'hardening')) pipe.emit(agentRecord(r));
    writeRecord();

    // ---- the policy: carry on from the engine, or restore the last one, then the source ----
    await controller.resume();
    // an adopted cache may hold verdicts an earlier failsafe gave: a new generation re-checks them
    // (and a tenant or role an interface no longer has)
    if ((failsafeChanged || rolesChanged) && engine.adopted) await controller.reclassify();
    // ---- forwarding on: accepted traffic now goes to the edge (or hairpins back) ----
    if (forwarding) {
      cleanups.push(() => forwarding.unroute());
      forwarding.route();
      writeRecord();
      const p = forwarding.placement;
      const over = p.tunnels.map((t) => (t.kind === 'wireguard' ? `${t.device} (WireGuard, ${wireguardIdentity?.implementation})` : `${t.device} (VXLAN ${t.vni}, clear text: trusted underlay only)`));
      pipe.emit(agentRecord({ event: 'forwarding', message: `${p.kind}: ${p.sources.map((s) => s.name).join(', ')} → edge ${p.edge.remote} over ${over.join(', ')}${p.local.length ? `; hairpin for ${p.local.map((l) => l.text).join(', ')}` : ''}` }));
    }
    const sources: PolicySourceHandle[] = [];
    const onSourceError = (err: unknown) => pipe.emit(agentRecord({ event: 'error', message: `policy source: ${err instanceof Error ? err.message : String(err)}` }));
    const paths = config.policy.filter((p) => !isNats(p));
    if (paths.length > 0) sources.push(new FolderSource(paths, { onError: onSourceError }));
    const onSourceWarning = (message: string) => pipe.emit(agentRecord({ event: 'warning', message: `policy source: ${message}` }));
    const natsSources = natsPolicies.map((target) => new NatsSource({
      connection: () => nats.get(target),
      bucket: target.name,
      labels: config.labels,
      ...(trusted && { trustedKeys: trusted, marks: new FileMarkStore(config.stateDir, target.name) }),
      onError: onSourceError,
      onWarning: onSourceWarning,
      onSyncChange: () => reporter?.poke(), // the fleet sees stale and live again at once
    }));
    sources.push(...natsSources);
    const policySync = () => natsSources[0]?.sync();
    const statusTarget = natsPolicies[0];
    if (statusTarget) {
      const fleetReporter = new StatusReporter({
        connection: () => nats.get(statusTarget),
        bucket: config.statusBucket,
        ttlMs: config.statusTtlMs,
        enforcer: config.enforcerId,
        report: () => statusReport(config, startedAt, ctl, openedEngine, pipe, sessionCount.latest(), wireguardIdentity?.publicKey, policySync()),
        onError: onSourceError,
      });
      reporter = fleetReporter;
      fleetReporter.start();
      cleanups.push(() => fleetReporter.close());
    }
    for (const source of sources) await source.start((candidate) => void ctl.apply(candidate));
    cleanups.push(async () => {
      for (const s of sources) await s.close();
    });

    const lostTimer = setInterval(() => pipe.checkKernelLost(openedEngine.stats()), LOST_CHECK_MS);
    cleanups.push(() => clearInterval(lostTimer));
    // a session idle for one to two periods is classified again when it resumes (its entry carries on)
    let aging = Promise.resolve();
    const agingTimer = setInterval(() => {
      aging = openedEngine.ageFlowFilterAsync().catch((err: unknown) => {
        pipe.emit(agentRecord({ event: 'error', message: `flow filter: ${err instanceof Error ? err.message : String(err)}` }));
      });
    }, FLOW_FILTER_AGING_MS);
    cleanups.push(async () => {
      clearInterval(agingTimer);
      await aging; // the engine's maps stay open until the write is done
    });

    const toWall = monotonicToWall();
    const tunnels = (): TunnelStatus[] => {
      if (!forwarding) return [];
      const up = new Set(forwarding.state().tunnels);
      const now = Math.floor(Date.now() / 1000);
      return forwarding.placement.tunnels.map((t) => tunnelStatus(forwarding.placement, t, wireguardIdentity, t.kind === 'wireguard' ? wireguard?.show(t.device) : undefined, up.has(t.device), now));
    };
    apiRoutes = agentRoutes({ config, controller, engine, pipeline, recent, startedAt, toWall, sessionCount: () => sessionCount.count(), stalls, tunnels, policySync, history });
    api.serve(apiRoutes);

    let resolveStopped: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
    let stopping: Promise<void> | undefined;
    const stop = (reason: string): Promise<void> => {
      stopping ??= (async () => {
        pipe.emit(agentRecord({ event: 'stopping', message: reason }));
        clearInterval(lostTimer);
        for (const s of sources) await s.close();
        await reporter?.close();
        await api.close();
        await metricsServer?.close();
        await uiServer?.close();
        await ctl.close(); // no candidate can arrive any more: the last one finishes, the policy thread stops
        clearInterval(agingTimer);
        await aging; // the filter's maps stay open until its write is done
        await pipe.stopReading(); // its last flood records: nothing reads the engine after this
        pipe.checkKernelLost(openedEngine.stats());
        // the engine's fds close; its links, pins, tunnels, routes and settings stay, enforcing
        openedEngine.close({ keepAttached: true });
        if (config.detachOnExit) {
          try {
            const out = detachEnforcement({ stateDir: config.stateDir, pinRoot: config.pinRoot, host, ...(options.sysctls && { sysctls: options.sysctls }) });
            if (out.unrouted) pipe.emit(agentRecord({ event: 'unrouted', message: 'routes, rules and forwarding settings removed' }));
            for (const ifname of out.detached) pipe.emit(agentRecord({ event: 'detached', interface: ifname }));
            for (const r of hardeningRecords(out.unhardened, 'unhardened')) pipe.emit(agentRecord(r));
            if (out.failed.length > 0) pipe.emit(agentRecord({ event: 'error', message: `detach: could not restore ${out.failed.join('; ')}` }));
          } catch (err) {
            // the stop goes on (the audit trail still closes); `doorstep detach` can finish the job
            pipe.emit(agentRecord({ event: 'error', message: `detach: ${err instanceof Error ? err.message : String(err)}; run doorstep detach` }));
          }
        }
        pipe.emit(agentRecord({ event: 'stopped', message: config.detachOnExit ? 'detached (--detach-on-exit)' : 'the engine keeps enforcing for the next agent; `doorstep detach` removes it' }));
        // the NATS sinks last: every record above reaches them; what NATS does not take (at once
        // when it is away, else within the close timeout) is kept in the state dir for the next agent
        for (const n of natsSinks) {
          await pipe.closeSink(n);
          const { spooled } = n.stats();
          if (spooled > 0) pipe.emit(agentRecord({ event: 'spooled', message: `${spooled} audit records for ${n.name} kept in ${config.stateDir} for the next agent`, count: spooled, sink: n.name }));
        }
        await pipe.close();
        await nats.close();
        resolveStopped();
      })();
      return stopping;
    };
    let running = config;
    const reload = (next: AgentConfig) => {
      const plan = reloadPlan(running, next);
      const applied: string[] = [];
      if (plan.denyEventBudget !== undefined) {
        openedEngine.setDenyEventBudget(plan.denyEventBudget);
        applied.push(`denyEventBudget ${plan.denyEventBudget}`);
      }
      if (plan.denyEventCap !== undefined) {
        openedEngine.setDenyEventCap(plan.denyEventCap);
        applied.push(`denyEventCap ${plan.denyEventCap}`);
      }
      if (plan.failsafe && openedEngine.setFailsafe(plan.failsafe)) {
        // cached sessions keep the old failsafe's verdicts until a new generation re-checks them
        applied.push(`failsafe (${plan.failsafe.length} prefixes)`);
        void ctl.reclassify().catch((err: unknown) => pipe.emit(agentRecord({ event: 'error', message: `reload: re-classifying after the failsafe change: ${err instanceof Error ? err.message : String(err)}` })));
      }
      running = { ...running, denyEventBudget: next.denyEventBudget, denyEventCap: next.denyEventCap, failsafe: next.failsafe };
      if (applied.length > 0) pipe.emit(agentRecord({ event: 'reloaded', message: `applied: ${applied.join(', ')}` }));
      if (plan.needRestart.length > 0) {
        pipe.emit(agentRecord({ event: 'error', message: `reload: ${plan.needRestart.join(', ')} changed; the running settings stay until a restart (systemctl restart doorstep)` }));
      }
      if (!forwarding || !wireguard || !next.placement) {
        if (applied.length === 0 && plan.needRestart.length === 0) pipe.emit(agentRecord({ event: 'reloaded', message: 'no setting changed' }));
        return;
      }
      const changes = peerChanges(forwarding.placement, next.placement);
      if ('problem' in changes) {
        pipe.emit(agentRecord({ event: 'error', message: `reload: nothing changed: ${changes.problem}; restart the agent for the rest` }));
        return;
      }
      for (const { device, wireguard: settings } of changes.changed) {
        const t = forwarding.placement.tunnels.find((x) => x.device === device)!;
        try {
          wireguard.configure({ ...t, wireguard: settings });
          t.wireguard = settings; // the placement's tunnel, which status and the fleet report read
          const fields = tunnelFields(forwarding.placement, t, wireguardIdentity);
          pipe.emit(agentRecord({ event: 'reloaded', interface: device, tunnel: fields, message: tunnelSentence(device, fields) }));
        } catch (err) {
          pipe.emit(agentRecord({ event: 'error', interface: device, message: `reload: ${err instanceof Error ? err.message : String(err)}` }));
        }
      }
      if (changes.changed.length === 0) pipe.emit(agentRecord({ event: 'reloaded', message: 'no tunnel setting changed' }));
      reporter?.poke();
    };
    return { controller, pipeline, stop, stopped, reload };
  } catch (err) {
    if (engine) {
      // nothing half-attached: links this run created go; adopted ones keep enforcing
      for (const a of engine.attachments()) if (!a.adopted) engine.detach(a.ifname);
    }
    await undo();
    throw err;
  }
}

/**
 * Interface roles and tenants, and the networks each infra tenant serves (hairpin replies), for
 * the engine; without a placement every interface is a plain source. Returns whether a role or
 * tenant changed (an adopted cache then needs re-classifying).
 */
function applyRoles(engine: Engine, placement: Placement | undefined, host: EngineHost): boolean {
  const roles = placement
    ? enforcedInterfaces(placement).map((i) => ({ ifindex: host.interfaceIndex(i.name), role: i.role, tenant: i.tenant ? tenantId(i.tenant) : 0, ...(i.l3 && { l3: true }) }))
    : [];
  const nets =
    placement?.kind === 'infra'
      ? placement.sources.flatMap((s) => s.networks.map((cidr) => ({ cidr, tenant: tenantId(s.name) })))
      : [];
  const rolesChanged = engine.setInterfaceRoles(roles);
  const netsChanged = engine.setTenantNetworks(nets);
  return rolesChanged || netsChanged;
}

/** This enforcer's entry in the fleet's status bucket. */
function statusReport(config: AgentConfig, startedAt: Date, ctl: NetworkController, engine: Engine, pipe: AuditPipeline, sessions: number, wireguardKey: string | undefined, sync: SourceSync | undefined): EnforcerStatus {
  const active = engine.activePolicy();
  const current = ctl.current;
  const rejected = ctl.lastRejected;
  const stats = engine.stats();
  const events = pipe.stats();
  return {
    format: 1,
    enforcer: config.enforcerId,
    labels: config.labels,
    health: rejected ? 'rejecting' : active ? 'enforcing' : 'default-deny',
    policy: active
      ? {
          version: current?.version ?? null,
          generation: active.generation,
          ...(current?.revision !== undefined && { revision: current.revision }),
          origin: current?.origin ?? 'engine',
          rules: active.ruleCount,
          installedAt: current?.installedAt ?? startedAt.toISOString(),
        }
      : null,
    rejected: rejected
      ? { ...(rejected.revision !== undefined && { revision: rejected.revision }), at: rejected.at, problems: rejected.problems.slice(0, 5).map((p) => formatProblem(p as Parameters<typeof formatProblem>[0])) }
      : null,
    counters: {
      passed: stats.counters.PASS_PACKETS,
      dropped: stats.counters.DROP_PACKETS,
      sessions,
      eventsLost: events.eventsLost,
      auditDropped: events.sinkDropped,
    },
    interfaces: engine.attachments().map((a) => ({ name: a.ifname, mode: a.mode })),
    ...(sync && { sync }),
    ...(config.placement && wireguardKey && { wireguard: { publicKey: wireguardKey, tunnels: edgePeersOf(config.enforcerId, config.placement, wireguardKey) } }),
    agent: { pid: process.pid, startedAt: startedAt.toISOString() },
    updatedAt: new Date().toISOString(),
  };
}

/** How old a session count may be when status, metrics or the fleet report read it. */
const SESSION_COUNT_MAX_AGE_MS = 5000;

/**
 * The session caches' entry count for status, metrics and the fleet report, counted on a thread
 * of the addon's (Engine.sessionCountAsync) so no reader stalls the event loop; concurrent readers share
 * one walk, and a count younger than SESSION_COUNT_MAX_AGE_MS is reused (a walk of two full
 * caches costs ~0.1 s of CPU, not to be paid on every request).
 */
class SessionCounter {
  private last = 0;
  private at = -Infinity;
  private running: Promise<number> | undefined;

  constructor(private readonly engine: Engine) {}

  count(): Promise<number> {
    if (performance.now() - this.at < SESSION_COUNT_MAX_AGE_MS) return Promise.resolve(this.last);
    this.running ??= this.engine
      .sessionCountAsync()
      .then((n) => {
        this.at = performance.now();
        return (this.last = n);
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** The last count, and a new one started (for readers that cannot wait). */
  latest(): number {
    this.count().catch(() => undefined);
    return this.last;
  }
}
