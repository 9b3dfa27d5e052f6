// SPDX-License-Identifier: Apache-2.0
// NativeEngine: the Engine seam (engine-interface.ts) in the kernel — load (or adopt pinned
// maps), attach to interfaces, install compiled policies atomically, read counters, sessions and
// events, run test packets. With native.ts and native-host.ts, the only importer of the addon.
import { existsSync, mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { encodeStruct, offsetOf, readBytes, readField, sizeOf, writeStruct } from '../abi/codec.js';
import { IfaceFlag, IfaceRole, Layouts, Limits, MapName, MapTypes, SettingFlag, SLOT_TABLES } from '../abi/generated.js';
import {
  CPU_STATS_SIZE,
  type CpuStats,
  decodeCpuStats,
  decodeSessionKey,
  decodeSessionValue,
  encodeSessionKey,
  type RawEvent,
  SESSION_KEY_SIZE,
  SESSION_VALUE_SIZE,
  type SessionKey,
  type SessionValue,
  type FloodSample,
  mergeSketch,
  type RuleStat,
} from '../abi/records.js';
import { decodeEventBatch, readSessionKey, readSessionValue, readU64 } from '../abi/records-fast.js';
import { DoorstepError } from '../errors.js';
import { engineObjectPath } from '../paths.js';
import type { PolicyImage } from '../policy/tables/image.js';
import { parseCidr } from '../policy/ir/cidr.js';
import { adoptPins, checkObject, pinnedMaps, stampAbi } from './contract-checks.js';
import { denyBucketShift, denyBucketWay, flowDigest } from './deny-buckets.js';
import { checkKernel, checkPrivileges, ensureBpffs, interfaceIndex } from './bpffs.js';
import {
  type ActivePolicy,
  type Attachment,
  DIGEST_SIZE,
  DIRTY_SIZE,
  type Engine,
  type EngineExplanation,
  type ExplainOptions,
  type FailsafeEntry,
  type InstallResult,
  type InterfaceRole,
  type Prefix,
  type RetiredRuleStats,
  type RuleStatsFilter,
  type Session,
  type TenantNetwork,
  type XdpMode,
} from './engine-interface.js';
import { addon, BPF_MAP_TYPE_ARRAY, type BpfObjectHandle, errnoName, type MapSpec, type RingBufferReaderHandle, type RingDrainHandle } from './native.js';

// the seam's values, for the callers of the native engine (tests, benchmarks)
export type { ActivePolicy, Attachment, EngineExplanation, ExplainOptions, FailsafeEntry, InstallResult, Prefix, RetiredRuleStats, RuleStatsFilter, Session, TenantNetwork, XdpMode } from './engine-interface.js';
export { DIRTY_SIZE, FLOW_FILTER_AGING_MS } from './engine-interface.js';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/doorstep';
const PROGRAM = 'ds_xdp_ingress';
const XDP_DROP = 1;
const XDP_PASS = 2;
const ETH_HLEN = 14;

/** Offsets in a ds_rule_stat row, for the hot decode of ruleStatsOf. */
const RULE_STAT = {
  size: sizeOf('ds_rule_stat'),
  packets: Layouts.ds_rule_stat.fields.packets.offset,
  bytes: Layouts.ds_rule_stat.fields.bytes.offset,
  held: Layouts.ds_rule_stat.fields.budget.offset + Layouts.ds_budget.fields.held.offset,
  sketch: Layouts.ds_rule_stat.fields.sketch.offset,
};

export interface EngineOptions {
  /** The compiled engine object (default: bpf/build/engine.bpf.o of this package). */
  objectPath?: string;
  /** bpffs folder for pins; null = pin nothing (tests, benchmarks). */
  pinRoot?: string | null;
  /** Capacity of the allowed-session cache (LRU, ds_sessions). */
  sessionEntries?: number;
  /** Capacity of the denied-session cache (LRU, ds_denies); denied traffic evicts only these. */
  denyEntries?: number;
  /** Rules per version with their own counters (memory: 2 × 16 B × this × possible CPUs). */
  ruleStatsCapacity?: number;
}

export interface TestRunResult {
  verdict: 'pass' | 'drop' | 'other';
  retval: number;
  durationNs: number;
}

interface LinkState extends Attachment {
  fd: number;
}

/** The session caches: allowed sessions, then denied ones (a flow is in at most one). */
const SESSION_MAPS = [MapName.SESSIONS, MapName.DENIES] as const;
/** ds_denies holds struct ds_deny_entry (the flow, then its value) in 2-way buckets chosen by the
 *  flow's digest (src/engine/deny-buckets.ts; a marked session's comes in its ds_dirty record); an
 *  empty way's family is 0. */
const DENY_ENTRY_SIZE = MapTypes.ds_denies.valueSize;
const DENY_KEY_AT = offsetOf('ds_deny_entry', 'key');
const DENY_VALUE_AT = offsetOf('ds_deny_entry', 'value');
/** The byte of a ds_denies entry that is 0 in an empty way (its flow's family). */
const DENY_PRESENT_AT = DENY_KEY_AT + offsetOf('ds_session_key', 'family');
/** The 8-byte word of a ds_denies entry the datapath clears to empty a way (ds_deny_delete: the flow's word that holds its family). */
const DENY_TAG_AT = DENY_PRESENT_AT & ~7;

/** A cache's entry sizes in a walk: ds_sessions by flow, ds_denies by way. */
const entrySizes = (map: (typeof SESSION_MAPS)[number]): [number, number] =>
  map === MapName.DENIES ? [MapTypes.ds_denies.keySize, DENY_ENTRY_SIZE] : [SESSION_KEY_SIZE, SESSION_VALUE_SIZE];
/** A cache's used entries in a walk: every entry of ds_sessions, the ways of ds_denies that hold a flow. */
const presentAt = (map: (typeof SESSION_MAPS)[number]): number => (map === MapName.DENIES ? DENY_PRESENT_AT : -1);

/** The used ones of `count` ds_deny_entry values as a cache walk gives sessions: their flows (SESSION_KEY_SIZE each), values (SESSION_VALUE_SIZE each) and count. */
function splitDenyEntries(entries: Buffer, count: number): { keys: Buffer; values: Buffer; count: number } {
  let used = 0;
  for (let i = 0; i < count; i++) if (entries[i * DENY_ENTRY_SIZE + DENY_PRESENT_AT]) used++;
  const keys = Buffer.allocUnsafe(used * SESSION_KEY_SIZE);
  const values = Buffer.allocUnsafe(used * SESSION_VALUE_SIZE);
  for (let i = 0, j = 0; i < count; i++) {
    const at = i * DENY_ENTRY_SIZE;
    if (!entries[at + DENY_PRESENT_AT]) continue;
    entries.copy(keys, j * SESSION_KEY_SIZE, at + DENY_KEY_AT, at + DENY_KEY_AT + SESSION_KEY_SIZE);
    entries.copy(values, j * SESSION_VALUE_SIZE, at + DENY_VALUE_AT, at + DENY_VALUE_AT + SESSION_VALUE_SIZE);
    j++;
  }
  return { keys, values, count: used };
}
/** Entries per slice of a walk of the session caches: one batch read, a few ms at most. */
const SESSION_SLICE = 1024;
/** Entries per slice of a count: read into the addon's own buffer, nothing reaches JavaScript. */
const COUNT_SLICE = 16384;

/** Where a sliced walk of the session caches stands (Engine.readSessionSlice). */
export interface SessionCursor {
  map: number;
  token: Buffer | null;
}

export interface SessionSlice {
  keys: Buffer;
  values: Buffer;
  count: number;
  cursor: SessionCursor | null;
}

/** Let the event loop run (I/O, timers) before the next slice of a long walk. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/**
 * A prefix as the key of ds_failsafe_v2 and ds_tenantnet_v2: the family byte, then the address
 * (IPv4 mapped); the length counts both, so an IPv4 prefix never matches an IPv6 packet.
 */
function prefixKey(cidr: Prefix): Buffer {
  const addr = new Uint8Array(16);
  if (cidr.family === 4) {
    addr.set([0xff, 0xff], 10);
    addr.set(cidr.addr, 12);
  } else {
    addr.set(cidr.addr);
  }
  return encodeStruct('ds_prefix_key', { prefixlen: 8 + cidr.len + (cidr.family === 4 ? 96 : 0), family: cidr.family, addr });
}

/** A batch of entries to write into one map (native mapUpdateBatch's arguments). */
interface MapFill {
  fd: number;
  keys: Buffer;
  values: Buffer;
  count: number;
  keySize: number;
  valueSize: number;
  /** Leave out all-zero values: only for a fresh array, which reads as zero everywhere. */
  skipZero: boolean;
}

/**
 * A step of an install (Engine.installSteps), for its driver to perform: a point to let the event
 * loop turn, a map to fill, or map-in-map writes.
 */
type InstallStep =
  | { kind: 'pause' }
  | { kind: 'fill'; fill: MapFill }
  /** zero a slot's per-rule counters: an asynchronous driver first lets reads of them in flight finish */
  | { kind: 'zero-stats'; fill: MapFill }
  | { kind: 'writes'; writes: [number, Buffer, number][] }
  /** keep the final counters of the version just switched away from (retire) */
  | { kind: 'retire'; version: ActivePolicy };

function fillMap(f: MapFill): void {
  addon().mapUpdateBatch(f.fd, f.keys, f.values, f.count, f.keySize, f.valueSize, f.skipZero);
}

function fillMapAsync(f: MapFill): Promise<void> {
  return addon().mapUpdateBatchAsync(f.fd, f.keys, f.values, f.count, f.keySize, f.valueSize, f.skipZero);
}

/** Add one CPU's row of a rule's counters (at byte `at` of `row`) to `stat`. */
function addRuleRow(stat: RuleStat, row: Buffer, at: number, epoch: number): void {
  stat.packets += readU64(row, at + RULE_STAT.packets);
  stat.bytes += readU64(row, at + RULE_STAT.bytes);
  const held = readU64(row, at + RULE_STAT.held);
  stat.held += held;
  // only a row that held sessions back was ever sketched (most rows of a large policy did not)
  if (held > 0) stat.sketch = mergeSketch(stat.sketch, row, at + RULE_STAT.sketch, epoch);
}

/** One CPU's rows of per-rule counters, each with its key (rule = key - start): every row (mapDump),
 *  or only the rows not all zero (mapDumpAsync's skipZero). */
interface SparseRuleRows {
  keys: Buffer;
  values: Buffer;
  count: number;
  start: number;
}

/**
 * Per-rule counters (SparseRuleRows, one per CPU, in CPU order) summed over CPUs: every rule, or
 * only those that `matched` a packet, or only those that `held` sessions back. A row left out is
 * all zeros, which adds nothing to a sum and was never sketched, so whole rows and rows without
 * their zeros sum alike. A 10,000-rule version's whole rows are 1.6 MB, mostly zeros.
 */
function sumSparseRuleRows(cpus: SparseRuleRows[], count: number, which: RuleStatsFilter, epoch: number): Map<number, RuleStat> {
  const out = new Map<number, RuleStat>();
  const field = which === 'matched' ? RULE_STAT.packets : RULE_STAT.held;
  // per CPU, each rule's row offset in its values (-1: left out, all zero)
  const rowAt = cpus.map(({ keys, count: n, start }) => {
    const at = new Int32Array(count).fill(-1);
    for (let i = 0; i < n; i++) at[keys.readUInt32LE(i * 4) - start] = i * RULE_STAT.size;
    return at;
  });
  for (let rule = 0; rule < count; rule++) {
    let present = false;
    let quiet = true;
    for (let c = 0; c < cpus.length; c++) {
      const at = rowAt[c]![rule]!;
      if (at < 0) continue;
      present = true;
      if (readU64(cpus[c]!.values, at + field) !== 0) quiet = false;
    }
    if (which !== 'all' && (!present || quiet)) continue;
    const stat: RuleStat = { packets: 0, bytes: 0, held: 0, sketch: null };
    for (let c = 0; c < cpus.length; c++) {
      const at = rowAt[c]![rule]!;
      if (at >= 0) addRuleRow(stat, cpus[c]!.values, at, epoch);
    }
    out.set(rule, stat);
  }
  return out;
}

/** A rate for a datapath budget: a u32 count a second. */
function checkRate(perSecond: number, what: string, hint: string): number {
  if (!Number.isInteger(perSecond) || perSecond < 0 || perSecond > 0xffffffff) {
    throw new DoorstepError('DS_E_USAGE', `${what} ${perSecond} is not a count`, { hint });
  }
  return perSecond;
}

function checkTenant(tenant: number, what: string): void {
  if (!Number.isInteger(tenant) || tenant < 0 || tenant > 0xffffffff) {
    throw new DoorstepError('DS_E_USAGE', `${what}: tenant ${tenant} is not a tenant id`, { hint: 'give tenantId(name) (src/policy/ir/tenants.ts), an integer from 0 to 2^32 - 1' });
  }
}

function kernelError(code: 'DS_E_BPF_LOAD' | 'DS_E_BPF_MAP' | 'DS_E_BPF_ATTACH', what: string, cause: unknown): DoorstepError {
  const errno = errnoName(cause);
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new DoorstepError('DS_E_NO_PRIVILEGE', `${what}: permission denied`, {
      hint: 'the process has CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN (checked at start): check the bpffs folder\'s owner and mode, and any LSM or seccomp policy',
      cause,
    });
  }
  const detail = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new DoorstepError(code, `${what}: ${detail}`, { cause });
}

/** Retired versions whose final per-rule counters the engine keeps until they are taken. */
const RETIRED_KEPT = 16;

type SettingsField = keyof (typeof Layouts)['ds_settings']['fields'];

/** The engine in the kernel: the XDP program and its maps, through the addon. */
export class NativeEngine implements Engine {
  /** It decides by the image's tables, in the kernel: an install needs no IR. */
  readonly decidesByIr = false;
  private readonly links = new Map<string, LinkState>();
  private readonly retired: RetiredRuleStats[] = [];
  /** Reads of per-rule counters on the addon's threads, in flight: an install zeroes a slot's rows only after them. */
  private readonly statsReads = new Set<Promise<unknown>>();
  /** The bank of ds_flow_filter that ageFlowFilter() clears next. */
  private nextAgedBank = 0;
  /** ds_settings.flood_epoch as last read or written (floodEpoch()). */
  private floodEpochKnown: number | undefined;
  /** ds_settings.deny_bucket_shift, as open() wrote it for the ds_denies in use. */
  private denyShift = 0;
  private reader: RingBufferReaderHandle | undefined;
  private dirty: RingDrainHandle | undefined;
  private readonly eventHandlers = new Set<(events: RawEvent[]) => void>();
  private closed = false;

  private constructor(
    private readonly obj: BpfObjectHandle,
    private readonly pinRoot: string | null,
    readonly adopted: boolean,
    private readonly cpus: number,
    private readonly innerSpecs: Map<MapName, MapSpec>,
    /** Per-rule counter entries per slot. */
    readonly ruleStatsCapacity: number,
  ) {}

  /** Load the engine; with a pin root, adopt the maps an earlier engine pinned there. */
  static open(options: EngineOptions = {}): NativeEngine {
    checkPrivileges();
    checkKernel();
    const objectPath = options.objectPath ?? engineObjectPath;
    if (!existsSync(objectPath)) {
      throw new DoorstepError('DS_E_BPF_OBJECT', `the engine object ${objectPath} does not exist`, {
        hint: 'build it with scripts/bootstrap.sh (or npm run build:bpf)',
      });
    }
    const pinRoot = options.pinRoot === undefined ? DEFAULT_PIN_ROOT : options.pinRoot;
    const native = addon();
    const obj = new native.BpfObject(objectPath);
    try {
      checkObject(obj, objectPath);
      if (options.sessionEntries) obj.setMaxEntries(MapName.SESSIONS, options.sessionEntries);
      if (options.denyEntries) {
        denyBucketShift(options.denyEntries); // refused unless a power of two
        obj.setMaxEntries(MapName.DENIES, options.denyEntries);
      }
      // per-rule counters: [slot][cpu][rule] rows in one plain array
      const cpus = native.numPossibleCpus();
      const ruleStatsCapacity = options.ruleStatsCapacity ?? Limits.RULE_STATS_DEFAULT;
      obj.setMaxEntries(MapName.RULE_STATS, Limits.SLOTS * cpus * ruleStatsCapacity);
      const names = obj.mapNames().filter((n) => n.startsWith('ds_'));
      // libbpf frees inner-map templates during load: read them first
      const innerSpecs = new Map<MapName, MapSpec>();
      for (const n of [...SLOT_TABLES, MapName.ACTIVE]) innerSpecs.set(n, obj.innerSpec(n));
      let adopted = false;
      if (pinRoot) {
        ensureBpffs();
        // pins of this engine's contract are adopted; any others refused (DS_E_ABI_MISMATCH), never mixed
        adopted = pinnedMaps(pinRoot, names) === 'all';
        if (adopted) adoptPins(obj, pinRoot, names, innerSpecs);
      }
      try {
        obj.load();
      } catch (cause) {
        throw kernelError('DS_E_BPF_LOAD', 'the kernel refused the XDP engine', cause);
      }
      if (!adopted) stampAbi(obj.mapFd(MapName.ABI));
      if (pinRoot && !adopted) {
        const mapDir = join(pinRoot, 'maps');
        mkdirSync(mapDir, { recursive: true });
        for (const n of names) native.objPin(obj.mapFd(n), join(mapDir, n));
      }
      const engine = new NativeEngine(obj, pinRoot, adopted, cpus, innerSpecs, ruleStatsCapacity);
      // where the datapath finds a denied flow's bucket (the same for pins adopted: their map's size)
      engine.denyShift = denyBucketShift(native.mapInfo(obj.mapFd(MapName.DENIES)).maxEntries);
      engine.writeSettings({ deny_bucket_shift: engine.denyShift });
      return engine;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  private live(): BpfObjectHandle {
    if (this.closed) throw new DoorstepError('DS_E_ENGINE_CLOSED', 'the engine is closed');
    return this.obj;
  }

  private fd(map: MapName): number {
    return this.live().mapFd(map);
  }

  get programFd(): number {
    return this.live().programFd(PROGRAM);
  }

  /**
   * Admit at most `perSecond` new denied sessions a second, per CPU and per rule (0: no limit).
   * An admitted one is cached and, if its rule logs, emits its session event; one past the budget
   * is decided statelessly (no cache entry, no event) and, if its rule logs, counted as held back
   * (`ruleStats().held`, and `stats().heldWithoutRule` for denies no counted rule decided), so
   * events plus held equal the logged denied sessions exactly. Allowed sessions are never held back.
   */
  setDenyEventBudget(perSecond: number): void {
    this.writeSettings({ deny_event_budget: checkRate(perSecond, 'deny event budget', 'give sessions a second per CPU per rule, 0 for no limit') });
  }

  /**
   * Admit at most `perSecond` new denied sessions a second on the whole engine, whatever their
   * rule (0: no limit): the datapath gets an equal share per CPU (rounded up). The sessions past it
   * are held back like those past a rule's budget. With the per-rule budget it bounds the session
   * records of denied traffic, however many rules a flood meets.
   */
  setDenyEventCap(perSecond: number): void {
    const total = checkRate(perSecond, 'deny event cap', 'give sessions a second for the whole enforcer, 0 for no limit');
    this.writeSettings({ deny_event_cap: total === 0 ? 0 : Math.ceil(total / this.cpus) });
  }

  /** Instructions the verifier processed to load each program (its verified size): ingress, explain. */
  verifiedInstructions(): { ingress: number; explain: number } {
    const native = addon();
    return {
      ingress: native.progInfo(this.programFd).verifiedInsns,
      explain: native.progInfo(this.live().programFd('ds_xdp_explain')).verifiedInsns,
    };
  }

  // ---- attachment ----

  /** Attach to an interface: native XDP, falling back to generic (reported) unless a mode is forced. */
  attach(ifname: string, mode: XdpMode = 'auto'): Attachment {
    const native = addon();
    const ifindex = interfaceIndex(ifname, native.ifNameToIndex);
    const existing = this.links.get(ifname);
    if (existing) return existing;

    const pin = this.pinRoot ? join(this.pinRoot, 'links', ifname) : null;
    if (pin && existsSync(pin)) {
      const fd = native.objGet(pin);
      if (native.linkInfo(fd).ifindex === ifindex) {
        const state: LinkState = { ifname, ifindex, fd, adopted: true, mode: native.xdpQuery(ifindex).mode === 'generic' ? 'generic' : 'native' };
        this.links.set(ifname, state);
        return state;
      }
      native.closeFd(fd);
      unlinkSync(pin);
    }

    const modes: ('native' | 'generic')[] = mode === 'auto' ? ['native', 'generic'] : [mode];
    let lastError: unknown;
    for (const m of modes) {
      let fd: number;
      try {
        fd = native.xdpAttach(this.programFd, ifindex, m);
      } catch (err) {
        lastError = err;
        continue; // this mode is not available here: try the next one
      }
      if (pin) {
        try {
          mkdirSync(join(this.pinRoot as string, 'links'), { recursive: true });
          native.objPin(fd, pin);
        } catch (err) {
          // never leave an attachment nobody owns
          native.linkDetach(fd);
          native.closeFd(fd);
          throw kernelError('DS_E_BPF_ATTACH', `attached XDP to ${ifname} but could not pin the link; detached again`, err);
        }
      }
      const state: LinkState = { ifname, ifindex, fd, mode: m, adopted: false };
      this.links.set(ifname, state);
      return state;
    }
    throw kernelError('DS_E_BPF_ATTACH', `cannot attach XDP to ${ifname}`, lastError);
  }

  detach(ifname: string): void {
    const link = this.links.get(ifname);
    if (!link) return;
    const native = addon();
    try {
      native.linkDetach(link.fd);
    } finally {
      native.closeFd(link.fd);
      this.links.delete(ifname);
      const pin = this.pinRoot ? join(this.pinRoot, 'links', ifname) : null;
      if (pin && existsSync(pin)) unlinkSync(pin);
    }
  }

  attachments(): Attachment[] {
    return [...this.links.values()].map(({ fd: _fd, ...a }) => a);
  }

  // ---- policy ----

  /** The active version's descriptor, or null when none is installed (default deny). */
  activePolicy(): ActivePolicy | null {
    const native = addon();
    const id = Buffer.alloc(4);
    if (!native.mapLookup(this.fd(MapName.ACTIVE), u32Key(0), id)) return null;
    const fd = native.mapFdById(id.readUInt32LE());
    try {
      const meta = Buffer.alloc(sizeOf('ds_policy_meta'));
      native.mapLookup(fd, u32Key(0), meta);
      return {
        generation: readField('ds_policy_meta', meta, 0, 'generation'),
        slot: readField('ds_policy_meta', meta, 0, 'slot'),
        ruleCount: readField('ds_policy_meta', meta, 0, 'rule_count'),
      };
    } finally {
      native.closeFd(fd);
    }
  }

  private readSettings(): Buffer {
    const value = Buffer.alloc(sizeOf('ds_settings'));
    addon().mapLookup(this.fd(MapName.SETTINGS), u32Key(0), value);
    return value;
  }

  /** Change the given fields of ds_settings; every other field keeps its value. */
  private writeSettings(values: Partial<Record<SettingsField, number>>): void {
    const next = this.readSettings();
    writeStruct('ds_settings', next, 0, values);
    addon().mapUpdate(this.fd(MapName.SETTINGS), u32Key(0), next);
  }

  /** A fresh, empty inner map for `table` (the caller owns the fd), and the fill that gives it the image's entries. */
  private createTable(table: MapName, count: number, keySize: number, valueSize: number, keys: Buffer, values: Buffer, capacity = count): { fd: number; fill: MapFill } {
    const spec = this.innerSpecs.get(table);
    if (!spec) throw new Error(`no inner spec for ${table}`);
    if (spec.keySize !== keySize || spec.valueSize !== valueSize) {
      throw new DoorstepError(
        'DS_E_ABI_MISMATCH',
        `${table}: the image has ${keySize}/${valueSize}-byte keys/values, the engine object expects ${spec.keySize}/${spec.valueSize}`,
        { hint: 'rebuild (npm run build) so the object and the TypeScript ABI agree' },
      );
    }
    const fd = addon().mapCreate(spec.type, spec.keySize, spec.valueSize, Math.max(capacity, count, 1), spec.flags, -1, table.slice(0, 15));
    // a fresh array reads as zero everywhere: only the rest is written (most of a small policy's tables)
    return { fd, fill: { fd, keys, values, count, keySize, valueSize, skipZero: spec.type === BPF_MAP_TYPE_ARRAY } };
  }

  /**
   * Install a compiled policy: fill fresh maps for the inactive slot, then publish the version by
   * swapping ds_active[0] — one atomic pointer write. The kernel waits for in-flight packets after
   * a map-in-map update, so when this returns no packet still uses the previous version, and its
   * slot is released.
   */
  install(image: PolicyImage): InstallResult {
    const steps = this.installSteps(image);
    for (let step = steps.next(); ; ) {
      if (step.done) return step.value;
      try {
        const s = step.value;
        if (s.kind === 'fill' || s.kind === 'zero-stats') fillMap(s.fill);
        else if (s.kind === 'writes') addon().mapUpdateFdMany(s.writes);
        else if (s.kind === 'retire') this.retire(s.version);
      } catch (err) {
        step = steps.throw(err);
        continue;
      }
      step = steps.next();
    }
  }

  /**
   * install(), without holding the caller's event loop for long: the event loop turns between the
   * inner maps it fills, and the map-in-map writes (each waits for an RCU grace period: ~15–70 ms
   * in all here) run on a thread of the addon's. The caller must not start another install, or an
   * uninstall, before this settles (the agent's controller serializes them). `beforeSwitch` hears
   * the new generation just before packets can meet it: events of that generation may be read
   * while this is still settling.
   */
  async installAsync(version: { image: PolicyImage }, beforeSwitch?: (generation: number) => void): Promise<InstallResult> {
    const steps = this.installSteps(version.image, beforeSwitch);
    for (let step = steps.next(); ; ) {
      if (step.done) return step.value;
      try {
        const s = step.value;
        if (s.kind === 'pause') await new Promise<void>((resolve) => setImmediate(resolve));
        else if (s.kind === 'fill') await fillMapAsync(s.fill);
        else if (s.kind === 'zero-stats') {
          await Promise.allSettled(this.statsReads); // a read that began before an earlier install may still be on this slot
          await fillMapAsync(s.fill);
        } else if (s.kind === 'retire') await this.retireAsync(s.version);
        else await addon().mapUpdateFdManyAsync(s.writes);
      } catch (err) {
        step = steps.throw(err);
        continue;
      }
      step = steps.next();
    }
  }

  /**
   * An install as steps, for install() and installAsync() to drive: `pause` where an asynchronous
   * caller may let its event loop turn (between the inner maps it fills), `writes` for the
   * map-in-map writes, which the driver performs (and whose failure it throws back in). The steps:
   * fresh inner maps for the inactive slot, filled; its per-rule counters zeroed; the new
   * version's meta frozen; the slot written; the generation recorded and ds_active swapped (the
   * atomic switch: the kernel waits for in-flight packets, so after it no packet uses the previous
   * version); the replaced version's counters kept and its slot released.
   */
  private *installSteps(image: PolicyImage, beforeSwitch?: (generation: number) => void): Generator<InstallStep, InstallResult, void> {
    const started = process.hrtime.bigint();
    const native = addon();
    const current = this.activePolicy();
    const slot = current ? 1 - current.slot : 0;
    const hwm = readField('ds_settings', this.readSettings(), 0, 'generation_hwm');
    const generation = Math.max(hwm, current?.generation ?? 0) + 1;
    const countedRules = Math.min(image.ruleCount + 1, this.ruleStatsCapacity);
    const created: number[] = [];
    try {
      for (const table of SLOT_TABLES) {
        const t = image.tables[table];
        const { fd, fill } = this.createTable(table, t.count, t.keySize, t.valueSize, t.keys, t.values, t.capacity);
        created.push(fd);
        yield { kind: 'fill', fill };
        yield { kind: 'pause' };
      }
      const statsBase = slot * this.cpus * this.ruleStatsCapacity;
      yield { kind: 'zero-stats', fill: this.zeroRuleStats(statsBase, countedRules) };
      const meta = encodeStruct('ds_policy_meta', {
        generation,
        slot,
        rule_count: image.ruleCount,
        stats_base: statsBase,
        stats_stride: this.ruleStatsCapacity,
        stats_count: countedRules,
        default_action: image.defaultAction,
        default_log: image.defaultLog ? 1 : 0,
        src4_bits: image.v4Bits.src,
        dst4_bits: image.v4Bits.dst,
      });
      const { fd: metaFd, fill: metaFill } = this.createTable(MapName.ACTIVE, 1, 4, meta.length, u32Key(0), meta);
      created.push(metaFd);
      fillMap(metaFill); // one entry
      native.mapFreeze(metaFd);
      // fill the inactive slot: no packet reads it until the meta points at it
      yield { kind: 'writes', writes: SLOT_TABLES.map((table, i) => [this.fd(table), u32Key(slot), created[i] as number]) };
      beforeSwitch?.(generation);
      this.writeSettings({ generation_hwm: generation });
      yield { kind: 'writes', writes: [[this.fd(MapName.ACTIVE), u32Key(0), metaFd]] }; // the atomic switch
    } catch (err) {
      throw err instanceof DoorstepError ? err : kernelError('DS_E_BPF_MAP', 'installing the policy failed; the previous policy stays active', err);
    } finally {
      for (const fd of created) native.closeFd(fd);
    }
    if (current) {
      yield { kind: 'retire', version: current };
      yield { kind: 'writes', writes: this.releaseWrites(current.slot) };
    }
    return { generation, slot, ruleCount: image.ruleCount, version: image.version, durationMs: Number(process.hrtime.bigint() - started) / 1e6, countedRules };
  }

  /** Drop the inner maps of a slot no packet can reach any more, freeing their memory. */
  private releaseWrites(slot: number): [number, Buffer, number][] {
    return SLOT_TABLES.map((table) => [this.fd(table), u32Key(slot), -1]);
  }

  /** The fill that zeroes every CPU's row of per-rule counters, rules [0, count), of a version at `base` (not yet published). */
  private zeroRuleStats(base: number, count: number): MapFill {
    const keys = Buffer.alloc(count * this.cpus * 4);
    for (let cpu = 0; cpu < this.cpus; cpu++) {
      for (let i = 0; i < count; i++) keys.writeUInt32LE(base + cpu * this.ruleStatsCapacity + i, (cpu * count + i) * 4);
    }
    const valueSize = sizeOf('ds_rule_stat');
    return { fd: this.fd(MapName.RULE_STATS), keys, values: Buffer.alloc(count * this.cpus * valueSize), count: count * this.cpus, keySize: 4, valueSize, skipZero: false };
  }

  /** Remove the active policy: back to default deny (failsafe still passes). */
  uninstall(): void {
    const current = this.activePolicy();
    addon().mapDelete(this.fd(MapName.ACTIVE), u32Key(0));
    if (current) {
      this.retire(current);
      addon().mapUpdateFdMany(this.releaseWrites(current.slot));
    }
  }

  /**
   * Keep the final counters of the rules of a version just switched away from that held denied
   * sessions back (only they can owe a flood record). Read after the switch, whose grace period
   * means no packet counts there any more: exact. At most RETIRED_KEPT versions are kept for
   * takeRetiredRuleStats(); the oldest go first.
   */
  private retire(version: ActivePolicy): void {
    this.keepRetired(version, this.ruleStatsOf(version, 'held'));
  }

  /** retire(), the counters read on a thread of the addon's (a 10,000-rule version's are ~20,000 rows). */
  private async retireAsync(version: ActivePolicy): Promise<void> {
    this.keepRetired(version, await this.ruleStatsOfAsync(version, 'held'));
  }

  private keepRetired(version: ActivePolicy, rules: Map<number, RuleStat>): void {
    if (rules.size === 0) return;
    this.retired.push({ generation: version.generation, rules });
    if (this.retired.length > RETIRED_KEPT) this.retired.shift();
  }

  /**
   * The final counters of the rules that held denied sessions back, of the versions retired
   * (replaced or uninstalled) since the last call, oldest first: what a reader of ruleStats()
   * needs to account for a version's last moments.
   */
  takeRetiredRuleStats(): RetiredRuleStats[] {
    return this.retired.splice(0);
  }

  // ---- flood intervals ----

  /**
   * The flood interval the datapath's sketches and samples of held-back sessions belong to. Only
   * this engine object moves it on (advanceFloodEpoch), so it is read from ds_settings once (an
   * adopted engine's) and kept: stats() and ruleStats() need it on every call.
   */
  floodEpoch(): number {
    this.floodEpochKnown ??= readField('ds_settings', this.readSettings(), 0, 'flood_epoch');
    return this.floodEpochKnown;
  }

  /** Start the next flood interval: sketches and samples of the previous one stop growing. Returns it. */
  advanceFloodEpoch(): number {
    const next = (this.floodEpoch() + 1) >>> 0;
    this.writeSettings({ flood_epoch: next });
    this.floodEpochKnown = next;
    return next;
  }

  /**
   * The sampled sources of held-back denied sessions in the current flood interval, from every
   * CPU's sample (each held-back session overwrites a random one of Limits.FLOOD_SAMPLES slots).
   */
  floodSamples(): FloodSample[] {
    const epoch = this.floodEpoch();
    const n = 'ds_flood_sample';
    const stride = Math.ceil(sizeOf(n) / 8) * 8;
    const dump = addon().mapDump(this.fd(MapName.FLOOD_SAMPLES), 4, stride * this.cpus, Limits.FLOOD_SAMPLES);
    const out: FloodSample[] = [];
    for (let i = 0; i < dump.count; i++) {
      for (let cpu = 0; cpu < this.cpus; cpu++) {
        const at = (i * this.cpus + cpu) * stride;
        const family = readField(n, dump.values, at, 'family');
        if (family === 0 || readField(n, dump.values, at, 'epoch') !== epoch) continue;
        out.push({
          family,
          src: readBytes(n, dump.values, at, 'src'),
          generation: readField(n, dump.values, at, 'generation'),
          rule: readField(n, dump.values, at, 'counted') ? readField(n, dump.values, at, 'rule') : null,
        });
      }
    }
    return out;
  }

  // ---- settings and failsafe ----

  private setFlag(flag: number, on: boolean): void {
    const flags = readField('ds_settings', this.readSettings(), 0, 'flags');
    this.writeSettings({ flags: on ? flags | flag : flags & ~flag });
  }

  setPassNonIp(pass: boolean): void {
    this.setFlag(SettingFlag.PASS_NON_IP, pass);
  }

  /**
   * Give interfaces their role and tenant id (tenantId(name); every interface not listed is a
   * source of tenant 0, "none"). Rules scoped to tenants apply to the traffic of their tenants'
   * interfaces. On a fabric interface the engine passes the replies of sessions allowed on a
   * source interface of the same tenant, and applies policy to everything else; source
   * interfaces remember those replies only while some interface is a fabric. `l3`: the interface
   * has no link-layer header (WireGuard, TUN): its frames start at the IP header. Returns whether
   * anything changed.
   */
  setInterfaceRoles(entries: readonly InterfaceRole[]): boolean {
    const native = addon();
    const fd = this.fd(MapName.IFACES);
    const size = sizeOf('ds_iface');
    const wanted = new Map<number, Buffer>();
    for (const e of entries) {
      if (!Number.isInteger(e.ifindex) || e.ifindex <= 0 || e.ifindex >= Limits.IFACES_MAX) {
        throw new DoorstepError('DS_E_NO_INTERFACE', `interface index ${e.ifindex} cannot have a role (the engine keeps roles for indexes below ${Limits.IFACES_MAX})`);
      }
      checkTenant(e.tenant ?? 0, `interface index ${e.ifindex}`);
      wanted.set(e.ifindex, encodeStruct('ds_iface', { tenant: e.tenant ?? 0, role: e.role === 'fabric' ? IfaceRole.FABRIC : IfaceRole.SOURCE, flags: e.l3 ? IfaceFlag.L3 : 0 }));
    }
    const zero = Buffer.alloc(size);
    const dump = native.mapDump(fd, 4, size, Limits.IFACES_MAX);
    let changed = false;
    for (let i = 0; i < dump.count; i++) {
      const ifindex = dump.keys.readUInt32LE(i * 4);
      const current = dump.values.subarray(i * size, (i + 1) * size);
      const next = wanted.get(ifindex) ?? zero;
      if (current.equals(next)) continue;
      native.mapUpdate(fd, u32Key(ifindex), next);
      changed = true;
    }
    this.setFlag(SettingFlag.TRACK_REPLIES, entries.some((e) => e.role === 'fabric'));
    return changed;
  }

  /**
   * Replace the management prefixes that always pass. Returns whether anything changed: cached
   * sessions keep their failsafe verdicts until the next install, so a caller that changes the
   * failsafe under an active policy must reinstall it (a new generation re-classifies them).
   */
  setFailsafe(entries: FailsafeEntry[]): boolean {
    const wanted = entries.map((e) => ({
      key: prefixKey(e.cidr),
      value: encodeStruct('ds_failsafe_value', {
        proto: e.protocol ?? 0,
        port_lo: e.ports?.lo ?? 0,
        port_hi: e.ports?.hi ?? 0,
      }),
    }));
    // the flag tells new sessions to look the trie up: off before the last entry goes, on after
    // the first is in, so a packet never skips an entry that is there
    if (wanted.length === 0) this.setFlag(SettingFlag.FAILSAFE, false);
    const changed = this.replaceMap(MapName.FAILSAFE_V2, sizeOf('ds_prefix_key'), sizeOf('ds_failsafe_value'), wanted);
    if (wanted.length > 0) this.setFlag(SettingFlag.FAILSAFE, true);
    return changed;
  }

  /**
   * Replace the networks that tenants serve behind this enforcer (at most
   * Limits.TENANT_NETS_MAX; the longest prefix decides). A session allowed on a source interface
   * towards one of them is hairpinned out of that tenant's source interface, so its reply arrives
   * there: it passes as `reply` (not as a new session from that tenant), while the forward flow
   * stays allowed under the active version. Returns whether anything changed.
   */
  setTenantNetworks(entries: readonly TenantNetwork[]): boolean {
    if (entries.length > Limits.TENANT_NETS_MAX) {
      throw new DoorstepError('DS_E_USAGE', `${entries.length} tenant networks given; the engine holds at most ${Limits.TENANT_NETS_MAX}`, {
        hint: 'merge adjacent networks of one tenant into shorter prefixes',
      });
    }
    const wanted = entries.map((e) => {
      const cidr = typeof e.cidr === 'string' ? parseCidr(e.cidr) : e.cidr;
      if ('problem' in cidr) throw new DoorstepError('DS_E_USAGE', `tenant network ${String(e.cidr)}: ${cidr.problem}`);
      checkTenant(e.tenant, `tenant network ${typeof e.cidr === 'string' ? e.cidr : `${cidr.len}-bit prefix`}`);
      return { key: prefixKey(cidr), value: u32Key(e.tenant) };
    });
    const changed = this.replaceMap(MapName.TENANTNET_V2, sizeOf('ds_prefix_key'), 4, wanted);
    this.setFlag(SettingFlag.TENANT_NETS, entries.length > 0);
    return changed;
  }

  /** Make a hash-like map hold exactly `wanted` (the last of equal keys wins); whether anything changed. */
  private replaceMap(map: MapName, keySize: number, valueSize: number, wanted: readonly { key: Buffer; value: Buffer }[]): boolean {
    const native = addon();
    const fd = this.fd(map);
    const keep = new Map(wanted.map((w) => [w.key.toString('hex'), w]));
    const stale: Buffer[] = [];
    let cursor: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(keySize);
      if (!native.mapNextKey(fd, cursor, next)) break;
      if (!keep.has(next.toString('hex'))) stale.push(next);
      cursor = next;
    }
    let changed = false;
    const current = Buffer.alloc(valueSize);
    for (const w of keep.values()) {
      if (native.mapLookup(fd, w.key, current) && current.equals(w.value)) continue;
      native.mapUpdate(fd, w.key, w.value);
      changed = true;
    }
    for (const k of stale) {
      native.mapDelete(fd, k);
      changed = true;
    }
    return changed;
  }

  // ---- observation ----

  stats(): CpuStats {
    const stride = Math.ceil(CPU_STATS_SIZE / 8) * 8;
    const value = Buffer.alloc(stride * this.cpus);
    addon().mapLookup(this.fd(MapName.STATS), u32Key(0), value);
    return decodeCpuStats(value, this.cpus, this.floodEpoch());
  }

  /**
   * Per-rule packets and bytes of the active version (index 0 = the default action), summed over
   * CPUs: every rule, or only those that `matched` a packet, or only those that `held` sessions
   * back (a 10,000-rule blocklist is mostly rules that did neither, and a reader that needs only
   * the others should not pay for them).
   */
  ruleStats(which: RuleStatsFilter = 'all'): Map<number, RuleStat> {
    const active = this.activePolicy();
    return active ? this.ruleStatsOf(active, which) : new Map();
  }

  /**
   * ruleStats(), with the rows read on a thread of the addon's: the event loop only sums them. The
   * active version is the one at the call; `generation` names it (0: none was active). The rows are
   * that version's even if an install replaces it meanwhile (an install zeroes a slot's rows only
   * after the reads in flight).
   */
  async ruleStatsAsync(which: RuleStatsFilter = 'all'): Promise<{ generation: number; rules: Map<number, RuleStat> }> {
    const active = this.activePolicy();
    return { generation: active?.generation ?? 0, rules: active ? await this.ruleStatsOfAsync(active, which) : new Map() };
  }

  /** The per-rule counters of `version`, summed over CPUs (rule 0 = the policy default). */
  private ruleStatsOf(active: ActivePolicy, which: RuleStatsFilter): Map<number, RuleStat> {
    const { count, epoch } = this.ruleRowsOf(active);
    const rows = this.ruleRowRanges(active, count).map(({ cpu, start, after }) => {
      const dump = addon().mapDump(this.fd(MapName.RULE_STATS), 4, RULE_STAT.size, count, after);
      return this.checkSparseRuleRows({ ...dump, walked: dump.count }, cpu, start, count);
    });
    return sumSparseRuleRows(rows, count, which, epoch);
  }

  /** ruleStatsOf, each CPU's rows read on a thread of the addon's (a walk with its own descriptor of
   *  the map), which hands back only the rows that are not all zero (sumSparseRuleRows). */
  private async ruleStatsOfAsync(active: ActivePolicy, which: RuleStatsFilter): Promise<Map<number, RuleStat>> {
    const { count, epoch } = this.ruleRowsOf(active);
    const fd = this.fd(MapName.RULE_STATS);
    const read = Promise.all(
      this.ruleRowRanges(active, count).map(async ({ cpu, start, after }) => this.checkSparseRuleRows(await addon().mapDumpAsync(fd, 4, RULE_STAT.size, count, after, true), cpu, start, count)),
    );
    this.statsReads.add(read);
    try {
      return sumSparseRuleRows(await read, count, which, epoch);
    } finally {
      this.statsReads.delete(read);
    }
  }

  private ruleRowsOf(active: ActivePolicy): { count: number; epoch: number } {
    return { count: Math.min(active.ruleCount + 1, this.ruleStatsCapacity), epoch: this.floodEpoch() };
  }

  /** Where each CPU's row of `active`'s counters starts in ds_rule_stats (an array: every index, in order), and the key a walk starts after. */
  private ruleRowRanges(active: ActivePolicy, count: number): { cpu: number; start: number; after: Buffer | null }[] {
    return Array.from({ length: this.cpus }, (_, cpu) => {
      const start = (active.slot * this.cpus + cpu) * this.ruleStatsCapacity;
      return { cpu, start, after: start > 0 ? u32Key(start - 1) : null };
    });
  }

  /** A walk of one CPU's `count` rows from `start`: it walked all of them, and kept (all, or those not all zero) only rows of them. */
  private checkSparseRuleRows(dump: { keys: Buffer; values: Buffer; count: number; walked: number }, cpu: number, start: number, count: number): SparseRuleRows {
    const outside = dump.count > 0 && (dump.keys.readUInt32LE(0) < start || dump.keys.readUInt32LE((dump.count - 1) * 4) >= start + count);
    if (dump.walked !== count || outside) {
      throw new DoorstepError('DS_E_BPF_MAP', `ds_rule_stats: read ${dump.walked} rows of CPU ${cpu} from ${start}, expected ${count}`);
    }
    return { keys: dump.keys, values: dump.values, count: dump.count, start };
  }


  /** The cached decision for one flow (allowed or denied), or null. For tools and tests. */
  lookupSession(key: SessionKey): SessionValue | null {
    const k = encodeSessionKey(key);
    const { values, found } = this.lookupSessions(k, flowDigest(k), 1);
    return found[0] ? decodeSessionValue(values) : null;
  }

  /** Sessions in the caches, allowed and denied, counted without decoding them, in one go: for
   *  tools and tests; the agent counts with sessionCountAsync(). */
  sessionCount(): number {
    let n = 0;
    for (const count of this.countSlices()) n += count;
    return n;
  }

  /** A walk of the session caches counted, a slice (COUNT_SLICE entries) at a time: each slice's count. */
  private *countSlices(): Generator<number> {
    let cursor: SessionCursor | null = null;
    do {
      const slice: SessionSlice = this.readSessionSlice(cursor, COUNT_SLICE, true);
      cursor = slice.cursor;
      yield slice.count;
    } while (cursor);
  }

  /**
   * One slice of a walk of the session caches (allowed, then denied): at most `max` entries from
   * `cursor` (null: the start), raw (SESSION_KEY_SIZE / SESSION_VALUE_SIZE each), and the cursor
   * of the next slice (null: the walk is over). A slice costs one batch read of one cache.
   */
  readSessionSlice(cursor: SessionCursor | null, max = SESSION_SLICE, countOnly = false): SessionSlice {
    let at: SessionCursor = cursor ?? { map: 0, token: null };
    for (;;) {
      const map = SESSION_MAPS[at.map]!;
      const r = addon().mapReadBatch(this.fd(map), ...entrySizes(map), max, at.token, countOnly, presentAt(map));
      const next: SessionCursor | null = r.cursor ? { map: at.map, token: r.cursor } : at.map + 1 < SESSION_MAPS.length ? { map: at.map + 1, token: null } : null;
      if (r.count > 0 || next === null) {
        const { keys, values, count } = map === MapName.DENIES && !countOnly ? splitDenyEntries(r.values, r.count) : r;
        return { keys, values, count, cursor: next };
      }
      at = next;
    }
  }

  /** The cached sessions, decoded a slice at a time, yielding to the event loop between slices
   *  (a key's addresses are views into its slice's buffer). */
  async *sessionSlices(max = SESSION_SLICE): AsyncGenerator<Session[]> {
    let cursor: SessionCursor | null = null;
    do {
      const slice: SessionSlice = this.readSessionSlice(cursor, max);
      cursor = slice.cursor;
      const out: Session[] = new Array(slice.count);
      for (let i = 0; i < slice.count; i++) {
        out[i] = { key: readSessionKey(slice.keys, i * SESSION_KEY_SIZE), value: readSessionValue(slice.values, i * SESSION_VALUE_SIZE) };
      }
      yield out;
      if (cursor) await yieldToEventLoop();
    } while (cursor);
  }

  /**
   * Entries in the session caches, counted on a thread of the addon's (a walk with its own
   * descriptor of each cache): a full cache is 262,144 entries of batch reads, which the event
   * loop does not wait out; nothing but the number reaches JavaScript.
   */
  async sessionCountAsync(): Promise<number> {
    const counts = await Promise.all(SESSION_MAPS.map((map) => addon().mapCountAsync(this.fd(map), ...entrySizes(map), 0xffff_ffff, presentAt(map))));
    return counts.reduce((n, c) => n + c, 0);
  }

  // ---- summary marks (ds_settings.summary_epoch, ds_dirty) ----

  /** The summary epoch the datapath marks sessions with (0: none). */
  summaryEpoch(): number {
    return readField('ds_settings', this.readSettings(), 0, 'summary_epoch');
  }

  /** Start summary epoch `epoch` (> 0; 0 stops marking): from the next packet on, a session's first packet in it marks it. */
  setSummaryEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) throw new DoorstepError('DS_E_USAGE', `summary epoch ${epoch} is not a u32`);
    this.writeSettings({ summary_epoch: epoch });
  }

  /** Up to `max` records (struct ds_dirty, DIRTY_SIZE bytes each) from ds_dirty, consumed. */
  drainDirty(max: number): { records: Buffer; count: number } {
    this.dirty ??= new (addon().RingDrain)(this.fd(MapName.DIRTY));
    return this.dirty.drain(max, DIRTY_SIZE);
  }

  /** Look `count` flows (SESSION_KEY_SIZE bytes each) up in both caches, one call per cache:
   *  ds_sessions by the flow, then, for those not found there, the two ways of their ds_denies
   *  bucket, found from their digests (DIGEST_SIZE bytes each, as the ds_dirty records carry them).
   *  Their values (SESSION_VALUE_SIZE each) and, per flow, where it was found (1: allowed,
   *  2: denied, 0: gone). */
  lookupSessions(keys: Buffer, digests: Buffer, count: number): { values: Buffer; found: Buffer } {
    const allowed = addon().mapLookupMany([this.fd(MapName.SESSIONS)], keys, count, SESSION_KEY_SIZE, SESSION_VALUE_SIZE);
    const missing: number[] = [];
    for (let i = 0; i < count; i++) if (!allowed.found[i]) missing.push(i);
    if (missing.length === 0) return allowed;
    const shift = this.denyShift;
    const ways = Buffer.allocUnsafe(missing.length * 2 * 4);
    missing.forEach((i, j) => {
      const way = denyBucketWay(digests, i * DIGEST_SIZE, shift);
      ways.writeUInt32LE(way, j * 8);
      ways.writeUInt32LE(way + 1, j * 8 + 4);
    });
    const denied = addon().mapLookupMany([this.fd(MapName.DENIES)], ways, missing.length * 2, 4, DENY_ENTRY_SIZE);
    missing.forEach((i, j) => {
      for (const w of [2 * j, 2 * j + 1]) {
        const at = w * DENY_ENTRY_SIZE;
        if (!denied.found[w] || denied.values.compare(keys, i * SESSION_KEY_SIZE, (i + 1) * SESSION_KEY_SIZE, at + DENY_KEY_AT, at + DENY_KEY_AT + SESSION_KEY_SIZE) !== 0) continue;
        denied.values.copy(allowed.values, i * SESSION_VALUE_SIZE, at + DENY_VALUE_AT, at + DENY_VALUE_AT + SESSION_VALUE_SIZE);
        allowed.found[i] = 2;
        return;
      }
    });
    return allowed;
  }

  /** The cached sessions, allowed ones first, at most `limit` of each cache. */
  sessions(limit = 1 << 20): Session[] {
    const out: Session[] = [];
    for (const map of SESSION_MAPS) {
      const dump = addon().mapDump(this.fd(map), ...entrySizes(map), limit);
      const { keys, values, count } = map === MapName.DENIES ? splitDenyEntries(dump.values, dump.count) : dump;
      for (let i = 0; i < count; i++) {
        out.push({ key: decodeSessionKey(keys, i * SESSION_KEY_SIZE), value: decodeSessionValue(values, i * SESSION_VALUE_SIZE) });
      }
    }
    return out;
  }

  /**
   * Forget every session, fragment record and expected reply (ds_sessions, ds_denies, ds_frags,
   * ds_replies), so tests can start a run of frames from a known state. Policy, settings and
   * counters stay.
   */
  clearFlowState(): void {
    const native = addon();
    // ds_denies is an array: its ways are emptied (their flows' family word cleared), not deleted
    addon().mapClearBytes(this.fd(MapName.DENIES), DENY_ENTRY_SIZE, addon().mapInfo(this.fd(MapName.DENIES)).maxEntries, DENY_TAG_AT, 8);
    for (const map of [MapName.SESSIONS, MapName.FRAGS, MapName.REPLIES]) {
      const fd = this.fd(map);
      const { keySize, valueSize, maxEntries } = native.mapInfo(fd);
      const dump = native.mapDump(fd, keySize, valueSize, maxEntries);
      for (let i = 0; i < dump.count; i++) native.mapDelete(fd, dump.keys.subarray(i * keySize, (i + 1) * keySize));
    }
    this.ageFlowFilter();
    this.ageFlowFilter();
  }

  /**
   * Clear one bank of ds_flow_filter, the other bank next time. A cached session sets its bit in
   * both banks again on its next packet, so only a session idle since the previous call loses it;
   * its next packet is then classified as a new one's, and finds its entry when it inserts (the
   * entry carries on: same traffic, no new event). Call it periodically (the agent: every
   * FLOW_FILTER_AGING_MS), or the filter fills and every new flow pays a probe of the caches again.
   * The coarse level (ds_flow_coarse, a bit per entry) is rewritten from what stays, so an entry
   * left empty is not read again. Bits the datapath sets while this runs may be lost: that costs
   * the flow one classification, never a verdict.
   */
  ageFlowFilter(): void {
    const [fd, size, entries, at, coarse] = this.nextAgedBankArgs();
    addon().mapClearBytes(fd, size, entries, at, 8, coarse);
  }

  /** ageFlowFilter(), read and written off the event loop (~32,768 entries). */
  ageFlowFilterAsync(): Promise<void> {
    const [fd, size, entries, at, coarse] = this.nextAgedBankArgs();
    return addon().mapClearBytesAsync(fd, size, entries, at, 8, coarse);
  }

  /** Where the bank ageFlowFilter() clears now lies in ds_flow_filter, and its coarse level (and move on to the other bank). */
  private nextAgedBankArgs(): [fd: number, valueSize: number, entries: number, offset: number, coarseFd: number] {
    const at = Layouts.ds_flow_filter_entry.fields.bank.offset + this.nextAgedBank * 8;
    this.nextAgedBank = 1 - this.nextAgedBank;
    return [this.fd(MapName.FLOW_FILTER), sizeOf('ds_flow_filter_entry'), Limits.FLOW_FILTER_ENTRIES, at, this.fd(MapName.FLOW_COARSE)];
  }

  /** Subscribe to session events, delivered in batches from the ring-buffer thread. */
  onEvents(handler: (events: RawEvent[]) => void): () => void {
    this.eventHandlers.add(handler);
    if (!this.reader) {
      this.reader = new (addon().RingBufferReader)(this.fd(MapName.EVENTS), (batch, count) => {
        const events = decodeEventBatch(batch, count);
        for (const h of this.eventHandlers) h(events);
      });
    }
    return () => {
      this.eventHandlers.delete(handler);
    };
  }

  /** Run one frame through the attached program (BPF_PROG_TEST_RUN). */
  testRun(frame: Buffer, options: { ingressIfindex?: number; repeat?: number } = {}): TestRunResult {
    const r = addon().testRun(this.programFd, frame, options.repeat ?? 1, options.ingressIfindex ?? 0);
    const verdict = r.retval === XDP_PASS ? 'pass' : r.retval === XDP_DROP ? 'drop' : 'other';
    return { verdict, retval: r.retval, durationNs: r.duration };
  }

  /**
   * What the active policy tables decide for `frame` as the first packet of a new session on a
   * source interface of `options.tenant` (none by default): the frame runs through
   * ds_xdp_explain (BPF_PROG_TEST_RUN), the same parser and classifier as ds_xdp_ingress over the
   * same maps, which writes no map — no session, fragment, counter, per-rule statistic or event —
   * and returns its decision in front of the frame. The tenant travels in front of the frame
   * (struct ds_explain_input), so no interface of that tenant is needed.
   */
  explain(frame: Buffer, options: ExplainOptions = {}): EngineExplanation {
    const tenant = options.tenant ?? 0;
    checkTenant(tenant, 'explain');
    if (frame.length < ETH_HLEN) {
      throw new DoorstepError('DS_E_USAGE', `a ${frame.length}-byte frame cannot be explained`, { hint: `give a frame of at least ${ETH_HLEN} bytes (an Ethernet header)` });
    }
    let fd: number;
    try {
      fd = this.live().programFd('ds_xdp_explain');
    } catch (cause) {
      if (cause instanceof DoorstepError) throw cause;
      throw new DoorstepError('DS_E_BPF_OBJECT', 'the engine object has no ds_xdp_explain program', {
        hint: 'rebuild it with scripts/bootstrap.sh (or npm run build:bpf)',
        cause,
      });
    }
    const r = addon().testRun(fd, Buffer.concat([encodeStruct('ds_explain_input', { tenant }), frame]), 1, 0);
    const size = sizeOf('ds_explain_result');
    if (r.retval !== XDP_PASS || r.data.length !== frame.length + size) {
      throw new DoorstepError('DS_E_ABI_MISMATCH', `ds_xdp_explain returned ${r.retval} and ${r.data.length} bytes for a ${frame.length}-byte frame`, {
        hint: 'rebuild (npm run build) so the object and the TypeScript ABI agree',
      });
    }
    const n = 'ds_explain_result';
    return {
      action: readField(n, r.data, 0, 'action'),
      reason: readField(n, r.data, 0, 'reason'),
      rule: readField(n, r.data, 0, 'rule'),
      generation: readField(n, r.data, 0, 'generation'),
      log: readField(n, r.data, 0, 'log') !== 0,
      flags: readField(n, r.data, 0, 'flags'),
      tenant: readField(n, r.data, 0, 'tenant'),
      key: decodeSessionKey(r.data, offsetOf(n, 'key')),
    };
  }

  /**
   * Stop reading events and release the object. Unless `keepAttached`, detach every interface
   * and remove the pins, so nothing is left behind.
   */
  close(options: { keepAttached?: boolean } = {}): void {
    if (this.closed) return;
    this.reader?.close();
    this.reader = undefined;
    this.dirty?.close();
    this.dirty = undefined;
    if (!options.keepAttached) {
      for (const ifname of [...this.links.keys()]) this.detach(ifname);
      if (this.pinRoot) rmSync(this.pinRoot, { recursive: true, force: true });
    } else {
      for (const link of this.links.values()) addon().closeFd(link.fd);
      this.links.clear();
    }
    this.obj.close();
    this.closed = true;
  }
}

