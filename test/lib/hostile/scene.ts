// SPDX-License-Identifier: Apache-2.0
// Hostile-frame generators, the world frames are aimed at: seeded random policies plus
// hand-written ones (neighbour-discovery and router ICMPv6 rules, ESP, mobility, UDP-Lite, rules
// scoped to tenants), management-prefix sets of both families (nested, with protocol and ports),
// and the addresses and ports all of them mention, so that frames hit rules and prefixes, their
// edges, and IPv4-mapped twins of IPv4 prefixes.
import type { FailsafeEntry } from '../../../src/engine/engine.js';
import { parseCidr } from '../../../src/policy/ir/cidr.js';
import type { Cidr } from '../../../src/policy/ir/ir.js';
import { type Random, randomPolicy } from '../random-policy.js';
import { parseIp } from '../packet.js';
import type { Bytes } from './wire.js';

/** "10.1.2.3" or "fd00::1" as 4 or 16 bytes. */
export const addressBytes = (text: string): Bytes => new Uint8Array(parseIp(text));

const HAND_WRITTEN = [
  `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: hostile-strict }
spec:
  defaultAction: deny
  rules:
    - { name: router-icmpv6, action: allow, protocol: icmpv6, icmp: [{ type: 133 }, { type: 134 }] }
    - { name: nd-global, action: allow, from: ["2001:db8::/32"], protocol: icmpv6, icmp: [{ type: 135 }, { type: 136 }] }
    - { name: no-redirects, action: deny, protocol: icmpv6, icmp: [{ type: 137 }] }
    - { name: esp, action: allow, protocol: esp }
    - { name: mobility, action: allow, from: ["fd00:1::/32"], protocol: 135 }
    - { name: dns, action: allow, to: [10.1.0.0/16, "fd00:1::/32"], protocol: udp, ports: [53, "1000-2000"] }
    - { name: web, action: allow, to: [10.1.0.0/16, "fd00:1::/32"], protocol: tcp, ports: [80, 443] }
    - { name: sctp, action: allow, protocol: sctp }
    - { name: ping, action: allow, protocol: icmp, icmp: [{ type: 8 }, { type: 0 }] }
    - { name: ping6, action: allow, protocol: icmpv6, icmp: [{ type: 128 }, { type: 129 }] }
    - { name: no-unreachable, action: deny, protocol: icmp, icmp: [{ type: 3, code: 4 }] }
    - { name: udplite, action: allow, protocol: 136 }
    - { name: v4-inside, action: allow, from: [10.1.0.0/16, 10.250.0.0/16], to: [10.1.0.0/16] }
    - { name: v6-inside, action: allow, from: ["fd00:1::/32", "fd00:250::/32"], to: ["fd00:1::/32"] }
`,
  `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: hostile-open }
spec:
  defaultAction: allow
  rules:
    - { name: no-ra, action: deny, protocol: icmpv6, icmp: [{ type: 134 }] }
    - { name: no-mobility, action: deny, protocol: 135 }
    - { name: no-telnet, action: deny, protocol: tcp, ports: [23] }
    - { name: no-fd00-2, action: deny, from: ["fd00:2::/32", 10.2.0.0/16] }
    - { name: no-udp-high, action: deny, protocol: udp, ports: ["40000-65535"] }
    - { name: no-quench, action: deny, protocol: icmp, icmp: [{ type: 4 }, { type: 5 }] }
`,
  `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: hostile-tenants }
spec:
  defaultAction: deny
  rules:
    - { name: a-web, action: allow, tenants: [vpc-a], protocol: tcp, ports: [80, 443] }
    - { name: b-all, action: allow, tenants: [vpc-b], to: [10.1.0.0/16, "fd00:1::/32"] }
    - { name: icmp-all, action: allow, protocol: icmp }
    - { name: icmpv6-all, action: allow, protocol: icmpv6 }
    - { name: a-deny, action: deny, tenants: [vpc-a], from: [10.2.0.0/16] }
    - { name: udp, action: allow, protocol: udp }
`,
];

const prefix = (text: string): Cidr => {
  const c = parseCidr(text);
  if ('problem' in c) throw new Error(c.problem);
  return c;
};

/** Management-prefix sets a run of frames may start with (none, or nested prefixes of both families). */
export const FAILSAFE_SETS: readonly (readonly FailsafeEntry[])[] = [
  [],
  [
    { cidr: prefix('10.250.0.0/16') },
    { cidr: prefix('10.250.1.0/24'), protocol: 6, ports: { lo: 22, hi: 22 } },
    { cidr: prefix('fd00:250::/32') },
    { cidr: prefix('fd00:250:1::/48'), protocol: 17 },
  ],
  [
    { cidr: prefix('10.250.0.0/16'), protocol: 17, ports: { lo: 1000, hi: 2000 } },
    { cidr: prefix('10.250.1.2/32') },
    { cidr: prefix('fd00:250::/32'), protocol: 58 },
    { cidr: prefix('10.1.0.0/16'), protocol: 1 },
  ],
];

export interface Scene {
  /** Policies as YAML: hand-written first, then random. */
  policies: string[];
  v4: Bytes[];
  v6: Bytes[];
  /** Addresses inside (and at the edges of) the management prefixes. */
  mgmt4: Bytes[];
  mgmt6: Bytes[];
  ports: number[];
}

export function buildScene(r: Random, randomPolicies: number): Scene {
  const v4 = new Set(['10.1.2.3', '10.1.255.255', '10.2.0.1', '10.9.9.9', '10.250.1.2', '192.0.2.1']);
  const v6 = new Set(['fd00:1::1', 'fd00:1:ffff::9', 'fd00:2::1', 'fd00:9::9', 'fd00:250:1::2', '2001:db8::1', '2001:db8:1::2']);
  const ports = new Set([0, 1, 22, 23, 53, 80, 443, 1000, 2000, 2001, 38412, 40000, 65535]);
  const policies = [...HAND_WRITTEN];
  for (let i = 0; i < randomPolicies; i++) {
    const p = randomPolicy(r, 24, { tenants: i % 2 === 1 });
    policies.push(p.yaml);
    for (const a of p.addresses.v4) v4.add(a);
    for (const a of p.addresses.v6) v6.add(a);
    for (const port of p.ports) ports.add(port);
  }
  return {
    policies,
    v4: [...v4].map(addressBytes),
    v6: [...v6].map(addressBytes),
    mgmt4: ['10.250.0.0', '10.250.1.1', '10.250.1.2', '10.250.255.255', '10.251.0.1'].map(addressBytes),
    mgmt6: ['fd00:250::1', 'fd00:250:1::1', 'fd00:250:ffff::1', 'fd00:251::1'].map(addressBytes),
    ports: [...ports],
  };
}
