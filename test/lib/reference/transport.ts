// SPDX-License-Identifier: Apache-2.0
// Reference datapath, the transport header (docs/datapath.md "Transport header", and the quoted
// transport header of "ICMP errors"): how many bytes each protocol needs inside the datagram and
// which ports it gives the flow key.
import { u16 } from './bytes.js';

export interface Ports {
  sport: number;
  dport: number;
}

const NO_PORTS: Ports = { sport: 0, dport: 0 };

/** Is this ICMP (1) or ICMPv6 (58) type an echo request or reply of its protocol? */
export function isEcho(proto: number, type: number): boolean {
  return proto === 1 ? type === 8 || type === 0 : type === 128 || type === 129;
}

/**
 * The key ports of protocol `proto`'s header at `at`, every byte needed inside [at, end), or why it
 * is malformed. In a quote (`quote`) six protocols need their first 8 bytes only.
 */
export function readPorts(f: Uint8Array, proto: number, at: number, end: number, quote: boolean): Ports | string {
  const need = (n: number, what: string) => (at + n > end ? `${quote ? 'ICMP quote' : 'Transport header'}: ${what} needs ${n} bytes` : null);
  switch (proto) {
    case 6: {
      const short = need(quote ? 8 : 20, 'TCP');
      if (short) return short;
      if (!quote) {
        const offset = (f[at + 12] as number) >> 4;
        if (offset < 5) return 'Transport header: TCP data offset < 5';
        if (at + offset * 4 > end) return 'Transport header: TCP data offset beyond the datagram';
      }
      return { sport: u16(f, at), dport: u16(f, at + 2) };
    }
    case 17:
    case 136:
    case 132: {
      const short = need(proto === 132 && !quote ? 12 : 8, proto === 132 ? 'SCTP' : 'UDP');
      return short ?? { sport: u16(f, at), dport: u16(f, at + 2) };
    }
    case 1:
    case 58: {
      const short = need(8, proto === 1 ? 'ICMP' : 'ICMPv6');
      if (short) return short;
      const type = f[at] as number;
      return { sport: isEcho(proto, type) ? u16(f, at + 4) : 0, dport: (type << 8) | (f[at + 1] as number) };
    }
    default:
      return NO_PORTS;
  }
}
