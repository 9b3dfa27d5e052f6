// SPDX-License-Identifier: Apache-2.0
// Placement settings → a resolved placement → the forwarding plan (tunnels, tables, rules,
// sysctls), and the audit annotation of where a session went. Pure: nothing is applied here
// (test/e2e/placement.test.ts runs it for real).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readConfigFile, resolveConfig } from '../../src/controller/config.js';
import { DoorstepError } from '../../src/errors.js';
import { forwardingPlan, routeArgs, ruleArgs, tunnelArgs } from '../../src/placement/forwarding-plan.js';
import { enforcedInterfaces, peerChanges, resolvePlacement } from '../../src/placement/placement.js';
import { sessionAnnotator } from '../../src/placement/session-path.js';
import type { SessionRecord } from '../../src/audit/session-record.js';
import { packageRoot } from '../../src/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-placement-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const failure = (text: string) => {
  try {
    resolveConfig({ config: file('bad.yaml', text) });
  } catch (err) {
    return err instanceof DoorstepError ? `${err.code}: ${err.message}` : String(err);
  }
  return 'no error';
};

const INFRA = join(packageRoot, 'examples/placement/infra.yaml');

describe('placement settings', () => {
  it('resolves the infra example: one tunnel and one tenant per source, hairpin prefixes, enforced interfaces', () => {
    const c = resolveConfig({ config: INFRA });
    const p = c.placement!;
    assert.equal(p.kind, 'infra');
    assert.deepEqual(p.sources.map((s) => [s.name, s.interface, s.tenant, s.tunnel]), [
      ['vpc-a', 'vpc-a', 'vpc-a', 'dswg101'],
      ['vpc-b', 'vpc-b', 'vpc-b', 'dswg102'],
    ]);
    assert.deepEqual(p.tunnels.map((t) => [t.device, t.vni, t.table, t.tenant]), [
      ['dswg101', 101, 4200, 'vpc-a'],
      ['dswg102', 102, 4201, 'vpc-b'],
    ]);
    assert.deepEqual(p.local.map((l) => l.text), ['10.1.0.0/24', '10.2.0.0/24']);
    assert.deepEqual(c.interfaces, ['vpc-a', 'vpc-b', 'dswg101', 'dswg102']);
    assert.deepEqual(enforcedInterfaces(p).map((i) => `${i.name}:${i.role}:${i.tenant}`), [
      'vpc-a:source:vpc-a', 'vpc-b:source:vpc-b', 'dswg101:fabric:vpc-a', 'dswg102:fabric:vpc-b',
    ]);
  });

  it('every example placement config resolves', () => {
    for (const name of ['infra', 'workload', 'datacenter']) {
      const path = join(packageRoot, `examples/placement/${name}.yaml`);
      assert.equal(resolvePlacement(readConfigFile(path), path)?.kind, name);
    }
  });

  it('sources sharing the edge tunnel (workload) have no tenant; one alone is its own tenant', () => {
    const edge = 'edge: { tunnel: vxlan, remote: 10.240.0.1, vni: 7, address: 169.254.7.2/30, peer: 169.254.7.1 }\n';
    const shared = resolveConfig({ config: file('w.yaml', `placement: workload\nsources:\n  - { name: web, interface: e1, networks: [10.1.0.0/24] }\n  - { name: db, interface: e2, networks: [10.2.0.0/24] }\n${edge}`) });
    assert.deepEqual(shared.placement!.sources.map((s) => s.tenant), [undefined, undefined]);
    assert.equal(shared.placement!.tunnels.length, 1);
    const alone = resolveConfig({ config: file('w1.yaml', `placement: datacenter\nsources:\n  - { name: dc, interface: e1, networks: [10.1.0.0/24] }\n${edge}`) });
    assert.equal(alone.placement!.sources[0]!.tenant, 'dc');
  });

  it('refuses what cannot work, naming the key', () => {
    const src = (extra = '') => `  - { name: a, interface: e1, networks: [10.1.0.0/24]${extra} }\n`;
    const edge = 'edge: { tunnel: vxlan, remote: 10.240.0.1, vni: 7, address: 169.254.7.2/30, peer: 169.254.7.1 }\n';
    assert.match(failure(`placement: workload\nsources:\n${src()}local: [10.0.0.0/8]\n${edge}`), /DS_E_CONFIG: .*local: hairpin prefixes are for the infra placement, not workload/);
    assert.match(failure(`placement: infra\nsources:\n${src()}  - { name: b, interface: e2, networks: [10.2.0.0/24] }\n${edge}`), /sources\[1\]\.tunnel\.vni: VNI 7 carries more than one tenant|sources\[0\]\.tunnel\.vni: VNI 7 carries more than one tenant/);
    assert.match(failure(`placement: infra\nsources:\n${src(', tunnel: { vni: 1, address: 169.254.1.2/30, peer: 169.254.1.1 }')}  - { name: b, interface: e1, networks: [10.2.0.0/24], tunnel: { vni: 2, address: 169.254.2.2/30, peer: 169.254.2.1 } }\n${edge}`), /sources\[1\]\.interface: e1 already serves another tenant/);
    assert.match(failure(`placement: workload\nsources:\n${src()}`), /edge: a placement forwards to an edge/);
    assert.match(failure(`placement: workload\nsources:\n  - { name: a, interface: e1, networks: [10.1.0.1/24] }\n${edge}`), /sources\[0\]\.networks\[0\]/);
    assert.match(failure(`placement: workload\nsources:\n${src()}edge: { tunnel: vxlan, remote: 10.240.0.1, vni: 7, address: 169.254.7.2, peer: 169.254.7.1 }\n`), /edge\.address\[0\]: "169\.254\.7\.2" is not an address with its prefix length/);
    assert.match(failure(`sources:\n${src()}`), /sources: needs `placement:`/);
    assert.match(failure(`placement: workload\ninterfaces: [eth0]\nsources:\n${src()}${edge}`), /with a placement, the interfaces come from `sources:`/);
  });
});

describe('WireGuard settings', () => {
  const KEY = 'wENig9SQeRn5HwcfwhVNYBC00hSIGGYgKng3+P1jH1M=';
  const src = (extra = '') => `  - { name: a, interface: e1, networks: [10.1.0.0/24]${extra} }\n`;
  const wg = (extra = '') => `edge: { remote: 10.240.0.1, vni: 7, address: 169.254.7.2/30, peer: 169.254.7.1${extra} }\n`;

  it('is the default: one dswg device per tunnel, our port from 51820 on, the edge as its one peer, on an L3 fabric', () => {
    const p = resolveConfig({ config: file('wg.yaml', `placement: workload\nsources:\n${src()}${wg(`, publicKey: "${KEY}"`)}`) }).placement!;
    assert.equal(p.edge.tunnel, 'wireguard');
    assert.deepEqual(p.tunnels.map((t) => [t.kind, t.device, t.wireguard]), [
      ['wireguard', 'dswg7', { listenPort: 51820, peerPublicKey: KEY, endpoint: '10.240.0.1:51820', allowedIps: ['0.0.0.0/0'], keepalive: 25 }],
    ]);
    assert.deepEqual(enforcedInterfaces(p).map((i) => `${i.name}:${i.role}:${i.l3 ?? false}`), ['e1:source:false', 'dswg7:fabric:true']);
    const infra = resolveConfig({ config: INFRA }).placement!;
    assert.deepEqual(infra.tunnels.map((t) => `${t.device} ${t.wireguard?.listenPort} → ${t.wireguard?.endpoint}`), ['dswg101 51820 → 10.240.0.1:51821', 'dswg102 51821 → 10.240.0.1:51822']);
  });

  it('refuses a missing or malformed edge key, tenants sharing one edge interface, and WireGuard settings on VXLAN, naming the key', () => {
    assert.match(failure(`placement: workload\nsources:\n${src()}${wg()}`), /DS_E_CONFIG: .*edge\.publicKey: the edge's WireGuard public key is missing/);
    assert.match(failure(`placement: workload\nsources:\n${src()}${wg(', publicKey: "not-a-key="')}`), /edge\.publicKey: "not-a-key=" is not a WireGuard public key/);
    assert.match(failure(`placement: workload\nsources:\n${src()}${wg(`, publicKey: "${KEY.slice(0, 42)}B="`)}`), /is not a WireGuard public key/, 'a 44-character text whose last byte is cut is not a key');
    const tenants = (portA: string, portB: string) =>
      `placement: infra\nsources:\n${src(`, tunnel: { vni: 1, address: 169.254.1.2/30, peer: 169.254.1.1${portA} }`)}  - { name: b, interface: e2, networks: [10.1.0.0/24], tunnel: { vni: 2, address: 169.254.2.2/30, peer: 169.254.2.1${portB} } }\nedge: { remote: 10.240.0.1, publicKey: "${KEY}" }\n`;
    assert.match(failure(tenants('', '')), /sources\[1\]\.tunnel\.port: dswg2 and dswg1 go to the same edge interface \(10\.240\.0\.1:51820\)/);
    assert.equal(failure(tenants(', port: 51821', ', port: 51822')), 'no error', 'overlapping tenants, each over its own interface');
    assert.match(failure(`placement: workload\nsources:\n${src()}edge: { tunnel: vxlan, remote: 10.240.0.1, vni: 7, address: 169.254.7.2/30, peer: 169.254.7.1, publicKey: "${KEY}" }\n`), /edge\.publicKey: is a WireGuard setting/);
    assert.match(failure(`placement: workload\nsources:\n${src()}edge: { tunnel: ipsec, remote: 10.240.0.1 }\n`), /edge\.tunnel: wireguard \(encrypted, the default\) or vxlan/);
  });

  it('a reload may change the edge peer, nothing else', () => {
    const at = (extra: string, name: string) => resolveConfig({ config: file(name, `placement: workload\nsources:\n${src()}${wg(extra)}`) }).placement!;
    const before = at(`, publicKey: "${KEY}"`, 'r1.yaml');
    const other = 'ohd2cEwRLzewZLUgNnv9LAXepKmkYb6Q0DZRvGlufFs=';
    const rotated = peerChanges(before, at(`, publicKey: "${other}"`, 'r2.yaml'));
    assert.deepEqual('changed' in rotated && rotated.changed.map((c) => [c.device, c.wireguard.peerPublicKey]), [['dswg7', other]]);
    assert.deepEqual(peerChanges(before, at(`, publicKey: "${KEY}"`, 'r3.yaml')), { changed: [] });
    assert.match(String((peerChanges(before, at(`, publicKey: "${KEY}", listenPort: 6000`, 'r4.yaml')) as { problem?: string }).problem), /only the edge's WireGuard peer settings/);
  });
});

describe('forwarding plan', () => {
  it('infra: per tenant a table with its networks, the hairpin prefixes out of their own interface, and the default to the edge', () => {
    const p = resolveConfig({ config: INFRA }).placement!;
    const plan = forwardingPlan(p);
    assert.deepEqual(plan.routes.map(routeArgs).map((a) => a.join(' ')), [
      '-4 route replace 10.1.0.0/24 dev vpc-a table 4200',
      '-4 route replace 10.2.0.0/24 dev vpc-b table 4200',
      '-4 route replace default via 169.254.101.1 dev dswg101 table 4200',
      '-4 route replace 10.2.0.0/24 dev vpc-b table 4201',
      '-4 route replace 10.1.0.0/24 dev vpc-a table 4201',
      '-4 route replace default via 169.254.102.1 dev dswg102 table 4201',
    ]);
    assert.deepEqual(plan.rules.map((r) => ruleArgs(r, 'add').join(' ')), [
      '-4 rule add iif vpc-a lookup 4200 pref 4200',
      '-4 rule add iif dswg101 lookup 4200 pref 4200',
      '-4 rule add iif vpc-b lookup 4201 pref 4201',
      '-4 rule add iif dswg102 lookup 4201 pref 4201',
    ]);
    assert.deepEqual(plan.sysctls.map((s) => `${s.path}=${s.value}`), [
      '/proc/sys/net/ipv4/ip_forward=1',
      '/proc/sys/net/ipv4/conf/vpc-a/rp_filter=0',
      '/proc/sys/net/ipv4/conf/vpc-b/rp_filter=0',
      '/proc/sys/net/ipv4/conf/dswg101/rp_filter=0',
      '/proc/sys/net/ipv4/conf/dswg102/rp_filter=0',
    ]);
    assert.deepEqual(plan.owned, { from: 4200, to: 4455 });
  });

  it('a local prefix no source here serves is thrown back to the main table; IPv6 gets its own rules and forwarding', () => {
    const p = resolveConfig({
      config: file('v6.yaml', 'placement: infra\nsources:\n  - { name: a, interface: e1, networks: [10.1.0.0/24, "fd00:1::/64"], via: 10.1.0.254, tunnel: { vni: 5, address: [169.254.5.2/30, "fd00:ff::2/64"], peer: [169.254.5.1, "fd00:ff::1"] } }\nlocal: [10.7.0.0/16]\nedge: { tunnel: vxlan, remote: 10.240.0.1 }\n'),
    }).placement!;
    const plan = forwardingPlan(p);
    const routes = plan.routes.map(routeArgs).map((a) => a.join(' '));
    assert.ok(routes.includes('-4 route replace 10.1.0.0/24 via 10.1.0.254 dev e1 table 4200'));
    assert.ok(routes.includes('-6 route replace fd00:1::/64 dev e1 table 4200'), 'an IPv4 next hop is not used for IPv6');
    assert.ok(routes.includes('-4 route replace throw 10.7.0.0/16 table 4200'));
    assert.ok(routes.includes('-6 route replace default via fd00:ff::1 dev dsvx5 table 4200'));
    assert.deepEqual(tunnelArgs(p.tunnels[0]!, p.edge).join(' '), 'link add dsvx5 type vxlan id 5 remote 10.240.0.1 dstport 4789');
    assert.deepEqual(plan.rules.map((r) => `${r.family}:${r.iif}`), ['4:e1', '4:dsvx5', '6:e1', '6:dsvx5']);
    assert.ok(plan.sysctls.some((s) => s.path === '/proc/sys/net/ipv6/conf/all/forwarding'));
  });
});

describe('where a session went', () => {
  const p = resolveConfig({ config: INFRA }).placement!;
  const annotate = sessionAnnotator(p);
  const record = (iface: string, dst: string, verdict: 'allow' | 'deny') => {
    const r = { interface: iface, dst, verdict } as SessionRecord;
    annotate(r);
    return [r.tenant, r.path];
  };
  it('hairpin to a local prefix, the edge otherwise, the source from a tunnel; denied sessions went nowhere', () => {
    assert.deepEqual(record('vpc-a', '10.2.0.10', 'allow'), ['vpc-a', 'hairpin']);
    assert.deepEqual(record('vpc-a', '10.9.0.10', 'allow'), ['vpc-a', 'edge']);
    assert.deepEqual(record('dswg102', '10.2.0.10', 'allow'), ['vpc-b', 'source']);
    assert.deepEqual(record('vpc-b', '10.9.0.10', 'deny'), ['vpc-b', undefined]);
    assert.deepEqual(record('eth9', '10.9.0.10', 'allow'), [undefined, undefined]);
  });
});
