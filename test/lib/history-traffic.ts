// SPDX-License-Identifier: Apache-2.0
// Known recorded traffic for the flow history's tests (unit: the store and queries; e2e: the
// fleet's stream): a seeded 90 minutes of sessions, summaries, floods and a policy record from
// enforcer e1, starting at `t0`, and the policy it was recorded under.
import type { AuditRecord, FloodRecord, PolicyRecord, SummaryRecord } from '../../src/audit/records.js';
import type { SessionRecord } from '../../src/audit/session-record.js';

export const MINUTE_MS = 60_000;

function session(t0: number, minute: number, src: string, dst: string, dport: number, verdict: 'allow' | 'deny', rule: string): SessionRecord {
  return {
    time: new Date(t0 + minute * MINUTE_MS + 1234).toISOString(), type: 'session', event: 'new', enforcer: 'e1', interface: 'eth1',
    verdict, reason: 'policy', protocol: 'tcp', src, dst, sport: 40000, dport, rule, generation: 1, cpu: 0, seq: 1,
  };
}

function summary(t0: number, minute: number, s: SessionRecord, packets: number, bytes: number): SummaryRecord {
  return { ...s, time: new Date(t0 + minute * MINUTE_MS + 5).toISOString(), type: 'summary', packets, bytes, totalPackets: packets, totalBytes: bytes, firstSeen: s.time, lastSeen: s.time } as unknown as SummaryRecord;
}

function flood(t0: number, minute: number, rule: string, heldBack: number): FloodRecord {
  const to = new Date(t0 + minute * MINUTE_MS + 10).toISOString();
  return { time: to, type: 'flood', enforcer: 'e1', interface: '*', rule, generation: 1, from: to, to, heldBack, packets: heldBack, bytes: heldBack * 60 };
}

/** A seeded day of traffic: 20 sources, 3 services, allow and deny, over 90 minutes. */
export function knownTraffic(t0: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let seed = 7;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (let i = 0; i < 600; i++) {
    const minute = rnd(90);
    const src = `10.9.${rnd(2)}.${1 + rnd(10)}`;
    const port = [22, 80, 443][rnd(3)]!;
    const verdict = port === 22 ? 'deny' : 'allow';
    const s = session(t0, minute, src, '10.1.0.5', port, verdict, verdict === 'deny' ? 'p/no-ssh' : 'p/web');
    records.push(s);
    if (rnd(2)) records.push(summary(t0, Math.min(89, minute + 1), s, 1 + rnd(50), 100 + rnd(5000)));
  }
  records.push(flood(t0, 30, 'p/no-ssh', 5000), flood(t0, 31, 'p/no-ssh', 7000));
  const policy: PolicyRecord = { time: new Date(t0).toISOString(), type: 'policy', enforcer: 'e1', interface: '*', status: 'installed', source: 'api', policyVersion: 'sha256:aa', generation: 1, rules: 2 };
  records.push(policy);
  return records;
}

/** The policy the traffic was recorded under (`never` gets no traffic). */
export const KNOWN_POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: p }
spec:
  defaultAction: deny
  rules:
    - { name: no-ssh, action: deny, from: [any], to: [10.1.0.0/24], protocol: tcp, ports: [22] }
    - { name: web, action: allow, from: [any], to: [10.1.0.0/24], protocol: tcp, ports: [80, 443] }
    - { name: never, action: allow, from: [any], to: [10.1.0.0/24], protocol: udp, ports: [53] }
`;

