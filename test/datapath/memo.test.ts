// SPDX-License-Identifier: Apache-2.0
// ds_memo, the per-CPU memory of the classifier's last decision that read no source (a flood of
// spoofed sources at one destination and port meets it instead of the tables), must never decide
// a flow the classifier would decide otherwise. Each case below first lets the memo take a
// decision, then sends new sessions that differ from it in one thing the decision depends on
// (tenant, destination, port, protocol, policy version, a failsafe source, a rule that reads the
// source) and expects the verdict the policy text gives: the expectations are written from the
// policies, not computed. Counters show the memo was in use (new sessions decided past the
// budget: STATELESS). A target with rules scoped to tenants reads the source (so it is never
// kept); the tenant case holds whatever keeps it so. Mutations that drop the version, port or
// failsafe check, or keep a decision that read the source, each fail a case here. Veth
// interfaces (down, no traffic) give the tenants' ifindexes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NativeEngine } from '../../src/engine/engine.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { compileYaml, withTestInterfaces } from '../lib/datapath.js';
import { type FrameSpec, frame } from '../lib/packet.js';

const policy = (rules: string[]) => `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: memo }
spec:
  defaultAction: deny
  rules:
${rules.map((r) => `    - ${r}`).join('\n')}
`;

/** New sessions from spoofed sources (a fresh source each): 10.64.0.0/10 and 10.200.x.y. */
let next = 0;
const spoofed = (spec: Omit<FrameSpec, 'src' | 'sport'>, src?: string): FrameSpec => {
  next++;
  return { ...spec, src: src ?? `10.${64 + ((next >> 16) & 63)}.${(next >> 8) & 255}.${next & 255}`, sport: 1024 + (next % 60000) };
};

describe('datapath: the classifier memo decides only what the classifier would', () => {
  let engine: NativeEngine;
  const ifindex = withTestInterfaces('mem', 2, (e, [a, b]) => {
    engine = e;
    engine.setInterfaceRoles([
      { ifindex: a as number, role: 'source', tenant: tenantId('vpc-a') },
      { ifindex: b as number, role: 'source', tenant: tenantId('vpc-b') },
    ]);
    // one new denied session a second is admitted to the cache; the rest are decided statelessly,
    // so every packet below is a new session that meets the memo or the classifier
    engine.setDenyEventBudget(1);
    engine.setDenyEventCap(1);
  });
  const verdict = (spec: FrameSpec, tenant = 0) => engine.testRun(frame(spec), { ingressIfindex: ifindex(tenant) }).verdict;

  it('keeps tenants, destinations, ports and protocols apart', () => {
    engine.install(
      compileYaml(
        policy([
          '{ name: dns-a, action: allow, from: [any], to: [192.0.2.53/32], protocol: udp, ports: [53], tenants: [vpc-a] }',
          '{ name: ntp, action: allow, from: [any], to: [192.0.2.0/24], protocol: udp, ports: [123] }',
        ]),
      ).image,
    );
    const dns = { dst: '192.0.2.53', proto: 17, dport: 53 };
    const stateless = () => engine.stats().counters.STATELESS;
    const before = stateless();
    for (let i = 0; i < 50; i++) {
      assert.equal(verdict(spoofed(dns), 0), 'pass', 'vpc-a: its rule');
      assert.equal(verdict(spoofed(dns), 1), 'drop', 'vpc-b: the same destination and port, the default');
      assert.equal(verdict(spoofed({ ...dns, dst: '192.0.2.54' }), 0), 'drop', 'vpc-a: another destination');
      assert.equal(verdict(spoofed({ ...dns, dport: 54 }), 0), 'drop', 'vpc-a: another port');
      assert.equal(verdict(spoofed({ ...dns, proto: 6 }), 0), 'drop', 'vpc-a: tcp, not udp');
      assert.equal(verdict(spoofed({ ...dns, dport: 123 }), 1), 'pass', 'ntp: every tenant');
      assert.equal(verdict(spoofed({ ...dns, dport: 123 }), 1), 'pass', 'ntp again: from the memo');
      assert.equal(verdict(spoofed({ ...dns, dst: '192.0.3.53', dport: 123 }), 1), 'drop', 'ntp: outside its destination');
    }
    assert.ok(stateless() - before >= 50 * 4, 'the denied new sessions were decided past the budget');
  });

  it('reads the source where a rule names one: a memo of the default never decides a named source', () => {
    engine.install(
      compileYaml(
        policy([
          '{ name: office, action: allow, from: [10.200.0.0/16], protocol: tcp, ports: [22] }',
          '{ name: web, action: allow, from: [any], protocol: tcp, ports: [443] }',
        ]),
      ).image,
    );
    for (let i = 0; i < 50; i++) {
      assert.equal(verdict(spoofed({ dst: '10.1.0.2', proto: 6, dport: 22 })), 'drop', 'ssh from elsewhere');
      assert.equal(verdict(spoofed({ dst: '10.1.0.2', proto: 6, dport: 22 }, `10.200.${i}.7`)), 'pass', 'ssh from the office');
      assert.equal(verdict(spoofed({ dst: '10.1.0.2', proto: 6, dport: 443 })), 'pass', 'https from anywhere (memo)');
      assert.equal(verdict(spoofed({ dst: '10.1.0.2', proto: 6, dport: 443 }, `10.200.${i}.8`)), 'pass');
    }
  });

  it('forgets its decision when a new version is installed, and passes a failsafe source whatever it holds', () => {
    const flood = { dst: '10.1.0.2', proto: 17, dport: 9999 };
    engine.install(compileYaml(policy(['{ name: app, action: allow, from: [any], protocol: udp, ports: [7777] }'])).image);
    for (let i = 0; i < 20; i++) assert.equal(verdict(spoofed(flood)), 'drop', 'udp/9999: the default');

    engine.install(compileYaml(policy(['{ name: open, action: allow, from: [any], protocol: udp, ports: [9999] }'])).image);
    assert.equal(verdict(spoofed(flood)), 'pass', 'the next version allows it at once');
    assert.equal(verdict(spoofed(flood)), 'pass');

    engine.install(compileYaml(policy(['{ name: app, action: allow, from: [any], protocol: udp, ports: [7777] }'])).image);
    for (let i = 0; i < 20; i++) assert.equal(verdict(spoofed(flood)), 'drop', 'and the one after denies it again');
    const mgmt = parseCidr('10.250.0.0/16');
    assert.ok(!('problem' in mgmt));
    assert.equal(engine.setFailsafe([{ cidr: mgmt }]), true);
    for (let i = 0; i < 20; i++) {
      assert.equal(verdict(spoofed(flood, `10.250.${i}.1`)), 'pass', 'a management source: the failsafe');
      assert.equal(verdict(spoofed(flood)), 'drop', 'any other: the memo of the default');
    }
  });
});
