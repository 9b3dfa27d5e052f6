// SPDX-License-Identifier: Apache-2.0
// The agent closes the interfaces it enforces to Router Advertisements, redirects and source
// routes, for real: a veth in a fresh namespace with all of it on, a `doorstep agent` started
// there (under nsenter, as in production with a namespace), the settings read in that namespace
// while it runs, its `hardening` records, and the old values back after a --detach-on-exit stop
// (kept, with the engine, by a plain stop; the next agent keeps the values first found, and
// `doorstep detach` puts those back). A Router Advertisement that the policy lets through changes nothing on the
// enforcer while the agent runs, and does once it has stopped (the control). An interface
// without IPv6 (MTU below 1280) has no IPv6 keys: they are skipped and the record says so.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { execIn } from '../../src/demo/topology.js';
import { AgentRig, type Rec, sleep } from '../lib/agent-rig.js';

const ALL_REDIRECTS = '/proc/sys/net/ipv4/conf/all/accept_redirects';

/** A Router Advertisement (default router, prefix 2001:db8:66::/64 for SLAAC) to ff02::1 from the
 *  interface's link-local address; the kernel fills in the IPv6 header and the ICMPv6 checksum. */
const SEND_RA = `
import socket, struct, sys
ifindex = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)
prefix = struct.pack('!BBBBIII', 3, 4, 64, 0xc0, 3600, 3600, 0) + socket.inet_pton(socket.AF_INET6, '2001:db8:66::')
s.sendto(ra + prefix, ('ff02::1', 0, 0, ifindex))
`;

const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: ra }
spec:
  defaultAction: deny
  rules:
    - { name: icmpv6-link-local, action: allow, from: ["fe80::/10"], protocol: icmpv6 }
`;

describe('agent: no Router Advertisements, redirects or source routes on the enforced interfaces', { timeout: 120_000 }, () => {
  const rig = new AgentRig('dsh');
  after(() => rig.cleanup());
  const { server, client } = rig.topo;
  const keys = (dev: string) => [
    `/proc/sys/net/ipv6/conf/${dev}/accept_ra`,
    `/proc/sys/net/ipv6/conf/${dev}/accept_redirects`,
    `/proc/sys/net/ipv4/conf/${dev}/accept_redirects`,
    `/proc/sys/net/ipv4/conf/${dev}/accept_source_route`,
    `/proc/sys/net/ipv6/conf/${dev}/accept_source_route`,
  ];
  /** Read in the server's namespace: /proc/sys/net is the reading process's namespace's. */
  const read = (path: string) => execIn(server.ns, 'cat', [path]).trim();
  const values = () => Object.fromEntries([...keys(server.ifname), ALL_REDIRECTS].map((p) => [p, read(p)]));
  const allOn = () => Object.fromEntries([...keys(server.ifname), ALL_REDIRECTS].map((p) => [p, '1']));
  const allOff = () => Object.fromEntries([...keys(server.ifname), ALL_REDIRECTS].map((p) => [p, '0']));
  const turnOn = () => {
    for (const p of [...keys(server.ifname), ALL_REDIRECTS]) execIn(server.ns, 'sh', ['-c', `echo 1 > ${p}`]);
  };
  const ras = () => Number(/Icmp6InRouterAdvertisements\s+(\d+)/.exec(execIn(server.ns, 'cat', ['/proc/net/snmp6']))?.[1]);
  const learnt = () => (execIn(server.ns, 'ip', ['-6', 'route', 'show', 'default']) + execIn(server.ns, 'ip', ['-6', 'addr', 'show', 'dev', server.ifname, 'to', '2001:db8:66::/64'])).trim();
  /** One RA from the client, once its link-local address has left DAD; resolves when the server's ICMPv6 layer counted it. */
  const advertise = async () => {
    for (let i = 0; execIn(client.ns, 'ip', ['-6', 'addr', 'show', 'dev', client.ifname, 'scope', 'link', 'tentative']).trim() && i < 50; i++) await sleep(100);
    const before = ras();
    execIn(client.ns, 'python3', ['-c', SEND_RA, client.ifname]);
    for (let i = 0; ras() === before && i < 50; i++) await sleep(50);
    assert.equal(ras(), before + 1, 'the RA reached the enforcer');
    await sleep(300);
  };
  const hardeningOf = (records: Rec[], event: string, dev: string) => records.find((r) => r.type === 'agent' && r.event === event && r.interface === dev);

  it('turns them off right after attaching, says so, and a permitted RA then changes nothing', async () => {
    turnOn();
    assert.deepEqual(values(), allOn());
    rig.writePolicy('ra.yaml', POLICY);
    let exit: number | null = null;
    const agent = rig.startAgent(['--detach-on-exit']);
    try {
      const record = await agent.waitFor((r) => r.type === 'agent' && r.event === 'hardening' && r.interface === server.ifname, 'the hardening record');
      const attached = agent.records.findIndex((r) => r.type === 'agent' && r.event === 'attached');
      assert.ok(attached >= 0 && attached < agent.records.indexOf(record), 'attached first');
      assert.ok(!agent.records.slice(0, agent.records.indexOf(record)).some((r) => r.type === 'policy'), 'before any policy');
      const name = (p: string) => p.replace('/proc/sys/', '').split('/').join('.');
      assert.deepEqual(record.sysctls, keys(server.ifname).map((p) => ({ key: name(p), from: '1', to: '0' })));
      assert.match(String(record.message), new RegExp(`net\\.ipv6\\.conf\\.${server.ifname}\\.accept_ra 1 → 0`));
      const namespaceWide = hardeningOf(agent.records, 'hardening', '*');
      assert.deepEqual(namespaceWide?.sysctls, [{ key: 'net.ipv4.conf.all.accept_redirects', from: '1', to: '0' }]);
      assert.deepEqual(values(), allOff(), 'all off while the agent runs');

      await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'the policy');
      await advertise();
      assert.equal(learnt(), '', 'no default route and no SLAAC address from the RA');
    } finally {
      exit = await agent.terminate();
    }
    assert.equal(exit, 0, 'a clean stop');
    assert.deepEqual(agent.records.filter((r) => r.type === 'agent' && r.event === 'error'), [], 'a clean stop reports no error (nothing reads the engine once it is closed)');
    const restored = agent.records.filter((r) => r.type === 'agent' && r.event === 'unhardened');
    assert.deepEqual(restored.map((r) => r.interface), [server.ifname, '*']);
    const stopped = agent.records.findIndex((r) => r.type === 'agent' && r.event === 'stopped');
    const detached = agent.records.findIndex((r) => r.type === 'agent' && r.event === 'detached');
    assert.ok(detached < agent.records.indexOf(restored[0]!) && agent.records.indexOf(restored[1]!) < stopped, 'restored after the detach, before stopped');
    assert.deepEqual(values(), allOn(), 'every value back after a --detach-on-exit stop');

    // the control: with the agent gone and accept_ra back on, the same RA is taken
    await advertise();
    assert.match(learnt(), /default via fe80::/);
    assert.match(learnt(), /inet6 2001:db8:66:/);
    execIn(server.ns, 'ip', ['-6', 'route', 'flush', 'proto', 'ra']);
    execIn(server.ns, 'ip', ['-6', 'addr', 'flush', 'dev', server.ifname, 'to', '2001:db8:66::/64']);
  });

  it('a plain stop leaves them off, with the engine; the next agent keeps the values first found, and doorstep detach puts those back', async () => {
    turnOn();
    let exit: number | null = null;
    const agent = rig.startAgent([], { folder: false });
    try {
      await agent.waitFor((r) => r.type === 'agent' && r.event === 'hardening' && r.interface === '*', 'the hardening records');
    } finally {
      exit = await agent.terminate();
    }
    assert.equal(exit, 0, 'a clean stop');
    assert.deepEqual(values(), allOff());
    assert.equal(hardeningOf(agent.records, 'unhardened', server.ifname), undefined);

    // the next agent adopts the engine and finds them off: nothing to restore at its clean stop
    const next = rig.startAgent([], { folder: false });
    try {
      const record = await next.waitFor((r) => r.type === 'agent' && r.event === 'hardening' && r.interface === server.ifname, 'the hardening record');
      assert.match(String(record.message), /accept_ra 0 \(as found\)/);
    } finally {
      exit = await next.terminate();
    }
    assert.equal(exit, 0, 'a clean stop');
    assert.deepEqual(values(), allOff());
    const detached = rig.detach();
    assert.equal(detached.code, 0, detached.stderr);
    assert.match(detached.stdout, new RegExp(`restored   net\\.ipv6\\.conf\\.${server.ifname}\\.accept_ra 0 → 1`));
    assert.deepEqual(values(), allOn(), 'the values found before the first agent, not the ones the second found');
  });

  it('skips the IPv6 keys of an interface without IPv6 (MTU below 1280) and says so', async () => {
    turnOn();
    execIn(server.ns, 'ip', ['link', 'set', 'dev', server.ifname, 'mtu', '1200']); // the kernel drops its IPv6 state
    let exit: number | null = null;
    const agent = rig.startAgent(['--detach-on-exit'], { folder: false });
    try {
      const record = await agent.waitFor((r) => r.type === 'agent' && r.event === 'hardening' && r.interface === server.ifname, 'the hardening record');
      const [ra, redirects6, redirects4, route4, route6] = keys(server.ifname).map((p) => p.replace('/proc/sys/', '').split('/').join('.'));
      assert.deepEqual(record.sysctls, [
        { key: ra, absent: true },
        { key: redirects6, absent: true },
        { key: redirects4, from: '1', to: '0' },
        { key: route4, from: '1', to: '0' },
        { key: route6, absent: true },
      ]);
      assert.match(String(record.message), new RegExp(`accept_ra: no such key \\(no IPv6 on ${server.ifname}\\), skipped`));
      assert.equal(read(`/proc/sys/net/ipv4/conf/${server.ifname}/accept_redirects`), '0');
    } finally {
      exit = await agent.terminate();
    }
    assert.equal(exit, 0, 'a clean stop');
    assert.equal(read(`/proc/sys/net/ipv4/conf/${server.ifname}/accept_redirects`), '1');
  });
});
