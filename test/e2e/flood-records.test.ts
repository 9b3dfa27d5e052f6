// SPDX-License-Identifier: Apache-2.0
// A flood of denied sessions through a real agent (issue 12, point 3): with a small event budget
// the agent writes a `session` record for the first few denied sessions a second and `flood`
// records for the rest, so that session records plus held-back sessions equal the sessions sent,
// exactly; and a flood that rotates the audit file away leaves the records about the enforcer
// (policy, agent, flood) in the control file beside it. Frames are sent raw (scapy) from the
// client namespace, each a new flow.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentRig, type AgentProcess, type Rec } from '../lib/agent-rig.js';
import { ScapySender } from '../lib/scapy.js';

const FLOWS = 400;
const BUDGET = 50;
const BLOCKED_PORT = 7000;

const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: floods }
spec:
  defaultAction: deny
  rules:
    - { name: block, action: deny, from: [10.231.0.0/24], protocol: udp, ports: [${BLOCKED_PORT}] }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
`;

describe('agent: flood records count what the event budget held back', { timeout: 120_000 }, () => {
  let rig: AgentRig | undefined;
  let agent: AgentProcess | undefined;
  before(() => {
    rig = new AgentRig('dsf');
  });
  after(async () => {
    await agent?.terminate();
    rig?.cleanup();
  });

  it(`${FLOWS} denied flows: session records plus flood records' held-back count equal ${FLOWS}`, async () => {
    const r = rig as AgentRig;
    r.writePolicy('floods.yaml', POLICY);
    // stdout for the test to follow, and a file rotated every 4 KiB with one old file kept
    const auditFile = join(r.dir, 'audit.jsonl');
    const audit = ['--audit', '-', '--audit', auditFile, '--audit-max-bytes', '4K', '--audit-keep', '1'];
    agent = r.startAgent(['--deny-event-budget', String(BUDGET), '--summary-interval', '1s', ...audit]);
    await agent.waitFor((x) => x.type === 'policy' && x.status === 'installed', 'the policy installed');

    const { client, server } = r.topo;
    const sender = new ScapySender(client.ns, client.ifname, (c) => r.topo.own(c));
    const frames = Array.from(
      { length: FLOWS },
      (_, i) => `Ether(dst='ff:ff:ff:ff:ff:ff')/IP(src='${client.v4}', dst='${server.v4}')/UDP(sport=${10000 + i}, dport=${BLOCKED_PORT})`,
    );
    await sender.send(frames);

    const records = (agent as AgentProcess).records;
    const isBlock = (x: Rec) => x.rule === 'floods/block';
    const sessions = () => records.filter((x) => x.type === 'session' && isBlock(x) && x.verdict === 'deny').length;
    const heldBack = () => records.filter((x) => x.type === 'flood' && isBlock(x)).reduce((n, x) => n + Number(x.heldBack), 0);
    // flood records come with every summary tick: wait for the count to be complete
    await agent.waitFor(() => sessions() + heldBack() >= FLOWS, `session and flood records for ${FLOWS} sessions`, 30_000);
    assert.equal(sessions() + heldBack(), FLOWS, `${sessions()} session records + ${heldBack()} held back`);
    assert.ok(heldBack() > 0, 'the budget held sessions back');
    assert.ok(sessions() >= BUDGET, `at least the budget's worth of session records: ${sessions()}`);
    const flood = records.find((x) => x.type === 'flood' && isBlock(x));
    assert.ok(flood && Number(flood.packets) >= Number(flood.heldBack) && typeof flood.from === 'string' && typeof flood.to === 'string', JSON.stringify(flood));
    // one source sent them all: the sketch counts one, and the sample names it and its /24
    for (const f of records.filter((x) => x.type === 'flood' && isBlock(x))) {
      assert.equal(f.distinctSources, 1, JSON.stringify(f));
      const top = f.topSources as { source: string; sessions: number }[];
      const prefixes = f.topPrefixes as { prefix: string; sessions: number }[];
      assert.deepEqual([top.length, top[0]?.source, top[0]?.sessions], [1, client.v4, f.heldBack], JSON.stringify(f));
      assert.equal(prefixes[0]?.prefix, `${client.v4.split('.').slice(0, 3).join('.')}.0/24`);
    }
    const held = r.cliJson<{ counters: Record<string, number> }>(['status']).counters;
    assert.equal(held?.EVENTS_HELD ?? heldBack(), heldBack());

    // the session records rotated the first file away; the control file kept what the enforcer did
    await agent.terminate();
    const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec) : []);
    const main = [...lines(`${auditFile}.1`), ...lines(auditFile)];
    assert.ok(!main.some((x) => x.type === 'agent' && x.event === 'started'), 'the audit file rotated past the start');
    const control = lines(`${auditFile}.control`);
    assert.ok(control.some((x) => x.type === 'agent' && x.event === 'started'), 'the control file has the start');
    assert.ok(control.some((x) => x.type === 'policy' && x.status === 'installed'), 'and the policy installed');
    assert.equal(control.filter((x) => x.type === 'flood' && isBlock(x)).reduce((n, x) => n + Number(x.heldBack), 0), heldBack(), 'and every flood record');
    assert.ok(!control.some((x) => x.type === 'session' || x.type === 'summary'), 'and no flow record');
  });
});
