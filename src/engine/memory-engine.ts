// SPDX-License-Identifier: Apache-2.0
// MemoryEngine: the Engine seam (engine-interface.ts) in memory, for tests of the controller and
// the agent that need no root and no kernel. What it models, with the native engine's semantics:
// attach/detach and adopted links, atomic installs under increasing generations (one can be made
// to fail), default deny, the failsafe, interface tenants, a session cache whose verdict from an
// older generation is not trusted, global and per-rule counters, one event per new session (rules
// with `log: false` emit none), pins that outlive one engine (MemoryPins: open another engine on
// them to adopt). Verdicts come from the reference evaluator (src/policy/tables/evaluate.ts) over the IR
// of the version installed, never from the tables. Not modelled: frame parsing beyond Ethernet,
// two VLAN tags, IPv4/IPv6 without extension headers and the first transport header (explain);
// fragments, replies, ICMP errors, the flow filter, deny budgets (nothing is held back) and
// summary marks (drainDirty yields nothing). Never imports the addon.
import { encodeStruct } from '../abi/codec.js';
import { Action, Counter, EventKind, Reason, SessionFlag } from '../abi/generated.js';
import { type CounterName, type CpuStats, encodeSessionKey, type RawEvent, type ReasonName, type RuleStat, SESSION_KEY_SIZE, SESSION_VALUE_SIZE, type SessionKey, type SessionValue } from '../abi/records.js';
import { readSessionKey } from '../abi/records-fast.js';
import { DoorstepError } from '../errors.js';
import { cidrContains, parseCidr } from '../policy/ir/cidr.js';
import { evaluate } from '../policy/tables/evaluate.js';
import type { FlowTuple, PolicyIr } from '../policy/ir/ir.js';
import type {
  ActivePolicy,
  Attachment,
  Engine,
  EngineExplanation,
  EngineHost,
  ExplainOptions,
  FailsafeEntry,
  InstallableVersion,
  InstallResult,
  InterfaceRole,
  Prefix,
  RetiredRuleStats,
  RuleStatsFilter,
  Session,
  TenantNetwork,
  XdpMode,
} from './engine-interface.js';

/** A version in force: its descriptor and the IR the reference evaluator decides by. */
interface MemoryVersion extends ActivePolicy {
  ir: PolicyIr;
  rules: Map<number, RuleStat>;
}

/** Everything an engine leaves pinned: what a restarted agent adopts. */
interface PinnedState {
  active: MemoryVersion | null;
  generationHwm: number;
  sessions: Map<string, Session>;
  counters: Record<CounterName, number>;
  byReason: CpuStats['byReason'];
  eventSeq: number;
  links: Map<string, Attachment>;
  failsafe: FailsafeEntry[];
  roles: Map<number, InterfaceRole>;
  tenantNets: { cidr: Prefix; tenant: number }[];
  settings: { denyEventBudget: number; denyEventCap: number; summaryEpoch: number; floodEpoch: number };
}

/** What stands for a pin root under bpffs: it outlives one MemoryEngine (close with keepAttached). */
export class MemoryPins {
  state: PinnedState | null = null;
}

export interface MemoryEngineOptions {
  /** The pins to adopt from and leave behind; none: pin nothing (pinRoot null). */
  pins?: MemoryPins;
  /** The network interfaces that exist, name → ifindex (default: none). */
  interfaces?: ReadonlyMap<string, number> | Record<string, number>;
  /** XDP modes an interface offers (default: native): `auto` falls back to generic. */
  nativeXdp?: boolean;
}

/** One packet as MemoryEngine.packet() takes it: the flow's fields, its ingress interface and VLAN tags. */
export interface MemoryPacket extends Omit<FlowTuple, 'tenant'> {
  ifindex: number;
  vlanOuter?: number;
  vlanInner?: number;
  /** Bytes on the wire (default 64). */
  bytes?: number;
}

export interface MemoryVerdict {
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  rule: number;
  generation: number;
  /** True when the session cache decided (a session of the current generation). */
  cached: boolean;
}

function emptyState(): PinnedState {
  const counters = Object.fromEntries(Object.keys(Counter).filter((k) => k !== 'COUNT').map((k) => [k, 0])) as Record<CounterName, number>;
  const byReason = Object.fromEntries(
    Object.keys(Reason)
      .filter((k) => k !== 'COUNT')
      .map((k) => [k, { pass: { packets: 0, bytes: 0 }, drop: { packets: 0, bytes: 0 } }]),
  ) as CpuStats['byReason'];
  return {
    active: null,
    generationHwm: 0,
    sessions: new Map(),
    counters,
    byReason,
    eventSeq: 0,
    links: new Map(),
    failsafe: [],
    roles: new Map(),
    tenantNets: [],
    settings: { denyEventBudget: 0, denyEventCap: 0, summaryEpoch: 0, floodEpoch: 0 },
  };
}

/** 16-byte address (IPv4 as ::ffff:a.b.c.d), as session keys carry it. */
function mapped(family: 4 | 6, addr: Uint8Array): Uint8Array {
  if (family === 6) return Uint8Array.from(addr);
  const out = new Uint8Array(16);
  out.set([0xff, 0xff], 10);
  out.set(addr.subarray(addr.length - 4), 12);
  return out;
}

const keyId = (key: SessionKey): string => encodeSessionKey(key).toString('hex');

function usage(message: string, hint?: string): DoorstepError {
  return new DoorstepError('DS_E_USAGE', message, hint ? { hint } : {});
}

function checkRate(perSecond: number, what: string): number {
  if (!Number.isInteger(perSecond) || perSecond < 0 || perSecond > 0xffffffff) throw usage(`${what} ${perSecond} is not a count`);
  return perSecond;
}

export class MemoryEngine implements Engine {
  readonly adopted: boolean;
  /** Its verdicts come from the reference evaluator over the installed IR. */
  readonly decidesByIr = true;
  private readonly state: PinnedState;
  private readonly handlers = new Set<(events: RawEvent[]) => void>();
  private readonly retired: RetiredRuleStats[] = [];
  private readonly interfaces: Map<string, number>;
  private installFailure: Error | undefined;
  private installing = false;
  private closed = false;

  private constructor(private readonly options: MemoryEngineOptions, state: PinnedState, adopted: boolean) {
    this.state = state;
    this.adopted = adopted;
    const given = options.interfaces ?? {};
    this.interfaces = new Map(given instanceof Map ? given : Object.entries(given));
  }

  /** Open an engine; with pins that hold one, adopt it (its policy, sessions, counters and links). */
  static open(options: MemoryEngineOptions = {}): MemoryEngine {
    const pinned = options.pins?.state;
    if (pinned) return new MemoryEngine(options, pinned, true);
    const state = emptyState();
    if (options.pins) options.pins.state = state;
    return new MemoryEngine(options, state, false);
  }

  private live(): PinnedState {
    if (this.closed) throw new DoorstepError('DS_E_ENGINE_CLOSED', 'the engine is closed');
    return this.state;
  }

  /** The index of `ifname` among this engine's interfaces; DS_E_NO_INTERFACE when there is none. */
  interfaceIndex(ifname: string): number {
    const ifindex = this.interfaces.get(ifname);
    if (!ifindex) {
      throw new DoorstepError('DS_E_NO_INTERFACE', `no network interface named "${ifname}" in this network namespace`, { hint: 'list interfaces with `ip link`' });
    }
    return ifindex;
  }

  // ---- attachment ----

  attach(ifname: string, mode: XdpMode = 'auto'): Attachment {
    const state = this.live();
    const ifindex = this.interfaceIndex(ifname);
    const existing = state.links.get(ifname);
    if (existing) return existing;
    const native = this.options.nativeXdp ?? true;
    if (mode === 'native' && !native) throw new DoorstepError('DS_E_BPF_ATTACH', `cannot attach XDP to ${ifname}: no native XDP (in memory)`);
    const link: Attachment = { ifname, ifindex, mode: mode === 'generic' || !native ? 'generic' : 'native', adopted: false };
    state.links.set(ifname, link);
    return link;
  }

  detach(ifname: string): void {
    this.live().links.delete(ifname);
  }

  attachments(): Attachment[] {
    return [...this.live().links.values()].map((a) => ({ ...a }));
  }

  // ---- policy ----

  activePolicy(): ActivePolicy | null {
    const active = this.live().active;
    return active && { generation: active.generation, slot: active.slot, ruleCount: active.ruleCount };
  }

  /** Make the next install fail with `err` (as the kernel refusing a map would); the version in force stays. */
  failNextInstall(err: Error = new DoorstepError('DS_E_BPF_MAP', 'installing the policy failed; the previous policy stays active (in memory)')): void {
    this.installFailure = err;
  }

  async installAsync(version: InstallableVersion, beforeSwitch?: (generation: number) => void): Promise<InstallResult> {
    const state = this.live();
    if (this.installing) throw usage('an install is already running', 'serialize installs (the controller does)');
    const ir = version.ir;
    if (!ir) throw usage('the in-memory engine decides by the IR: install the image with the IR it was built from');
    if (ir.version !== version.image.version) {
      throw usage(`the image is version ${version.image.version}, its IR ${ir.version}`, 'install the image and the IR of one compile');
    }
    this.installing = true;
    try {
      await new Promise<void>((resolve) => setImmediate(resolve)); // an install lets the event loop turn, as the native one does
      const failure = this.installFailure;
      this.installFailure = undefined;
      if (failure) throw failure;
      const current = state.active;
      const generation = Math.max(state.generationHwm, current?.generation ?? 0) + 1;
      const slot = current ? 1 - current.slot : 0;
      const next: MemoryVersion = { generation, slot, ruleCount: version.image.ruleCount, ir, rules: new Map() };
      beforeSwitch?.(generation);
      state.generationHwm = generation;
      state.active = next; // the atomic switch
      if (current) this.retire(current);
      return { generation, slot, ruleCount: next.ruleCount, version: ir.version, durationMs: 0, countedRules: next.ruleCount + 1 };
    } finally {
      this.installing = false;
    }
  }

  uninstall(): void {
    const state = this.live();
    if (state.active) this.retire(state.active);
    state.active = null;
  }

  /** Nothing is held back in memory, so a retired version owes no flood record unless it held some. */
  private retire(version: MemoryVersion): void {
    const held = new Map([...version.rules].filter(([, s]) => s.held > 0));
    if (held.size > 0) this.retired.push({ generation: version.generation, rules: held });
  }

  takeRetiredRuleStats(): RetiredRuleStats[] {
    return this.retired.splice(0);
  }

  // ---- settings ----

  setFailsafe(entries: FailsafeEntry[]): boolean {
    const state = this.live();
    const changed = JSON.stringify(entries) !== JSON.stringify(state.failsafe);
    state.failsafe = entries.map((e) => ({ ...e }));
    return changed;
  }

  setInterfaceRoles(entries: readonly InterfaceRole[]): boolean {
    const state = this.live();
    const next = new Map(entries.map((e) => [e.ifindex, { ...e }]));
    const text = (roles: Map<number, InterfaceRole>) =>
      [...roles.values()]
        .map((r) => `${r.ifindex}:${r.role}:${r.tenant ?? 0}:${r.l3 ? 1 : 0}`)
        .sort()
        .join(' ');
    const changed = text(state.roles) !== text(next);
    state.roles = next;
    return changed;
  }

  setTenantNetworks(entries: readonly TenantNetwork[]): boolean {
    const state = this.live();
    const next = entries.map((e) => {
      const cidr = typeof e.cidr === 'string' ? parseCidr(e.cidr) : e.cidr;
      if ('problem' in cidr) throw usage(`tenant network ${String(e.cidr)}: ${cidr.problem}`);
      return { cidr: { family: cidr.family, addr: cidr.addr, len: cidr.len }, tenant: e.tenant };
    });
    const changed = JSON.stringify(next) !== JSON.stringify(state.tenantNets);
    state.tenantNets = next;
    return changed;
  }

  setDenyEventBudget(perSecond: number): void {
    this.live().settings.denyEventBudget = checkRate(perSecond, 'deny event budget');
  }

  setDenyEventCap(perSecond: number): void {
    this.live().settings.denyEventCap = checkRate(perSecond, 'deny event cap');
  }

  // ---- traffic (memory only: what a packet on an attached interface meets) ----

  /**
   * One packet arriving on interface `p.ifindex`: the failsafe, then the session cache (a verdict
   * of the current generation is applied; an older one is re-decided), then the reference
   * evaluator over the active version's IR (none: default deny). Counts it and, for a new
   * session whose rule logs, emits one event to the subscribers.
   */
  packet(p: MemoryPacket): MemoryVerdict {
    const state = this.live();
    if (![...state.links.values()].some((l) => l.ifindex === p.ifindex)) throw usage(`no engine is attached to interface index ${p.ifindex}`);
    const bytes = p.bytes ?? 64;
    const tenant = state.roles.get(p.ifindex)?.tenant ?? 0;
    const key: SessionKey = {
      family: p.family,
      src: mapped(p.family, p.src),
      dst: mapped(p.family, p.dst),
      ifindex: p.ifindex,
      vlanOuter: p.vlanOuter ?? 0,
      vlanInner: p.vlanInner ?? 0,
      proto: p.protocol,
      sport: p.sport ?? 0,
      dport: p.dport ?? (p.icmpType !== undefined ? ((p.icmpType << 8) | (p.icmpCode ?? 0)) : 0),
    };
    this.count('RX', bytes);
    const id = keyId(key);
    const cached = state.sessions.get(id);
    const generation = state.active?.generation ?? 0;
    if (cached && cached.value.generation === generation) {
      this.count('CACHE_HITS', 0);
      cached.value.packets++;
      cached.value.bytes += bytes;
      cached.value.lastSeenNs = process.hrtime.bigint();
      this.countRule(cached.value.rule, cached.value.reason, bytes);
      return this.verdict(cached.value.action, reasonName(cached.value.reason), cached.value.rule, generation, bytes, true);
    }
    this.count(cached ? 'CACHE_STALE' : 'CACHE_MISSES', 0);
    const { action, reason, rule, log } = this.classify({ ...p, tenant });
    const now = process.hrtime.bigint();
    const value: SessionValue = cached?.value ?? { firstSeenNs: now, lastSeenNs: now, packets: 0, bytes: 0, rule, generation, action, reason: Reason[reason], flags: 0 };
    const changed = cached !== undefined && (cached.value.action !== action || cached.value.rule !== rule);
    Object.assign(value, { lastSeenNs: now, packets: value.packets + 1, bytes: value.bytes + bytes, rule, generation, action, reason: Reason[reason], flags: log ? SessionFlag.LOG : 0 });
    state.sessions.set(id, { key, value });
    if (reason === 'FAILSAFE') this.count('FAILSAFE', 0);
    this.countRule(rule, Reason[reason], bytes);
    if (log && (!cached || changed)) this.emit(key, value, bytes, changed);
    return this.verdict(action, reason, rule, generation, bytes, false);
  }

  /** As ds_classify: the failsafe, then the active version (the reference evaluator), else default deny. */
  private classify(t: FlowTuple): { action: number; reason: ReasonName; rule: number; log: boolean } {
    if (this.failsafeAllows(t)) return { action: Action.ALLOW, reason: 'FAILSAFE', rule: 0, log: true };
    const active = this.state.active;
    if (!active) return { action: Action.DENY, reason: 'NO_POLICY', rule: 0, log: true };
    const decision = evaluate(active.ir, t);
    const log = decision.rule === 0 ? active.ir.defaultLog : (active.ir.rules.find((r) => r.index === decision.rule)?.log ?? true);
    return { action: decision.action === 'allow' ? Action.ALLOW : Action.DENY, reason: 'POLICY', rule: decision.rule, log };
  }

  /** The longest failsafe prefix holding the source, of the packet's family; then its protocol and destination ports. */
  private failsafeAllows(p: FlowTuple): boolean {
    let best: FailsafeEntry | undefined;
    for (const e of this.state.failsafe) {
      if (!cidrContains({ ...e.cidr, text: '' }, p.family, p.src)) continue;
      if (!best || e.cidr.len > best.cidr.len) best = e;
    }
    if (!best) return false;
    if (best.protocol && best.protocol !== p.protocol) return false;
    return !best.ports || (best.ports.lo <= (p.dport ?? 0) && (p.dport ?? 0) <= best.ports.hi);
  }

  private verdict(action: number, reason: ReasonName, rule: number, generation: number, bytes: number, cached: boolean): MemoryVerdict {
    const pass = action === Action.ALLOW;
    this.count(pass ? 'PASS' : 'DROP', bytes);
    const slot = this.state.byReason[reason][pass ? 'pass' : 'drop'];
    slot.packets++;
    slot.bytes += bytes;
    return { verdict: pass ? 'pass' : 'drop', reason, rule, generation, cached };
  }

  private count(what: 'RX' | 'PASS' | 'DROP' | CounterName, bytes: number): void {
    const c = this.state.counters;
    if (what === 'RX' || what === 'PASS' || what === 'DROP') {
      c[`${what}_PACKETS`]++;
      c[`${what}_BYTES`] += bytes;
    } else {
      c[what]++;
    }
  }

  private countRule(rule: number, reason: number, bytes: number): void {
    const active = this.state.active;
    if (!active || reason !== Reason.POLICY) return;
    const stat = active.rules.get(rule) ?? { packets: 0, bytes: 0, held: 0, sketch: null };
    stat.packets++;
    stat.bytes += bytes;
    active.rules.set(rule, stat);
  }

  private emit(key: SessionKey, value: SessionValue, bytes: number, changed: boolean): void {
    const state = this.state;
    state.counters.EVENTS++;
    const event: RawEvent = {
      ...key,
      timeNs: value.lastSeenNs,
      seq: ++state.eventSeq,
      rule: value.rule,
      generation: value.generation,
      cpu: 0,
      len: bytes,
      action: value.action,
      reason: value.reason,
      kind: changed ? EventKind.CHANGED : EventKind.NEW,
    };
    for (const h of this.handlers) h([event]);
  }

  // ---- observation ----

  stats(): CpuStats {
    const state = this.live();
    return {
      counters: { ...state.counters },
      heldWithoutRule: 0,
      sketchWithoutRule: null,
      eventSeq: [state.eventSeq],
      byReason: JSON.parse(JSON.stringify(state.byReason)) as CpuStats['byReason'],
    };
  }

  ruleStats(which: RuleStatsFilter = 'all'): Map<number, RuleStat> {
    const active = this.live().active;
    const out = new Map<number, RuleStat>();
    if (!active) return out;
    for (let rule = 0; rule <= active.ruleCount; rule++) {
      const stat = active.rules.get(rule) ?? { packets: 0, bytes: 0, held: 0, sketch: null };
      if ((which === 'matched' && stat.packets === 0) || (which === 'held' && stat.held === 0)) continue;
      out.set(rule, { ...stat });
    }
    return out;
  }

  async ruleStatsAsync(which: RuleStatsFilter = 'all'): Promise<{ generation: number; rules: Map<number, RuleStat> }> {
    return { generation: this.live().active?.generation ?? 0, rules: this.ruleStats(which) };
  }

  advanceFloodEpoch(): number {
    const settings = this.live().settings;
    settings.floodEpoch = (settings.floodEpoch + 1) >>> 0;
    return settings.floodEpoch;
  }

  floodSamples(): [] {
    return [];
  }

  onEvents(handler: (events: RawEvent[]) => void): () => void {
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
    };
  }

  explain(frame: Buffer, options: ExplainOptions = {}): EngineExplanation {
    this.live();
    const tenant = options.tenant ?? 0;
    const flow = parseFrame(frame);
    const generation = this.state.active?.generation ?? 0;
    const base = { generation, flags: 0, tenant };
    if (flow === 'non-ip') return { ...base, action: Action.DENY, reason: Reason.NON_IP, rule: 0, log: true, key: emptyKey() };
    if (flow === 'malformed') return { ...base, action: Action.DENY, reason: Reason.MALFORMED, rule: 0, log: true, key: emptyKey() };
    const { action, reason, rule, log } = this.classify({ ...flow.tuple, tenant });
    return { ...base, action, reason: Reason[reason], rule, log, key: flow.key };
  }

  // ---- sessions ----

  lookupSession(key: SessionKey): SessionValue | null {
    const found = this.live().sessions.get(keyId(key));
    return found ? { ...found.value } : null;
  }

  async *sessionSlices(max = 1024): AsyncGenerator<Session[]> {
    const all = [...this.live().sessions.values()].map((s) => ({ key: { ...s.key }, value: { ...s.value } }));
    for (let at = 0; at < all.length || at === 0; at += max) {
      yield all.slice(at, at + max);
      if (at + max < all.length) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  async sessionCountAsync(): Promise<number> {
    return this.live().sessions.size;
  }

  lookupSessions(keys: Buffer, _digests: Buffer, count: number): { values: Buffer; found: Buffer } {
    const values = Buffer.alloc(count * SESSION_VALUE_SIZE);
    const found = Buffer.alloc(count);
    for (let i = 0; i < count; i++) {
      const session = this.live().sessions.get(keyId(readSessionKey(keys, i * SESSION_KEY_SIZE)));
      if (!session) continue;
      found[i] = 1;
      const v = session.value;
      encodeStruct('ds_session_value', {
        first_seen: v.firstSeenNs,
        last_seen: v.lastSeenNs,
        packets: v.packets,
        bytes: v.bytes,
        rule: v.rule,
        generation: v.generation,
        action: v.action,
        reason: v.reason,
        flags: v.flags,
      }).copy(values, i * SESSION_VALUE_SIZE);
    }
    return { values, found };
  }

  /** No flow filter in memory: nothing to age. */
  async ageFlowFilterAsync(): Promise<void> {
    this.live();
  }

  // ---- summary marks (not modelled: no session is marked) ----

  summaryEpoch(): number {
    return this.live().settings.summaryEpoch;
  }

  setSummaryEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) throw usage(`summary epoch ${epoch} is not a u32`);
    this.live().settings.summaryEpoch = epoch;
  }

  drainDirty(_max: number): { records: Buffer; count: number } {
    this.live();
    return { records: Buffer.alloc(0), count: 0 };
  }

  /** Stop delivering events; unless keepAttached, detach and forget the pins (the next engine starts fresh). */
  close(options: { keepAttached?: boolean } = {}): void {
    if (this.closed) return;
    this.handlers.clear();
    if (!options.keepAttached) {
      this.state.links.clear();
      if (this.options.pins) this.options.pins.state = null;
    } else {
      for (const link of this.state.links.values()) link.adopted = true; // what the next engine finds pinned
    }
    this.closed = true;
  }
}

function reasonName(code: number): ReasonName {
  const name = (Object.keys(Reason) as (ReasonName | 'COUNT')[]).find((k) => Reason[k] === code);
  if (!name || name === 'COUNT') throw new Error(`reason ${code}`);
  return name;
}

function emptyKey(): SessionKey {
  return { family: 0 as 4, src: new Uint8Array(16), dst: new Uint8Array(16), ifindex: 0, vlanOuter: 0, vlanInner: 0, proto: 0, sport: 0, dport: 0 };
}

/**
 * Ethernet, up to two VLAN tags, IPv4 (options) or IPv6 (no extension headers), and the ports or
 * ICMP type and code: what `doorstep explain` builds. Anything else is `non-ip` or, when an IP
 * header is cut short, `malformed` (the native engine says more; this is no model of its parser:
 * test/lib/reference is).
 */
function parseFrame(frame: Buffer): { tuple: FlowTuple; key: SessionKey } | 'non-ip' | 'malformed' {
  let at = 12;
  const vlans: number[] = [];
  let type = frame.length >= 14 ? frame.readUInt16BE(at) : 0;
  while ((type === 0x8100 || type === 0x88a8) && vlans.length < 2 && frame.length >= at + 6) {
    vlans.push(frame.readUInt16BE(at + 2) & 0x0fff);
    at += 4;
    type = frame.readUInt16BE(at);
  }
  at += 2;
  let family: 4 | 6;
  let proto: number;
  let src: Uint8Array;
  let dst: Uint8Array;
  if (type === 0x0800 && frame.length >= at + 20) {
    family = 4;
    proto = frame[at + 9]!;
    src = frame.subarray(at + 12, at + 16);
    dst = frame.subarray(at + 16, at + 20);
    at += (frame[at]! & 0x0f) * 4;
  } else if (type === 0x86dd && frame.length >= at + 40) {
    family = 6;
    proto = frame[at + 6]!;
    src = frame.subarray(at + 8, at + 24);
    dst = frame.subarray(at + 24, at + 40);
    at += 40;
  } else {
    return type === 0x0800 || type === 0x86dd ? 'malformed' : 'non-ip';
  }
  const tuple: FlowTuple = { family, src: Uint8Array.from(src), dst: Uint8Array.from(dst), protocol: proto };
  let sport = 0;
  let dport = 0;
  if ((proto === 6 || proto === 17 || proto === 132) && frame.length >= at + 4) {
    sport = tuple.sport = frame.readUInt16BE(at);
    dport = tuple.dport = frame.readUInt16BE(at + 2);
  } else if ((proto === 1 || proto === 58) && frame.length >= at + 2) {
    tuple.icmpType = frame[at]!;
    tuple.icmpCode = frame[at + 1]!;
    dport = (tuple.icmpType << 8) | tuple.icmpCode;
  }
  const key: SessionKey = { family, src: mapped(family, src), dst: mapped(family, dst), ifindex: 0, vlanOuter: vlans[0] ?? 0, vlanInner: vlans[1] ?? 0, proto, sport, dport };
  return { tuple, key };
}

/** A host of in-memory engines for startAgent: every engine it opens shares `pins` and the interfaces. */
export function memoryEngineHost(options: MemoryEngineOptions & { pins: MemoryPins }): EngineHost & { engines: MemoryEngine[] } {
  const engines: MemoryEngine[] = [];
  const probe = MemoryEngine.open({ interfaces: options.interfaces ?? {} });
  return {
    engines,
    preflight: () => {},
    interfaceIndex: (ifname) => probe.interfaceIndex(ifname),
    open: () => {
      const engine = MemoryEngine.open(options);
      engines.push(engine);
      return engine;
    },
    removePins: () => {
      const detached = [...(options.pins.state?.links.keys() ?? [])].map(String);
      options.pins.state = null;
      return detached;
    },
  };
}
