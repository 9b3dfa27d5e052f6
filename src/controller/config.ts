// SPDX-License-Identifier: Apache-2.0
// The agent's settings: defaults, an optional YAML file (`--config`), and command-line flags,
// in that order of precedence. Owns the schema and the merge; reads one file, touches nothing else.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DoorstepError } from '../errors.js';
import { parseDuration } from '../units.js';
import { parseCidr } from '../policy/ir/cidr.js';
import { protocolNumber } from '../policy/ir/protocols.js';
import type { FailsafeEntry } from '../engine/engine-interface.js';
import { DEFAULT_STATUS_BUCKET, DEFAULT_STATUS_TTL_MS } from '../fleet/enforcer-status.js';
import type { NatsAuth } from '../fleet/nats-connection.js';
import { checkUiBind, type UiSettings } from './ui-settings.js';
import { enforcedInterfaces, type Placement, placementFileSchema, resolvePlacement } from '../placement/placement.js';

export const DEFAULT_STATE_DIR = '/var/lib/doorstep';
export const DEFAULT_SOCKET = '/run/doorstep/agent.sock';
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/doorstep';

const duration = z.union([z.number().nonnegative(), z.string().refine((t) => parseDuration(t) !== undefined, 'a duration such as 500ms, 10s, 5m')]);
const size = z.union([z.number().int().positive(), z.string().regex(/^\d+[KMG]?$/i, 'a size such as 100M')]);

const failsafeSchema = z.strictObject({
  cidr: z.string(),
  protocol: z.union([z.string(), z.number().int().min(0).max(255)]).optional(),
  ports: z.union([z.number().int().min(0).max(65535), z.string().regex(/^\d+(-\d+)?$/)]).optional(),
});

/** The config file: every key optional; flags use the same names in kebab-case. */
export const configFileSchema = z.strictObject({
  interfaces: z.array(z.string()).optional(),
  policy: z.union([z.string(), z.array(z.string())]).optional(),
  /** Audit destinations: a file, `-` (stdout), `nats://HOST:PORT/STREAM`; one or several. */
  audit: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  /** Records the NATS audit sink holds while NATS is away; past it they are counted as lost. */
  auditBuffer: z.number().int().positive().optional(),
  auditMaxBytes: size.optional(),
  auditKeep: z.number().int().min(1).max(100).optional(),
  summaryInterval: duration.optional(),
  /** Session records a second, per CPU and per rule, for denied sessions; past it, `flood` records count them. 0 = no limit. */
  denyEventBudget: z.number().int().min(0).max(0xffffffff).optional(),
  /** Session records a second for denied sessions on the whole enforcer, all rules together; past it, `flood` records count them. 0 = no limit. */
  denyEventCap: z.number().int().min(0).max(0xffffffff).optional(),
  metrics: z.string().optional(),
  /** The flow history: a DuckDB file the audit records feed (`doorstep report`, `diff --history`). */
  history: z.string().optional(),
  historyMaxBytes: size.optional(),
  historyMaxAge: duration.optional(),
  /** The read-only web UI's HOST:PORT (docs/ui.md); loopback unless uiAllowRemote. */
  ui: z.string().optional(),
  uiAllowRemote: z.boolean().optional(),
  /** A file holding the bearer token the UI requires. */
  uiToken: z.string().optional(),
  stateDir: z.string().optional(),
  enforcerId: z.string().min(1).optional(),
  /** This enforcer's labels (cloud, region, vpc, placement, free labels): fleet policies select by them. */
  labels: z.record(z.string(), z.string()).optional(),
  socket: z.string().optional(),
  pinRoot: z.string().optional(),
  xdpMode: z.enum(['auto', 'native', 'generic']).optional(),
  /** Detach the engine, remove the tunnels and restore the hardened settings when the agent stops
   *  (tests, demos); by default a stopped agent leaves the engine enforcing for the next one. */
  detachOnExit: z.boolean().optional(),
  /** Deprecated, no effect: keeping the engine enforcing at a stop is the default now. */
  keepOnExit: z.boolean().optional(),
  failsafe: z.array(failsafeSchema).optional(),
  /** Credentials and TLS for every NATS address (policy, status, audit). */
  nats: z.strictObject({ creds: z.string().optional(), tlsCa: z.string().optional(), tlsCert: z.string().optional(), tlsKey: z.string().optional() }).optional(),
  /** ed25519 public keys (PEM files): with any, only fleet policies signed by one of them are installed. */
  policyPubkey: z.union([z.string(), z.array(z.string())]).optional(),
  statusBucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  statusTtl: duration.optional(),
  /** Placement (docs/placement.md): the source networks, the edge tunnel, hairpin prefixes. */
  ...placementFileSchema,
});

export type ConfigFile = z.infer<typeof configFileSchema>;

export interface AgentConfig {
  /** Every interface the engine enforces on (with a placement: its sources and tunnels). */
  interfaces: string[];
  /** Where the enforcer stands and what it forwards; undefined = enforce only, forward nothing. */
  placement: Placement | undefined;
  /** Policy files or folders; empty = no file source (the local API and the state dir only). */
  policy: string[];
  /** Audit destinations: files, `-` = stdout, `nats://…/STREAM`. */
  audit: string[];
  auditBuffer: number;
  auditMaxBytes: number;
  auditKeep: number;
  summaryIntervalMs: number;
  denyEventBudget: number;
  denyEventCap: number;
  metrics: { host: string; port: number } | null;
  /** The flow history's file and retention; null = none. */
  history: { path: string; maxBytes: number; maxAgeMs: number } | null;
  /** The web UI; null = off (the default). */
  ui: UiSettings | null;
  stateDir: string;
  enforcerId: string;
  labels: Record<string, string>;
  socket: string;
  pinRoot: string;
  xdpMode: 'auto' | 'native' | 'generic';
  /** Detach and take back everything at a stop (default false: the engine keeps enforcing). */
  detachOnExit: boolean;
  failsafe: FailsafeEntry[];
  nats: NatsAuth;
  policyPubkeys: string[];
  statusBucket: string;
  statusTtlMs: number;
}

/** Flags as commander hands them over: only those the operator gave are set. */
export type AgentFlags = Partial<Omit<ConfigFile, 'failsafe' | 'labels' | 'nats' | 'audit' | 'policyPubkey' | keyof typeof placementFileSchema>> & {
  config?: string;
  labels?: string[];
  audit?: string[];
  policyPubkey?: string[];
  natsCreds?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
};

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function configError(message: string, hint: string, cause?: unknown): DoorstepError {
  return new DoorstepError('DS_E_CONFIG', message, { hint, cause });
}

/** A duration setting in ms: a number of seconds, or text such as 500ms, 10s, 5m. */
export function durationSetting(value: number | string): number {
  if (typeof value === 'number') return value * 1000;
  const ms = parseDuration(value);
  if (ms === undefined) throw configError(`"${value}" is not a duration`, 'write e.g. 500ms, 10s, 5m');
  return ms;
}

export function parseSize(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+)([KMG]?)$/i.exec(value);
  if (!m) throw configError(`"${value}" is not a size`, 'write e.g. 100M');
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw configError(`"${value}" is not HOST:PORT`, 'write e.g. 127.0.0.1:9469 or [::1]:9469');
  return { host: (m[1] ?? m[2]) as string, port };
}

function parseFailsafe(entries: z.infer<typeof failsafeSchema>[], file: string): FailsafeEntry[] {
  return entries.map((e, i) => {
    const where = `${file}: failsafe[${i}]`;
    const parsed = parseCidr(e.cidr);
    if ('problem' in parsed) throw configError(`${where}.cidr: ${parsed.problem}`, 'write a prefix such as 192.0.2.0/24');
    let protocol: number | undefined;
    if (e.protocol !== undefined) {
      const p = typeof e.protocol === 'number' ? e.protocol : protocolNumber(e.protocol);
      if (p === undefined) throw configError(`${where}.protocol: unknown protocol "${e.protocol}"`, 'use tcp, udp, icmp, … or a number');
      protocol = p;
    }
    let ports: { lo: number; hi: number } | undefined;
    if (e.ports !== undefined) {
      const [lo, hi] = String(e.ports).split('-').map(Number) as [number, number | undefined];
      ports = { lo, hi: hi ?? lo };
      if (ports.hi < ports.lo || ports.hi > 65535) throw configError(`${where}.ports: "${e.ports}" is not a port range`, 'write 22 or 8000-8080');
    }
    return { cidr: parsed, ...(protocol !== undefined && { protocol }), ...(ports && { ports }) };
  });
}

/** `key=value` flags; a key may not be empty, a value may. */
export function parseLabels(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new DoorstepError('DS_E_USAGE', `"${pair}" is not a label`, { hint: 'write --label key=value, e.g. --label region=eu-west-1' });
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** Read and check the config file: any problem is one DS_E_CONFIG error naming the file and key. */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw configError(`cannot read the config file ${path}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, 'check the path and its permissions', cause);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (cause) {
    throw configError(`${path}: not valid YAML: ${(cause as Error).message.split('\n')[0]}`, 'fix the YAML syntax', cause);
  }
  const result = configFileSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = issue?.path.join('.') || '(top level)';
    throw configError(`${path}: ${key}: ${issue?.message ?? 'invalid'}`, 'see docs/operations.md for the agent settings');
  }
  return result.data;
}

function natsAuth(flags: AgentFlags, file: ConfigFile): NatsAuth {
  const given = { creds: flags.natsCreds, tlsCa: flags.natsTlsCa, tlsCert: flags.natsTlsCert, tlsKey: flags.natsTlsKey };
  const auth: NatsAuth = {};
  for (const k of ['creds', 'tlsCa', 'tlsCert', 'tlsKey'] as const) {
    const v = given[k] ?? file.nats?.[k];
    if (v) auth[k] = v;
  }
  return auth;
}

/** Session records a second per CPU and rule for denied sessions, unless configured: about 35 KB/s of audit per flooded rule and CPU. */
export const DEFAULT_DENY_EVENT_BUDGET = 100;

/** Session records a second for denied sessions on the whole enforcer, unless configured: ~0.7 MB/s of audit at ~350 bytes a record, under 1 MB/s whatever a flood meets. */
export const DEFAULT_DENY_EVENT_CAP = 2000;

/** The web UI's settings, its bind checked (loopback unless allowed); null without an address. */
export function uiSettings(listen: string | undefined, allowRemote: boolean, tokenFile: string | undefined): UiSettings | null {
  if (!listen) {
    if (tokenFile || allowRemote) throw configError('--ui-token and --ui-allow-remote go with --ui HOST:PORT', 'add --ui 127.0.0.1:9470, or drop them');
    return null;
  }
  const settings = { ...parseListen(listen), allowRemote, tokenFile };
  checkUiBind(settings);
  return settings;
}

/** Defaults ← config file ← flags. */
export function resolveConfig(flags: AgentFlags): AgentConfig {
  const file: ConfigFile = flags.config ? readConfigFile(flags.config) : {};
  const pick = <K extends keyof ConfigFile & keyof AgentFlags>(key: K) => (flags[key] !== undefined ? flags[key] : file[key]);
  const many = (flag: string[] | undefined, inFile: string | string[] | undefined) => (flag?.length ? flag : list(inFile));
  const placement = resolvePlacement(file, flags.config ?? 'config');
  const given = (flags.interfaces?.length ? flags.interfaces : file.interfaces) ?? [];
  if (placement && given.length > 0) {
    throw new DoorstepError('DS_E_CONFIG', 'with a placement, the interfaces come from `sources:` (and the tunnels the agent creates)', {
      hint: 'remove `interfaces:` / --interface, or the placement',
    });
  }
  const interfaces = placement ? enforcedInterfaces(placement).map((i) => i.name) : given;
  if (interfaces.length === 0) {
    throw new DoorstepError('DS_E_USAGE', 'no interface to enforce on', { hint: 'give --interface NAME (repeatable) or `interfaces:` in the config file' });
  }
  const policy = pick('policy');
  const metrics = pick('metrics');
  return {
    ui: uiSettings(pick('ui'), pick('uiAllowRemote') ?? false, pick('uiToken')),
    interfaces,
    placement,
    policy: list(policy),
    audit: many(flags.audit, file.audit).length > 0 ? many(flags.audit, file.audit) : ['-'],
    auditBuffer: pick('auditBuffer') ?? 100_000,
    auditMaxBytes: parseSize(pick('auditMaxBytes') ?? '100M'),
    auditKeep: pick('auditKeep') ?? 5,
    summaryIntervalMs: durationSetting(pick('summaryInterval') ?? '10s'),
    denyEventBudget: pick('denyEventBudget') ?? DEFAULT_DENY_EVENT_BUDGET,
    denyEventCap: pick('denyEventCap') ?? DEFAULT_DENY_EVENT_CAP,
    metrics: metrics ? parseListen(metrics) : null,
    history: historyOf(pick('history'), pick('historyMaxBytes'), pick('historyMaxAge')),
    stateDir: pick('stateDir') ?? DEFAULT_STATE_DIR,
    enforcerId: pick('enforcerId') ?? hostname(),
    labels: { ...file.labels, ...parseLabels(flags.labels ?? []) },
    socket: pick('socket') ?? DEFAULT_SOCKET,
    pinRoot: pick('pinRoot') ?? DEFAULT_PIN_ROOT,
    xdpMode: pick('xdpMode') ?? 'auto',
    detachOnExit: pick('detachOnExit') ?? false,
    failsafe: parseFailsafe(file.failsafe ?? [], flags.config ?? 'config'),
    nats: natsAuth(flags, file),
    policyPubkeys: many(flags.policyPubkey, file.policyPubkey),
    statusBucket: pick('statusBucket') ?? DEFAULT_STATUS_BUCKET,
    statusTtlMs: durationSetting(pick('statusTtl') ?? DEFAULT_STATUS_TTL_MS / 1000),
  };
}

/** The flow history's settings: 256M and 7 days unless told (docs/audit.md, "Flow history"). */
function historyOf(path: string | undefined, maxBytes: string | number | undefined, maxAge: string | number | undefined): AgentConfig['history'] {
  if (path === undefined) return null;
  return { path, maxBytes: parseSize(maxBytes ?? '256M'), maxAgeMs: durationSetting(maxAge ?? '7d') };
}
