// SPDX-License-Identifier: Apache-2.0
// The engine seam: what the controller, the agent, the local API and the audit pipeline may ask of
// the XDP policy engine, and the values they exchange. Two implementations: NativeEngine
// (engine.ts, the kernel through the addon) and MemoryEngine (memory-engine.ts, in memory, its
// verdicts from the reference evaluator) for tests that need no root. Nothing here touches the
// kernel or imports the addon; the native engine is chosen at the edge (cli/agent.ts).
import { sizeOf } from '../abi/codec.js';
import { Layouts } from '../abi/generated.js';
import type { CpuStats, FloodSample, RawEvent, RuleStat, SessionKey, SessionValue } from '../abi/records.js';
import type { PolicyImage } from '../policy/tables/image.js';
import type { Cidr, PolicyIr } from '../policy/ir/ir.js';

/** Which rules' counters Engine.ruleStats() reads out: all, those that matched a packet, those that held sessions back. */
export type RuleStatsFilter = 'all' | 'matched' | 'held';

export type XdpMode = 'native' | 'generic' | 'auto';

export interface Attachment {
  ifname: string;
  ifindex: number;
  mode: 'native' | 'generic';
  /** True when a pinned link left by an earlier engine was adopted rather than created. */
  adopted: boolean;
}

export interface ActivePolicy {
  generation: number;
  slot: number;
  ruleCount: number;
}

export interface InstallResult extends ActivePolicy {
  version: string;
  durationMs: number;
  /** Rules (from index 0) that have their own counters; fewer than ruleCount + 1 when over capacity. */
  countedRules: number;
}

export interface Session {
  key: SessionKey;
  value: SessionValue;
}

/** An IPv4 or IPv6 prefix: parsed (src/policy/ir/cidr.ts) or as text ("10.2.0.0/16"). */
export type Prefix = Pick<Cidr, 'family' | 'addr' | 'len'>;

export interface FailsafeEntry {
  cidr: Prefix;
  /** IP protocol number; 0 or absent = any. */
  protocol?: number;
  /** Destination port range; absent = any. */
  ports?: { lo: number; hi: number };
}

/** A network a tenant serves behind this enforcer (Engine.setTenantNetworks). */
export interface TenantNetwork {
  cidr: Prefix | string;
  /** The tenant's id (tenantId(name) of src/policy/ir/tenants.ts). */
  tenant: number;
}

export interface ExplainOptions {
  /**
   * The tenant id (tenantId(name)) the packet comes from, as ds_xdp_ingress learns it from the
   * ingress interface; 0 or absent = none.
   */
  tenant?: number;
}

/** What the active tables decide for one frame as a new session (ds_xdp_explain, abi.h's ds_explain_result). */
export interface EngineExplanation {
  /** Action.ALLOW or Action.DENY. */
  action: number;
  /** Reason.*: POLICY (a rule or the default), NO_POLICY, FAILSAFE, MALFORMED, NON_IP, FRAG_UNKNOWN. */
  reason: number;
  /** Deciding rule index when reason is POLICY (0 = the policy default). */
  rule: number;
  /** Active policy generation; 0 = none installed. */
  generation: number;
  /** The decision asks for an audit event. */
  log: boolean;
  /** ExplainFlag.* bits: ICMP error (may pass as icmp-related), first or later fragment. */
  flags: number;
  /** The tenant id the packet was explained for (0 = none). */
  tenant: number;
  /** The flow as the datapath parsed it (family 0 when the frame is not IP). */
  key: SessionKey;
}

/** How often the agent ages ds_flow_filter (Engine.ageFlowFilter): a session idle for one to two periods is classified again when it resumes. */
export const FLOW_FILTER_AGING_MS = 30_000;

/** A version's per-rule counters as they stood when it stopped being active. */
export interface RetiredRuleStats {
  generation: number;
  rules: Map<number, RuleStat>;
}

/** Bytes of a ds_dirty record (Engine.drainDirty). */
export const DIRTY_SIZE = sizeOf('ds_dirty');
/** Bytes of a flow's digest (ds_dirty.digest: where ds_denies keeps it, src/engine/deny-buckets.ts). */
export const DIGEST_SIZE = Layouts.ds_dirty.fields.digest.size;

/** A compiled version as an engine installs it: the map images, and the IR they were built from. */
export interface InstallableVersion {
  image: PolicyImage;
  /**
   * Required by an engine that decides by it (Engine.decidesByIr: the in-memory one, by the
   * reference evaluator); the native one reads the image only, and the agent gives it none.
   */
  ir?: PolicyIr;
}

/** An interface's role and tenant (Engine.setInterfaceRoles). */
export interface InterfaceRole {
  ifindex: number;
  role: 'source' | 'fabric';
  tenant?: number;
  /** No link-layer header (WireGuard, TUN): frames start at the IP header. */
  l3?: boolean;
}

/**
 * The policy engine as the control plane sees it. Each method's full contract is written on
 * NativeEngine (engine.ts); MemoryEngine keeps the same semantics for what it models and says
 * what it does not.
 */
export interface Engine {
  /** True when the engine took over maps (and a policy) an earlier engine left pinned. */
  readonly adopted: boolean;
  /** True when installAsync needs the version's IR beside its image (the in-memory engine). */
  readonly decidesByIr: boolean;

  // attachment
  /** Attach to an interface (native XDP, else generic, unless a mode is forced); an attachment left pinned is adopted. */
  attach(ifname: string, mode?: XdpMode): Attachment;
  detach(ifname: string): void;
  attachments(): Attachment[];

  // policy
  /** The active version's descriptor, or null when none is installed (default deny). */
  activePolicy(): ActivePolicy | null;
  /**
   * Install a version atomically under a new generation; on failure the previous one stays
   * active. `beforeSwitch` hears the new generation just before packets can meet it. Installs
   * must not overlap (the controller serializes them).
   */
  installAsync(version: InstallableVersion, beforeSwitch?: (generation: number) => void): Promise<InstallResult>;
  /** Remove the active policy: back to default deny. */
  uninstall(): void;

  // settings (each returns whether anything changed, where a caller must then reclassify)
  setFailsafe(entries: FailsafeEntry[]): boolean;
  setInterfaceRoles(entries: readonly InterfaceRole[]): boolean;
  setTenantNetworks(entries: readonly TenantNetwork[]): boolean;
  setDenyEventBudget(perSecond: number): void;
  setDenyEventCap(perSecond: number): void;

  // observation
  stats(): CpuStats;
  ruleStats(which?: RuleStatsFilter): Map<number, RuleStat>;
  /** ruleStats() of the version active at the call (generation 0: none), read without holding the event loop. */
  ruleStatsAsync(which?: RuleStatsFilter): Promise<{ generation: number; rules: Map<number, RuleStat> }>;
  takeRetiredRuleStats(): RetiredRuleStats[];
  advanceFloodEpoch(): number;
  floodSamples(): FloodSample[];
  /** Subscribe to session events, delivered in batches; returns the unsubscribe. */
  onEvents(handler: (events: RawEvent[]) => void): () => void;
  /** What the active tables decide for `frame` as a new session; writes nothing. */
  explain(frame: Buffer, options?: ExplainOptions): EngineExplanation;

  // sessions
  lookupSession(key: SessionKey): SessionValue | null;
  /** The cached sessions, a slice at a time, yielding to the event loop between slices. */
  sessionSlices(max?: number): AsyncGenerator<Session[]>;
  /** Entries in the session caches, counted without holding the event loop. */
  sessionCountAsync(): Promise<number>;
  /** `count` raw keys (SESSION_KEY_SIZE each), with their digests (DIGEST_SIZE each, from ds_dirty), looked up: raw values, and per key 1 or 2 found (allowed, denied) / 0 gone. */
  lookupSessions(keys: Buffer, digests: Buffer, count: number): { values: Buffer; found: Buffer };
  /** Age the flow filter, a shortcut of the datapath's (call it every FLOW_FILTER_AGING_MS); no verdict changes. */
  ageFlowFilterAsync(): Promise<void>;

  // summary marks
  summaryEpoch(): number;
  setSummaryEpoch(epoch: number): void;
  /** Up to `max` marked-session records (DIRTY_SIZE bytes each), consumed. */
  drainDirty(max: number): { records: Buffer; count: number };

  /** Stop reading events and release the engine; unless keepAttached, detach and remove the pins. */
  close(options?: { keepAttached?: boolean }): void;
}

/** What the agent needs of an engine's host before and to open it: the kernel (native-host.ts) or memory. */
export interface EngineHost {
  /** Fail early, touching nothing, when this process cannot run an engine (privileges). */
  preflight(): void;
  /** The index of a network interface in this namespace; DS_E_NO_INTERFACE when there is none. */
  interfaceIndex(ifname: string): number;
  /** Load the engine, adopting what an earlier engine pinned under `pinRoot` (null: pin nothing). */
  open(options: { pinRoot: string | null }): Engine;
  /** Remove what an engine left pinned under `pinRoot`, detaching its links; returns the interfaces detached (`--detach-on-exit`, `doorstep detach`). */
  removePins(pinRoot: string): string[];
}
