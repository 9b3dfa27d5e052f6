// SPDX-License-Identifier: Apache-2.0
// Reference datapath, expected replies (docs/datapath.md step 4a): the reply a flow expects (the
// tuple reversed; for an echo request the echo reply with the same identifier and code; no other
// ICMP message expects one), and the text of its key in ds_replies: the tuple with the role
// ("side") and tenant of the interface it arrives on. The key carries no interface index and no
// VLANs: the doc names only the tuple, tenant and role.
import { hex } from './bytes.js';
import type { Side } from './roles.js';

export interface Tuple {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  sport: number;
  dport: number;
}

/** ICMP echo request → reply types of protocol 1 and 58 (in either family). */
const ECHO: Record<number, { request: number; reply: number }> = { 1: { request: 8, reply: 0 }, 58: { request: 128, reply: 129 } };

/**
 * The reply `t` expects: addresses and ports swapped; an echo request's is the echo reply with the
 * same identifier and code (ports: identifier, reply type · 256 + code). Any other ICMP or ICMPv6
 * message expects none (null), as "ICMP errors" says of quotes: for an ICMP message only the echo
 * pair are request and reply. (Step 4a says only "the tuple reversed; for an echo request the echo
 * reply"; the engine remembers nothing a reply could match for other ICMP messages.)
 */
export function expectedReply(t: Tuple): Tuple | null {
  const echo = ECHO[t.proto];
  if (echo) return t.dport >> 8 === echo.request ? { ...t, src: t.dst, dst: t.src, sport: t.sport, dport: (echo.reply << 8) | (t.dport & 0xff) } : null;
  return { family: t.family, src: t.dst, dst: t.src, proto: t.proto, sport: t.dport, dport: t.sport };
}

export function replyKey(t: Tuple, side: Side, tenant: number): string {
  return `${t.family} ${hex(t.src)} ${hex(t.dst)} p${t.proto} ${t.sport}>${t.dport} ${side} t${tenant}`;
}
