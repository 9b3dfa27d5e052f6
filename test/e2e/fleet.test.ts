// SPDX-License-Identifier: Apache-2.0
// The fleet end to end: a real nats-server on a management network, three agents on three
// network namespaces, each enforcing its own veth. Signed policies published with
// `doorstep apply --nats --wait` converge; selectors pick enforcers; unsigned, wrongly signed
// and altered sets are refused; NATS taken away and brought back changes nothing in the
// datapath and the fleet catches up; every session record reaches the audit stream.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compileSources } from '../../src/policy/compile.js';
import { type AgentProcess, type AgentRig, type Rec } from '../lib/agent-rig.js';
import { until } from '../lib/until.js';
import { dropped, FleetRig, passes } from '../lib/fleet-rig.js';

const PORT_A = 7101;
const PORT_B = 7102;
const PORT_US = 7103;
const POLICY_BUCKET = 'doorstep-policy';
const AUDIT_STREAM = 'DOORSTEP_AUDIT';

function policy(name: string, allow: number[], deny: number[] = [], defaultAction = 'deny'): string {
  const rules = [
    ...allow.map((p) => `    - { name: allow-${p}, action: allow, from: [10.231.0.0/24], protocol: udp, ports: [${p}] }`),
    ...deny.map((p) => `    - { name: deny-${p}, action: deny, from: [10.231.0.0/24], protocol: udp, ports: [${p}] }`),
  ];
  return `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: ${name} }\nspec:\n  defaultAction: ${defaultAction}\n  rules:\n${rules.join('\n') || '    []'}\n`;
}

const policyRecords = (a: AgentProcess) => a.records.filter((r) => r.type === 'policy');

describe('fleet over NATS JetStream: three agents', () => {
  const fleet = new FleetRig(3);
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-fleet-'));
  const agents: AgentProcess[] = [];
  const retired: AgentProcess[] = [];
  const key = join(dir, 'ops.key');
  const pub = join(dir, 'ops.pub');
  const labels = (i: number) => ['--label', `region=${i < 2 ? 'eu' : 'us'}`, '--label', 'cloud=lab'];
  const start = (i: number) =>
    (fleet.agents[i] as AgentRig).startAgent(
      [
        '--policy', fleet.url(POLICY_BUCKET), ...labels(i), '--policy-pubkey', pub,
        '--audit', '-', '--audit', fleet.url(AUDIT_STREAM), '--status-ttl', '6s', '--summary-interval', '0',
      ],
      { folder: false, enforcerId: `edge-${i}` },
    );
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const apply = (args: string[]) => fleet.cli(['apply', '--nats', fleet.url(POLICY_BUCKET), ...args]);
  const fleetStatus = () => {
    const r = fleet.cli(['fleet', 'status', '--nats', fleet.url(POLICY_BUCKET), '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { converged: boolean; inSync: number; enforcers: { enforcer: string; health: string; inSync: boolean; policy: { version: string } | null }[] };
  };
  /** Wait (bounded) until `n` enforcers report, with `health` when given. */
  const reportedBy = async (n: number, health?: string) => {
    const reported = () => {
      const r = fleet.cli(['fleet', 'status', '--nats', fleet.url(POLICY_BUCKET), '-o', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { enforcers: { health: string }[] }).enforcers.filter((e) => !health || e.health === health).length : 0;
    };
    await until(() => reported() === n, `${n} enforcers reporting${health ? ` ${health}` : ''}`, 30_000, 200);
  };
  const v1 = policy('web', [PORT_A], [PORT_B]);
  const v2 = policy('web', [PORT_B], [PORT_A]);
  const version = (...texts: [string, string][]) => compileSources(texts.map(([file, text]) => ({ file, text }))).ir.version;

  before(async () => {
    await fleet.create();
    const k = fleet.cli(['keygen', join(dir, 'ops')]);
    assert.equal(k.code, 0, k.stderr);
    for (let i = 0; i < 3; i++) agents.push(start(i));
    for (const a of agents) await a.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
    await reportedBy(3, 'default-deny'); // the fleet exists before anything is published
  });
  after(async () => {
    for (const a of [...agents, ...retired]) await a.terminate();
    await fleet.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a signed set published with --wait is enforced by all three, and the fleet reports converged', async () => {
    const r = apply(['--name', 'web', '--selector', 'cloud=lab', '--sign-key', key, '--wait', '--timeout', '60s', '-o', 'json', write('web.yaml', v1)]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as { selected: number; installed: number; allMs: number; version: string; enforcers: { outcome: string }[] };
    assert.equal(out.selected, 3);
    assert.equal(out.installed, 3);
    assert.equal(out.version, version([`${POLICY_BUCKET}/sets.web/${join(dir, 'web.yaml')}`, v1]));
    assert.ok(out.allMs > 0);
    for (const a of agents) {
      const p = await a.waitFor((x) => x.type === 'policy' && x.status === 'installed', 'install');
      assert.equal(p.source, `nats:${POLICY_BUCKET}`);
      assert.equal(p.policyVersion, out.version);
    }
    for (const rig of fleet.agents) {
      assert.ok(await passes(rig, PORT_A), 'allowed port');
      assert.ok(await dropped(rig, PORT_B), 'denied port');
    }
    const s = fleetStatus();
    assert.equal(s.converged, true);
    assert.deepEqual(s.enforcers.map((e) => [e.enforcer, e.health, e.inSync, e.policy?.version]), [0, 1, 2].map((i) => [`edge-${i}`, 'enforcing', true, out.version]));
  });

  it('a selector picks enforcers by label: a set for region=us reaches edge-2 only', async () => {
    const before = fleetStatus().enforcers.map((e) => e.policy?.version);
    const r = apply(['--name', 'us-extra', '--selector', 'region=us', '--sign-key', key, '--wait', '-o', 'json', write('us.yaml', policy('us', [PORT_US]))]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { selected: number }).selected, 1);
    const s = fleetStatus();
    assert.equal(s.converged, true);
    const after = s.enforcers.map((e) => e.policy?.version);
    assert.equal(after[0], before[0]);
    assert.equal(after[1], before[1]);
    assert.notEqual(after[2], before[2]);
    assert.ok(await passes(fleet.agents[2] as AgentRig, PORT_US));
    assert.ok(await dropped(fleet.agents[0] as AgentRig, PORT_US));
  });

  it('refuses unsigned, wrongly signed and altered sets with an audit record; the version in force stays', async () => {
    const allowAll = write('rogue.yaml', policy('rogue', [], [], 'allow'));
    const from = agents.map((a) => a.records.length);
    // unsigned: the CLI publishes it (it cannot know the agents' keys), every agent refuses it
    assert.equal(apply(['--name', 'rogue', allowAll]).code, 0);
    for (const [i, a] of agents.entries()) {
      const rej = await a.waitFor((x) => x.type === 'policy' && x.status === 'rejected', 'the refusal', 20_000, from[i]);
      const problems = rej.problems as { code: string; message: string }[];
      assert.equal(problems[0]?.code, 'DS_E_POLICY_SIGNATURE');
      assert.match(problems[0]?.message ?? '', /not signed/);
    }
    assert.ok(await dropped(fleet.agents[1] as AgentRig, PORT_B), 'the allow-all is not in force');
    const s = fleetStatus();
    assert.equal(s.converged, false);
    assert.deepEqual(s.enforcers.map((e) => e.health), ['rejecting', 'rejecting', 'rejecting']);

    // signed with a key the agents do not trust
    const k2 = fleet.cli(['keygen', join(dir, 'mallory')]);
    assert.equal(k2.code, 0, k2.stderr);
    const from2 = agents.map((a) => a.records.length);
    assert.equal(apply(['--name', 'rogue', '--sign-key', join(dir, 'mallory.key'), allowAll]).code, 0);
    for (const [i, a] of agents.entries()) {
      const rej = await a.waitFor((x) => x.type === 'policy' && x.status === 'rejected', 'the refusal', 20_000, from2[i]);
      assert.match((rej.problems as { message: string }[])[0]?.message ?? '', /does not trust/);
    }

    // signed by the trusted key, then altered: `doorstep sign` writes the envelope, a text edit breaks it
    const signedFile = join(dir, 'rogue.envelope.json');
    const sg = fleet.cli(['sign', '--key', key, '--nats', fleet.url(POLICY_BUCKET), '--name', 'rogue', '--out', signedFile, write('benign.yaml', policy('rogue', [PORT_US]))]);
    assert.equal(sg.code, 0, sg.stderr);
    const envelope = JSON.parse(readFileSync(signedFile, 'utf8')) as { documents: { text: string }[] };
    envelope.documents[0]!.text = policy('rogue', [], [], 'allow');
    writeFileSync(signedFile, JSON.stringify(envelope));
    const from3 = agents.map((a) => a.records.length);
    assert.equal(apply([signedFile]).code, 0);
    for (const [i, a] of agents.entries()) {
      const rej = await a.waitFor((x) => x.type === 'policy' && x.status === 'rejected', 'the refusal', 20_000, from3[i]);
      assert.match((rej.problems as { message: string }[])[0]?.message ?? '', /does not match/);
    }
    assert.ok(await dropped(fleet.agents[0] as AgentRig, PORT_B), 'still not in force');

    // removing the rogue set: back in sync, nothing re-installed
    const installsBefore = agents.map((a) => policyRecords(a).filter((p) => p.status === 'installed').length);
    const rm = fleet.cli(['fleet', 'remove', '--nats', fleet.url(POLICY_BUCKET), '--name', 'rogue']);
    assert.equal(rm.code, 0, rm.stderr);
    await until(() => fleetStatus().converged, 'the fleet converged again', 30_000, 200);
    assert.deepEqual(agents.map((a) => policyRecords(a).filter((p) => p.status === 'installed').length), installsBefore);
  });

  it('NATS down: enforcement goes on, an agent booting meanwhile enforces its last policy, and all catch up once NATS is back', async () => {
    const nats = fleet.nats!;
    const rig1 = fleet.agents[1] as AgentRig;
    const rig2 = fleet.agents[2] as AgentRig;
    const sinks = [await rig1.sink(PORT_A, 60), await rig2.sink(PORT_A, 60)];
    const streams = [rig1.stream(PORT_A, 100, 30), rig2.stream(PORT_A, 100, 30)];
    await Promise.all(sinks.map((s, i) => s.until((p) => p.count > 0, `edge-${i + 1}'s allowed flow`)));
    await nats.stop();

    // edge-0 restarts while NATS is away: the engine kept enforcing, and the new agent adopts it
    // with its policy (the state dir's copy names it)
    const old = agents[0] as AgentProcess;
    assert.equal(await old.terminate(), 0);
    retired.push(old);
    const restarted = start(0);
    agents[0] = restarted;
    const restored = await restarted.waitFor((r) => r.type === 'policy' && r.status === 'adopted', 'the adoption');
    assert.equal(restored.policyVersion, policyRecords(old).filter((p) => p.status === 'installed').pop()?.policyVersion);
    assert.ok(await passes(fleet.agents[0] as AgentRig, PORT_A), 'the restored policy allows');
    assert.ok(await dropped(fleet.agents[0] as AgentRig, PORT_B), 'and denies');
    const atRestore = sinks.map((s) => s.progress());
    await Promise.all(sinks.map((s, i) => s.until((p) => p.count >= atRestore[i]!.count + 100, `100 more datagrams through edge-${i + 1} with NATS down`)));

    await nats.start();
    const sent = await Promise.all(streams.map((s) => s.stop()));
    await Promise.all(sinks.map((s, i) => s.until((p) => p.highest === sent[i]!.sent - 1, `the last datagram through edge-${i + 1}`)));
    const received = await Promise.all(sinks.map((s) => s.stop()));
    for (const [i, r] of received.entries()) {
      assert.ok((sent[i] as { sent: number }).sent > 100);
      assert.equal(r.length, (sent[i] as { sent: number }).sent, `edge-${i + 1}: every datagram of the allowed flow arrived while NATS was down`);
    }

    // a newer version after the outage: everyone converges on it (once they are back in the status bucket,
    // whose entries expired while NATS was away)
    await reportedBy(3, 'enforcing');
    const r = apply(['--name', 'web', '--selector', 'cloud=lab', '--sign-key', key, '--wait', '--timeout', '60s', '-o', 'json', write('web.yaml', v2)]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal((JSON.parse(r.stdout) as { installed: number }).installed, 3);
    for (const rig of fleet.agents) {
      assert.ok(await passes(rig, PORT_B), 'newly allowed');
      assert.ok(await dropped(rig, PORT_A), 'newly denied');
    }
    assert.equal(fleetStatus().converged, true);
  });

  it('every session record of every agent reaches the audit stream, none lost', async () => {
    const local = new Map<string, Set<string>>();
    for (const [i, a] of agents.entries()) {
      const all = [...(i === 0 ? retired.flatMap((r) => r.records) : []), ...a.records]; // edge-0 ran twice
      assert.deepEqual(all.filter((r) => r.type === 'lost'), []);
      local.set(`edge-${i}`, new Set(all.filter((r) => r.type === 'session').map((r) => JSON.stringify(r))));
      assert.ok((local.get(`edge-${i}`) as Set<string>).size >= 4, `edge-${i} saw sessions`);
    }
    let missing = Infinity;
    let streamed: Rec[] = [];
    const allStreamed = () => {
      const r = fleet.cli(['fleet', 'observe', '--nats', fleet.url(AUDIT_STREAM), '--last', '1000000', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      streamed = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec);
      const seen = new Set(streamed.filter((x) => x.type === 'session').map((x) => JSON.stringify(x)));
      missing = [...local.values()].reduce((n, set) => n + [...set].filter((x) => !seen.has(x)).length, 0);
      return missing === 0;
    };
    await until(allStreamed, 'every session record in the stream', 20_000, 200).catch(() => assert.fail(`${missing} session records missing from the stream`));
    assert.deepEqual(streamed.filter((x) => x.type === 'lost'), []);
    assert.deepEqual([...new Set(streamed.map((x) => x.enforcer))].sort(), ['edge-0', 'edge-1', 'edge-2']);
  });
});
