// SPDX-License-Identifier: Apache-2.0
// The reference evaluator: first match, family-aware prefixes, protocol, ports and ICMP
// (src/policy/tables/evaluate.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileIr } from '../../src/policy/compile.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import type { FlowTuple } from '../../src/policy/ir/ir.js';

const { ir } = compileIr([
  {
    file: 'policy.yaml',
    text: `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - { name: block, action: deny, priority: 10, from: [10.66.0.0/16] }
    - { name: https, action: allow, from: [10.0.0.0/8, "2001:db8::/32"], to: [10.20.0.0/16, "2001:db8:20::/48"], protocol: tcp, ports: [443, "8000-8080"] }
    - { name: dns, action: allow, to: [10.20.0.53], protocol: udp, ports: [53] }
    - { name: ping, action: allow, protocol: icmp, icmp: [{ type: 8 }, { type: 3, code: 4 }] }
    - { name: ping6, action: allow, protocol: icmpv6, icmp: [{ type: 128 }] }
    - { name: gre, action: allow, from: [192.0.2.0/24], protocol: gre }
`,
  },
]);

function v4(text: string): Uint8Array {
  return new Uint8Array(text.split('.').map(Number));
}

function v6(...words: number[]): Uint8Array {
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 255;
  });
  return out;
}

function tcp4(src: string, dst: string, dport: number): FlowTuple {
  return { family: 4, src: v4(src), dst: v4(dst), protocol: 6, sport: 40000, dport };
}

const cases: [string, FlowTuple, { action: 'allow' | 'deny'; rule: number }][] = [
  ['https from corp', tcp4('10.1.2.3', '10.20.1.1', 443), { action: 'allow', rule: 2 }],
  ['port range start', tcp4('10.1.2.3', '10.20.1.1', 8000), { action: 'allow', rule: 2 }],
  ['port range end', tcp4('10.1.2.3', '10.20.1.1', 8080), { action: 'allow', rule: 2 }],
  ['port just outside', tcp4('10.1.2.3', '10.20.1.1', 8081), { action: 'deny', rule: 0 }],
  ['wrong destination', tcp4('10.1.2.3', '10.21.0.1', 443), { action: 'deny', rule: 0 }],
  ['outside corp', tcp4('11.0.0.1', '10.20.1.1', 443), { action: 'deny', rule: 0 }],
  ['blocked subnet wins by priority', tcp4('10.66.0.9', '10.20.1.1', 443), { action: 'deny', rule: 1 }],
  ['tcp without a port never matches a port rule', { family: 4, src: v4('10.1.2.3'), dst: v4('10.20.1.1'), protocol: 6 }, { action: 'deny', rule: 0 }],
  ['udp dns', { family: 4, src: v4('8.8.8.8'), dst: v4('10.20.0.53'), protocol: 17, dport: 53 }, { action: 'allow', rule: 3 }],
  ['udp to the wrong port', { family: 4, src: v4('8.8.8.8'), dst: v4('10.20.0.53'), protocol: 17, dport: 54 }, { action: 'deny', rule: 0 }],
  ['tcp to the dns port', tcp4('8.8.8.8', '10.20.0.53', 53), { action: 'deny', rule: 0 }],
  ['icmp echo, any code', { family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), protocol: 1, icmpType: 8, icmpCode: 7 }, { action: 'allow', rule: 4 }],
  ['icmp frag needed', { family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), protocol: 1, icmpType: 3, icmpCode: 4 }, { action: 'allow', rule: 4 }],
  ['icmp other unreachable', { family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), protocol: 1, icmpType: 3, icmpCode: 3 }, { action: 'deny', rule: 0 }],
  ['icmp without type/code', { family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), protocol: 1 }, { action: 'deny', rule: 0 }],
  ['icmpv6 echo', { family: 6, src: v6(0x2001, 0xdb8), dst: v6(0xfe80, 0, 0, 0, 0, 0, 0, 1), protocol: 58, icmpType: 128, icmpCode: 0 }, { action: 'allow', rule: 5 }],
  ['icmp type 128 over IPv4 is not icmpv6', { family: 4, src: v4('1.1.1.1'), dst: v4('2.2.2.2'), protocol: 1, icmpType: 128, icmpCode: 0 }, { action: 'deny', rule: 0 }],
  ['https over IPv6', { family: 6, src: v6(0x2001, 0xdb8, 5), dst: v6(0x2001, 0xdb8, 0x20, 1), protocol: 6, dport: 443 }, { action: 'allow', rule: 2 }],
  ['IPv6 outside the destination /48', { family: 6, src: v6(0x2001, 0xdb8, 5), dst: v6(0x2001, 0xdb8, 0x21), protocol: 6, dport: 443 }, { action: 'deny', rule: 0 }],
  ['an IPv4 rule never matches IPv6 bytes that look alike', { family: 6, src: v6(0x0a01, 0x0203), dst: v6(0x0a14, 0x0101), protocol: 6, dport: 443 }, { action: 'deny', rule: 0 }],
  ['protocol by number', { family: 4, src: v4('192.0.2.1'), dst: v4('9.9.9.9'), protocol: 47 }, { action: 'allow', rule: 6 }],
  ['other protocol, wrong source', { family: 4, src: v4('192.0.3.1'), dst: v4('9.9.9.9'), protocol: 47 }, { action: 'deny', rule: 0 }],
];

for (const [name, tuple, expected] of cases) {
  test(`evaluate: ${name}`, () => {
    assert.deepEqual(evaluate(ir, tuple), expected);
  });
}

test('evaluate: the default action applies when no rule matches', () => {
  const open = compileIr([{ file: 'p.yaml', text: 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {defaultAction: allow}\n' }]).ir;
  assert.deepEqual(evaluate(open, tcp4('1.2.3.4', '5.6.7.8', 22)), { action: 'allow', rule: 0 });
});
