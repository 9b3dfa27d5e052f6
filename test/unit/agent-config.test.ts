// SPDX-License-Identifier: Apache-2.0
// Agent settings: defaults ← config file ← flags, and one clear DS_E_CONFIG error per mistake;
// the state store's atomic round trip, and its file the same with the sources encoded elsewhere.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { durationSetting, parseListen, parseSize, resolveConfig } from '../../src/controller/config.js';
import { StateStore } from '../../src/host/state-store.js';
import { DoorstepError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof DoorstepError ? `${err.code}: ${err.message}` : String(err);
  }
  return 'no error';
};

describe('agent config', () => {
  it('defaults, then the file, then flags', () => {
    const c = resolveConfig({ interfaces: ['eth1'] });
    assert.deepEqual(c.audit, ['-']);
    assert.equal(c.stateDir, '/var/lib/doorstep');
    assert.equal(c.socket, '/run/doorstep/agent.sock');
    assert.equal(c.summaryIntervalMs, 10_000);
    assert.equal(c.metrics, null);
    const path = file('a.yaml', 'interfaces: [eth0]\npolicy: /p\nmetrics: "[::1]:9469"\nsummaryInterval: 2s\nfailsafe:\n  - { cidr: 192.0.2.0/24, protocol: tcp, ports: 22 }\n');
    const f = resolveConfig({ config: path });
    assert.deepEqual(f.interfaces, ['eth0']);
    assert.deepEqual(f.policy, ['/p']);
    assert.deepEqual(f.metrics, { host: '::1', port: 9469 });
    assert.equal(f.summaryIntervalMs, 2000);
    assert.deepEqual(f.failsafe.map((e) => [[...e.cidr.addr].join('.'), e.cidr.len, e.protocol, e.ports]), [['192.0.2.0', 24, 6, { lo: 22, hi: 22 }]]);
    const o = resolveConfig({ config: path, interfaces: ['eth9'], summaryInterval: '500ms', policy: ['/q', '/r'] });
    assert.deepEqual([o.interfaces, o.summaryIntervalMs, o.policy], [['eth9'], 500, ['/q', '/r']]);
  });

  it('bounds denied sessions per rule and for the whole enforcer, by default and as told', () => {
    const c = resolveConfig({ interfaces: ['eth1'] });
    assert.deepEqual([c.denyEventBudget, c.denyEventCap], [100, 2000]);
    const f = resolveConfig({ config: file('b.yaml', 'interfaces: [eth0]\ndenyEventBudget: 5\ndenyEventCap: 40\n') });
    assert.deepEqual([f.denyEventBudget, f.denyEventCap], [5, 40]);
    const o = resolveConfig({ config: file('c.yaml', 'interfaces: [eth0]\ndenyEventCap: 40\n'), denyEventCap: 0 });
    assert.equal(o.denyEventCap, 0, 'a flag overrides the file; 0 is no limit');
    assert.match(code(() => resolveConfig({ config: file('d.yaml', 'interfaces: [eth0]\ndenyEventCap: -1\n') })), /^DS_E_CONFIG/);
  });

  it('a stop keeps the engine enforcing unless detachOnExit; keepOnExit is still accepted (deprecated, no effect)', () => {
    assert.equal(resolveConfig({ interfaces: ['eth1'] }).detachOnExit, false);
    assert.equal(resolveConfig({ config: file('e.yaml', 'interfaces: [eth0]\ndetachOnExit: true\nkeepOnExit: true\n') }).detachOnExit, true);
    assert.equal(resolveConfig({ interfaces: ['eth1'], keepOnExit: true }).detachOnExit, false);
    assert.equal(resolveConfig({ config: file('f.yaml', 'interfaces: [eth0]\ndetachOnExit: true\n'), detachOnExit: false }).detachOnExit, false, 'a flag overrides the file');
  });

  it('one clear error per mistake', () => {
    assert.match(code(() => resolveConfig({})), /^DS_E_USAGE: no interface/);
    assert.match(code(() => resolveConfig({ config: join(dir, 'missing.yaml') })), /^DS_E_CONFIG: cannot read the config file .*missing\.yaml: ENOENT/);
    assert.match(code(() => resolveConfig({ config: file('b.yaml', 'interfaces: [x\n') })), /^DS_E_CONFIG: .*b\.yaml: not valid YAML/);
    assert.match(code(() => resolveConfig({ config: file('c.yaml', 'interfaces: [x]\nbogus: 1\n') })), /^DS_E_CONFIG: .*c\.yaml: .*bogus/);
    assert.match(code(() => resolveConfig({ config: file('d.yaml', 'interfaces: [x]\nfailsafe: [{ cidr: 10.0.0.1/8 }]\n') })), /^DS_E_CONFIG: .*failsafe\[0\]\.cidr/);
    assert.match(code(() => parseListen('9469')), /^DS_E_CONFIG: "9469" is not HOST:PORT/);
    assert.equal(parseSize('2M'), 2 * 1024 * 1024);
    assert.equal(durationSetting('5m'), 300_000);
  });
});

describe('state store', () => {
  it('round-trips the installed policy and ignores a damaged file', async () => {
    const store = new StateStore(join(dir, 'state'));
    store.prepare();
    assert.equal(store.load(), null);
    const state = { version: 'sha256:x', generation: 7, origin: 'api', installedAt: '2026-01-01T00:00:00.000Z', sources: [{ file: 'a.yaml', text: 'x: 1' }] };
    await store.save(state);
    assert.deepEqual(store.load(), { format: 1, ...state });
    writeFileSync(join(dir, 'state', 'policy.json'), '{"format":1,');
    const problems: string[] = [];
    assert.equal(store.load((m) => problems.push(m)), null);
    assert.match(problems[0] ?? '', /damaged and ignored/);
  });

  it('sources encoded elsewhere (the policy thread) give the same file, byte for byte', async () => {
    const store = new StateStore(join(dir, 'state-encoded'));
    store.prepare();
    const path = join(dir, 'state-encoded', 'policy.json');
    // quotes, backslashes, control characters, non-ASCII and astral text: everything JSON escapes or encodes
    const text = 'a: "b\\c"\n\t\u0001 é ✓ 😀 \u2028\n';
    const state = { version: 'sha256:x', generation: 3, origin: 'file:/p "q"', installedAt: '2026-01-01T00:00:00.000Z', sources: [{ file: 'a.yaml', text }, { file: 'b é.json', text: '' }] };
    await store.save(state);
    const plain = readFileSync(path);
    await store.save(state, { sources: new TextEncoder().encode(JSON.stringify(state.sources)) });
    assert.deepEqual(readFileSync(path), plain);
    assert.deepEqual(store.load(), { format: 1, ...state });
  });

  it('a state dir that cannot be written is DS_E_STATE_DIR', () => {
    const blocker = file('blocker', '');
    assert.match(code(() => new StateStore(join(blocker, 'state')).prepare()), /^DS_E_STATE_DIR: cannot write the state dir .*: ENOTDIR/);
  });
});

describe('agent settings: the examples', () => {
  it('examples/agent.yaml and examples/agent-fleet.yaml are valid and mean what they say', () => {
    const root = new URL('../../../', import.meta.url).pathname;
    const single = resolveConfig({ config: `${root}examples/agent.yaml` });
    assert.deepEqual(single.audit, ['/var/log/doorstep/audit.jsonl']);
    assert.deepEqual(single.ui, { host: '127.0.0.1', port: 9470, allowRemote: false, tokenFile: undefined });
    const fleet = resolveConfig({ config: `${root}examples/agent-fleet.yaml` });
    assert.deepEqual(fleet.labels, { cloud: 'aws', region: 'eu-west-1', vpc: 'vpc-0a1', placement: 'edge' });
    assert.deepEqual(fleet.audit, ['/var/log/doorstep/audit.jsonl', 'nats://nats-1:4222,nats-2:4222,nats-3:4222/DOORSTEP_AUDIT']);
    assert.deepEqual(fleet.policyPubkeys, ['/etc/doorstep/ops.pub']);
    assert.deepEqual(fleet.nats, { tlsCa: '/etc/doorstep/nats-ca.pem', tlsCert: '/etc/doorstep/nats-client.pem', tlsKey: '/etc/doorstep/nats-client.key' });
    assert.equal(fleet.statusTtlMs, 30_000);
    assert.equal(fleet.auditBuffer, 100_000);
    // flags override the file
    const flagged = resolveConfig({ config: `${root}examples/agent-fleet.yaml`, audit: ['-'], natsTlsCa: '/x.pem', statusTtl: '10s' });
    assert.deepEqual(flagged.audit, ['-']);
    assert.equal(flagged.nats.tlsCa, '/x.pem');
    assert.equal(flagged.statusTtlMs, 10_000);
  });
});
