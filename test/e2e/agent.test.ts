// SPDX-License-Identifier: Apache-2.0
// The agent end to end, in network namespaces with real traffic: boot under a flood, policy flips
// under traffic, kill -9 and adoption, a rejected policy, and the CLI's outputs against known
// traffic. Streams carry sequence numbers and send times (CLOCK_MONOTONIC, shared by every
// namespace), so each assertion is about exactly which datagrams arrived.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentClient } from '../../src/controller/agent-client.js';
import type { StatusReport } from '../../src/controller/routes.js';
import { execIn } from '../../src/demo/topology.js';
import { compileSources } from '../../src/policy/compile.js';
import { AgentRig, type Rec, sequenceRuns, twoPortPolicy } from '../lib/agent-rig.js';
import { until } from '../lib/until.js';

const ALLOWED = 7001;
const DENIED = 7002;

/** Version A allows ALLOWED and denies DENIED; version B the other way round. */
function policy(flip: boolean, extra = ''): string {
  return flip ? twoPortPolicy(DENIED, ALLOWED, extra) : twoPortPolicy(ALLOWED, DENIED, extra);
}

const versionOf = (text: string) => compileSources([{ file: 'p.yaml', text }]).ir.version;

function xdpAttached(rig: AgentRig): boolean {
  return /xdp/.test(execIn(rig.topo.server.ns, 'ip', ['link', 'show', 'dev', rig.topo.server.ifname]));
}

describe('agent: boot under a flood', () => {
  const rig = new AgentRig();
  after(() => rig.cleanup());

  it('delivers nothing between attach and install, then everything the policy allows', async () => {
    // a 100,000-prefix group makes compiling take long enough for the default-deny window to show
    const feed = Array.from({ length: 100_000 }, (_, i) => `"172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32"`);
    rig.writePolicy(
      'web.yaml',
      policy(false, `    - { name: feed, action: deny, from: [feed] }\n---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: feed }\nspec: { cidrs: [${feed.join(',')}] }\n`),
    );
    const sink = await rig.sink(ALLOWED, 60);
    const flood = rig.stream(ALLOWED, 2000, 30);
    await sink.until((p) => p.count > 0, 'the flood reaching the unprotected server first');
    const agent = rig.startAgent();
    try {
      const attached = await agent.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
      const installed = await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install', 60_000);
      assert.equal(attached.mode, 'native');
      assert.ok(agent.records.indexOf(attached) < agent.records.indexOf(installed), 'attached before the policy was installed');
      await agent.waitFor((x) => x.type === 'session' && x.dport === ALLOWED && x.verdict === 'allow', 'the flood allowed under the policy');
      const { sent } = await flood.stop();
      await sink.until((p) => p.highest === sent - 1, `the last datagram sent (${sent - 1})`);
      const received = await sink.stop();
      const status = rig.cliJson<StatusReport>(['status']);

      const r = sequenceRuns(received);
      assert.equal(r.length, 2, `one gap in the stream: ${JSON.stringify(r)}`);
      const [before, afterInstall] = r as [[number, number], [number, number]];
      const gap = afterInstall[0] - before[1] - 1;
      assert.equal(before[0], 0, 'the flood reached the server before the agent started');
      assert.ok(gap > 0, 'datagrams were sent during the default-deny window');
      assert.equal(afterInstall[1], sent - 1, 'every datagram sent after the install arrived');
      assert.ok(status.byReason.NO_POLICY!.drop.packets >= gap, `the engine dropped the gap (${gap}) as no-policy`);
      assert.equal(status.byReason.NO_POLICY!.pass.packets, 0, 'nothing passed without a policy');
      const session = agent.records.find((x) => x.type === 'session' && x.dport === ALLOWED && x.verdict === 'allow');
      assert.equal(session?.rule, `web/allow-${ALLOWED}`);
    } finally {
      await agent.terminate();
    }
  });
});

describe('agent: 100 policy flips under traffic', () => {
  const rig = new AgentRig();
  after(() => rig.cleanup());

  it('classifies every packet against exactly one version and cuts or restores flows at each flip', async () => {
    const texts = [policy(false), policy(true)];
    const versions = texts.map(versionOf);
    rig.writePolicy('web.yaml', texts[0] as string);
    const agent = rig.startAgent();
    try {
      const first = await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
      const generationText = new Map<number, number>([[first.generation as number, 0]]);
      const sinks = { [ALLOWED]: await rig.sink(ALLOWED, 120), [DENIED]: await rig.sink(DENIED, 120) };
      const streams = [rig.stream(ALLOWED, 500, 90), rig.stream(DENIED, 500, 90)];
      await sinks[ALLOWED].until((p) => p.count > 0, 'the allowed stream flowing');

      const client = new AgentClient(rig.socket);
      // windows[i]: [after flip i returned, before flip i+1 started), under version which
      const windows: { from: bigint; to: bigint; which: number }[] = [];
      let start = process.hrtime.bigint();
      let which = 0;
      for (let i = 1; i <= 100; i++) {
        const next = i % 2;
        const t0 = process.hrtime.bigint();
        if (i > 1) windows.push({ from: start, to: t0, which });
        const outcome = await client.call<{ status: string; generation: number; version: string }>('POST', '/v1/apply', {
          sources: [{ file: `flip-${i}.yaml`, text: texts[next] }],
        });
        assert.equal(outcome.status, 'installed');
        assert.equal(outcome.version, versions[next]);
        generationText.set(outcome.generation, next);
        start = process.hrtime.bigint();
        which = next;
        // the flow this version opens flows again before the next flip: a datagram sent in this window arrived
        const openPort = next === 0 ? ALLOWED : DENIED;
        const windowStart = start;
        await sinks[openPort].until((p) => p.highestSentNs > windowStart, `port ${openPort} flowing after flip ${i}`);
      }
      windows.push({ from: start, to: process.hrtime.bigint(), which });
      const [sentAllowed, sentDenied] = [await streams[0]!.stop(), await streams[1]!.stop()];
      const lastOpen = which === 0 ? ALLOWED : DENIED;
      const lastSent = (which === 0 ? sentAllowed : sentDenied).sent;
      await sinks[lastOpen].until((p) => p.highest === lastSent - 1, `the last datagram to port ${lastOpen}`);
      const received: Record<number, [number, bigint][]> = { [ALLOWED]: await sinks[ALLOWED].stop(), [DENIED]: await sinks[DENIED].stop() };

      for (const port of [ALLOWED, DENIED]) {
        const open = (w: { which: number }) => (port === ALLOWED) === (w.which === 0);
        for (const [wi, w] of windows.entries()) {
          const inside = received[port]!.filter(([, ns]) => ns > w.from && ns < w.to).map(([s]) => s).sort((a, b) => a - b);
          if (!open(w)) {
            assert.equal(inside.length, 0, `port ${port}, window ${wi}: nothing sent while denied arrives`);
          } else if (inside.length > 1) {
            assert.equal(inside[inside.length - 1]! - inside[0]! + 1, inside.length, `port ${port}, window ${wi}: no datagram lost while allowed`);
          }
        }
        const openWindows = windows.filter(open).length;
        const delivered = windows.filter(open).filter((w) => received[port]!.some(([, ns]) => ns > w.from && ns < w.to)).length;
        assert.ok(delivered >= openWindows - 2, `port ${port}: traffic flowed again after ${delivered} of ${openWindows} re-allows`);
      }

      // every audit record names the rule its own generation's version decides: no mixed version.
      // One ring buffer, read in order: once the open flow's record of the last generation is out,
      // every earlier one is too
      const lastGeneration = Math.max(...generationText.keys());
      await agent.waitFor((r) => r.type === 'session' && r.generation === lastGeneration && r.dport === lastOpen, 'the record of the last generation');
      const flows = agent.records.filter((r) => r.type === 'session' && (r.dport === ALLOWED || r.dport === DENIED));
      assert.ok(flows.length >= 150, `a record per flip and flow (${flows.length})`);
      for (const r of flows) {
        const v = generationText.get(r.generation as number);
        assert.notEqual(v, undefined, `generation ${r.generation} is one this test installed`);
        const open = v === 0 ? ALLOWED : DENIED;
        const expected = r.dport === open ? { verdict: 'allow', rule: `web/allow-${open}` } : { verdict: 'deny', rule: `web/deny-${r.dport}` };
        assert.deepEqual({ verdict: r.verdict, rule: r.rule }, expected, `generation ${r.generation}, port ${r.dport}`);
        assert.equal(r.policyVersion, versions[v as number]);
      }
    } finally {
      await agent.terminate();
    }
  });
});

describe('agent: kill -9 under traffic', () => {
  const rig = new AgentRig();
  after(() => rig.cleanup());

  it('keeps enforcing while no agent runs, and the next agent adopts without a gap', async () => {
    rig.writePolicy('web.yaml', policy(false));
    const first = rig.startAgent();
    const installed = await first.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
    const sinks = [await rig.sink(ALLOWED, 60), await rig.sink(DENIED, 60)] as const;
    const streams = [rig.stream(ALLOWED, 500, 5), rig.stream(DENIED, 500, 5)] as const;
    await sinks[0].until((p) => p.count > 0, 'the allowed stream flowing');
    first.child.kill('SIGKILL');
    await first.exited;
    const killedAt = sinks[0].progress();
    await sinks[0].until((p) => p.count >= killedAt.count + 100, '100 more allowed datagrams with no agent running');
    assert.ok(xdpAttached(rig), 'the engine stays attached with no agent');
    const second = rig.startAgent();
    try {
      const attached = await second.waitFor((r) => r.type === 'agent' && r.event === 'attached', 'attach');
      assert.equal(attached.adopted, true);
      const adopted = await second.waitFor((r) => r.type === 'policy', 'the policy record');
      assert.equal(adopted.status, 'adopted');
      assert.equal(adopted.generation, installed.generation, 'the same generation goes on: nothing reinstalled');
      assert.equal(adopted.policyVersion, installed.policyVersion);
      const [sentAllowed, sentDenied] = [await streams[0].done, await streams[1].done];
      await sinks[0].until((p) => p.highest === sentAllowed.sent - 1, 'the last allowed datagram');
      const [gotAllowed, gotDenied] = [await sinks[0].stop(), await sinks[1].stop()];
      assert.deepEqual(sequenceRuns(gotAllowed), [[0, sentAllowed.sent - 1]], 'every allowed datagram arrived, before, during and after the gap in agents');
      assert.equal(gotDenied.length, 0, `none of ${sentDenied.sent} denied datagrams arrived`);
      const status = rig.cliJson<StatusReport>(['status']);
      assert.equal(status.policy?.generation, installed.generation);
      assert.ok((status.rules[`web/deny-${DENIED}`]?.packets ?? 0) >= sentDenied.sent, 'drops counted at XDP while no agent ran');
    } finally {
      await second.terminate();
    }
    assert.ok(xdpAttached(rig), 'SIGTERM leaves the engine enforcing too');
    assert.ok(existsSync(join(rig.pinRoot, 'maps')), 'pins kept');
    const detached = rig.detach();
    assert.equal(detached.code, 0, detached.stderr);
    assert.match(detached.stdout, new RegExp(`detached   XDP from ${rig.topo.server.ifname}`));
    assert.equal(xdpAttached(rig), false, 'doorstep detach took the engine off');
    assert.equal(existsSync(rig.pinRoot), false, 'and removed its pins');
    const again = rig.detach();
    assert.deepEqual([again.code, again.stdout.trim()], [0, `nothing to detach: no enforcement record in ${rig.stateDir} and no pins at ${rig.pinRoot}`], 'a second detach finds nothing');
  });

  it('--detach-on-exit takes the engine off at a stop; --keep-on-exit is accepted and changes nothing', async () => {
    const agent = rig.startAgent(['--detach-on-exit', '--keep-on-exit']);
    await agent.waitFor((r) => r.type === 'policy' && r.status !== 'rejected', 'the policy');
    const running = rig.detach();
    assert.equal(running.code, 4, 'detach refuses while the agent runs');
    assert.match(running.stderr, /DS_E_AGENT_RUNNING: the agent \(pid \d+\) that owns .* still runs/);
    assert.ok(xdpAttached(rig), 'and leaves it enforcing');
    assert.equal(await agent.terminate(), 0);
    assert.match(agent.stderr, /--keep-on-exit \(keepOnExit\) is deprecated and has no effect/);
    assert.equal(xdpAttached(rig), false);
    assert.equal(existsSync(rig.pinRoot), false, 'no pins');
    assert.equal(existsSync(join(rig.stateDir, 'enforcement.json')), false, 'nothing recorded as left');
    assert.ok(agent.records.some((r) => r.type === 'agent' && r.event === 'detached'));
    assert.equal(agent.records.at(-1)?.event, 'stopped');
  });
});

describe('agent: a malformed policy', () => {
  const rig = new AgentRig();
  after(() => rig.cleanup());

  it('is rejected with file, line and field, and the policy in force stays', async () => {
    rig.writePolicy('a-web.yaml', policy(false));
    // detached at its stop, as after a reboot: the next agent restores from the state dir (a plain
    // stop would leave the engine for it to adopt)
    const agent = rig.startAgent(['--detach-on-exit']);
    let restarted: ReturnType<AgentRig['startAgent']> | undefined;
    try {
      const installed = await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
      const bad = rig.writePolicy('b-bad.yaml', 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: bad }\nspec:\n  defaultAction: allow\n  rules:\n    - { name: x, action: allow, protocol: tcp, ports: [70000] }\n');
      const rejected = await agent.waitFor((r) => r.type === 'policy' && r.status === 'rejected', 'the rejection');
      const problem = (rejected.problems as { file: string; line: number; field: string }[])[0];
      assert.equal(problem?.file, bad);
      assert.equal(problem?.line, 7);
      assert.equal(problem?.field, 'spec.rules[0].ports[0]');
      assert.equal(rejected.inForce, installed.policyVersion);
      const status = rig.cliJson<StatusReport>(['status']);
      assert.equal(status.policy?.version, installed.policyVersion);
      assert.equal(status.policy?.generation, installed.generation);

      // a restart with the broken source enforces the last installed policy, not deny-all
      await agent.terminate();
      restarted = rig.startAgent();
      const restored = await restarted.waitFor((r) => r.type === 'policy' && r.status === 'restored', 'the restore');
      assert.equal(restored.policyVersion, installed.policyVersion);
      await restarted.waitFor((r) => r.type === 'policy' && r.status === 'rejected', 'the source rejected again');
      assert.equal(rig.cliJson<StatusReport>(['status']).policy?.version, installed.policyVersion);
    } finally {
      await agent.terminate();
      await restarted?.terminate();
    }
  });
});

describe('agent: the CLI against known traffic', () => {
  const rig = new AgentRig();
  let agent: ReturnType<AgentRig['startAgent']>;
  let installed: Rec;
  /** Datagrams each stream sent: to ALLOWED, DENIED and 7003. */
  let sent: number[] = [];
  after(async () => {
    await agent?.terminate();
    rig.cleanup();
  });

  it('runs with known traffic', async () => {
    rig.writePolicy('web.yaml', policy(false));
    agent = rig.startAgent(['--metrics', '127.0.0.1:0', '--summary-interval', '1s']);
    installed = await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
    const sinks = [await rig.sink(ALLOWED, 30), await rig.sink(DENIED, 30), await rig.sink(7003, 30)];
    const streams = [rig.stream(ALLOWED, 100, 0.5), rig.stream(DENIED, 60, 0.5), rig.stream(7003, 40, 0.5)];
    sent = (await Promise.all(streams.map((s) => s.done))).map((r) => r.sent);
    await sinks[0]!.until((p) => p.count === sent[0], `all ${sent[0]} allowed datagrams`);
    // the others were dropped at XDP once the engine counted them: none can arrive after that
    await until(() => {
      const rules = rig.cliJson<StatusReport>(['status']).rules;
      return rules[`web/deny-${DENIED}`]?.packets === sent[1] && (rules['web/default']?.packets ?? 0) >= sent[2]!;
    }, 'the engine counting every denied datagram', 20_000, 200);
    const got = await Promise.all(sinks.map((s) => s.stop()));
    assert.ok(sent.every((n) => n > 0));
    assert.deepEqual(
      got.map((g) => g.length),
      [sent[0], 0, 0],
    );
    await agent.waitFor((r) => r.type === 'session' && r.dport === 7003, 'the third flow');
  });

  it('status: version, generation, interface mode, per-rule counts', () => {
    const s = rig.cliJson<StatusReport>(['status']);
    assert.equal(s.policy?.version, installed.policyVersion);
    assert.equal(s.policy?.generation, installed.generation);
    assert.deepEqual(s.interfaces.map((i) => [i.name, i.mode]), [[rig.topo.server.ifname, 'native']]);
    assert.equal(s.rules[`web/allow-${ALLOWED}`]?.packets, sent[0]);
    assert.equal(s.rules[`web/deny-${DENIED}`]?.packets, sent[1]);
    assert.ok((s.rules['web/default']?.packets ?? 0) >= sent[2]!);
    assert.equal(s.events.lost, 0);
    assert.equal(statSync(rig.socket).mode & 0o777, 0o600, 'the local API is root-only');
    assert.equal(typeof s.agent.maxStallMs, 'number', 'the longest event-loop stall is exposed');
    assert.ok(s.agent.maxStallSinceLastReadMs <= s.agent.maxStallMs);
    assert.ok(s.agent.rssBytes > 0);
    const table = rig.cli(['status']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, new RegExp(`generation ${installed.generation}, 2 rules`));
    assert.match(table.stdout, /agent +longest event-loop stall [\d.]+ ms \(since the last status [\d.]+ ms; target ≤ 50 ms\)/);
  });

  it('audit: a flood on a denied flow is one session record, then summaries with exact counts', async () => {
    const summarized = () => agent.records.filter((r) => r.type === 'summary' && r.dport === DENIED).reduce((n, r) => n + (r.packets as number), 0);
    // summaries come every second: wait for the one after the flood ended (the sum stops short otherwise)
    await agent.waitFor(() => summarized() >= sent[1]!, 'summaries of the whole flood', 10_000);
    const records = agent.records.filter((r) => r.dport === DENIED);
    const summary = records.find((r) => r.type === 'summary') as Rec;
    assert.equal(records.filter((r) => r.type === 'session').length, 1, 'one session record');
    const summaries = records.filter((r) => r.type === 'summary');
    assert.equal(summaries.reduce((n, r) => n + (r.packets as number), 0), sent[1], 'the summaries add up to every datagram');
    assert.equal(summary.verdict, 'deny');
    assert.equal(summary.rule, `web/deny-${DENIED}`);
    assert.equal(records.length, 1 + summaries.length, 'never one record per packet');
  });

  it('metrics: the Prometheus exposition counts the same traffic', async () => {
    const serving = await agent.waitFor((r) => r.type === 'agent' && r.event === 'serving', 'the metrics address');
    const url = /http:\/\/\S+\/metrics/.exec(String(serving.message))?.[0];
    assert.ok(url, String(serving.message));
    const text = execIn(rig.topo.server.ns, process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
    /** The value of the series `name` whose labels include `labels`. */
    const value = (name: string, labels: Record<string, string> = {}) => {
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
      }
      return NaN;
    };
    assert.equal(value('doorstep_rule_packets_total', { enforcer: 'test', rule: `web/allow-${ALLOWED}` }), sent[0]);
    assert.equal(value('doorstep_rule_packets_total', { rule: `web/deny-${DENIED}` }), sent[1]);
    assert.equal(value('doorstep_policy_generation'), installed.generation);
    assert.equal(value('doorstep_events_lost_total'), 0);
    assert.ok(value('doorstep_packets_total', { action: 'drop', reason: 'policy' }) >= sent[1]! + sent[2]!);
  });

  it('observe: filters by verdict, port, prefix and rule', () => {
    const lines = (args: string[]) =>
      rig
        .cli(['observe', '-o', 'json', ...args])
        .stdout.trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Rec)
        .filter((r) => r.type === 'session');
    const denied = lines(['--verdict', 'deny', '--protocol', 'udp']);
    assert.deepEqual(denied.map((r) => [r.dport, r.rule]).sort(), [[DENIED, `web/deny-${DENIED}`], [7003, 'web/default']]);
    const allowed = lines(['--port', String(ALLOWED)]);
    assert.deepEqual(allowed.map((r) => [r.type, r.verdict, r.rule]), [['session', 'allow', `web/allow-${ALLOWED}`]]);
    assert.equal(lines(['--from', '10.231.0.0/24', '--to', '10.231.0.2/32', '--rule', `allow-${ALLOWED}`]).length, 1);
    assert.equal(lines(['--from', '192.0.2.0/24']).length, 0);
    assert.equal(lines(['--verdict', 'allow', '--port', String(DENIED)]).length, 0);
  });

  it('sessions: the cache with counts, filtered', () => {
    const r = rig.cliJson<{ matched: number; sessions: { verdict: string; packets: number; rule: string }[] }>(['sessions', '--port', String(DENIED)]);
    assert.equal(r.matched, 1);
    assert.deepEqual([r.sessions[0]?.verdict, r.sessions[0]?.packets, r.sessions[0]?.rule], ['deny', sent[1], `web/deny-${DENIED}`]);
  });

  it('explain: the deciding rule, and the live tables agree', () => {
    const r = rig.cliJson<{ rule: string; action: string; agree: boolean }>(['explain', '--from', '10.231.0.1', '--to', '10.231.0.2', '--protocol', 'udp', '--port', String(DENIED)]);
    assert.deepEqual([r.action, r.rule, r.agree], ['deny', `web/deny-${DENIED}`, true]);
    const d = rig.cliJson<{ rule: string; action: string; agree: boolean }>(['explain', '--from', '10.231.0.1', '--to', '10.231.0.2', '--protocol', 'tcp', '--port', '22']);
    assert.deepEqual([d.action, d.rule, d.agree], ['deny', 'web/default', true]);
  });

  it('diff: what a candidate changes and which cached sessions flip', () => {
    const candidate = rig.writePolicy('../candidate.yaml', policy(true));
    const r = rig.cliJson<{ flips: { dport?: number; from: string; to: string }[] }>(['diff', candidate]);
    const flips = r.flips.map((f) => [f.dport, f.from, f.to]).sort();
    assert.deepEqual(flips, [[ALLOWED, 'allow', 'deny'], [DENIED, 'deny', 'allow']]);
  });

  it('apply: prints the installed version and generation', () => {
    const candidate = rig.writePolicy('../candidate.yaml', policy(true));
    const r = rig.cli(['apply', candidate]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${versionOf(policy(true))} installed in [\\d.]+ ms: generation ${(installed.generation as number) + 1}, 2 rules`));
  });
});
