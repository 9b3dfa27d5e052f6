// SPDX-License-Identifier: Apache-2.0
// Seeded random policies and packets for differential tests: nested and overlapping prefixes of
// both families, groups, "any", every protocol shape, port lists and ranges, ICMP types, (on
// request) rules scoped to tenants — and packets aimed at the edges of what the policy mentions.
import { tenantId } from '../../src/policy/ir/tenants.js';
import type { FrameSpec } from './packet.js';

/** mulberry32: small, fast, good enough for test inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Random {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const V4_OCTETS = [0, 1, 2, 3, 128, 255];
const V4_LENS = [0, 8, 12, 16, 20, 24, 26, 30, 32];
const V6_GROUPS = [0, 1, 2, 0xff];
const V6_LENS = [0, 16, 32, 48, 64, 100, 127, 128];

function v4Address(r: Random): number[] {
  return [10, r.pick(V4_OCTETS), r.pick(V4_OCTETS), r.pick(V4_OCTETS)];
}
function v6Address(r: Random): number[] {
  return [0xfd00, r.pick(V6_GROUPS), r.pick(V6_GROUPS), 0, 0, 0, r.pick(V6_GROUPS), r.pick(V6_GROUPS)];
}

function maskV4(a: number[], len: number): number[] {
  const n = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
  const m = len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0;
  return [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255];
}
function maskV6(a: number[], len: number): number[] {
  return a.map((g, i) => {
    const bits = Math.max(0, Math.min(16, len - i * 16));
    return bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff);
  });
}
const fmt4 = (a: number[]) => a.join('.');
const fmt6 = (a: number[]) => a.map((g) => g.toString(16)).join(':');

export interface RandomCidr {
  family: 4 | 6;
  text: string;
  /** A few addresses inside it (first, last, middle). */
  inside: string[];
}

export function randomCidr(r: Random): RandomCidr {
  if (r.chance(0.65)) {
    const len = r.pick(V4_LENS);
    const base = maskV4(v4Address(r), len);
    const n = ((base[0]! << 24) | (base[1]! << 16) | (base[2]! << 8) | base[3]!) >>> 0;
    const size = len === 0 ? 2 ** 32 : 2 ** (32 - len);
    const at = (k: number) => {
      const x = (n + k) >>> 0;
      return fmt4([x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
    };
    // stay inside 10.0.0.0/8 for the sample addresses even when the prefix is wider
    const inside = len < 8 ? ['10.1.2.3', '10.255.0.1'] : [at(0), at(size - 1), at(Math.floor(size / 2))];
    return { family: 4, text: `${fmt4(base)}/${len}`, inside };
  }
  const len = r.pick(V6_LENS);
  const base = maskV6(v6Address(r), len);
  const last = base.map((g, i) => {
    const bits = Math.max(0, Math.min(16, len - i * 16));
    return g | (0xffff >>> bits);
  });
  const inside = len < 16 ? ['fd00:1::1', 'fd00:ff::2'] : [fmt6(base), fmt6(last)];
  return { family: 6, text: `${fmt6(base)}/${len}`, inside };
}

export interface RandomPolicy {
  yaml: string;
  /** Every address the policy mentions (inside its prefixes), to aim packets at. */
  addresses: { v4: string[]; v6: string[] };
  ports: number[];
  /** The tenants the policy may scope rules to (empty unless asked for). */
  tenants: readonly string[];
}

export interface RandomPolicyOptions {
  /** Scope some policies (spec.tenants) and rules (tenants, sometimes [any]) to tenants of TENANTS. */
  tenants?: boolean;
}

/** The tenants random policies scope rules to; packets also come from none and from one no rule names. */
export const TENANTS = ['vpc-a', 'vpc-b', 'vpc-c'] as const;
export const UNNAMED_TENANT = 'vpc-z';

const PROTOCOLS = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 'any', 'gre', 47, 50] as const;

function tenantList(r: Random): string {
  const picked = TENANTS.filter(() => r.chance(0.5));
  return `[${(picked.length ? picked : [r.pick(TENANTS)]).join(', ')}]`;
}

export function randomPolicy(r: Random, maxRules = 24, options: RandomPolicyOptions = {}): RandomPolicy {
  const addresses = { v4: ['10.200.0.1', '10.0.0.0'], v6: ['fd00:abcd::1'] };
  const ports = [0, 1, 53, 80, 443, 65535];
  const remember = (c: RandomCidr) => {
    (c.family === 4 ? addresses.v4 : addresses.v6).push(...c.inside);
    return JSON.stringify(c.text);
  };
  const groups: string[] = [];
  const docs: string[] = [];
  const groupCount = r.int(0, 3);
  for (let g = 0; g < groupCount; g++) {
    const cidrs = Array.from({ length: r.int(1, 4) }, () => remember(randomCidr(r)));
    groups.push(`group-${g}`);
    docs.push(`apiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: group-${g} }\nspec: { cidrs: [${cidrs.join(', ')}] }\n`);
  }
  const addressList = () => {
    if (r.chance(0.2)) return '[any]';
    const items = Array.from({ length: r.int(1, 3) }, () => (groups.length && r.chance(0.3) ? r.pick(groups) : remember(randomCidr(r))));
    return `[${items.join(', ')}]`;
  };
  const rules: string[] = [];
  const count = r.int(0, maxRules);
  for (let i = 0; i < count; i++) {
    const parts = [`name: r${i}`, `action: ${r.pick(['allow', 'deny'])}`];
    if (r.chance(0.3)) parts.push(`priority: ${r.int(0, 2000)}`);
    if (r.chance(0.8)) parts.push(`from: ${addressList()}`);
    if (r.chance(0.8)) parts.push(`to: ${addressList()}`);
    const protocol = r.chance(0.85) ? r.pick(PROTOCOLS) : undefined;
    if (protocol !== undefined) parts.push(`protocol: ${protocol}`);
    if (['tcp', 'udp', 'sctp'].includes(String(protocol)) && r.chance(0.75)) {
      const list = Array.from({ length: r.int(1, 3) }, () => {
        const lo = r.pick([1, 22, 53, 80, 443, 1024, 8000, 65535, r.int(1, 65535)]);
        ports.push(lo, Math.max(1, lo - 1), Math.min(65535, lo + 1));
        if (r.chance(0.4)) {
          const hi = Math.min(65535, lo + r.int(0, 2000));
          ports.push(hi, Math.min(65535, hi + 1));
          return `"${lo}-${hi}"`;
        }
        return String(lo);
      });
      parts.push(`ports: [${list.join(', ')}]`);
    }
    if ((protocol === 'icmp' || protocol === 'icmpv6') && r.chance(0.75)) {
      const list = Array.from({ length: r.int(1, 2) }, () =>
        r.chance(0.5) ? `{ type: ${r.pick([0, 3, 8, 11, 128, 129, 135])} }` : `{ type: ${r.pick([3, 8, 1, 128])}, code: ${r.pick([0, 1, 4])} }`,
      );
      parts.push(`icmp: [${list.join(', ')}]`);
    }
    if (r.chance(0.1)) parts.push('log: false');
    if (options.tenants && r.chance(0.35)) parts.push(`tenants: ${r.chance(0.15) ? '[any]' : tenantList(r)}`);
    rules.push(`    - { ${parts.join(', ')} }`);
  }
  const specTenants = options.tenants && r.chance(0.3) ? `  tenants: ${tenantList(r)}\n` : '';
  const policy = `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: random }\nspec:\n  defaultAction: ${r.pick(['allow', 'deny'])}\n${specTenants}  rules:${rules.length ? `\n${rules.join('\n')}` : ' []'}\n`;
  return { yaml: [policy, ...docs].join('---\n'), addresses, ports, tenants: options.tenants ? TENANTS : [] };
}

/** The tenant id a random packet comes from: none, one the policy may name, or one it never names. */
export function randomTenant(r: Random, p: RandomPolicy): number {
  if (p.tenants.length === 0 || r.chance(0.25)) return 0;
  return tenantId(r.chance(0.15) ? UNNAMED_TENANT : r.pick(p.tenants));
}

export function randomPacket(r: Random, p: RandomPolicy): FrameSpec {
  const v6 = r.chance(0.35);
  const pool = v6 ? p.addresses.v6 : p.addresses.v4;
  const address = () => (r.chance(0.85) ? r.pick(pool) : v6 ? `fd00:${r.int(0, 3)}::${r.int(1, 9)}` : `10.${r.int(0, 3)}.${r.int(0, 3)}.${r.int(0, 255)}`);
  const proto = r.pick([6, 6, 17, 17, 132, v6 ? 58 : 1, v6 ? 1 : 58, 47, 50, 4]);
  const spec: FrameSpec = { src: address(), dst: address(), proto, sport: r.int(1, 65535) };
  if (proto === 6 || proto === 17 || proto === 132) spec.dport = r.chance(0.8) ? r.pick(p.ports) : r.int(0, 65535);
  if (proto === 1 || proto === 58) {
    spec.icmpType = r.pick([0, 3, 8, 11, 13, 128, 129, 135, 136]);
    spec.icmpCode = r.pick([0, 0, 1, 4]);
    spec.icmpId = r.int(0, 65535);
  }
  return spec;
}
