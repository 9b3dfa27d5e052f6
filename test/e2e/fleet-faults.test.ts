// SPDX-License-Identifier: Apache-2.0
// The fleet under faults, with a real nats-server on a management network: a value in a set's
// key that is not an envelope, and an unsigned deletion, leave the set in force (the enforcer
// says `rejecting`); a signed tombstone removes it. An agent started while NATS is down, whose
// first JetStream calls then fail, retries on its own, enforces what is published and reports.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AgentProcess, type AgentRig, sleep, type Rec } from '../lib/agent-rig.js';
import { dropped, FleetRig, passes } from '../lib/fleet-rig.js';

const PORT_BASE = 7201;
const PORT_WEB = 7202;
const POLICY_BUCKET = 'doorstep-policy';

function policy(name: string, allow: number[]): string {
  const rules = allow.map((p) => `    - { name: allow-${p}, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [${p}] }`);
  return `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: ${name} }\nspec:\n  defaultAction: deny\n  rules:\n${rules.join('\n')}\n`;
}

interface EnforcerJson {
  enforcer: string;
  health: string;
  sync?: { state: string; staleSince: string | null; revision: number; bucketRevision: number | null };
  policy: { version: string } | null;
  rejected: { problems: string[] } | null;
}

describe('fleet under faults: values that are not sets, and removing sets', () => {
  const fleet = new FleetRig(2);
  let late: AgentProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-faults-'));
  const key = join(dir, 'ops.key');
  const pub = join(dir, 'ops.pub');
  let agent: AgentProcess | undefined;
  const rig = () => fleet.agents[0] as AgentRig;
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const cli = (args: string[]) => fleet.cli([...args, '--nats', fleet.url(POLICY_BUCKET)]);
  const enforcer = (): EnforcerJson | undefined => {
    const r = cli(['fleet', 'status', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { enforcers: EnforcerJson[] }).enforcers.find((e) => e.enforcer === 'edge-f');
  };
  /** The engine's active version, from the agent itself. */
  const active = () => rig().cliJson<{ policy: { version: string } | null }>(['status']).policy?.version;
  /** The next `policy` record from index `from` with `status`. */
  const next = (status: string, from: number) => (agent as AgentProcess).waitFor((r) => r.type === 'policy' && r.status === status, `a policy ${status} record`, 20_000, from);

  before(async () => {
    await fleet.create();
    assert.equal(fleet.cli(['keygen', join(dir, 'ops')]).code, 0);
    agent = rig().startAgent(['--policy', fleet.url(POLICY_BUCKET), '--policy-pubkey', pub, '--audit', '-', '--status-ttl', '6s', '--summary-interval', '0'], { folder: false, enforcerId: 'edge-f' });
    await agent.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
    for (const [name, port] of [['base', PORT_BASE], ['web', PORT_WEB]] as const) {
      const from = agent.records.length;
      const r = cli(['apply', '--name', name, '--sign-key', key, write(`${name}.yaml`, policy(name, [port]))]);
      assert.equal(r.code, 0, r.stderr);
      await next('installed', from);
    }
  });
  after(async () => {
    await agent?.terminate();
    await late?.terminate();
    await fleet.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a value that is not an envelope is refused: the set in force stays, the status says rejecting', async () => {
    const a = agent as AgentProcess;
    const version = active();
    assert.ok(version);
    assert.ok(await passes(rig(), PORT_WEB), 'web allows before');
    const from = a.records.length;
    const put = fleet.kv(POLICY_BUCKET, ['put', 'sets.web', 'this is not an envelope']);
    assert.equal(put.code, 0, put.stderr);
    const rejected = await next('rejected', from);
    const problems = rejected.problems as { code: string; file: string; message: string }[];
    assert.equal(problems[0]?.code, 'DS_E_POLICY_SOURCE');
    assert.equal(problems[0]?.file, `${POLICY_BUCKET}/sets.web`);
    assert.match(problems[0]?.message ?? '', /is not a policy envelope \(not JSON\)/);
    assert.equal(active(), version, 'the engine runs the same version');
    assert.ok(await passes(rig(), PORT_WEB), 'the set in force still allows');
    const e = enforcer();
    assert.equal(e?.health, 'rejecting');
    assert.match(e?.rejected?.problems.join() ?? '', /sets.web/);
    assert.notEqual(JSON.parse(cli(['fleet', 'status', '-o', 'json']).stdout).converged, true);
  });

  it('an unsigned deletion is refused when keys are required; a signed tombstone removes the set', async () => {
    const a = agent as AgentProcess;
    const version = active();
    const from = a.records.length;
    const rm = cli(['fleet', 'remove', '--name', 'web']);
    assert.equal(rm.code, 0, rm.stderr);
    const rejected = await next('rejected', from);
    const problems = rejected.problems as { code: string; message: string }[];
    assert.equal(problems[0]?.code, 'DS_E_POLICY_SIGNATURE');
    assert.match(problems[0]?.message ?? '', /deletes the set without a signed tombstone/);
    assert.equal(active(), version);
    assert.ok(await passes(rig(), PORT_WEB), 'still in force');

    // a tombstone signed by another key is refused too
    assert.equal(fleet.cli(['keygen', join(dir, 'mallory')]).code, 0);
    const from2 = a.records.length;
    assert.equal(cli(['fleet', 'remove', '--name', 'web', '--sign-key', join(dir, 'mallory.key')]).code, 0);
    const forged = await next('rejected', from2);
    assert.match((forged.problems as { message: string }[])[0]?.message ?? '', /\(tombstone\): .*does not trust/);

    const from3 = a.records.length;
    const tomb = cli(['fleet', 'remove', '--name', 'web', '--sign-key', key]);
    assert.equal(tomb.code, 0, tomb.stderr);
    assert.match(tomb.stdout, /signed tombstone/);
    const installed = await next('installed', from3);
    assert.notEqual(installed.policyVersion, version);
    assert.equal(active(), installed.policyVersion);
    assert.ok(await dropped(rig(), PORT_WEB), 'web is gone');
    assert.ok(await passes(rig(), PORT_BASE), 'base stays');
    let e = enforcer();
    for (let t = 0; t < 50 && e?.health !== 'enforcing'; t++) {
      await sleep(100);
      e = enforcer();
    }
    assert.equal(e?.health, 'enforcing');
    assert.equal(JSON.parse(cli(['fleet', 'status', '-o', 'json']).stdout).converged, true);
    // removing it again: there is no set web any more
    assert.equal(cli(['fleet', 'remove', '--name', 'web', '--sign-key', key]).code, 2);
  });

  it('an agent started while NATS is down, whose first JetStream calls fail, rejoins on its own', async () => {
    const nats = fleet.nats!;
    const rig1 = fleet.agents[1] as AgentRig;
    await nats.stop();
    late = rig1.startAgent(['--policy', fleet.url(POLICY_BUCKET), '--policy-pubkey', pub, '--audit', '-', '--status-ttl', '6s', '--summary-interval', '0'], { folder: false, enforcerId: 'edge-g' });
    await late.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
    const down = rig1.cliJson<{ sync?: { state: string; staleSince: string | null } }>(['status']);
    assert.equal(down.sync?.state, 'stale', 'stale while NATS is down');
    assert.ok(down.sync?.staleSince);

    // NATS answers, JetStream does not: the watch and the status bucket fail, and are retried
    await nats.start(15_000, { jetstream: false });
    await late.waitFor((r) => r.type === 'agent' && r.event === 'error' && /watching failed \(attempt 1\)/.test(String(r.message)), 'a failed watch');
    await nats.stop();
    await nats.start();

    const from = late.records.length;
    const r = cli(['apply', '--name', 'late', '--sign-key', key, write('late.yaml', policy('late', [PORT_WEB]))]);
    assert.equal(r.code, 0, r.stderr);
    const isInstall = (x: Rec) => x.type === 'policy' && x.status === 'installed';
    // the sets already in the bucket are installed first when the agent's first read of it comes
    // after this mark; the published set's install follows: wait install by install until it is enforced
    let installed = await late.waitFor(isInstall, 'the install after the outage', 30_000, from);
    while (!(await passes(rig1, PORT_WEB))) {
      installed = await late.waitFor(isInstall, 'the install of the published set', 30_000, late.records.indexOf(installed) + 1);
    }
    installed = [...late.records].reverse().find(isInstall) ?? installed;
    assert.equal(rig1.cliJson<{ policy: { version: string } | null }>(['status']).policy?.version, installed.policyVersion);

    // and it is in the fleet view, live, at the bucket's revision
    let e: EnforcerJson | undefined;
    for (let t = 0; t < 100; t++) {
      const s = cli(['fleet', 'status', '-o', 'json']);
      e = s.code === 0 ? (JSON.parse(s.stdout) as { enforcers: EnforcerJson[] }).enforcers.find((x) => x.enforcer === 'edge-g') : undefined;
      if (e?.policy?.version === installed.policyVersion && e?.sync?.state === 'live') break;
      await sleep(100);
    }
    assert.equal(e?.policy?.version, installed.policyVersion);
    assert.equal(e?.health, 'enforcing');
    assert.equal(e?.sync?.state, 'live');
    assert.equal(e?.sync?.revision, e?.sync?.bucketRevision);
  });
});
