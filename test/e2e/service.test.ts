// SPDX-License-Identifier: Apache-2.0
// The packaged agent run as doorstep.service runs it (test/lib/installed-package.ts): the .deb
// unpacked, its launcher, its unit's ExecStart/ExecStartPre/ExecStartPost, only the unit's
// capabilities, as an unprivileged user. It enforces the demo policy with real traffic, keeps the
// engine through a restart and adopts it, writes its audit trail, applies a failsafe added to
// agent.yaml on `systemctl reload` (ExecReload); without CAP_BPF it refuses with
// DS_E_CAPABILITY; and brought up under a flood after it started, an interface delivers not one
// denied datagram from the first frame on.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StatusReport } from '../../src/controller/routes.js';
import { execIn } from '../../src/demo/topology.js';
import { AgentProcess, AgentRig, type Rec } from '../lib/agent-rig.js';
import { InstalledPackage } from '../lib/installed-package.js';

// the demo policy (examples/demo.yaml, installed as /etc/doorstep/policy/example.yaml): UDP
// 5353-5354 from the clients is allowed; anything else, UDP 9999 here, meets the default deny
const ALLOWED = 5353;
const DENIED = 9999;

/** The installed agent on a rig: unique pins, state, socket, policy and audit, owned by the service user. */
class ServiceRig extends AgentRig {
  readonly audit = join(this.dir, 'log', 'audit.jsonl');

  constructor(readonly pkg: InstalledPackage) {
    super('dsh20');
    execFileSync('mkdir', ['-p', this.stateDir, join(this.dir, 'log')]);
    // what StateDirectory=, LogsDirectory= and RuntimeDirectory= do for the unit
    execFileSync('chown', ['-R', `${pkg.uid}:${pkg.uid}`, this.dir]);
    this.writePolicy('demo.yaml', readFileSync(pkg.path('/etc/doorstep/policy/example.yaml'), 'utf8'));
    chownSync(join(this.policyDir, 'demo.yaml'), pkg.uid, pkg.uid);
  }

  /** The unit's start: ExecStartPre (privileged), then ExecStart as the service; `caps` narrows them. */
  start(caps?: string[]): AgentProcess {
    this.pkg.prepare(this.pinRoot);
    const { ns, ifname } = this.topo.enforced;
    const child = this.pkg.spawnAgent(ns, [
      '--interface', ifname, '--policy', this.policyDir, '--audit', '-', '--audit', this.audit,
      '--state-dir', this.stateDir, '--socket', this.socket, '--pin-root', this.pinRoot, '--enforcer-id', 'h20-service',
    ], caps);
    return new AgentProcess(this.topo.own(child));
  }

  status(): StatusReport {
    const r = this.pkg.cli(['status', '--socket', this.socket, '-o', 'json']);
    if (r.code !== 0) throw new Error(`doorstep status exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusReport;
  }

  xdpAttached(): boolean {
    return /xdp/.test(execIn(this.topo.server.ns, 'ip', ['link', 'show', 'dev', this.topo.server.ifname]));
  }

  /** Datagrams to ALLOWED and DENIED at `perSecond` each for `seconds`; what each sink received. */
  async traffic(perSecond: number, seconds: number, during?: () => Promise<void>): Promise<{ allowed: number; denied: number; sent: number }> {
    const sinks = [await this.sink(ALLOWED, seconds + 20), await this.sink(DENIED, seconds + 20)];
    const streams = [this.stream(ALLOWED, perSecond, seconds), this.stream(DENIED, perSecond, seconds)];
    await during?.();
    const [a, d] = await Promise.all(streams.map((s) => s.done));
    const [allowed, denied] = await Promise.all(sinks.map((s) => s.stop()));
    return { allowed: allowed!.length, denied: denied!.length, sent: a!.sent + d!.sent };
  }
}

const isRecord = (type: string, field: string, value: unknown) => (r: Rec) => r.type === type && r[field] === value;

describe('the installed agent, run as doorstep.service', () => {
  let pkg: InstalledPackage;
  before(() => {
    pkg = new InstalledPackage();
  });
  after(() => pkg?.remove());

  it('runs with only CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN, as a user that is not root', () => {
    assert.deepEqual(pkg.capabilities().sort(), ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_ADMIN']);
    assert.equal(pkg.setting('User'), 'doorstep');
    assert.equal(pkg.setting('NoNewPrivileges'), 'yes');
    assert.notEqual(pkg.uid, 0);
  });

  describe('enforces, keeps enforcing through a restart, adopts, audits, detaches on removal', () => {
    let rig: ServiceRig;
    before(() => {
      rig = new ServiceRig(pkg);
    });
    after(() => rig.cleanup());

    it('passes what the demo policy allows and drops what it denies', async () => {
      const agent = rig.start();
      try {
        await agent.waitFor(isRecord('policy', 'status', 'installed'), 'the demo policy installed');
        pkg.waitReady(rig.topo.server.ns, rig.socket);
        const proc = readFileSync(`/proc/${await agentPid(agent)}/status`, 'utf8');
        assert.match(proc, new RegExp(`^Uid:\\s+${pkg.uid}\\s`, 'm'), 'the agent runs as the service user');
        assert.match(proc, /^CapEff:\s+000000c000201000$/m, 'with exactly the unit\'s capabilities');

        const t = await rig.traffic(200, 2);
        assert.ok(t.allowed > 0, `allowed datagrams arrive (${t.allowed})`);
        assert.equal(t.denied, 0, 'no denied datagram arrives');
        const status = rig.status();
        assert.ok((status.counters.DROP_PACKETS ?? 0) > 0, 'the engine dropped the denied stream');
        assert.equal(status.interfaces[0]?.name, rig.topo.server.ifname);

        // the audit trail, written by the unprivileged agent into its logs dir
        await agent.waitFor((r) => r.type === 'session' && r.verdict === 'deny' && r.dport === DENIED, 'the denied session audited');
        const lines = readFileSync(rig.audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
        assert.ok(lines.some((r) => r.type === 'session' && r.verdict === 'allow' && r.dport === ALLOWED), 'an allowed session in the audit file');
        assert.ok(lines.some((r) => r.type === 'session' && r.verdict === 'deny' && r.dport === DENIED), 'a denied session in the audit file');
        assert.equal(statSync(rig.audit).uid, pkg.uid, 'the audit file belongs to the service user');
      } finally {
        assert.equal(await agent.terminate('SIGTERM'), 0, `the agent stops cleanly: ${agent.stderr}`);
      }
      const stopped = agent.records.find(isRecord('agent', 'event', 'stopped'));
      assert.match(String(stopped?.message), /keeps enforcing/);
    });

    it('keeps the engine attached while stopped, and the next agent adopts it', async () => {
      assert.ok(rig.xdpAttached(), 'XDP stays on the interface after the unit stopped the agent');
      const gap = await rig.traffic(200, 1);
      assert.equal(gap.denied, 0, 'nothing denied passes while no agent runs');
      assert.ok(gap.allowed > 0, 'the allowed stream flows while no agent runs');

      const agent = rig.start();
      let original: string | undefined;
      try {
        const attached = await agent.waitFor(isRecord('agent', 'event', 'attached'), 'attach');
        assert.equal(attached.adopted, true, 'the link is adopted, not replaced');
        const policy = await agent.waitFor((r) => r.type === 'policy' && r.status !== undefined, 'the policy after the restart');
        assert.equal(policy.status, 'adopted');
        const pid = await agentPid(agent);
        pkg.waitReady(rig.topo.server.ns, rig.socket);
        const t = await rig.traffic(200, 1);
        assert.ok(t.allowed > 0 && t.denied === 0, `enforcing after the restart: ${JSON.stringify(t)}`);

        // systemctl reload: the operator adds a failsafe for the denied port to agent.yaml, and
        // ExecReload sends SIGHUP; the denied stream then passes
        const conf = pkg.path('/etc/doorstep/agent.yaml');
        original = readFileSync(conf, 'utf8');
        appendFileSync(conf, `failsafe:\n  - { cidr: ${rig.topo.client.v4}/32, protocol: udp, ports: ${DENIED} }\n`);
        const from = agent.records.length;
        const reload = pkg.setting('ExecReload').split(/\s+/).map((w) => (w === '$MAINPID' ? String(pid) : w));
        execFileSync(reload[0]!, reload.slice(1));
        const reloaded = await agent.waitFor(isRecord('agent', 'event', 'reloaded'), 'the reload', 20_000, from);
        assert.match(String(reloaded.message), /failsafe \(1 prefixes\)/);
        await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'the re-classifying install', 20_000, from);
        const opened = await rig.traffic(200, 1);
        assert.ok(opened.denied > 0, `the failsafe lets the denied port through after the reload (${opened.denied})`);
      } finally {
        if (original !== undefined) writeFileSync(pkg.path('/etc/doorstep/agent.yaml'), original); // the other tests run the package as shipped
        await agent.terminate('SIGTERM');
      }
    });

    it('removal: the package\'s detach (prerm) takes the engine the service left off the interface', () => {
      assert.ok(rig.xdpAttached(), 'the stopped service left the engine enforcing');
      execFileSync(pkg.path('/usr/lib/doorstep/detach-engine'), [rig.pinRoot], { stdio: 'pipe' });
      assert.ok(!rig.xdpAttached(), 'detached');
      assert.ok(!existsSync(rig.pinRoot), 'no pins left');
    });
  });

  it('refuses to start without CAP_BPF, naming it, and touches nothing', async () => {
    const rig = new ServiceRig(pkg);
    try {
      const agent = rig.start(pkg.capabilities().filter((c) => c !== 'CAP_BPF'));
      const code = await agent.exited;
      assert.equal(code, 4, `exit 4 (the host refused): ${agent.stderr}`);
      assert.match(agent.stderr, /^doorstep: DS_E_CAPABILITY: missing capability CAP_BPF \(/m);
      assert.ok(!rig.xdpAttached(), 'nothing attached');
      assert.deepEqual(existsSync(rig.pinRoot) ? readdirSync(rig.pinRoot) : [], [], 'nothing pinned');
    } finally {
      rig.cleanup();
    }
  });

  it('boot order: an interface brought up under a flood after the unit started delivers no denied datagram', async () => {
    const rig = new ServiceRig(pkg);
    try {
      const { client, server } = rig.topo;
      // control: with nothing enforcing, the receiver does see the port the policy denies
      const open = await rig.traffic(200, 0.5);
      assert.ok(open.denied > 0, `without the agent the denied port receives (${open.denied})`);

      // the interface is down, as at boot; the client knows the server's MAC, so it sends at once
      const [link] = JSON.parse(execIn(server.ns, 'ip', ['-j', 'link', 'show', 'dev', server.ifname])) as { address: string }[];
      const mac = link!.address;
      execIn(client.ns, 'ip', ['neigh', 'replace', server.v4, 'lladdr', mac, 'dev', client.ifname, 'nud', 'permanent']);
      execIn(server.ns, 'ip', ['link', 'set', server.ifname, 'down']);

      const agent = rig.start();
      try {
        pkg.waitReady(server.ns, rig.socket); // ExecStartPost: the unit's start ends here, network-pre.target follows
        const t = await rig.traffic(3000, 3, async () => {
          await clientSending(rig, 200); // the flood is on before the link comes up
          execIn(server.ns, 'ip', ['link', 'set', server.ifname, 'up']);
        });
        assert.equal(t.denied, 0, `no denied datagram delivered (of ${t.sent} sent)`);
        assert.ok(t.allowed > 0, `the allowed stream arrives once the link is up (${t.allowed})`);
        assert.ok((rig.status().counters.DROP_PACKETS ?? 0) > 0, 'the engine met the denied flood');
      } finally {
        await agent.terminate('SIGTERM');
      }
    } finally {
      rig.cleanup();
    }
  });
});

/** The agent's pid: the launcher execs node, so the setpriv/nsenter chain ends in it. */
async function agentPid(agent: AgentProcess): Promise<number> {
  const started = await agent.waitFor(isRecord('agent', 'event', 'started'), 'started');
  return Number(/pid (\d+)/.exec(String(started.message))?.[1]);
}

/** Resolves once the client's interface has sent (or dropped for want of a carrier) `n` frames since the call. */
async function clientSending(rig: AgentRig, n: number): Promise<void> {
  const { ns, ifname } = rig.topo.client;
  const count = () => {
    const [link] = JSON.parse(execIn(ns, 'ip', ['-j', '-s', 'link', 'show', 'dev', ifname])) as { stats64: { tx: { packets: number; dropped: number } } }[];
    return link!.stats64.tx.packets + link!.stats64.tx.dropped;
  };
  const start = count();
  for (let i = 0; i < 200; i++) {
    if (count() - start >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the client sent fewer than ${n} frames in 2 s`);
}
