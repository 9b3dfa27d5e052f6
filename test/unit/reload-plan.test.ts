// SPDX-License-Identifier: Apache-2.0
// What a SIGHUP applies and what it names as needing a restart (the live reload: test/e2e/service.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig } from '../../src/controller/config.js';
import { reloadPlan } from '../../src/controller/reload-plan.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';

const base = resolveConfig({ interfaces: ['eth1'], enforcerId: 'e1' });

describe('reload plan', () => {
  it('nothing changed: nothing to apply, nothing to restart', () => {
    assert.deepEqual(reloadPlan(base, resolveConfig({ interfaces: ['eth1'], enforcerId: 'e1' })), { needRestart: [] });
  });

  it('applies the deny-event budget and cap and the failsafe', () => {
    const cidr = parseCidr('192.0.2.0/24');
    assert.ok(!('problem' in cidr));
    const next = { ...base, denyEventBudget: 7, denyEventCap: 70, failsafe: [{ cidr, protocol: 6 }] };
    const plan = reloadPlan(base, next);
    assert.equal(plan.denyEventBudget, 7);
    assert.equal(plan.denyEventCap, 70);
    assert.deepEqual(plan.failsafe, next.failsafe);
    assert.deepEqual(plan.needRestart, []);
  });

  it('names every other changed setting as needing a restart', () => {
    const next = { ...base, interfaces: ['eth2'], socket: '/run/x.sock', labels: { region: 'r' } };
    assert.deepEqual(reloadPlan(base, next).needRestart.sort(), ['interfaces', 'labels', 'socket']);
  });
});
