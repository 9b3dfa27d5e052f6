// SPDX-License-Identifier: Apache-2.0
// The agent's hardening of its interfaces (no Router Advertisements, redirects or source routes):
// the plan, its audit records, and apply/restore over the in-memory settings. Pure: nothing is
// written to /proc/sys here (test/e2e/agent-hardening.test.ts does it for real).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hardening, MemorySysctls, type SysctlFiles } from '../../src/controller/hardening.js';
import { hardeningPlan, hardeningRecords, sysctlName } from '../../src/controller/hardening-plan.js';
import { DoorstepError } from '../../src/errors.js';

const ALL_REDIRECTS = '/proc/sys/net/ipv4/conf/all/accept_redirects';

/** The keys of one interface as a fresh namespace has them (IPv6 source routing is off by default). */
function fresh(dev: string, ipv6 = true): Record<string, string> {
  return {
    [`/proc/sys/net/ipv4/conf/${dev}/accept_redirects`]: '1',
    [`/proc/sys/net/ipv4/conf/${dev}/accept_source_route`]: '1',
    ...(ipv6 && {
      [`/proc/sys/net/ipv6/conf/${dev}/accept_ra`]: '1',
      [`/proc/sys/net/ipv6/conf/${dev}/accept_redirects`]: '1',
      [`/proc/sys/net/ipv6/conf/${dev}/accept_source_route`]: '0',
    }),
  };
}

describe('hardening plan', () => {
  it('sets five keys per enforced interface to 0, then IPv4 redirects off for the namespace', () => {
    const plan = hardeningPlan(['eth1', 'dsvx101', 'eth1']);
    assert.deepEqual(
      plan.sysctls.map((s) => `${s.interface} ${sysctlName(s.path)}=${s.value}`),
      [
        'eth1 net.ipv6.conf.eth1.accept_ra=0',
        'eth1 net.ipv6.conf.eth1.accept_redirects=0',
        'eth1 net.ipv4.conf.eth1.accept_redirects=0',
        'eth1 net.ipv4.conf.eth1.accept_source_route=0',
        'eth1 net.ipv6.conf.eth1.accept_source_route=0',
        'dsvx101 net.ipv6.conf.dsvx101.accept_ra=0',
        'dsvx101 net.ipv6.conf.dsvx101.accept_redirects=0',
        'dsvx101 net.ipv4.conf.dsvx101.accept_redirects=0',
        'dsvx101 net.ipv4.conf.dsvx101.accept_source_route=0',
        'dsvx101 net.ipv6.conf.dsvx101.accept_source_route=0',
        '* net.ipv4.conf.all.accept_redirects=0',
      ],
    );
    assert.deepEqual(hardeningPlan([]).sysctls, [], 'no interface, nothing to set');
  });

  it('keeps the dots of a VLAN device in the path and writes them as sysctl(8) does in the name', () => {
    const [first] = hardeningPlan(['eth0.100']).sysctls;
    assert.equal(first?.path, '/proc/sys/net/ipv6/conf/eth0.100/accept_ra');
    assert.equal(sysctlName(first!.path), 'net.ipv6.conf.eth0/100.accept_ra');
  });
});

describe('hardening: apply and restore', () => {
  it('sets what is on, reports old → new per key, and puts the old values back', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '1' });
    const before = new Map(files.values);
    const h = new Hardening(hardeningPlan(['eth1']), files);
    const applied = h.apply();
    for (const [path, value] of files.values) assert.equal(value, '0', path);
    assert.deepEqual(
      applied.map((o) => [sysctlName(o.path), o.from, o.to]),
      [
        ['net.ipv6.conf.eth1.accept_ra', '1', '0'],
        ['net.ipv6.conf.eth1.accept_redirects', '1', '0'],
        ['net.ipv4.conf.eth1.accept_redirects', '1', '0'],
        ['net.ipv4.conf.eth1.accept_source_route', '1', '0'],
        ['net.ipv6.conf.eth1.accept_source_route', '0', '0'],
        ['net.ipv4.conf.all.accept_redirects', '1', '0'],
      ],
    );
    const { restored, failed } = h.restore();
    assert.deepEqual(failed, []);
    assert.deepEqual(files.values, before, 'every key as found');
    assert.equal(restored.length, 5, 'the key that was already 0 needed nothing');
    assert.deepEqual(h.restore(), { restored: [], failed: [] }, 'a second restore does nothing');
  });

  it('skips the IPv6 keys of an interface without IPv6 and says so', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), ...fresh('low', false), [ALL_REDIRECTS]: '0' });
    const applied = new Hardening(hardeningPlan(['eth1', 'low']), files).apply();
    const low = applied.filter((o) => o.interface === 'low');
    assert.deepEqual(low.filter((o) => o.absent).map((o) => sysctlName(o.path)), [
      'net.ipv6.conf.low.accept_ra', 'net.ipv6.conf.low.accept_redirects', 'net.ipv6.conf.low.accept_source_route',
    ]);
    assert.equal(files.values.get('/proc/sys/net/ipv4/conf/low/accept_redirects'), '0');
    const [, record] = hardeningRecords(applied, 'hardening');
    assert.equal(record?.interface, 'low');
    assert.match(record?.message ?? '', /net\.ipv6\.conf\.low\.accept_ra: no such key \(no IPv6 on low\), skipped/);
    assert.deepEqual(record?.sysctls[0], { key: 'net.ipv6.conf.low.accept_ra', absent: true });
  });

  it('restores what the kernel rewrote meanwhile (ip_forward off rewrites all.accept_redirects), and a key whose interface is gone is absent', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), ...fresh('dsvx7'), [ALL_REDIRECTS]: '0' });
    const h = new Hardening(hardeningPlan(['eth1', 'dsvx7']), files);
    h.apply();
    files.values.set(ALL_REDIRECTS, '1'); // forwarding.unroute() wrote ip_forward=0
    for (const path of Object.keys(fresh('dsvx7'))) files.values.delete(path); // the tunnel went first
    const { restored } = h.restore();
    assert.equal(files.values.get(ALL_REDIRECTS), '0', 'back to what the agent found, not what the kernel left');
    assert.deepEqual(restored.find((o) => o.interface === '*'), { interface: '*', path: ALL_REDIRECTS, from: '1', to: '0' });
    assert.equal(restored.filter((o) => o.interface === 'dsvx7' && o.absent).length, 5, 'its keys, reported gone');
    assert.match(hardeningRecords(restored, 'unhardened').find((r) => r.interface === 'dsvx7')?.message ?? '', /the interface is gone/);
  });

  it('a key that cannot be written fails with DS_E_HARDENING, and restore() undoes what was set before it', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '1' });
    const readOnly: SysctlFiles = {
      read: (path) => files.read(path),
      write: (path, value) => {
        if (path.includes('/ipv4/')) throw Object.assign(new Error(`EROFS: read-only file system, open '${path}'`), { code: 'EROFS' });
        files.write(path, value);
      },
    };
    const h = new Hardening(hardeningPlan(['eth1']), readOnly);
    assert.throws(() => h.apply(), (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_HARDENING' && /accept_redirects.*EROFS/.test(err.message));
    assert.equal(files.values.get('/proc/sys/net/ipv6/conf/eth1/accept_ra'), '0', 'set before the failure');
    const { restored, failed } = h.restore();
    assert.deepEqual(failed, []);
    assert.deepEqual(restored.map((o) => sysctlName(o.path)), ['net.ipv6.conf.eth1.accept_ra', 'net.ipv6.conf.eth1.accept_redirects']);
    assert.equal(files.values.get('/proc/sys/net/ipv6/conf/eth1/accept_ra'), '1');
  });

  it('a key that cannot be restored is named in `failed`; the others are still restored', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '0' });
    let locked = false;
    const h = new Hardening(hardeningPlan(['eth1']), {
      read: (path) => files.read(path),
      write: (path, value) => {
        if (locked && path.endsWith('/accept_ra')) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        files.write(path, value);
      },
    });
    h.apply();
    locked = true;
    const { restored, failed } = h.restore();
    assert.equal(failed.length, 1);
    assert.match(failed[0] ?? '', /ipv6\/conf\/eth1\/accept_ra back to 1: EACCES/);
    assert.equal(restored.length, 3);
  });
});

describe('hardening: audit records', () => {
  it('one record per interface, the namespace-wide key last, old → new in the message and in `sysctls`', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '1' });
    const records = hardeningRecords(new Hardening(hardeningPlan(['eth1']), files).apply(), 'hardening');
    assert.deepEqual(records.map((r) => [r.event, r.interface]), [['hardening', 'eth1'], ['hardening', '*']]);
    assert.equal(
      records[0]?.message,
      'set: net.ipv6.conf.eth1.accept_ra 1 → 0, net.ipv6.conf.eth1.accept_redirects 1 → 0, net.ipv4.conf.eth1.accept_redirects 1 → 0, ' +
        'net.ipv4.conf.eth1.accept_source_route 1 → 0, net.ipv6.conf.eth1.accept_source_route 0 (as found)',
    );
    assert.deepEqual(records[1]?.sysctls, [{ key: 'net.ipv4.conf.all.accept_redirects', from: '1', to: '0' }]);
  });
});

describe('hardening across an adoption', () => {
  it('a second agent, given the first one\'s record, restores the values found before the first, not the hardened ones it finds', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '1' });
    const first = new Hardening(hardeningPlan(['eth1']), files);
    first.apply();
    const record = first.recorded();
    assert.deepEqual(record.find((r) => r.path === ALL_REDIRECTS), { interface: '*', path: ALL_REDIRECTS, value: '1' });
    // the first agent stops without restoring (the engine keeps enforcing); the next finds 0 everywhere
    const second = new Hardening(hardeningPlan(['eth1']), files, record);
    second.apply();
    assert.deepEqual(second.recorded(), record, 'it records the originals again');
    second.restore();
    assert.deepEqual(Object.fromEntries(files.values), { ...fresh('eth1'), [ALL_REDIRECTS]: '1' }, 'every key as before the first agent');
  });

  it('without the record, the second agent takes the hardened values for the originals (why the record exists)', () => {
    const files = new MemorySysctls({ ...fresh('eth1'), [ALL_REDIRECTS]: '1' });
    new Hardening(hardeningPlan(['eth1']), files).apply();
    const second = new Hardening(hardeningPlan(['eth1']), files);
    second.apply();
    second.restore();
    assert.equal(files.read(ALL_REDIRECTS), '0');
  });
});
