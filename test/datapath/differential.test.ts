// SPDX-License-Identifier: Apache-2.0
// Differential test: random policies and random packets through the XDP engine and through the
// reference evaluator must agree on every verdict and every deciding rule — half the policies
// with rules scoped to tenants, their packets arriving on interfaces of those tenants, of a tenant
// no rule names, and of none.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Action, Reason } from '../../src/abi/generated.js';
import type { NativeEngine } from '../../src/engine/engine.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import { tenantId } from '../../src/policy/ir/tenants.js';
import { compileYaml, openTestEngine, sessionKeyOf, TEST_IFINDEX, TestInterfaces, tupleOf } from '../lib/datapath.js';
import { frame } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant, TENANTS, UNNAMED_TENANT } from '../lib/random-policy.js';

const POLICIES = 50;
const PACKETS_PER_POLICY = 220;

describe('datapath ≡ reference evaluator', () => {
  let engine: NativeEngine;
  let ifaces: TestInterfaces | undefined;
  /** tenant id → the interface its packets arrive on; tenant 0 arrives on the loopback (no tenant). */
  const interfaceOf = new Map<number, number>([[0, TEST_IFINDEX]]);
  before(() => {
    engine = openTestEngine();
    const tenants = [...TENANTS, UNNAMED_TENANT];
    ifaces = new TestInterfaces('dif', tenants.length);
    tenants.forEach((name, i) => interfaceOf.set(tenantId(name), ifaces?.ifindex[i] as number));
    engine.setInterfaceRoles(tenants.map((name) => ({ ifindex: interfaceOf.get(tenantId(name)) as number, role: 'source', tenant: tenantId(name) })));
  });
  after(() => {
    engine?.close();
    ifaces?.remove();
  });

  it(`agrees on ${POLICIES * PACKETS_PER_POLICY} random packets over ${POLICIES} random policies`, () => {
    const r = new Random(prng(0xd00257e9));
    let compared = 0;
    let fromTenants = 0;
    let byScopedRules = 0;
    for (let p = 0; p < POLICIES; p++) {
      const policy = randomPolicy(r, 24, { tenants: p % 2 === 1 });
      const { ir, image } = compileYaml(policy.yaml, `random-${p}.yaml`);
      const { generation } = engine.install(image);
      for (let i = 0; i < PACKETS_PER_POLICY; i++) {
        const spec = randomPacket(r, policy);
        const tenant = randomTenant(r, policy);
        const ifindex = interfaceOf.get(tenant) as number;
        if (tenant !== 0) fromTenants++;
        const expected = evaluate(ir, { ...tupleOf(spec), tenant });
        if (expected.rule !== 0 && ir.rules[expected.rule - 1]?.tenants) byScopedRules++;
        const got = engine.testRun(frame(spec), { ingressIfindex: ifindex });
        const session = engine.lookupSession(sessionKeyOf(spec, ifindex));
        const context = () => `policy ${p}, packet ${i} from tenant ${tenant} (ifindex ${ifindex}): ${JSON.stringify(spec)}\n${policy.yaml}`;
        assert.equal(got.verdict, expected.action === 'allow' ? 'pass' : 'drop', context());
        assert.ok(session, `no session: ${context()}`);
        assert.equal(session.generation, generation, context());
        assert.equal(session.reason, Reason.POLICY, context());
        assert.equal(session.rule, expected.rule, `rule: ${context()}`);
        assert.equal(session.action, expected.action === 'allow' ? Action.ALLOW : Action.DENY, context());
        compared++;
      }
    }
    assert.equal(compared, POLICIES * PACKETS_PER_POLICY);
    assert.ok(fromTenants > compared / 4, `packets from tenants: ${fromTenants}`);
    assert.ok(byScopedRules > 300, `packets decided by rules scoped to tenants: ${byScopedRules}`);
  });
});

describe('datapath: a large IPv4 long-prefix table', () => {
  it('finds each of 4,000 /32 and /28 sources at its hashed slot (TypeScript and C hash alike)', () => {
    const engine = openTestEngine();
    try {
      const rules: string[] = [];
      for (let i = 0; i < 4000; i++) {
        const [len, host] = i % 2 ? [28, (i * 16) & 0xff] : [32, i & 0xff];
        rules.push(`    - { name: r${i}, action: ${i % 3 ? 'allow' : 'deny'}, from: [10.${(i >> 8) & 0xff}.${i % 2 ? 100 : 200}.${host}/${len}], protocol: udp, ports: [${1000 + i}] }`);
      }
      const { ir, image } = compileYaml(`apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: long }\nspec:\n  defaultAction: deny\n  rules:\n${rules.join('\n')}\n`);
      assert.ok(image.v4Bits.src >= 13, 'a table of thousands of slots');
      engine.install(image);
      const r = new Random(prng(42));
      for (let k = 0; k < 300; k++) {
        const i = r.int(0, 3999);
        const host = i % 2 ? ((i * 16) & 0xff) + 5 : i & 0xff;
        const spec = { src: `10.${(i >> 8) & 0xff}.${i % 2 ? 100 : 200}.${host}`, dst: '10.1.1.1', proto: 17, sport: 7, dport: 1000 + i };
        const expected = evaluate(ir, tupleOf(spec));
        assert.equal(expected.rule, i + 1, 'the oracle agrees the packet is rule i');
        engine.testRun(frame(spec));
        assert.equal(engine.lookupSession(sessionKeyOf(spec))?.rule, i + 1, `source ${spec.src}`);
      }
    } finally {
      engine.close();
    }
  });
});
