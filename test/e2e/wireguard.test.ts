// SPDX-License-Identifier: Apache-2.0
// WireGuard tunnels under stress, in namespaces around a wireguard-go edge: an agent killed with
// SIGKILL leaves its tunnel carrying traffic and the next agent adopts it (same wireguard-go, no
// new handshake), and SIGTERM with `doorstep detach` afterwards leaves nothing, the settings the
// killed agent made included; the edge's key changes and the agents
// reload (SIGHUP): what a numbered UDP stream lost, reported; bad input: a malformed key, a
// missing wireguard-go (one clear error each, nothing set up), an unreachable edge (a clear
// status while the handshake is pending; SIGTERM leaves the tunnel, `doorstep detach` nothing). Two
// runs at once with the same device names: each agent's wireguard-go and `wg` meet in its own
// socket folder, so one run taken apart leaves the other's tunnels as they were. And the contrast that
// shows the underlay check can fail: the same flow over `edge.tunnel: vxlan` is seen in clear.
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { exampleConfigs, PlacementDemo } from '../../src/demo/placements.js';
import { execIn, ip, NamespaceOwner, runToken, spawnIn } from '../../src/demo/topology.js';
import { processesInNetns } from '../../src/placement/netns-processes.js';
import { withConfFile } from '../../src/placement/wireguard.js';
import { newWireguardPrivateKey, wireguardPublicKey } from '../../src/placement/wireguard-keys.js';
import { packageRoot } from '../../src/paths.js';
import { AgentProcess, mainJs } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const peerJs = join(packageRoot, 'dist/src/demo/peer.js');
const POLICY = [
  'apiVersion: doorstep/v1',
  'kind: NetworkPolicy',
  'metadata: { name: wg }',
  'spec:',
  '  defaultAction: deny',
  '  rules:',
  '    - { name: dc-db, action: allow, from: [10.50.0.0/24], to: [10.9.0.0/24], protocol: tcp, ports: [5432] }',
  '    - { name: dc-stream, action: allow, from: [10.50.0.0/24], to: [10.9.0.0/24], protocol: udp, ports: [7000] }',
  '',
].join('\n');

/** Polls a fact (a counter, a handshake) until `check` returns a value; bounded. */
async function until<T>(what: string, check: () => T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

const wireguardGo = (ns: string) => processesInNetns(`/run/netns/${ns}`, (argv) => argv[0]!.endsWith('wireguard-go'));

/** Unix seconds of the latest handshake with `peerKey` on enforcer `name`'s `dev`; 0 = none. */
function handshake(demo: PlacementDemo, name: string, dev: string, peerKey: string): number {
  const line = demo.wg(name, ['show', dev, 'latest-handshakes']).split('\n').find((l) => l.startsWith(peerKey));
  return Number(line?.split('\t')[1] ?? 0);
}

function output(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out));
  });
}

describe('WireGuard: a killed agent, its successor, and the edge changing its key', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-wg-e2e-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  let demo: PlacementDemo;
  const records: { enforcer: string; record: Record<string, unknown> }[] = [];

  before(async () => {
    demo = new PlacementDemo({
      enforcers: { workload: join(packageRoot, 'examples/placement/workload.yaml'), datacenter: join(packageRoot, 'examples/placement/datacenter.yaml') },
      policy,
      onRecord: (enforcer, record) => records.push({ enforcer, record }),
    });
    await demo.start();
  });
  after(() => {
    demo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const db = { name: 'dc → remote db', from: 'dc-fra', to: 'vpc-r', proto: 'tcp' as const, port: 5432, expect: 'allow' as const };

  it('kill -9: the tunnel keeps carrying enforced traffic; the next agent adopts it (same wireguard-go, no new handshake); SIGTERM and doorstep detach then leave nothing', async (t) => {
    const wl = demo.topology.enforcer('workload');
    const first = await demo.flow(db);
    assert.equal(first.delivered, first.sent);
    const pids = wireguardGo(wl.ns);
    assert.equal(pids.length, 1);
    const edgeKey = wireguardPublicKey(demo.edgePrivateKey);
    const shook = handshake(demo, 'workload', 'dswg109', edgeKey);
    assert.ok(shook > 0);

    const agent = demo.enforcers.find((e) => e.name === 'workload')!.child;
    const killed = new Promise((resolve) => agent.once('exit', resolve));
    agent.kill('SIGKILL');
    await killed;
    const meanwhile = await demo.flow(db);
    assert.equal(meanwhile.delivered, meanwhile.sent, 'with no agent running, the pinned engine and wireguard-go carry on');
    assert.deepEqual([meanwhile.underlay.other, meanwhile.underlay.clear], [0, 0]);

    const from = records.length;
    await demo.startAgent('workload');
    const tunnel = records.slice(from).find((r) => r.enforcer === 'workload' && r.record.event === 'tunnel' && r.record.interface === 'dswg109');
    assert.equal(tunnel?.record.adopted, true, 'the tunnel was adopted');
    assert.deepEqual(wireguardGo(wl.ns), pids, 'the same wireguard-go process carries it');
    const again = await demo.flow(db);
    assert.equal(again.delivered, again.sent);
    assert.equal(handshake(demo, 'workload', 'dswg109', edgeKey), shook, 'no new handshake was needed: no gap at all');
    t.diagnostic(`kill -9 + restart: wireguard-go pid ${pids[0]} adopted, handshake unchanged, ${meanwhile.delivered} B delivered while no agent ran`);

    // SIGTERM, then doorstep detach: nothing is left, wireguard-go included, and the settings the
    // killed agent had set are put back too (the next agent inherited their values from the state dir)
    const left = await demo.stopAgents();
    const goneAfterStop = wireguardGo(wl.ns);
    await demo.startAgent('workload');
    await demo.startAgent('datacenter');
    assert.deepEqual(left, { workload: [], datacenter: [] });
    assert.deepEqual(goneAfterStop, []);
  });

  it('the edge changes its key, the agents reload (SIGHUP): the stream resumes; what it lost is reported', async (t) => {
    const wl = demo.topology.enforcer('workload');
    const dc = demo.topology.enforcer('datacenter');
    const src = demo.topology.host('dc-fra');
    const dst = demo.topology.host('vpc-r');
    const sink = demo.topology.own(spawnIn(dst.ns, process.execPath, [peerJs, 'sink', 'udp', '0.0.0.0', '7000', '60']));
    const sinkOut = output(sink);
    await until('the sink', () => (execIn(dst.ns, 'ss', ['-Hlun', 'sport = :7000']).trim() ? true : undefined));
    const stream = demo.topology.own(spawnIn(src.ns, process.execPath, [peerJs, 'stream', 'udp', dst.address, '7000', '200', '40']));
    const streamOut = output(stream);
    const edgeRx = () => demo.topology.edgeTunnelPackets().rx;
    const flowing = edgeRx();
    await until('the stream through the edge', () => (edgeRx() >= flowing + 50 ? true : undefined));

    // the edge's new key; then the enforcers' configs say so and they reload
    const next = newWireguardPrivateKey();
    const edgeDev = demo.topology.edgeDevices.find((d) => d.startsWith('e51820'))!;
    withConfFile(dir, edgeDev, next, (file) => demo.topology.edgeWg(['set', edgeDev, 'private-key', file]));
    const rotatedAt = process.hrtime.bigint();
    const from = records.length;
    for (const e of [wl, dc]) {
      const doc = parseDocument(readFileSync(e.config, 'utf8'));
      doc.setIn(['edge', 'publicKey'], wireguardPublicKey(next));
      writeFileSync(e.config, doc.toString());
      demo.enforcers.find((x) => x.name === e.name)!.child.kill('SIGHUP');
    }
    for (const [name, dev] of [['workload', 'dswg109'], ['datacenter', 'dswg150']] as const) {
      await until(`${name} to reload`, () => records.slice(from).find((r) => r.enforcer === name && r.record.event === 'reloaded' && r.record.interface === dev));
    }
    await until('the handshakes with the new key', () => (handshake(demo, 'workload', 'dswg109', wireguardPublicKey(next)) > 0 && handshake(demo, 'datacenter', 'dswg150', wireguardPublicKey(next)) > 0 ? true : undefined));
    const shookAt = process.hrtime.bigint();
    const resumed = edgeRx();
    await until('the stream through the edge again', () => (edgeRx() >= resumed + 50 ? true : undefined));
    stream.kill('SIGTERM');
    const sent = JSON.parse((await streamOut).trim().split('\n').pop()!) as { sent: number };
    sink.kill('SIGTERM');
    const { received } = JSON.parse((await sinkOut).trim().split('\n').pop()!) as { received: [number, string][] };

    const seqs = new Set(received.map(([s]) => s));
    const last = Math.max(...seqs);
    const lost: number[] = [];
    for (let s = 0; s <= last; s++) if (!seqs.has(s)) lost.push(s);
    assert.ok(received.some(([, ns]) => BigInt(ns) > shookAt), 'datagrams sent after the new handshake arrived');
    assert.ok(received.some(([, ns]) => BigInt(ns) < rotatedAt), 'and those sent before the change');
    const sentAt = new Map(received.map(([s, ns]) => [s, BigInt(ns)]));
    const gapMs = lost.length ? Number((sentAt.get(lost[lost.length - 1]! + 1) ?? 0n) - (sentAt.get(lost[0]! - 1) ?? 0n)) / 1e6 : 0;
    t.diagnostic(`edge key change + SIGHUP: ${lost.length} of ${last + 1} datagrams lost at 200/s (${sent.sent} sent), a gap of ${gapMs.toFixed(0)} ms; edge changed → both reloaded and shook hands in ${(Number(shookAt - rotatedAt) / 1e6).toFixed(0)} ms`);
    const status = await demo.status();
    for (const name of ['workload', 'datacenter']) {
      assert.deepEqual(status[name]?.tunnels.map((x) => [x.edgePublicKey, x.handshake]), [[wireguardPublicKey(next), 'established']]);
    }
  });
});

describe('WireGuard: two runs at once with the same device names, each agent with its own control sockets', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-wg-twice-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const enforcers = { workload: join(packageRoot, 'examples/placement/workload.yaml'), datacenter: join(packageRoot, 'examples/placement/datacenter.yaml') };
  const tunnels = [['workload', 'dswg109'], ['datacenter', 'dswg150']] as const;
  const runs = [new PlacementDemo({ enforcers, policy }), new PlacementDemo({ enforcers, policy })];
  after(() => {
    for (const d of runs) d.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Per tunnel of a run: the peers its wireguard-go answers with (`wg show DEV dump`), the latest handshake, the devices its agent's `wg` sees, its wireguard-go. */
  const look = (d: PlacementDemo) =>
    tunnels.map(([name, dev]) => ({
      peers: d.wg(name, ['show', dev, 'dump']).trim().split('\n').slice(1).map((l) => l.split('\t')[0]),
      handshake: handshake(d, name, dev, wireguardPublicKey(d.edgePrivateKey)),
      devices: d.wg(name, ['show', 'interfaces']).trim(),
      wireguardGo: wireguardGo(d.topology.enforcer(name).ns),
    }));

  it('both start; each tunnel answers with its own edge and carries its flow; one run taken apart, the other carries on, its tunnels untouched', async (t) => {
    const started = await Promise.allSettled(runs.map((d) => d.start()));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [a, b] = runs as [PlacementDemo, PlacementDemo];
    const db = { name: 'dc → remote db', from: 'dc-fra', to: 'vpc-r', proto: 'tcp' as const, port: 5432, expect: 'allow' as const };
    for (const d of runs) {
      const f = await d.flow(db);
      assert.equal(f.delivered, f.sent, 'the flow crossed both tunnels of its run');
      assert.deepEqual([f.underlay.other, f.underlay.clear], [0, 0]);
    }
    const [seenA, seenB] = [look(a), look(b)];
    for (const [d, seen] of [[a, seenA], [b, seenB]] as const) {
      tunnels.forEach(([, dev], i) => {
        assert.deepEqual(seen[i]!.peers, [wireguardPublicKey(d.edgePrivateKey)], `${dev}: the one peer is this run's edge`);
        assert.ok(seen[i]!.handshake > 0, `${dev} shook hands with this run's edge`);
        assert.equal(seen[i]!.devices, dev, "the agent's wg sees its own device only");
        assert.equal(seen[i]!.wireguardGo.length, 1);
      });
    }
    assert.notDeepEqual(seenA.map((x) => x.wireguardGo), seenB.map((x) => x.wireguardGo), 'two wireguard-go per device name, one per run');

    // run a goes (SIGTERM, doorstep detach: its tunnels and wireguard-go with them); b is untouched
    assert.deepEqual(await a.stopAgents(), { workload: [], datacenter: [] });
    const again = await b.flow(db);
    assert.equal(again.delivered, again.sent, 'the other run still carries its flow');
    assert.deepEqual(look(b), seenB, 'the same wireguard-go, peer and handshake in the other run');
    const status = await b.status();
    for (const name of ['workload', 'datacenter']) assert.deepEqual(status[name]?.tunnels.map((x) => x.handshake), ['established']);
    t.diagnostic(`two runs, dswg109 and dswg150 twice: wireguard-go ${seenA.map((x) => x.wireguardGo[0]).join(', ')} and ${seenB.map((x) => x.wireguardGo[0]).join(', ')}; the first taken apart, the second's handshakes unchanged (${seenB.map((x) => x.handshake).join(', ')})`);
    assert.deepEqual(await b.stopAgents(), { workload: [], datacenter: [] });
  });
});

/** One namespace of its own, destroyed with whatever still runs in it. */
class Namespace extends NamespaceOwner {
  constructor(readonly ns: string) {
    super();
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
  }
}

describe('WireGuard: bad input', { timeout: 90_000 }, () => {
  const token = runToken();
  const ns = `dswgbad-${token}`;
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-wg-bad-'));
  const pinRoot = `/sys/fs/bpf/doorstep-test-${token}`;
  const key = wireguardPublicKey(newWireguardPrivateKey());
  const config = (name: string, edge: string) => {
    const path = join(dir, name);
    writeFileSync(path, `placement: workload\nsources:\n  - { name: net, interface: src0, networks: [10.70.0.0/24] }\nedge: { remote: 10.240.9.9, vni: 9, address: 169.254.9.2/30, peer: 169.254.9.1${edge} }\n`);
    return path;
  };
  const agentArgs = (cfg: string) => [mainJs, 'agent', '--config', cfg, '--policy', join(dir, 'policy.yaml'), '--pin-root', pinRoot, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'agent.sock'), '--enforcer-id', 'bad'];
  const run = (cfg: string) => spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, ...agentArgs(cfg)], { encoding: 'utf8', timeout: 30_000 });
  const links = () => execIn(ns, 'ip', ['-o', 'link', 'show']);

  let owner: Namespace;

  before(() => {
    owner = new Namespace(ns);
    execIn(ns, 'ip', ['link', 'add', 'src0', 'type', 'veth', 'peer', 'name', 'src1']);
    for (const l of ['lo', 'src0', 'src1']) execIn(ns, 'ip', ['link', 'set', l, 'up']);
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
  });
  after(() => {
    owner?.destroy();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a malformed edge key: one DS_E_CONFIG error naming edge.publicKey, nothing set up', () => {
    const r = run(config('badkey.yaml', ', publicKey: "c2hvcnQ="'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /DS_E_CONFIG: .*edge\.publicKey: "c2hvcnQ=" is not a WireGuard public key/);
    assert.doesNotMatch(links(), /dswg/);
  });

  it('no wireguard-go (and no kernel WireGuard): one DS_E_WIREGUARD error naming edge.wireguardGo; never clear text', () => {
    const r = run(config('nowg.yaml', `, publicKey: "${key}", wireguardGo: /nonexistent/wireguard-go`));
    assert.equal(r.status, 4);
    assert.match(r.stderr, /DS_E_WIREGUARD: edge\.tunnel: wireguard: this kernel has no WireGuard and \/nonexistent\/wireguard-go is not found \(edge\.wireguardGo\)/);
    assert.doesNotMatch(links(), /dswg|dsvx/, 'no tunnel of any kind');
    assert.deepEqual(wireguardGo(ns), []);
  });

  it('an unreachable edge: the agent runs, `doorstep status` says the handshake is pending; the fleet sees its key and the edge\'s peer list comes from it; SIGTERM leaves the tunnel, doorstep detach then leaves no interface, rule, route or wireguard-go', async () => {
    const nats = await NatsServer.startIn(ns, '127.0.0.1');
    const url = `${nats.url}/wgpolicy`;
    const cfg = config('unreachable.yaml', `, publicKey: "${key}", local: 10.240.9.1`);
    const agent = new AgentProcess(owner.own(spawnIn(ns, process.execPath, [...agentArgs(cfg), '--policy', url])));
    try {
      await agent.waitFor((r) => r.type === 'agent' && r.event === 'forwarding', 'forwarding');
      const cli = (args: string[]) => spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, mainJs, ...args], { encoding: 'utf8', timeout: 30_000 });
      const ours = (agent.records.find((r) => r.event === 'tunnel' && r.tunnel) as { tunnel: { publicKey: string } } | undefined)?.tunnel.publicKey;
      const edge = await until('the enforcer in the fleet status bucket', () => {
        const r = cli(['fleet', 'edge-config', '--nats', url, '--edge-port', '51820']);
        return r.status === 0 && r.stdout.includes('[Peer]') ? r.stdout : undefined;
      });
      assert.equal(edge, `# the peers of the edge's WireGuard interface listening on port 51820\n\n# bad dswg9 (tenant net)\n[Peer]\nPublicKey = ${ours}\nEndpoint = 10.240.9.1:51820\nAllowedIPs = 10.70.0.0/24, 169.254.9.2/32\n`);
      const fleet = cli(['fleet', 'status', '--nats', url]);
      assert.match(fleet.stdout, new RegExp(`bad WireGuard key ${ours!.replace(/[+/]/g, (c) => `\\${c}`)}, endpoint 10\\.240\\.9\\.1:51820`));
    } finally {
      await nats.cleanup();
    }
    const status = spawnSync(process.execPath, [mainJs, 'status', '--socket', join(dir, 'agent.sock')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /tunnel {5}dswg9: WireGuard \((kernel|wireguard-go)\), public key \S+=, endpoint 10\.240\.9\.1:51820 → edge 10\.240\.9\.9:51820 \(key \S+=\); handshake pending/);
    assert.equal(wireguardGo(ns).length, 1);
    assert.equal(await agent.terminate(), 0);
    assert.match(links(), /dswg9/, 'SIGTERM leaves the tunnel carrying enforced traffic');
    assert.equal(wireguardGo(ns).length, 1, 'and its wireguard-go');
    const detach = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, mainJs, 'detach', '--state-dir', join(dir, 'state')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(detach.status, 0, detach.stderr);
    assert.match(detach.stdout, /removed {4}tunnels dswg9/);
    assert.doesNotMatch(links(), /dswg/);
    assert.deepEqual(wireguardGo(ns), []);
    assert.doesNotMatch(execIn(ns, 'ip', ['rule', 'show']), /lookup 4200/);
    assert.equal(execIn(ns, 'ip', ['route', 'show', 'table', '4200']).trim(), '');
  });
});

describe('VXLAN, for a trusted underlay: says so, and the underlay check sees it in clear', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-vxlan-e2e-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the tunnel record says clear text; every packet of the flow on the underlay is VXLAN with the flow inside', async () => {
    const configs = exampleConfigs(dir, ['workload', 'datacenter'], 'vxlan');
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, POLICY);
    const demo = new PlacementDemo({ enforcers: configs, policy });
    try {
      await demo.start();
      const f = await demo.flow({ name: 'dc → remote db', from: 'dc-fra', to: 'vpc-r', proto: 'tcp', port: 5432, expect: 'allow' });
      assert.equal(f.delivered, f.sent);
      assert.equal(f.underlay.wireguard, 0);
      assert.ok(f.underlay.other > 0 && f.underlay.clear > 0, `the flow in clear on the underlay (${f.underlay.clear} of ${f.underlay.packets} packets)`);
      const tunnel = demo.records.find((r) => r.enforcer === 'datacenter' && r.record.event === 'tunnel')?.record;
      assert.deepEqual([(tunnel?.tunnel as Record<string, unknown>)?.kind, (tunnel?.tunnel as Record<string, unknown>)?.encrypted], ['vxlan', false]);
      assert.match(String(tunnel?.message), /clear text: only for an underlay you trust/);
      assert.deepEqual(await demo.stopAgents(), { workload: [], datacenter: [] });
    } finally {
      demo.destroy();
    }
  });
});
