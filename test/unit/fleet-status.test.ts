// SPDX-License-Identifier: Apache-2.0
// The fleet view: the version each enforcer should run (its labels' envelopes, compiled) and
// whether the fleet has converged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EnforcerStatus, ExpectedVersions, fleetView, parseStatus } from '../../src/fleet/enforcer-status.js';
import { compileIr } from '../../src/policy/compile.js';
import { type BucketEntry, buildEnvelope } from '../../src/watcher/policy-envelope.js';

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
    assert.deepEqual(v.enforcers.map((e) => e.status.enforcer), ['a', 'b'], 'sorted by enforcer');
    const behind = fleetView([...good, status('c', { region: 'eu' }, usVersion)], expected);
    assert.equal(behind.converged, false);
    assert.equal(behind.inSync, 2);
    assert.equal(fleetView([status('a', { region: 'eu' }, euVersion, 'rejecting')], expected).converged, false);
    assert.equal(fleetView([status('d', { region: 'eu' }, null, 'default-deny')], expected).converged, false);
  });

  it('status reports round-trip; anything else is ignored', () => {
    const s = status('a', {}, 'v1');
    assert.deepEqual(parseStatus(Buffer.from(JSON.stringify(s))), s);
    assert.equal(parseStatus(Buffer.from('{')), undefined);
    assert.equal(parseStatus(Buffer.from('{"format":2}')), undefined);
  });
});
