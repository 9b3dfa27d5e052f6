// SPDX-License-Identifier: Apache-2.0
// `doorstep apply --nats URL FILE…`: validate the set (an invalid one never reaches the bucket),
// publish it as the envelope `sets.<name>` for the enforcers its selector picks, and with
// --wait follow the status bucket until every selected enforcer (registered or reporting)
// reports the version it should now run, printing how long each took from the publish. Every
// failure after the publish says that the set was published.
import type { KV } from '@nats-io/kv';
import { DoorstepError, PolicyError } from '../errors.js';
import { DEFAULT_STATUS_BUCKET, type EnforcerStatus, ExpectedVersions } from '../fleet/enforcer-status.js';
import { createPolicyBucket, openBucket, publishNext, readEnvelopes, readStatuses, watchStatuses } from '../fleet/fleet-client.js';
import type { Member } from '../fleet/membership.js';
import { connectNats, describeTarget, parseNatsUrl } from '../fleet/nats-connection.js';
import { natsFailure } from '../fleet/nats-errors.js';
import { compileIr } from '../policy/compile.js';
import { parseDuration } from '../units.js';
import { type PolicyEnvelope, selects } from '../fleet/policy-envelope.js';
import { readMembersOf } from './fleet-status.js';
import { type NatsFlags, natsAuthOf } from './nats-flags.js';
import { ExitCode } from './output.js';
import { envelopeDraft, type EnvelopeFlags } from './sign.js';
import type { OutputFormat } from './table.js';

export interface FleetApplyFlags extends NatsFlags, EnvelopeFlags {
  wait?: boolean;
  timeout?: string;
  statusBucket?: string;
  output: OutputFormat;
}

interface EnforcerResult {
  enforcer: string;
  outcome: 'installed' | 'rejected' | 'pending';
  /** It has reported since the wait began (a registered enforcer that has not is missing). */
  reporting: boolean;
  /** From the publish to the report, as this command saw it. */
  ms?: number;
  version?: string | null;
  generation?: number;
  problems?: string[];
}

export async function fleetApply(paths: string[], o: FleetApplyFlags): Promise<number> {
  const target = parseNatsUrl(o.nats, 'BUCKET');
  const timeoutMs = o.timeout === undefined ? 60_000 : parseDuration(o.timeout);
  if (timeoutMs === undefined) throw new DoorstepError('DS_E_USAGE', `"${o.timeout}" is not a duration`, { hint: 'write e.g. 30s or 2m' });
  const draft = await envelopeDraft(paths, o);
  const version = compileIr(draft.documents).ir.version;

  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  try {
    let policy: KV;
    let status: KV | undefined;
    let before: EnforcerStatus[] = [];
    let members: Member[] = [];
    try {
      policy = await createPolicyBucket(nc, target.name);
      if (o.wait) {
        status = await openBucket(nc, o.statusBucket ?? DEFAULT_STATUS_BUCKET, 'no agent has reported yet: start agents with --policy nats://HOST:PORT/BUCKET');
        before = await readStatuses(status);
        members = await readMembersOf(nc, o.statusBucket ?? DEFAULT_STATUS_BUCKET);
      }
    } catch (err) {
      throw natsFailure(err, `nothing was published: opening the buckets at ${describeTarget(target)} failed`);
    }
    const published = process.hrtime.bigint();
    let revision: number;
    let envelope: PolicyEnvelope;
    try {
      ({ revision, envelope } = await publishNext(policy, draft.name, (next) => draft.at(next)));
    } catch (err) {
      throw natsFailure(err, `publishing sets.${draft.name} failed, and it may still have been stored (see the bucket, or publish again)`);
    }
    const head = { set: envelope.name, key: `sets.${envelope.name}`, revision, sequence: envelope.sequence ?? null, version, selector: envelope.selector, signed: envelope.signature?.key ?? null, bucket: describeTarget(target) };
    const publishedLine = `published ${head.key} revision ${revision} sequence ${head.sequence} (version ${version}${head.signed ? `, signed by ${head.signed}` : ''}) to ${head.bucket}`;
    if (!o.wait || !status) {
      if (o.output === 'json') console.log(JSON.stringify(head));
      else console.log(publishedLine);
      return ExitCode.OK;
    }
    if (o.output !== 'json') console.log(`${publishedLine}; waiting for the enforcers`);
    try {
      return await waitForEnforcers({ policy, status, before, members, head, envelope, published, timeoutMs }, o);
    } catch (err) {
      if (err instanceof PolicyError || (err instanceof DoorstepError && err.code === 'DS_E_FLEET_TIMEOUT')) throw err;
      // the set is in the bucket whatever failed next: say so before the error
      if (o.output === 'json') console.log(JSON.stringify({ ...head, waitFailed: true }));
      const failure = natsFailure(err, `${publishedLine}, but waiting for the enforcers failed`);
      if (failure === err) process.stderr.write(`doorstep: ${publishedLine}, but waiting for the enforcers failed:\n`); // a bug: its stack follows
      throw failure;
    }
  } finally {
    await nc.close().catch(() => undefined); // after a publish, a failed close changes nothing: the outcome is printed
  }
}

/** Follow the status bucket until every enforcer the set selects reports it installed or rejected, or the timeout. */
interface Published {
  policy: KV;
  status: KV;
  /** The reports before the publish. */
  before: EnforcerStatus[];
  /** The registered enforcers: those the set selects are waited for even when they do not report. */
  members: Member[];
  head: { key: string; revision: number; version: string };
  envelope: PolicyEnvelope;
  published: bigint;
  timeoutMs: number;
}

async function waitForEnforcers(p: Published, o: FleetApplyFlags): Promise<number> {
  const { policy, status, before, members, head, envelope, published, timeoutMs } = p;
  const { revision, version } = head;
  const target = parseNatsUrl(o.nats, 'BUCKET');
  // what each enforcer should run: the sets in the bucket, with this one as just published (a
  // listing right after the put may not show it yet, and an enforcer would then seem to be done)
  const entries = (await readEnvelopes(policy)).filter((e) => e.key !== head.key);
  entries.push({ key: head.key, revision, envelope });
  const expected = new ExpectedVersions(target.name, entries);
  const results = new Map<string, EnforcerResult>();
  const consider = (s: EnforcerStatus) => {
    const r = results.get(s.enforcer) ?? { enforcer: s.enforcer, outcome: 'pending' as const, reporting: true };
    if (!selects(envelope.selector, s.labels)) {
      // registered with labels the set selects, it reports others now: not selected after all
      if (r.outcome === 'pending') results.delete(s.enforcer);
      return;
    }
    r.reporting = true;
    results.set(s.enforcer, r);
    if (r.outcome !== 'pending') return;
    const want = expected.for(s.labels);
    const ms = Number(process.hrtime.bigint() - published) / 1e6;
    if ('version' in want && s.policy?.version === want.version && s.health !== 'rejecting') {
      Object.assign(r, { outcome: 'installed', ms, version: s.policy.version, generation: s.policy.generation });
      if (o.output !== 'json') console.log(`  ${s.enforcer}: enforcing ${want.version} (generation ${s.policy.generation}) after ${ms.toFixed(0)} ms`);
    } else if (s.rejected && (s.rejected.revision ?? 0) >= revision) {
      Object.assign(r, { outcome: 'rejected', ms, problems: s.rejected.problems });
      if (o.output !== 'json') console.log(`  ${s.enforcer}: REJECTED after ${ms.toFixed(0)} ms: ${s.rejected.problems.join('; ')}`);
    }
  };
  for (const m of members) if (selects(envelope.selector, m.labels)) results.set(m.enforcer, { enforcer: m.enforcer, outcome: 'pending', reporting: false });
  for (const s of before) consider(s);
  if (o.output !== 'json') for (const r of results.values()) if (!r.reporting) console.log(`  ${r.enforcer}: missing (registered, no report within the status TTL); waiting for it`);
  const pending = () => [...results.values()].filter((r) => r.outcome === 'pending');
  if (results.size > 0 && pending().length > 0) {
    await new Promise<void>((resolve, reject) => {
      let watcher: Awaited<ReturnType<typeof watchStatuses>> | undefined;
      const timer = setTimeout(() => finish(), timeoutMs);
      const finish = (err?: unknown) => {
        clearTimeout(timer);
        watcher?.stop();
        if (err === undefined) resolve();
        else reject(err);
      };
      watchStatuses(status, (s) => {
        consider(s);
        if (pending().length === 0) finish();
      }).then((w) => {
        watcher = w;
        if (pending().length === 0) finish();
        w.done.catch(finish); // a watch that fails ends the wait with its error
      }, finish);
    });
  }
  const all = [...results.values()].sort((a, b) => (a.enforcer < b.enforcer ? -1 : 1));
  const installed = all.filter((r) => r.outcome === 'installed');
  const slowest = Math.max(0, ...installed.map((r) => r.ms ?? 0));
  if (o.output === 'json') {
    console.log(JSON.stringify({ ...head, selected: all.length, installed: installed.length, allMs: installed.length === all.length ? slowest : null, enforcers: all }));
  } else if (all.length === 0) {
    console.log('no enforcer that reports to the status bucket is selected by this set: nothing to wait for');
  } else if (installed.length === all.length) {
    console.log(`all ${all.length} selected enforcers enforce ${version}; the slowest after ${slowest.toFixed(0)} ms`);
  }
  const rejected = all.filter((r) => r.outcome === 'rejected');
  if (rejected.length > 0) {
    throw new PolicyError(rejected.map((r) => ({ code: 'DS_E_POLICY_INVALID', file: r.enforcer, line: 0, column: 0, field: '', message: `${head.key} revision ${revision} was published, and rejected by the enforcer: ${(r.problems ?? []).join('; ')}` })));
  }
  const late = all.filter((r) => r.outcome === 'pending');
  if (late.length > 0) {
    const silent = late.filter((r) => !r.reporting).map((r) => r.enforcer);
    const slow = late.filter((r) => r.reporting).map((r) => r.enforcer);
    const who = [...(slow.length ? [`reporting another version: ${slow.join(', ')}`] : []), ...(silent.length ? [`missing (registered, no report): ${silent.join(', ')}`] : [])].join('; ');
    throw new DoorstepError('DS_E_FLEET_TIMEOUT', `${head.key} revision ${revision} was published, but ${late.length} of ${all.length} selected enforcers did not report ${version} within ${timeoutMs / 1000} s: ${who}`, {
      hint: 'see `doorstep fleet status`: an enforcer may be cut off from NATS (it keeps its last policy and catches up on reconnect); `doorstep fleet forget` removes one that is gone for good',
    });
  }
  return ExitCode.OK;
}
