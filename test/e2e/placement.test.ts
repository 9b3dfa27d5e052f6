// SPDX-License-Identifier: Apache-2.0
// Placements for real: the demo's network (an infra enforcer serving two tenant VPCs, a workload
// enforcer in a remote VPC, a data-center enforcer, and an edge joined to them by VXLAN), each
// enforcer a `doorstep agent` with its example config and the example policy. Per placement:
// allowed traffic arrives over the right path (the edge's tunnels carry it, or not: hairpin),
// echoes come back (replies), denied traffic is dropped at XDP (session records and engine
// counters), unsolicited traffic from the edge is dropped on the fabric, each agent closed its
// interfaces to Router Advertisements while it ran, and after a SIGTERM `doorstep detach` takes
// every enforcer's forwarding and settings back. Then two tenants with the same range on one infra enforcer.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type PlacementDemoResult, type PlacementFlow, runPlacementDemo } from '../../src/demo/placements.js';
import { execIn } from '../../src/demo/topology.js';
import { enforcedInterfaces } from '../../src/placement/placement.js';
import { sysctlName } from '../../src/controller/hardening-plan.js';
import { packageRoot } from '../../src/paths.js';

type Rec = Record<string, unknown>;

describe('placements: workload, infra and datacenter enforcers around an edge', { timeout: 120_000 }, () => {
  let result: PlacementDemoResult;
  /** While the agents ran: each enforcer's rules and routes as `ip` printed them. */
  const seen: Record<string, string> = {};
  /** While the agents ran: each enforced interface's accept_ra, as `name value`. */
  const acceptRa: Record<string, string[]> = {};

  before(async () => {
    result = await runPlacementDemo({
      onReady: async (topology, _enforcers, demo) => {
        for (const e of topology.enforcers) {
          seen[e.name] = [execIn(e.ns, 'ip', ['rule', 'show']), execIn(e.ns, 'ip', ['route', 'show', 'table', 'all']), demo.wg(e.name, ['show', 'all', 'endpoints'])].join('\n');
          acceptRa[e.name] = enforcedInterfaces(e.placement).map((i) => `${i.name} ${execIn(e.ns, 'cat', [`/proc/sys/net/ipv6/conf/${i.name}/accept_ra`]).trim()}`);
        }
      },
    });
  });

  const flow = (name: string) => {
    const f = result.flows.find((x) => x.name === name);
    assert.ok(f, `flow ${name}`);
    return f;
  };
  const sessions = (enforcer: string, match: (r: Rec) => boolean) =>
    result.records.filter((x) => x.enforcer === enforcer && x.record.type === 'session' && match(x.record)).map((x) => x.record);
  const port = (p: number) => (r: Rec) => r.dport === p;

  it('each agent set up its tunnel, policy routing and forwarding itself', () => {
    assert.match(seen.infra ?? '', /4200:\s+from all iif vpc-a lookup 4200/);
    assert.match(seen.infra ?? '', /4201:\s+from all iif dswg102 lookup 4201/);
    assert.match(seen.infra ?? '', /default via 169\.254\.101\.1 dev dswg101 table 4200/);
    assert.match(seen.infra ?? '', /10\.2\.0\.0\/24 dev vpc-b table 4200/, 'the hairpin route of tenant vpc-a');
    assert.match(seen.infra ?? '', /dswg101\t\S+=\t10\.240\.0\.1:51821\n/, "tenant vpc-a's tunnel goes to its own edge interface");
    assert.match(seen.infra ?? '', /dswg102\t\S+=\t10\.240\.0\.1:51822\n/);
    assert.match(seen.workload ?? '', /dswg109\t\S+=\t10\.240\.0\.1:51820\n/);
    assert.match(seen.datacenter ?? '', /default via 169\.254\.150\.1 dev dswg150 table 4200/);
  });

  it('every agent reported its WireGuard tunnel (which implementation, its key) in the audit trail and in status', () => {
    for (const enforcer of ['infra', 'workload', 'datacenter']) {
      const tunnels = result.records.filter((x) => x.enforcer === enforcer && x.record.type === 'agent' && x.record.event === 'tunnel' && x.record.tunnel).map((x) => x.record.tunnel as Rec);
      assert.ok(tunnels.length >= 1);
      for (const t of tunnels) assert.deepEqual([t.kind, t.encrypted, t.implementation], ['wireguard', true, 'wireguard-go']);
      for (const t of result.status[enforcer]?.tunnels ?? []) {
        assert.deepEqual([t.kind, t.up, t.handshake], ['wireguard', true, 'established'], `${enforcer} ${t.device}`);
        assert.match(String(t.publicKey), /^[A-Za-z0-9+/]{43}=$/);
      }
    }
  });

  it('the underlay carried only WireGuard, and nothing of an allowed flow in clear', () => {
    for (const f of result.flows.filter((x) => x.delivered > 0 && x.edgePackets > 0)) {
      assert.ok(f.underlay.wireguard >= f.edgePackets, `${f.name}: the flow crossed the underlay as WireGuard (${f.underlay.wireguard} packets)`);
      assert.deepEqual([f.underlay.other, f.underlay.clear], [0, 0], `${f.name}: every packet WireGuard, none in clear: ${f.underlay.udp.join(', ')}`);
      for (const u of f.underlay.udp) assert.match(u, /:5182[0-2]$/, `${f.name}: UDP to a WireGuard endpoint port (${u})`);
    }
  });

  it('denied flows never reach the tunnel: the source enforcer\'s WireGuard counters do not move', () => {
    for (const name of ['vpc-a → vpc-b ssh', 'vpc-a → dc syslog', 'remote → dc ssh']) {
      const f = flow(name);
      assert.equal(f.delivered, 0);
      assert.equal(f.tunnelPackets, 0, `${name}: nothing sent into (or back out of) the tunnel`);
      assert.equal(f.underlay.packets, 0, `${name}: nothing on the underlay either`);
    }
  });

  it('infra: an allowed flow inside the region is hairpinned (the edge carries nothing) and its replies come back', () => {
    const f = flow('vpc-a → vpc-b web');
    assert.equal(f.delivered, f.sent);
    assert.ok(f.sent > 0);
    assert.equal(f.echoed, f.sent, 'every byte echoed back through the enforcer');
    assert.equal(f.edgePackets, 0, 'no packet of a hairpinned flow reaches the edge');
    const [s] = sessions('infra', (r) => r.dport === 8080 && r.verdict === 'allow');
    assert.equal(s?.rule, 'fabric/a-to-b-web');
    assert.equal(s?.tenant, 'vpc-a');
    assert.equal(s?.path, 'hairpin');
    assert.equal(sessions('infra', (r) => r.sport === 8080).length, 0, 'the replies passed as replies, not as sessions of vpc-b');
    assert.ok((result.status.infra?.counters.REPLIES ?? 0) > 0, 'replies counted');
  });

  it('infra: allowed traffic to another region goes through the tunnel to the edge, replies come back on the fabric', () => {
    const f = flow('vpc-b → remote api');
    assert.equal(f.delivered, f.sent);
    assert.equal(f.echoed, f.sent);
    assert.ok(f.edgePackets >= 2 * 8, `the edge carried the flow both ways (${f.edgePackets} packets)`);
    const [s] = sessions('infra', (r) => r.dport === 8443);
    assert.deepEqual([s?.verdict, s?.rule, s?.tenant, s?.path], ['allow', 'fabric/eu-to-remote-api', 'vpc-b', 'edge']);
    // the remote enforcer met it on its fabric: policy allows it there too, and it went to its source network
    const [r] = sessions('workload', (x) => x.dport === 8443);
    assert.deepEqual([r?.verdict, r?.interface, r?.path], ['allow', 'dswg109', 'source']);
  });

  it('infra: denied traffic is dropped at XDP, by policy, with the engine counting it', () => {
    const f = flow('vpc-a → vpc-b ssh');
    assert.equal(f.delivered, 0);
    const [s] = sessions('infra', port(22));
    assert.deepEqual([s?.verdict, s?.reason, s?.tenant], ['deny', 'policy', 'vpc-a']);
    assert.equal(s?.path, undefined);
    assert.ok((result.status.infra?.counters.DROP_PACKETS ?? 0) >= 1);
  });

  it('tenant-scoped rules: vpc-a may not send syslog to the data center, vpc-b may', () => {
    const denied = flow('vpc-a → dc syslog');
    const allowed = flow('vpc-b → dc syslog');
    assert.equal(denied.delivered, 0);
    assert.equal(allowed.delivered, allowed.sent);
    assert.equal(allowed.echoed, allowed.sent, 'UDP replies pass the data center fabric back as replies');
    const bySrc = (src: string) => sessions('infra', (r) => r.dport === 514 && r.src === src)[0];
    assert.deepEqual([bySrc('10.1.0.10')?.verdict, bySrc('10.1.0.10')?.rule], ['deny', 'vpc-a-egress/no-syslog-to-dc']);
    assert.deepEqual([bySrc('10.2.0.10')?.verdict, bySrc('10.2.0.10')?.rule], ['allow', 'fabric/eu-syslog']);
  });

  it('datacenter: allowed traffic goes through its tunnel to the edge and back', () => {
    const f = flow('dc → remote db');
    assert.equal(f.delivered, f.sent);
    assert.equal(f.echoed, f.sent);
    assert.ok(f.edgePackets >= 2 * 8);
    const [s] = sessions('datacenter', port(5432));
    assert.deepEqual([s?.verdict, s?.tenant, s?.path], ['allow', 'dc-fra', 'edge']);
  });

  it('workload: denied at its own XDP; allowed out to the edge, where the infra fabric drops it as unsolicited', () => {
    const ssh = flow('remote → dc ssh');
    assert.equal(ssh.delivered, 0);
    assert.equal(sessions('workload', port(22))[0]?.verdict, 'deny');

    const probe = flow('remote → vpc-a probe');
    assert.equal(probe.delivered, 0);
    assert.ok(probe.edgePackets > 0, 'the workload enforcer let it out');
    const [out] = sessions('workload', port(9000));
    assert.deepEqual([out?.verdict, out?.rule, out?.path], ['allow', 'fabric/remote-probe', 'edge']);
    const [inbound] = sessions('infra', port(9000));
    assert.deepEqual([inbound?.verdict, inbound?.interface, inbound?.tenant], ['deny', 'dswg101', 'vpc-a'], 'dropped on the fabric: no reply of anything vpc-a sent, and no rule for it');
  });

  it('after SIGTERM and doorstep detach, no tunnel, wireguard-go process, rule, route or forwarding setting is left', () => {
    assert.deepEqual(result.leftovers, { infra: [], workload: [], datacenter: [] });
  });

  it('every agent turned Router Advertisements off on its source interfaces and tunnels; doorstep detach turned them back on', () => {
    for (const enforcer of ['infra', 'workload', 'datacenter']) {
      const names = (acceptRa[enforcer] ?? []).map((x) => x.split(' ')[0]);
      assert.ok(names.some((n) => n?.startsWith('dswg')) && names.some((n) => !n?.startsWith('dswg')), `${enforcer}: sources and tunnels`);
      assert.deepEqual(acceptRa[enforcer], names.map((n) => `${n} 0`), `${enforcer}: accept_ra off while it ran`);
      const agent = (event: string) => result.records.filter((x) => x.enforcer === enforcer && x.record.type === 'agent' && x.record.event === event).map((x) => x.record);
      assert.deepEqual(agent('hardening').map((r) => r.interface), [...names, '*']);
      // the agents stopped with SIGTERM (the settings stayed, with the engine); `doorstep detach` put them back
      assert.deepEqual(agent('unhardened'), [], `${enforcer}: a plain stop leaves them`);
      const back = (result.detached[enforcer]?.unhardened ?? []).filter((c) => c.path.endsWith('/accept_ra'));
      assert.deepEqual(back.map((c) => `${sysctlName(c.path)} ${c.from} → ${c.to}`), names.map((n) => `net.ipv6.conf.${n}.accept_ra 0 → 1`), `${enforcer}: put back by doorstep detach, before the tunnels went`);
    }
  });
});

describe('placements: two tenants with the same range on one infra enforcer', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-overlap-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let result: PlacementDemoResult;

  before(async () => {
    const infra = join(dir, 'infra.yaml');
    writeFileSync(
      infra,
      [
        'placement: infra',
        'sources:',
        '  - { name: vpc-a, interface: vpc-a, networks: [10.1.0.0/24], tunnel: { vni: 101, address: 169.254.101.2/30, peer: 169.254.101.1, port: 51821 } }',
        '  - { name: vpc-c, interface: vpc-c, networks: [10.1.0.0/24], tunnel: { vni: 103, address: 169.254.103.2/30, peer: 169.254.103.1, port: 51823 } }',
        // the same range in two tenants: each has its own WireGuard interface here and at the edge
        `edge: { remote: 10.240.0.1, local: 10.240.0.11, device: ul0, publicKey: "${'A'.repeat(43)}=" }`,
        '',
      ].join('\n'),
    );
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'apiVersion: doorstep/v1',
        'kind: NetworkPolicy',
        'metadata: { name: per-tenant }',
        'spec:',
        '  defaultAction: deny',
        '  rules:',
        '    - { name: a-api, action: allow, to: [10.9.0.0/24], protocol: tcp, ports: [8443], tenants: [vpc-a] }',
        '    - { name: c-api, action: allow, to: [10.9.0.0/24], protocol: tcp, ports: [9443], tenants: [vpc-c] }',
        '    - { name: to-remote, action: allow, to: [10.9.0.0/24], protocol: tcp, ports: [8443, 9443], tenants: [vpc-r] }',
        '',
      ].join('\n'),
    );
    const flows: PlacementFlow[] = [
      { name: 'a 8443', from: 'vpc-a', to: 'vpc-r', proto: 'tcp', port: 8443, expect: 'allow' },
      { name: 'c 8443', from: 'vpc-c', to: 'vpc-r', proto: 'tcp', port: 8443, expect: 'deny' },
      { name: 'a 9443', from: 'vpc-a', to: 'vpc-r', proto: 'tcp', port: 9443, expect: 'deny' },
    ];
    result = await runPlacementDemo({ enforcers: { infra, workload: join(packageRoot, 'examples/placement/workload.yaml') }, policy, flows });
  });

  it('the same source address gets each tenant its own rules', () => {
    const byName = new Map(result.flows.map((f) => [f.name, f]));
    assert.equal(byName.get('a 8443')?.delivered, byName.get('a 8443')?.sent);
    assert.equal(byName.get('a 8443')?.echoed, byName.get('a 8443')?.sent, 'replies reach tenant vpc-a, not vpc-c');
    assert.equal(byName.get('c 8443')?.delivered, 0, "vpc-c does not get vpc-a's rule");
    assert.equal(byName.get('a 9443')?.delivered, 0, "vpc-a does not get vpc-c's rule");
    // inside the encryption too: vpc-a's flow crossed the underlay only in vpc-a's own WireGuard tunnel (edge port 51821)
    const u = byName.get('a 8443')!.underlay;
    assert.deepEqual([u.other, u.clear], [0, 0]);
    assert.ok(u.udp.some((x) => x.endsWith('10.240.0.1:51821')) && !u.udp.some((x) => x.endsWith(':51823')), u.udp.join(', '));
    const infra = result.records.filter((x) => x.enforcer === 'infra' && x.record.type === 'session').map((x) => x.record);
    const of = (tenant: string, dport: number) => infra.find((r) => r.tenant === tenant && r.dport === dport && r.src === '10.1.0.10');
    assert.deepEqual([of('vpc-a', 8443)?.verdict, of('vpc-a', 8443)?.rule], ['allow', 'per-tenant/a-api']);
    assert.deepEqual([of('vpc-c', 8443)?.verdict, of('vpc-c', 8443)?.rule], ['deny', 'per-tenant/default']);
    assert.deepEqual([of('vpc-a', 9443)?.verdict, of('vpc-a', 9443)?.rule], ['deny', 'per-tenant/default']);
  });

  it('no leftovers', () => {
    assert.deepEqual(result.leftovers, { infra: [], workload: [] });
  });
});

describe('placements: `doorstep demo` interrupted', { timeout: 90_000 }, () => {
  it('Ctrl-C mid-run removes every namespace, pin and agent it made', async () => {
    const netns = () => new Set(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean));
    const pins = () => new Set(readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('doorstep-demo-')));
    const before = { netns: netns(), pins: pins() };
    const demo = spawn(process.execPath, [join(packageRoot, 'dist/src/cli/main.js'), 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sawAgents = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no flow started within 60 s: ${out}`)), 60_000);
      demo.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (!sawAgents && /── .*: (tcp|udp)\//.test(out)) {
          sawAgents = true;
          clearTimeout(timer);
          resolve();
        }
      });
      demo.once('exit', (code) => reject(new Error(`the demo ended (${code}) before a flow: ${out}`)));
    });
    // the demo's own (dsp-…): other runs on the host may make and remove theirs meanwhile
    const created = [...netns()].filter((n) => !before.netns.has(n) && n?.startsWith('dsp-'));
    assert.ok(created.length >= 8, `the demo's namespaces exist (${created.join(' ')})`);
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.deepEqual([...netns()].filter((n) => created.includes(n)), [], 'no namespace left');
    assert.deepEqual([...pins()].filter((n) => !before.pins.has(n)), [], 'no pin folder left');
  });
});
