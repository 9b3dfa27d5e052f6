// SPDX-License-Identifier: Apache-2.0
// The internal policy language (IR) and the class tables compiled from it.
// Owns: the shapes every compiler stage hands to the next. Pure types, no logic.
//
// A policy *set* (all NetworkPolicy and AddressGroup documents given together) becomes one
// `PolicyIr`: a flat, ordered list of rules where the first match wins and `defaultAction`
// applies when none does. Rule index 0 is reserved for the default; rules are numbered 1..N
// in evaluation order, and that index is what the datapath reports as the deciding rule.

/** An IP prefix, normalized: host bits zero, canonical text form ("10.0.0.0/8", "2001:db8::/32"). */
export interface Cidr {
  family: 4 | 6;
  /**
   * Network address as bytes in network order: 4 bytes for IPv4, 16 for IPv6. May be a view into
   * a shared buffer (the compiler packs IPv4 addresses into slabs): honour its byteOffset.
   */
  addr: Uint8Array;
  len: number;
  text: string;
}

export type Action = 'allow' | 'deny';

/** A tenant a rule is scoped to: its name and the id the datapath knows it by (tenantId(name)). */
export interface Tenant {
  name: string;
  id: number;
}

/** A closed range of 16-bit values: destination ports, or (type << 8 | code) for ICMP. */
export interface Range {
  lo: number;
  hi: number;
}

export interface IrRule {
  /** 1-based position in evaluation order; the id the datapath reports. */
  index: number;
  /** `<policy>/<rule>` — unique within a policy set. */
  id: string;
  policy: string;
  name: string;
  action: Action;
  log: boolean;
  /** Effective priority (lower first); rules without one get DEFAULT_PRIORITY. */
  priority: number;
  /** Normalized: merged, sorted by family then address then length; never empty. "any" = 0.0.0.0/0 and ::/0. */
  src: Cidr[];
  dst: Cidr[];
  /** IP protocol number, or 'any'. */
  protocol: number | 'any';
  /** Destination-port ranges (tcp, udp, sctp) or ICMP (type<<8|code) ranges; null = any. Merged, sorted. */
  ports: Range[] | null;
  /**
   * The tenants whose traffic the rule applies to (packets arriving on their source interfaces),
   * sorted by name, without repeats; null = every tenant, and traffic from interfaces without one.
   */
  tenants: Tenant[] | null;
  /** Where the rule was written: for error messages and `explain`. */
  source: { file: string; line: number };
}

export interface PolicyIr {
  /** Content hash of the canonical serialization: "sha256:<64 hex>". The policy version. */
  version: string;
  defaultAction: Action;
  defaultLog: boolean;
  rules: IrRule[];
  /** Names of the NetworkPolicy documents that contributed, in order. */
  policies: string[];
}

/** A packet's classification-relevant fields, as the datapath sees them. */
export interface FlowTuple {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  /** Destination port for tcp/udp/sctp; undefined otherwise. */
  dport?: number;
  sport?: number;
  /** ICMP / ICMPv6 type and code. */
  icmpType?: number;
  icmpCode?: number;
  /** The tenant id of the interface the packet arrives on (tenantId(name)); 0 or absent = none. */
  tenant?: number;
}

export interface Decision {
  action: Action;
  /** Deciding rule index; 0 = the policy default. */
  rule: number;
}

// ---- class tables: what the datapath's lookup structures hold (see docs/datapath.md) ----

/** One prefix of an address dimension and the class (set of rules containing it) it maps to. */
export interface PrefixClass {
  cidr: Cidr;
  cls: number;
}

/** Service index space: kind * 65536 + value. Kind order is fixed and shared with bpf/include/abi.h. */
export const SVC_KIND = { tcp: 0, udp: 1, sctp: 2, icmp: 3, icmpv6: 4, other: 5 } as const;
export const SVC_SPAN = 65536;
export const SVC_ENTRIES = 6 * SVC_SPAN;

export interface ClassTables {
  /** Address → class, longest prefix wins. Class 0 = matches no rule (no entry needed). */
  src4: PrefixClass[];
  src6: PrefixClass[];
  dst4: PrefixClass[];
  dst6: PrefixClass[];
  /** Service index → class, as runs of equal class covering [0, SVC_ENTRIES). */
  svc: { lo: number; hi: number; cls: number }[];
  /**
   * (dst class, svc class) → target class: the rules matching both that apply to every tenant (0 =
   * none), for every non-empty intersection. `scoped` ≠ 0 when some rules matching both are scoped
   * to tenants: it names the intersection in `tenantTarget`; 0 in a policy without scoped rules.
   */
  target: { dst: number; svc: number; target: number; scoped: number }[];
  /** Tenant id → tenant class (a distinct set of scoped rules), for every tenant a rule names. */
  tenants: { id: number; name: string; cls: number }[];
  /**
   * (scoped, tenant class) → target class for a packet from such a tenant: the intersection's rules
   * for every tenant plus those scoped to it. Only where some of them are scoped to it; a miss means
   * the `target` of the (dst, svc) entry.
   */
  tenantTarget: { scoped: number; tenant: number; target: number }[];
  /**
   * (src class, target class) → first matching rule. `src` 0 is the wildcard row: the first rule
   * whose source is "any" (both families), which every source class holds. An entry with a real
   * source class exists only where it decides earlier than the wildcard row does.
   */
  verdict: { src: number; target: number; rule: number }[];
  /** Sizes for the report and for sizing maps. */
  stats: { srcClasses: number; dstClasses: number; svcClasses: number; targetClasses: number; tenantClasses: number };
}

export const DEFAULT_PRIORITY = 1000;
