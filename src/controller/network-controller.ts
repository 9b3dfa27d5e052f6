// SPDX-License-Identifier: Apache-2.0
// The network controller: owns the engine for the agent. It attaches in default deny (or adopts
// what a previous agent left pinned), then turns policy candidates into installed versions one at
// a time: validate and compile the whole set, write it into the inactive slot, activate it with
// one atomic switch, read the engine's generation back, persist it. A candidate that fails any
// step is rejected with an audit record and the version in force stays in force. Compiles run
// on the policy thread (policy-worker.ts), never on the event loop, and the IRs stay there: of
// each version the controller keeps its rules' names (audit/rule-names.ts) and its documents.
// close() stops the thread.
import { DoorstepError, PolicyError } from '../errors.js';
import type { Attachment, Engine, XdpMode } from '../engine/engine-interface.js';
import { agentRecord, type AuditRecord, type PolicyProblemRecord, type PolicyRecord } from '../audit/records.js';
import type { EnrichContext } from '../audit/session-record.js';
import { ruleCount, type RuleNames } from '../audit/rule-names.js';
import type { PolicyCandidate, PolicyText } from '../watcher/source.js';
import { PolicyWorker } from './policy-worker.js';
import type { CompiledVersion } from './policy-worker-protocol.js';
import type { StateStore } from '../host/state-store.js';

/** How many past generations keep their rules' names, so late events from the ring buffer still get them. */
const GENERATIONS_KEPT = 8;

export interface InstalledPolicy {
  version: string;
  generation: number;
  origin: string;
  /** The source's revision of this version (a NATS bucket revision), when it has one. */
  revision?: number;
  rules: number;
  installedAt: string;
  /** Its rules' names; the IR is the policy thread's (policyThread answers about it). */
  names: RuleNames;
  sources: PolicyText[];
}

export type ApplyOutcome =
  | { status: 'installed' | 'unchanged'; version: string; generation: number; rules: number; installMs: number; warnings: string[] }
  | { status: 'rejected'; problems: PolicyProblemRecord[]; inForce: string | null };

export interface ControllerOptions {
  engine: Engine;
  store: StateStore;
  enforcer: string;
  /** Where policy and agent records go (the audit pipeline). */
  emit: (record: AuditRecord) => void;
  /** Install durations and outcomes, for metrics. */
  onInstall?: (durationMs: number, outcome: 'installed' | 'rejected') => void;
  /** After every candidate, whatever its outcome (also `unchanged`, which clears a rejection): the fleet status. */
  onOutcome?: (outcome: ApplyOutcome) => void;
  /** Adds the placement's view of a session record (tenant, path). */
  annotate?: EnrichContext['annotate'];
}

export class NetworkController {
  private installed: InstalledPolicy | null = null;
  /** The newest candidate, when it was rejected (cleared by the next install): fleet status shows it. */
  lastRejected: { origin: string; revision?: number; at: string; problems: PolicyProblemRecord[] } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly interfaces = new Map<number, string>();
  private readonly policies = new Map<number, RuleNames>();
  /** Compiles, and holds the IRs: explain, diff and the UI's rules and lint ask it about `current.version`. */
  readonly policyThread = new PolicyWorker();
  /** Names for the audit pipeline: ifindex → interface, generation → rule names. Live views, not copies. */
  readonly context: EnrichContext;

  constructor(private readonly options: ControllerOptions) {
    this.context = { enforcer: options.enforcer, interfaces: this.interfaces, policies: this.policies, ...(options.annotate && { annotate: options.annotate }) };
  }

  get engine(): Engine {
    return this.options.engine;
  }

  /** The version in force, or null (default deny, or an adopted version whose documents are unknown). */
  get current(): InstalledPolicy | null {
    return this.installed;
  }

  private record(fields: Omit<PolicyRecord, 'time' | 'enforcer' | 'interface' | 'type'>): void {
    this.options.emit({ time: new Date().toISOString(), type: 'policy', enforcer: this.options.enforcer, interface: '*', ...fields });
  }

  /**
   * Attach to every interface. On a fresh engine nothing is installed yet, so from this moment
   * every IP packet is dropped (failsafe aside) until a policy is in.
   */
  attach(interfaces: readonly string[], mode: XdpMode): Attachment[] {
    const done: Attachment[] = [];
    try {
      for (const ifname of interfaces) {
        const a = this.engine.attach(ifname, mode);
        this.interfaces.set(a.ifindex, a.ifname);
        done.push(a);
        this.options.emit(agentRecord(this.options.enforcer, { event: 'attached', interface: a.ifname, mode: a.mode, adopted: a.adopted }));
      }
      return done;
    } catch (err) {
      // nothing half-attached: undo this run's own attachments (adopted ones keep enforcing)
      for (const a of done) if (!a.adopted) this.engine.detach(a.ifname);
      throw err;
    }
  }

  /**
   * After attach: carry on from what the engine enforces. An adopted engine whose active
   * generation is the one the state dir recorded keeps running untouched (no flow is cut); an
   * engine with nothing installed gets the persisted policy back, so a broken or unreachable
   * source does not mean deny-all forever.
   */
  async resume(): Promise<void> {
    const state = this.options.store.load((message) =>
      this.options.emit(agentRecord(this.options.enforcer, { event: 'error', message })),
    );
    const active = this.engine.activePolicy();
    if (active && state && active.generation === state.generation) {
      try {
        // the names name events; the tables are already in the kernel
        const { version, names } = await this.policyThread.compile(state.sources);
        this.remember(active.generation, names);
        this.installed = {
          version,
          generation: active.generation,
          origin: state.origin,
          rules: ruleCount(names),
          installedAt: state.installedAt,
          names,
          sources: state.sources,
        };
        this.policyThread.installed(version, state.sources).catch(() => undefined); // a thread that stops is given it again
        this.record({ status: 'adopted', source: state.origin, policyVersion: version, generation: active.generation, rules: ruleCount(names) });
        return;
      } catch {
        // the persisted documents no longer compile (an upgrade changed the language): reinstall below
      }
    }
    if (active && !state) {
      // enforcing a version we have no documents for: keep it until a candidate replaces it
      this.record({ status: 'adopted', source: 'engine', generation: active.generation, rules: active.ruleCount });
      return;
    }
    if (state) {
      await this.apply({ origin: 'state', sources: state.sources }, { restoredFrom: state.origin });
    }
  }

  /**
   * Install the version in force again, under a new generation, so every cached session is
   * re-classified (after a failsafe change: the cache may hold verdicts the failsafe gave).
   */
  async reclassify(): Promise<void> {
    const current = this.installed;
    if (current) await this.apply({ origin: current.origin, sources: current.sources }, { force: true });
  }

  /** Install a candidate; candidates are serialized, each sees the result of the one before. */
  apply(candidate: PolicyCandidate, options: { restoredFrom?: string; force?: boolean } = {}): Promise<ApplyOutcome> {
    const run = this.queue.then(async () => {
      const outcome = await this.applyNow(candidate, options);
      this.options.onOutcome?.(outcome);
      return outcome;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Wait for the candidates already given, then stop the policy thread. */
  async close(): Promise<void> {
    await this.queue;
    await this.policyThread.close();
  }

  private async applyNow(candidate: PolicyCandidate, options: { restoredFrom?: string; force?: boolean }): Promise<ApplyOutcome> {
    const started = process.hrtime.bigint();
    if (candidate.refusals?.length) {
      return this.reject(candidate, new PolicyError(candidate.refusals.map((r) => ({ code: r.code, file: r.file, line: 0, column: 0, field: 'signature', message: r.message }))), started);
    }
    let compiled: CompiledVersion;
    try {
      compiled = await this.policyThread.compile(candidate.sources);
    } catch (err) {
      return this.reject(candidate, err, started);
    }
    const { version, names, warnings } = compiled;
    const rules = ruleCount(names);
    if (!options.force && this.installed && this.installed.version === version) {
      if (candidate.revision !== undefined) this.installed.revision = candidate.revision; // the same set, seen at a newer revision
      this.lastRejected = null;
      return { status: 'unchanged', version, generation: this.installed.generation, rules, installMs: 0, warnings };
    }
    let result: Awaited<ReturnType<Engine['installAsync']>>;
    try {
      const ir = this.engine.decidesByIr ? await this.policyThread.ir(version) : undefined;
      // the grace periods off the event loop; the audit names the new generation's rules from the
      // moment packets can meet it, as events of it arrive while the install settles
      result = await this.engine.installAsync({ image: compiled.image, ...(ir && { ir }) }, (generation) => this.remember(generation, names));
      const realized = this.engine.activePolicy();
      if (realized?.generation !== result.generation) {
        throw new DoorstepError('DS_E_BPF_MAP', `the engine reports generation ${realized?.generation ?? 'none'} after installing generation ${result.generation}`);
      }
    } catch (err) {
      return this.reject(candidate, err, started);
    }
    const installMs = Number(process.hrtime.bigint() - started) / 1e6;
    const origin = options.restoredFrom ?? candidate.origin;
    this.remember(result.generation, names);
    this.installed = {
      version,
      generation: result.generation,
      origin,
      ...(candidate.revision !== undefined && { revision: candidate.revision }),
      rules,
      installedAt: new Date().toISOString(),
      names,
      sources: candidate.sources,
    };
    this.policyThread.installed(version, candidate.sources).catch(() => undefined); // a thread that stops is given it again
    this.lastRejected = null;
    try {
      // the documents' JSON comes from the policy thread, encoded: the event loop writes, not escapes
      await this.options.store.save({ version, generation: result.generation, origin, installedAt: this.installed.installedAt, sources: candidate.sources }, { sources: compiled.sourcesJson });
    } catch (err) {
      this.options.emit(agentRecord(this.options.enforcer, { event: 'error', message: `installed, but could not persist the policy in the state dir: ${String(err)}` }));
    }
    this.options.onInstall?.(installMs, 'installed');
    this.record({
      status: options.restoredFrom ? 'restored' : 'installed',
      source: candidate.origin === 'state' ? `state (${origin})` : candidate.origin,
      policyVersion: version,
      generation: result.generation,
      rules,
      installMs: Math.round(installMs * 10) / 10,
      ...(warnings.length > 0 && { warnings }),
    });
    return { status: 'installed', version, generation: result.generation, rules, installMs, warnings };
  }

  private reject(candidate: PolicyCandidate, err: unknown, started: bigint): ApplyOutcome {
    const problems: PolicyProblemRecord[] =
      err instanceof PolicyError
        ? err.problems.map((p) => ({ code: p.code, file: p.file, line: p.line, column: p.column, field: p.field, message: p.message }))
        : [
            {
              code: err instanceof DoorstepError ? err.code : 'DS_E_BPF_MAP',
              file: candidate.sources[0]?.file ?? candidate.origin,
              line: 0,
              column: 0,
              field: '',
              message: err instanceof DoorstepError ? err.toLine() : String(err),
            },
          ];
    const inForce = this.installed?.version ?? null;
    this.lastRejected = { origin: candidate.origin, ...(candidate.revision !== undefined && { revision: candidate.revision }), at: new Date().toISOString(), problems };
    this.options.onInstall?.(Number(process.hrtime.bigint() - started) / 1e6, 'rejected');
    this.record({ status: 'rejected', source: candidate.origin, problems, ...(inForce && { inForce }) });
    return { status: 'rejected', problems, inForce };
  }

  /** Name `generation`'s rules (an install names it twice: before its switch and after). */
  private remember(generation: number, names: RuleNames): void {
    if (this.policies.get(generation)?.version !== names.version) this.policies.set(generation, names);
    for (const g of this.policies.keys()) if (g <= generation - GENERATIONS_KEPT) this.policies.delete(g);
  }
}
