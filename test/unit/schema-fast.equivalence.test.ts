// SPDX-License-Identifier: Apache-2.0
// The schemas' fast path (src/policy/parse/schema-fast.ts) against the zod schemas it stands in
// for: on every document, it either declines (and zod decides, with its messages) or gives exactly
// zod's output. Valid documents of the common shape must not be declined.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSource } from '../../src/policy/parse/documents.js';
import { addressGroupSchema, networkPolicySchema } from '../../src/policy/parse/schema.js';
import { fastAddressGroup, fastNetworkPolicy, type ParsedGroup, type ParsedPolicy } from '../../src/policy/parse/schema-fast.js';
import { prng, Random, randomPolicy } from '../lib/random-policy.js';

type Fields = Record<string, unknown>;

/** What zod makes of a document, in the fast path's form; undefined when zod finds a problem. */
function viaZod(doc: Fields): ParsedPolicy | ParsedGroup | undefined {
  if (doc.kind === 'AddressGroup') {
    const result = addressGroupSchema.safeParse(doc);
    return result.success ? { name: result.data.metadata.name, cidrs: result.data.spec.cidrs } : undefined;
  }
  const result = networkPolicySchema.safeParse(doc);
  if (!result.success) return undefined;
  const { metadata, spec } = result.data;
  return { name: metadata.name, defaultAction: spec.defaultAction, log: spec.log, tenants: spec.tenants, rules: spec.rules ?? [] };
}

function viaFastPath(doc: Fields): ParsedPolicy | ParsedGroup | undefined {
  return doc.kind === 'AddressGroup' ? fastAddressGroup(doc) : fastNetworkPolicy(doc);
}

/** The fast path declines or agrees with zod; returns whether it took the document. */
function agrees(doc: Fields, what: string): boolean {
  const fast = viaFastPath(doc);
  if (fast === undefined) return false;
  const zod = viaZod(doc);
  assert.ok(zod !== undefined, `the fast path accepted what zod refuses: ${what}`);
  assert.deepStrictEqual(fast, zod, what);
  return true;
}

function documents(text: string): Fields[] {
  const parsed = parseSource({ file: 'p.yaml', text });
  assert.deepEqual(parsed.problems, []);
  return parsed.documents.map((d) => d.value as Fields);
}

const COMMON = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  log: false
  rules:
    - { name: a, action: allow, from: [corp, 10.0.0.0/8, "2001:db8::/32"], to: [192.0.2.7], protocol: tcp, ports: [443, "8000-8080"] }
    - { name: b, action: deny, priority: 10, to: [any], protocol: icmp, icmp: [{ type: 8 }, { type: 3, code: 4 }], log: true }
    - { name: c, action: allow, from: [192.0.2.7], protocol: 47 }
    - { name: d, action: allow, to: [192.0.2.7] }
---
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: vpcs }
spec:
  defaultAction: deny
  tenants: [vpc-a, vpc-b]
  rules:
    - { name: a, action: allow, to: [192.0.2.7], protocol: tcp, ports: [80] }
    - { name: b, action: allow, to: [192.0.2.8], tenants: [vpc-c, vpc-a] }
    - { name: c, action: deny, tenants: [any] }
---
apiVersion: doorstep/v1
kind: AddressGroup
metadata: { name: corp }
spec: { cidrs: [10.0.0.0/8, 192.168.1.7, "2001:db8::/48", 172.16.0.0/12] }
`;

test('documents of the common shape take the fast path, with exactly zod\'s output', () => {
  for (const doc of documents(COMMON)) assert.ok(agrees(doc, JSON.stringify(doc)), `declined: ${JSON.stringify(doc)}`);
  const r = new Random(prng(3));
  for (let i = 0; i < 40; i++) {
    for (const doc of documents(randomPolicy(r, 24, { tenants: true }).yaml)) assert.ok(agrees(doc, JSON.stringify(doc)), `declined: ${JSON.stringify(doc)}`);
  }
});

test('rules with the same address share one parsed form', () => {
  const doc = documents(COMMON)[0]!;
  const fast = fastNetworkPolicy(doc)!;
  const dst = (i: number) => fast.rules[i]!.to![0];
  assert.equal(dst(0), dst(3));
});

/** Values that break some field somewhere: wrong types, out of range, empty, unknown. */
const ODD_VALUES: unknown[] = [
  null, true, 0, -1, 1.5, 256, 65536, 70000, '', 'x', 'any', 'Web', 'tcp', 'allow', '10.0.0.1/8', '10.0.0.0/33', '0-0', '9-3',
  '443', 'corp', 'nowhere', [], [null], ['x'], [443], [{ type: 300 }], [{ type: 8, code: -1 }], [{ type: 8, kode: 1 }], {}, { name: 'a' },
];

/** Every (container, key) inside a value. */
function slots(value: unknown, out: [Fields | unknown[], string | number][] = []): [Fields | unknown[], string | number][] {
  if (Array.isArray(value)) value.forEach((item, i) => (out.push([value, i]), slots(item, out)));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      out.push([value as Fields, key]);
      slots(item, out);
    }
  }
  return out;
}

test('with any one field of a valid document changed, the fast path declines or agrees with zod', () => {
  for (const base of documents(COMMON)) {
    for (let at = 0; at < slots(base).length; at++) {
      for (const value of [...ODD_VALUES, undefined]) {
        const doc = structuredClone(base);
        const [container, key] = slots(doc)[at]!;
        (container as Record<string | number, unknown>)[key] = structuredClone(value);
        agrees(doc, JSON.stringify(doc));
      }
    }
  }
});

test('on randomly mutated documents the fast path declines or agrees with zod', () => {
  const r = new Random(prng(7));
  const bases = [...documents(COMMON), ...Array.from({ length: 20 }, () => documents(randomPolicy(r, 24, { tenants: true }).yaml)).flat()];
  let declined = 0;
  for (let round = 0; round < 1500; round++) {
    const doc = structuredClone(r.pick(bases)) as Fields;
    for (let m = r.int(1, 2); m > 0; m--) {
      const all = slots(doc);
      const [container, key] = r.pick(all);
      const action = r.int(0, 3);
      if (action === 0) (container as Record<string | number, unknown>)[key] = structuredClone(r.pick(ODD_VALUES));
      else if (action === 1 && !Array.isArray(container)) delete container[key as string];
      else if (action === 2 && !Array.isArray(container)) {
        // defineProperty, so that "__proto__" becomes a key as JSON.parse makes it, not a prototype
        Object.defineProperty(container, r.pick(['colour', 'port', 'names', '__proto__']), { value: 1, enumerable: true, writable: true, configurable: true });
      }
      else (container as Record<string | number, unknown>)[key] = undefined;
    }
    if (!agrees(doc, JSON.stringify(doc))) declined++;
  }
  assert.ok(declined > 400, `mutations should mostly be declined, only ${declined} were`);
});
