// SPDX-License-Identifier: Apache-2.0
// session-record-fast.ts (the pipeline's cached path from a raw event to its session record)
// against its specification, session-record.ts's sessionRecord(): the same records, times
// included, for thousands of random events of every shape (IPv4 and IPv6, ported, ICMP and other
// protocols, VLAN tags, every reason, known and unknown generations and interfaces, new and
// changed), as plain events and as the native reader's batches decode them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, EventKind, Reason } from '../../src/abi/generated.js';
import type { RawEvent } from '../../src/abi/records.js';
import { decodeEventBatch } from '../../src/abi/records-fast.js';
import { type EnrichContext, sessionRecord } from '../../src/audit/session-record.js';
import { Enricher } from '../../src/audit/session-record-fast.js';
import { compileSources } from '../../src/policy/compile.js';
import { batchOf, WEB_POLICY } from '../lib/audit-fixtures.js';
import { prng, Random } from '../lib/random-policy.js';
import { ruleNamesOf } from '../../src/audit/rule-names.js';

const POLICY = `${WEB_POLICY}---
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: edge }
spec:
  defaultAction: allow
  rules:
    - { name: block, action: deny, protocol: sctp }
`;
const { ir } = compileSources([{ file: 'web.yaml', text: POLICY }]);
const context: EnrichContext = { enforcer: 'edge-1', interfaces: new Map([[3, 'eth1'], [4, 'bond0.100']]), policies: new Map([[7, ruleNamesOf(ir)], [8, ruleNamesOf(ir)]]) };

function randomEvents(r: Random, n: number): RawEvent[] {
  const address = (family: 4 | 6) => {
    const a = new Uint8Array(16);
    if (family === 4) {
      a[10] = 0xff;
      a[11] = 0xff;
      for (let i = 12; i < 16; i++) a[i] = r.int(0, 255);
    } else for (let i = 0; i < 16; i++) a[i] = r.chance(0.5) ? 0 : r.int(0, 255);
    return a;
  };
  return Array.from({ length: n }, (_, i) => {
    const family = r.chance(0.8) ? 4 : 6;
    return {
      family,
      src: address(family),
      dst: address(family),
      ifindex: r.pick([3, 4, 42]),
      vlanOuter: r.chance(0.8) ? 0 : r.int(1, 4094),
      vlanInner: r.chance(0.9) ? 0 : r.int(1, 4094),
      proto: r.pick([6, 17, 132, 1, 58, 47, 250]),
      sport: r.int(0, 65535),
      dport: r.int(0, 65535),
      timeNs: BigInt(r.int(0, 2 ** 31)) * 1_000_000n + BigInt(r.int(0, 999_999)),
      seq: i + 1,
      rule: r.int(0, 5),
      generation: r.pick([0, 7, 8, 99]),
      cpu: r.int(0, 7),
      len: r.int(40, 1500),
      action: r.pick([Action.ALLOW, Action.DENY]),
      reason: r.chance(0.7) ? Reason.POLICY : r.int(0, Reason.COUNT - 1),
      kind: r.pick([EventKind.NEW, EventKind.CHANGED]),
    } satisfies RawEvent;
  });
}

describe('session-record-fast: the same records as sessionRecord()', () => {
  it('on random events, plain and batch-decoded', () => {
    const events = randomEvents(new Random(prng(0x5e55)), 4000);
    // the monotonic clock read as wall time with no offset, on both sides
    const reference = events.map((e) => sessionRecord(e, context, (ns) => new Date(Number(ns / 1_000_000n))));
    const plain = new Enricher(context, 0);
    assert.deepEqual(events.map((e) => plain.session(e)), reference);
    const batched = new Enricher(context, 0);
    assert.deepEqual(decodeEventBatch(batchOf(events), events.length).map((e) => batched.session(e)), reference);
  });
});
