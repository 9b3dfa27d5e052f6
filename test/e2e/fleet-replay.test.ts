// SPDX-License-Identifier: Apache-2.0
// Replay protection that does not trust clocks, with a real nats-server and an agent that
// requires signed sets: a set signed on a clock an hour fast is accepted (with a warning), and so
// is the next one from a correct clock; publishes take increasing sequence numbers; an older signed
// set put back into the bucket is refused, live and across an agent restart (the highest accepted
// sequence is kept in the state dir), and the set in force stays. Publishers racing for one key
// never take the same number.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createPolicyBucket, publishNext, sequenceAt } from '../../src/fleet/fleet-client.js';
import { readPrivateKey, signEnvelope } from '../../src/fleet/signing.js';
import { buildEnvelope } from '../../src/fleet/policy-envelope.js';
import { type AgentProcess, type AgentRig, mainJs, type Rec, sleep } from '../lib/agent-rig.js';
import { dropped, FleetRig, passes } from '../lib/fleet-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const PORT_AHEAD = 7301;
const PORT_V2 = 7302;
const PORT_V3 = 7303;
const POLICY_BUCKET = 'doorstep-policy';

function policy(name: string, allow: number): string {
  return `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: ${name} }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: allow-${allow}, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [${allow}] }\n`;
}

interface EnforcerJson {
  enforcer: string;
  health: string;
  sync?: { bucketRevision: number | null; warning?: string | null };
}

describe('fleet replay protection: sequence numbers, not clocks', () => {
  const fleet = new FleetRig(1);
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-replay-'));
  const key = join(dir, 'ops.key');
  const pub = join(dir, 'ops.pub');
  let agent: AgentProcess | undefined;
  const rig = () => fleet.agents[0] as AgentRig;
  const start = () => {
    agent = rig().startAgent(['--policy', fleet.url(POLICY_BUCKET), '--policy-pubkey', pub, '--audit', '-', '--status-ttl', '6s', '--summary-interval', '0'], { folder: false, enforcerId: 'edge-r' });
    return agent;
  };
  const next = (match: (r: Rec) => boolean, what: string, from: number) => (agent as AgentProcess).waitFor(match, what, 20_000, from);
  const policyRecord = (status: string) => (r: Rec) => r.type === 'policy' && r.status === status;
  const active = () => rig().cliJson<{ policy: { version: string } | null }>(['status']).policy?.version;
  const apply = (file: string, text: string) => {
    const path = join(dir, file);
    writeFileSync(path, text);
    const r = fleet.cli(['apply', '--nats', fleet.url(POLICY_BUCKET), '--name', 'web', '--sign-key', key, '-o', 'json', path]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return JSON.parse(r.stdout) as { sequence: number; revision: number; version: string };
  };
  /** A signed envelope for `web`, made here with any clock and sequence, as its raw bytes. */
  const signedBytes = (sequence: number, issued: Date, allow: number) =>
    JSON.stringify(signEnvelope({ ...buildEnvelope('web', {}, [{ file: 'web.yaml', text: policy('web', allow) }], issued), sequence }, readPrivateKey(key)));
  const put = (bytes: string) => assert.equal(fleet.kv(POLICY_BUCKET, ['put', 'sets.web', bytes]).code, 0);
  /** Poll `fleet status` (bounded) until edge-r's report satisfies `ok`. */
  const statusUntil = async (ok: (e: EnforcerJson) => boolean, what: string) => {
    for (let t = 0; t < 100; t++) {
      const r = fleet.cli(['fleet', 'status', '--nats', fleet.url(POLICY_BUCKET), '-o', 'json']);
      const e = r.code === 0 ? (JSON.parse(r.stdout) as { enforcers: EnforcerJson[] }).enforcers.find((x) => x.enforcer === 'edge-r') : undefined;
      if (e && ok(e)) return;
      await sleep(200);
    }
    assert.fail(`fleet status never showed ${what}`);
  };
  const ahead = () => signedBytes(1, new Date(Date.now() + 3_600_000), PORT_AHEAD);

  before(async () => {
    await fleet.create();
    assert.equal(fleet.cli(['keygen', join(dir, 'ops')]).code, 0);
    start();
    await (agent as AgentProcess).waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
  });
  after(async () => {
    await agent?.terminate();
    await fleet.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a set signed an hour ahead is accepted with a warning; the next, from a correct clock, too; sequences increase', async () => {
    const from = (agent as AgentProcess).records.length;
    // the agent makes the bucket: once it reports having read it, put the set signed on a fast clock
    await statusUntil((e) => e.sync?.bucketRevision !== null && e.sync?.bucketRevision !== undefined, 'the agent watching the bucket');
    put(ahead());
    await next(policyRecord('installed'), 'the set signed ahead installed', from);
    const warning = await next((r) => r.type === 'agent' && r.event === 'warning', 'a clock warning', from);
    assert.match(String(warning.message), /sets.web revision \d+ \(sequence 1\) was issued .*ahead of this enforcer's clock/);
    await statusUntil((e) => /ahead of this enforcer's clock/.test(e.sync?.warning ?? ''), 'the clock warning in the status');
    assert.ok(await passes(rig(), PORT_AHEAD));

    const from2 = (agent as AgentProcess).records.length;
    const v2 = apply('v2.yaml', policy('web', PORT_V2));
    assert.equal(v2.sequence, 2, 'one above the highest in the bucket');
    const installed = await next(policyRecord('installed'), 'the correct-clock set installed', from2);
    assert.equal(installed.policyVersion, v2.version);
    assert.ok(await passes(rig(), PORT_V2));
    assert.ok(await dropped(rig(), PORT_AHEAD));
  });

  it('an older signed set put back while the agent restarts is refused; the set in force stays', async () => {
    const inForce = active();
    assert.ok(inForce);
    await (agent as AgentProcess).terminate('SIGKILL');
    put(ahead()); // sequence 1, validly signed, issued "later" than everything
    start();
    const rejected = await next(policyRecord('rejected'), 'the replay refused after the restart', 0);
    const problems = rejected.problems as { code: string; file: string; message: string }[];
    assert.equal(problems[0]?.code, 'DS_E_POLICY_SIGNATURE');
    assert.equal(problems[0]?.file, `${POLICY_BUCKET}/sets.web`);
    assert.match(problems[0]?.message ?? '', /has sequence 1, not above 2 accepted before: a replayed older set/);
    assert.equal(active(), inForce);
    assert.ok(await passes(rig(), PORT_V2));
    assert.ok(await dropped(rig(), PORT_AHEAD));
    await statusUntil((e) => e.health === 'rejecting', 'the enforcer reported rejecting');
  });

  it('the next publish goes above every sequence in the history; replaying it later, live, is refused', async () => {
    const from = (agent as AgentProcess).records.length;
    const v3 = apply('v3.yaml', policy('web', PORT_V3));
    assert.equal(v3.sequence, 3, 'above the 2 in the history, not the 1 in force in the bucket');
    await next((r) => r.type === 'policy' && r.status === 'installed' && r.policyVersion === v3.version, 'v3 installed', from);
    const from2 = (agent as AgentProcess).records.length;
    put(signedBytes(2, new Date(), PORT_V2));
    const rejected = await next(policyRecord('rejected'), 'the live replay refused', from2);
    assert.match((rejected.problems as { message: string }[])[0]?.message ?? '', /has sequence 2, not above 3/);
    assert.equal(active(), v3.version);
    assert.ok(await passes(rig(), PORT_V3));
  });

  it('a signed envelope file whose sequence the bucket has passed is not published (DS_E_POLICY_SEQUENCE, exit 3)', () => {
    const stale = join(dir, 'stale.json');
    writeFileSync(stale, signedBytes(3, new Date(), PORT_V3));
    const r = fleet.cli(['apply', '--nats', fleet.url(POLICY_BUCKET), stale]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /DS_E_POLICY_SEQUENCE: nothing was published: .* has sequence 3, and the bucket already holds 3 under sets.web/);
  });
});

describe('publishing: racing publishers never share a sequence number', () => {
  let server: NatsServer | undefined;
  let connections: NatsConnection[] = [];
  after(async () => {
    for (const nc of connections) await nc.close();
    await server?.cleanup();
  });

  it('eight publishers on their own connections, at once: sequences 1…8, each written once', async () => {
    server = await NatsServer.start();
    connections = await Promise.all(Array.from({ length: 8 }, () => connect({ servers: (server as NatsServer).url })));
    const bucket = `race-${process.pid}`;
    const kvs = await Promise.all(connections.map((nc) => createPolicyBucket(nc, bucket)));
    const results = await Promise.all(kvs.map((kv, i) => publishNext(kv, 'web', (sequence) => ({ ...buildEnvelope('web', {}, [{ file: `p${i}.yaml`, text: 'x' }]), sequence }))));
    assert.deepEqual(results.map((r) => r.envelope.sequence).sort((a, b) => (a ?? 0) - (b ?? 0)), [1, 2, 3, 4, 5, 6, 7, 8]);
    const highest = await sequenceAt(kvs[0] as NonNullable<(typeof kvs)[0]>, 'web');
    assert.equal(highest.highest, 8);
    assert.equal(highest.revision, Math.max(...results.map((r) => r.revision)));
  });

  it('`doorstep sign` takes its number from --sequence or the bucket (--nats), and refuses to guess', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doorstep-sign-'));
    try {
      const cli = (args: string[]) => spawnSync(process.execPath, [mainJs, ...args], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(cli(['keygen', join(dir, 'k')]).status, 0);
      const file = join(dir, 'web.yaml');
      writeFileSync(file, policy('web', PORT_V2));
      const none = cli(['sign', '--key', join(dir, 'k.key'), file]);
      assert.equal(none.status, 2, none.stderr);
      assert.match(none.stderr, /DS_E_USAGE: a signed set needs its sequence number/);
      const given = cli(['sign', '--key', join(dir, 'k.key'), '--sequence', '41', file]);
      assert.equal(given.status, 0, given.stderr);
      assert.equal((JSON.parse(given.stdout) as { sequence: number }).sequence, 41);
      const read = cli(['sign', '--key', join(dir, 'k.key'), '--nats', `${(server as NatsServer).url}/race-${process.pid}`, '--name', 'web', file]);
      assert.equal(read.status, 0, read.stderr);
      assert.equal((JSON.parse(read.stdout) as { sequence: number }).sequence, 9, 'one above the eight published');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
