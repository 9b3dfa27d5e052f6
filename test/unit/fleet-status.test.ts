// SPDX-License-Identifier: Apache-2.0
// The fleet view: the version each enforcer should run (its labels' envelopes, compiled) and
// whether the fleet has converged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EnforcerStatus, ExpectedVersions, fleetView, parseStatus } from '../../src/fleet/enforcer-status.js';
import { compileIr } from '../../src/policy/compile.js';
import { type BucketEntry, buildEnvelope } from '../../src/fleet/policy-envelope.js';

const policy = (name: string, port: number) =>
  `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: ${name} }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: p${port}, action: allow, protocol: udp, ports: [${port}] }\n`;

const entry = (name: string, selector: Record<string, string>, text: string, revision: number): BucketEntry => ({
  key: `sets.${name}`,
  revision,
  envelope: buildEnvelope(name, selector, [{ file: `${name}.yaml`, text }]),
});

function status(enforcer: string, labels: Record<string, string>, version: string | null, health: EnforcerStatus['health'] = 'enforcing'): EnforcerStatus {
  return {
    format: 1,
    enforcer,
    labels,
    health,
    policy: version === null ? null : { version, generation: 3, origin: 'nats:p', rules: 1, installedAt: '2026-11-26T10:00:00.000Z' },
    rejected: null,
    counters: { passed: 0, dropped: 0, sessions: 0, eventsLost: 0, auditDropped: 0 },
    interfaces: [{ name: 'eth0', mode: 'native' }],
    agent: { pid: 1, startedAt: '2026-11-26T10:00:00.000Z' },
    updatedAt: '2026-11-26T10:00:01.000Z',
  };
}

describe('fleet view', () => {
  const entries = [entry('base', {}, policy('base', 53), 1), entry('eu', { region: 'eu' }, policy('eu', 443), 2), entry('bad', { region: 'ap' }, 'spec: [', 3)];
  const euVersion = compileIr([{ file: 'p/sets.base/base.yaml', text: policy('base', 53) }, { file: 'p/sets.eu/eu.yaml', text: policy('eu', 443) }]).ir.version;
  const usVersion = compileIr([{ file: 'p/sets.base/base.yaml', text: policy('base', 53) }]).ir.version;

  it('expects the union of the envelopes selecting each label set', () => {
    const expected = new ExpectedVersions('p', entries);
    assert.deepEqual(expected.for({ region: 'eu', vpc: 'a' }), { version: euVersion });
    assert.deepEqual(expected.for({ region: 'us' }), { version: usVersion });
    assert.ok('invalid' in expected.for({ region: 'ap' }));
    assert.deepEqual(new ExpectedVersions('p', []).for({}), { none: true });
  });

  it('converges only when every enforcer runs its expected version and none is rejecting', () => {
    const expected = new ExpectedVersions('p', entries);
    const good = [status('b', { region: 'us' }, usVersion), status('a', { region: 'eu' }, euVersion)];
    const v = fleetView(good, expected);
    assert.equal(v.converged, true);
    assert.deepEqual(v.enforcers.map((e) => e.enforcer), ['a', 'b'], 'sorted by enforcer');
    const behind = fleetView([...good, status('c', { region: 'eu' }, usVersion)], expected);
    assert.equal(behind.converged, false);
    assert.equal(behind.inSync, 2);
    assert.equal(fleetView([status('a', { region: 'eu' }, euVersion, 'rejecting')], expected).converged, false);
    assert.equal(fleetView([status('d', { region: 'eu' }, null, 'default-deny')], expected).converged, false);
  });

  it('counts a registered enforcer that does not report as missing, never as converged', () => {
    const expected = new ExpectedVersions('p', entries);
    const member = (enforcer: string, labels: Record<string, string>) => ({ format: 1 as const, enforcer, labels, registeredAt: '2026-11-26T09:00:00.000Z', updatedAt: '2026-11-26T09:00:00.000Z' });
    const reports = [status('a', { region: 'eu' }, euVersion), status('b', { region: 'us' }, usVersion)];
    const all = fleetView(reports, expected, [member('a', { region: 'eu' }), member('b', { region: 'us' })]);
    assert.equal(all.converged, true);
    assert.equal(all.members, 2);
    const v = fleetView(reports, expected, [member('a', { region: 'eu' }), member('b', { region: 'us' }), member('c', { region: 'eu' })]);
    assert.equal(v.converged, false);
    assert.deepEqual(v.missing, ['c']);
    assert.deepEqual(v.enforcers.map((e) => [e.enforcer, e.state]), [['a', 'in-sync'], ['b', 'in-sync'], ['c', 'missing']]);
    const c = v.enforcers[2];
    assert.equal(c?.status, undefined);
    assert.deepEqual(c?.expected, { version: euVersion }, 'expected from its registered labels');
    // nobody reports: every member is missing
    const none = fleetView([], expected, [member('a', { region: 'eu' })]);
    assert.equal(none.converged, false);
    assert.deepEqual(none.missing, ['a']);
    // one that reports without registering (an older agent) is judged on its report
    const old = fleetView([status('z', { region: 'us' }, usVersion)], expected, [member('a', { region: 'eu' })]);
    assert.deepEqual(old.enforcers.map((e) => [e.enforcer, e.state, e.member === undefined]), [['a', 'missing', false], ['z', 'in-sync', true]]);
  });

  it('names each state: stale, rejecting, behind', () => {
    const expected = new ExpectedVersions('p', entries);
    const stale = { ...status('s', { region: 'eu' }, euVersion), sync: { state: 'stale' as const, staleSince: '2026-11-26T10:00:00.000Z', revision: 1, bucketRevision: 2, bucketReadAt: null } };
    const v = fleetView([stale, status('r', { region: 'eu' }, euVersion, 'rejecting'), status('o', { region: 'eu' }, usVersion)], expected);
    assert.deepEqual(v.enforcers.map((e) => [e.enforcer, e.state]), [['o', 'behind'], ['r', 'rejecting'], ['s', 'stale']]);
    assert.equal(v.inSync, 0);
  });

  it('status reports round-trip; anything else is ignored', () => {
    const s = status('a', {}, 'v1');
    assert.deepEqual(parseStatus(Buffer.from(JSON.stringify(s))), s);
    assert.equal(parseStatus(Buffer.from('{')), undefined);
    assert.equal(parseStatus(Buffer.from('{"format":2}')), undefined);
  });
});
