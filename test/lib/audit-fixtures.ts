// SPDX-License-Identifier: Apache-2.0
// Audit records and policies the audit tests share: a fixed session record (with any field
// changed), a numbered stream of session records, the small web policy, and raw events as the
// native ring-buffer reader delivers them.
// Owns nothing.
import { writeStruct } from '../../src/abi/codec.js';
import { EVENT_SIZE, type RawEvent } from '../../src/abi/records.js';
import type { SessionRecord } from '../../src/audit/session-record.js';

/** One session record, as the docs show it; `extra` changes fields. */
export const sampleSession = (seq: number, extra: Partial<SessionRecord> = {}): SessionRecord => ({
  time: '2025-06-01T12:00:00.123Z',
  type: 'session',
  event: 'new',
  enforcer: 'edge-1',
  interface: 'eth1',
  verdict: 'deny',
  reason: 'policy',
  protocol: 'tcp',
  src: '192.0.2.10',
  dst: '10.1.2.3',
  sport: 40000,
  dport: 443,
  rule: 'web/https',
  policy: 'web',
  policyVersion: `sha256:${'ab'.repeat(32)}`,
  generation: 3,
  cpu: 1,
  seq,
  ...extra,
});

/** Session record number `i` of a stream (its `seq` is `i`): varied sources, ports, verdicts and rules. */
export function numberedSession(i: number, enforcer = 'edge-1.example.com'): SessionRecord {
  return {
    time: new Date(Date.UTC(2025, 5, 1, 12, 0, 0, i % 1000)).toISOString(),
    type: 'session',
    event: 'new',
    enforcer,
    interface: 'eth1',
    verdict: i % 3 === 0 ? 'deny' : 'allow',
    reason: 'policy',
    protocol: 'tcp',
    src: `198.18.${(i >> 8) & 255}.${i & 255}`,
    dst: '10.20.3.7',
    sport: 40000 + (i % 20000),
    dport: i % 3 === 0 ? 22 : 443,
    rule: i % 3 === 0 ? 'web-tier/default' : 'web-tier/https',
    policy: 'web-tier',
    policyVersion: 'sha256:6c1f',
    generation: 3,
    cpu: 1,
    seq: i,
  };
}

/** A small policy whose rules decide tcp/443, udp/53 and icmp. */
export const WEB_POLICY = `
apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - { name: https, action: allow, to: [10.1.0.0/16], protocol: tcp, ports: [443] }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
    - { name: ping, action: allow, protocol: icmp }
`;

/** The events as the native reader delivers them: [u32 length][ds_event], back to back. */
export function batchOf(events: readonly RawEvent[]): Buffer {
  const batch = Buffer.alloc(events.length * (4 + EVENT_SIZE));
  events.forEach((e, i) => {
    const at = i * (4 + EVENT_SIZE);
    batch.writeUInt32LE(EVENT_SIZE, at);
    writeStruct('ds_event', batch, at + 4, {
      time_ns: e.timeNs, seq: e.seq, src: e.src, dst: e.dst, ifindex: e.ifindex, rule: e.rule, generation: e.generation, cpu: e.cpu, len: e.len,
      vlan_outer: e.vlanOuter, vlan_inner: e.vlanInner, sport: e.sport, dport: e.dport, proto: e.proto, family: e.family, action: e.action, reason: e.reason, kind: e.kind,
    });
  });
  return batch;
}
