// SPDX-License-Identifier: Apache-2.0
// What each enforcer reports into the fleet's status bucket, and what the fleet tools conclude
// from it against the registered members (src/fleet/membership.ts): the version each enforcer
// should run (the union of the envelopes that select it, compiled), whether it runs it, which
// are missing, stale or rejecting, and whether the fleet has converged; and the texts of an
// enforcer's expected version and health that `fleet status` and the fleet UI share. Pure: no I/O.
import { z } from 'zod';
import { compileIr } from '../policy/compile.js';
import { type BucketEntry, candidateFor, type Labels } from './policy-envelope.js';
import type { Member } from './membership.js';
import { natsToken } from './nats-connection.js';

/** Keys under which enforcers report in the status bucket. */
export const STATUS_KEY_PREFIX = 'enforcers.';
export const DEFAULT_STATUS_BUCKET = 'doorstep-status';
/** A report older than this disappears from the bucket: a dead enforcer is then missing (src/fleet/membership.ts). */
export const DEFAULT_STATUS_TTL_MS = 30_000;

export const statusKey = (enforcer: string): string => `${STATUS_KEY_PREFIX}${natsToken(enforcer)}`;

export const enforcerStatusSchema = z.object({
  format: z.literal(1),
  enforcer: z.string(),
  labels: z.record(z.string(), z.string()),
  /** `enforcing`: a policy is installed; `default-deny`: none yet (everything but the failsafe is dropped);
   *  `rejecting`: the newest candidate was rejected, the previous version stays in force. */
  health: z.enum(['enforcing', 'default-deny', 'rejecting']),
  policy: z
    .object({
      version: z.string().nullable(),
      generation: z.number(),
      revision: z.number().optional(),
      origin: z.string(),
      rules: z.number(),
      installedAt: z.string(),
    })
    .nullable(),
  rejected: z
    .object({ revision: z.number().optional(), at: z.string(), problems: z.array(z.string()) })
    .nullable(),
  counters: z.object({ passed: z.number(), dropped: z.number(), sessions: z.number(), eventsLost: z.number(), auditDropped: z.number() }),
  interfaces: z.array(z.object({ name: z.string(), mode: z.string() })),
  /** A placement over WireGuard: this enforcer's public key, and per tunnel what the edge's peer list needs. */
  wireguard: z
    .object({
      publicKey: z.string(),
      tunnels: z.array(z.object({ name: z.string(), edgePort: z.number(), publicKey: z.string(), endpoint: z.string().nullable(), allowedIps: z.array(z.string()) })),
    })
    .optional(),
  /** The policy watch: `live`, or `stale` since when (NATS away, a failed or stalled watch), and
   *  the revision it has seen against the bucket's newest when last read. */
  sync: z
    .object({
      state: z.enum(['live', 'stale']),
      staleSince: z.string().nullable(),
      revision: z.number(),
      bucketRevision: z.number().nullable(),
      bucketReadAt: z.string().nullable(),
      /** The last warning about a set accepted (a signing clock far off this one's), null when none. */
      warning: z.string().nullable().optional(),
    })
    .optional(),
  agent: z.object({ pid: z.number(), startedAt: z.string() }),
  /** When this report was written (the enforcer's clock). */
  updatedAt: z.string(),
});

export type EnforcerStatus = z.infer<typeof enforcerStatusSchema>;

/** A bucket value as `schema` says, or undefined when it is not JSON or not that shape. */
export function parseValue<T>(schema: z.ZodType<T>, bytes: Uint8Array): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(Buffer.from(bytes).toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export const parseStatus = (bytes: Uint8Array): EnforcerStatus | undefined => parseValue(enforcerStatusSchema, bytes);

/** What an enforcer with `labels` should run: a version, nothing (no envelope selects it), or a set that does not compile. */
export type Expected = { version: string } | { none: true } | { invalid: string };

/** The expected version per distinct label set, compiled once each. */
export class ExpectedVersions {
  private readonly cache = new Map<string, Expected>();

  constructor(
    private readonly bucket: string,
    private readonly entries: readonly BucketEntry[],
  ) {}

  for(labels: Labels): Expected {
    const key = JSON.stringify(Object.entries(labels).sort());
    let e = this.cache.get(key);
    if (!e) {
      const candidate = candidateFor(this.bucket, this.entries, labels, 0);
      if (candidate.sources.length === 0) e = { none: true };
      else {
        try {
          e = { version: compileIr(candidate.sources).ir.version };
        } catch (err) {
          e = { invalid: err instanceof Error ? err.message : String(err) };
        }
      }
      this.cache.set(key, e);
    }
    return e;
  }
}

/**
 * Where an enforcer stands: `in-sync` (runs what its labels select, or nothing selects it),
 * `missing` (registered, no report within the status TTL: cut off, stopped or dead), `stale` (its
 * policy watch is behind the bucket), `rejecting` (its newest candidate was refused), `behind`
 * (runs another version than its labels select now).
 */
export type EnforcerState = 'in-sync' | 'missing' | 'stale' | 'rejecting' | 'behind';

export interface EnforcerView {
  enforcer: string;
  /** From its report, or from its registration while it does not report. */
  labels: Labels;
  /** Its report; undefined when it is missing. */
  status: EnforcerStatus | undefined;
  /** Its registration; undefined for one that reports without having registered (an agent from before membership). */
  member: Member | undefined;
  expected: Expected;
  state: EnforcerState;
  inSync: boolean;
}

export interface FleetView {
  enforcers: EnforcerView[];
  /** Every registered enforcer reports and is in sync (and so is every other one that reports). */
  converged: boolean;
  inSync: number;
  /** How many enforcers are registered. */
  members: number;
  /** Registered enforcers that do not report. */
  missing: string[];
}

function stateOf(status: EnforcerStatus | undefined, e: Expected): EnforcerState {
  if (!status) return 'missing';
  if (status.health === 'rejecting') return 'rejecting';
  if (status.sync?.state === 'stale') return 'stale';
  return ('version' in e ? status.policy?.version === e.version : 'none' in e) ? 'in-sync' : 'behind';
}

/** The fleet: every registered enforcer and every one that reports, each judged against what its labels select. */
export function fleetView(statuses: readonly EnforcerStatus[], expected: ExpectedVersions, members: readonly Member[] = []): FleetView {
  const reports = new Map(statuses.map((s) => [s.enforcer, s]));
  const registered = new Map(members.map((m) => [m.enforcer, m]));
  const enforcers = [...new Set([...reports.keys(), ...registered.keys()])].sort().map((enforcer): EnforcerView => {
    const status = reports.get(enforcer);
    const member = registered.get(enforcer);
    const labels = status?.labels ?? member?.labels ?? {};
    const e = expected.for(labels);
    const state = stateOf(status, e);
    return { enforcer, labels, status, member, expected: e, state, inSync: state === 'in-sync' };
  });
  const inSync = enforcers.filter((v) => v.inSync).length;
  return { enforcers, converged: inSync === enforcers.length, inSync, members: registered.size, missing: enforcers.filter((v) => v.state === 'missing').map((v) => v.enforcer) };
}

/** The version an enforcer should run, as `fleet status` and the fleet UI show it. */
export function expectedText(v: EnforcerView): string {
  const e = v.expected;
  return 'version' in e ? e.version : 'none' in e ? '(no set selects it)' : `(invalid: ${e.invalid})`;
}

/** The health, and when its policy watch is stale: since when, and its revision against the bucket's. */
export function healthText(s: EnforcerStatus, now: number): string {
  const sync = s.sync;
  if (sync?.state !== 'stale') return s.health;
  const since = sync.staleSince ? `${Math.max(0, Math.round((now - Date.parse(sync.staleSince)) / 1000))}s` : '?';
  return `${s.health}, stale for ${since} (revision ${sync.revision} of ${sync.bucketRevision ?? '?'})`;
}
