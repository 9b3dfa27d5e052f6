// SPDX-License-Identifier: Apache-2.0
// Differential test: random policies and random packets through the XDP engine and through the
// reference evaluator must agree on every verdict and every deciding rule.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Action, Reason } from '../../src/abi/generated.js';
import type { Engine } from '../../src/engine/engine.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { compileYaml, openTestEngine, sessionKeyOf, tupleOf } from '../lib/datapath.js';
import { frame } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy } from '../lib/random-policy.js';

const POLICIES = 50;
const PACKETS_PER_POLICY = 220;

describe('datapath ≡ reference evaluator', () => {
  let engine: Engine;
  before(() => {
    engine = openTestEngine();
  });
  after(() => engine?.close());

  it(`agrees on ${POLICIES * PACKETS_PER_POLICY} random packets over ${POLICIES} random policies`, () => {
    const r = new Random(prng(0xd00257e9));
    let compared = 0;
    for (let p = 0; p < POLICIES; p++) {
      const policy = randomPolicy(r);
      const { ir, image } = compileYaml(policy.yaml, `random-${p}.yaml`);
      const { generation } = engine.install(image);
      for (let i = 0; i < PACKETS_PER_POLICY; i++) {
        const spec = randomPacket(r, policy);
        const expected = evaluate(ir, tupleOf(spec));
        const got = engine.testRun(frame(spec));
        const session = engine.lookupSession(sessionKeyOf(spec));
        const context = () => `policy ${p}, packet ${i}: ${JSON.stringify(spec)}\n${policy.yaml}`;
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
