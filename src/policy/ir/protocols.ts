// SPDX-License-Identifier: Apache-2.0
// IP protocol names the policy language accepts, and which protocols carry ports or ICMP type/code.

/** Names accepted for `protocol:` (IANA protocol numbers). */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = Object.freeze({
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  ospf: 89,
  pim: 103,
  vrrp: 112,
  l2tp: 115,
  sctp: 132,
});

/** Protocols whose rules may list destination `ports`: tcp, udp, sctp. */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);

/** Protocols whose rules may list `icmp` type/code: icmp, icmpv6. */
export const ICMP_PROTOCOLS: ReadonlySet<number> = new Set([1, 58]);

/** A protocol as an operator types it on a command line or in settings: a name (any case) or
 *  a number 0-255; undefined otherwise. */
export function protocolNumber(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (Object.hasOwn(PROTOCOL_NUMBERS, t)) return PROTOCOL_NUMBERS[t];
  return /^(0|[1-9]\d{0,2})$/.test(t) && Number(t) <= 255 ? Number(t) : undefined;
}

/**
 * What a datapath flow key's protocol gives it: ports (tcp, udp, sctp), or ICMP type and code
 * (the key keeps `type << 8 | code` in dport).
 */
export function setPortFields(
  t: { sport?: number; dport?: number; icmpType?: number; icmpCode?: number },
  k: { proto: number; sport: number; dport: number },
): void {
  if (PORT_PROTOCOLS.has(k.proto)) {
    t.sport = k.sport;
    t.dport = k.dport;
  } else if (ICMP_PROTOCOLS.has(k.proto)) {
    t.icmpType = k.dport >> 8;
    t.icmpCode = k.dport & 0xff;
  }
}

/** "tcp" for 6, "protocol 250" for numbers without a name; used in messages. */
export function protocolLabel(protocol: number | 'any'): string {
  if (protocol === 'any') return 'any';
  const name = Object.keys(PROTOCOL_NUMBERS).find((k) => PROTOCOL_NUMBERS[k] === protocol);
  return name ?? `protocol ${protocol}`;
}
