// SPDX-License-Identifier: Apache-2.0
// Audit records → the flow history's rows, aggregated in memory until the store takes them: per
// minute and flow (enforcer, interface, tenant, verdict, reason, rule, protocol, addresses, port
// or ICMP type/code), the sessions that began and the packets and bytes summaries counted; per
// minute and rule, the sessions floods held back; and every policy record as it came. Exact
// records are not kept: a session record adds one session to its flow's minute. Pure.
import type { AuditRecord, FloodRecord, PolicyRecord, SummaryRecord } from '../audit/records.js';
import type { SessionRecord } from '../audit/session-record.js';
import { protocolNumber } from '../policy/ir/protocols.js';

export const MINUTE_MS = 60_000;

/** One flow in one minute. `port` is the destination port, or (type << 8 | code) for ICMP, or -1. */
export interface FlowRow {
  minute: number;
  enforcer: string;
  iface: string;
  tenant: string;
  verdict: string;
  reason: string;
  rule: string;
  proto: number;
  src: string;
  dst: string;
  port: number;
  sessions: number;
  packets: number;
  bytes: number;
}

/** A row's `port` as text: the port, `type T code C` for ICMP, or '' when the flow has none. */
export function portText(proto: number, port: number): string {
  if (port < 0) return '';
  return proto === 1 || proto === 58 ? `type ${port >> 8} code ${port & 0xff}` : String(port);
}

/** One rule's held-back denied sessions in one minute (flood records). */
export interface FloodRow {
  minute: number;
  enforcer: string;
  rule: string;
  held: number;
  packets: number;
  bytes: number;
}

/** A policy record: the version history. */
export interface PolicyRow {
  time: number;
  enforcer: string;
  status: string;
  version: string;
  generation: number;
  rules: number;
  source: string;
}

export interface HistoryRows {
  flows: FlowRow[];
  floods: FloodRow[];
  policies: PolicyRow[];
}

/** Records gathered between two flushes; `take()` hands the rows over and starts afresh. */
export class RowAggregator {
  private flows = new Map<string, FlowRow>();
  private floods = new Map<string, FloodRow>();
  private policies: PolicyRow[] = [];
  /** Records turned into rows since the last take(). */
  records = 0;

  add(r: AuditRecord): void {
    switch (r.type) {
      case 'session':
        this.addFlow(r, 1, 0, 0, r.reason, r.tenant ?? '');
        break;
      case 'summary':
        this.addFlow(r, 0, r.packets, r.bytes, 'policy', '');
        break;
      case 'flood':
        this.addFlood(r);
        break;
      case 'policy':
        this.addPolicy(r);
        break;
      default:
        return; // lost and agent records: the JSON trail keeps them
    }
    this.records++;
  }

  get size(): number {
    return this.flows.size + this.floods.size + this.policies.length;
  }

  take(): HistoryRows {
    const rows = { flows: [...this.flows.values()], floods: [...this.floods.values()], policies: this.policies };
    this.flows = new Map();
    this.floods = new Map();
    this.policies = [];
    this.records = 0;
    return rows;
  }

  private addFlow(r: SessionRecord | SummaryRecord, sessions: number, packets: number, bytes: number, reason: string, tenant: string): void {
    const minute = minuteOf(r.time);
    const proto = protocolOf(r.protocol);
    const port = r.dport ?? (r.icmpType !== undefined ? (r.icmpType << 8) | (r.icmpCode ?? 0) : -1);
    // a summary's reason is its session's: `policy` unless the rule names another (failsafe, reply, …)
    const why = r.type === 'summary' && !r.rule.includes('/') ? r.rule : reason;
    const key = `${minute}|${r.enforcer}|${r.interface}|${tenant}|${r.verdict}|${why}|${r.rule}|${proto}|${r.src}|${r.dst}|${port}`;
    const row = this.flows.get(key);
    if (row) {
      row.sessions += sessions;
      row.packets += packets;
      row.bytes += bytes;
      return;
    }
    this.flows.set(key, { minute, enforcer: r.enforcer, iface: r.interface, tenant, verdict: r.verdict, reason: why, rule: r.rule, proto, src: r.src, dst: r.dst, port, sessions, packets, bytes });
  }

  private addFlood(r: FloodRecord): void {
    const minute = minuteOf(r.to);
    const key = `${minute}|${r.enforcer}|${r.rule}`;
    const row = this.floods.get(key);
    if (row) {
      row.held += r.heldBack;
      row.packets += r.packets;
      row.bytes += r.bytes;
      return;
    }
    this.floods.set(key, { minute, enforcer: r.enforcer, rule: r.rule, held: r.heldBack, packets: r.packets, bytes: r.bytes });
  }

  private addPolicy(r: PolicyRecord): void {
    this.policies.push({
      time: Date.parse(r.time),
      enforcer: r.enforcer,
      status: r.status,
      version: r.policyVersion ?? r.inForce ?? '',
      generation: r.generation ?? 0,
      rules: r.rules ?? 0,
      source: r.source ?? '',
    });
  }
}

/** The minute of an RFC 3339 UTC time (`…T16:42:11.123Z`), its first 16 characters parsed once. */
const minutes = new Map<string, number>();
function minuteOf(time: string): number {
  const key = time.slice(0, 16);
  let m = minutes.get(key);
  if (m === undefined) {
    const ms = Date.parse(time);
    m = ms - (ms % MINUTE_MS);
    if (time.endsWith('Z')) {
      if (minutes.size > 10_000) minutes.clear();
      minutes.set(key, m);
    }
  }
  return m;
}

const protocols = new Map<string, number>();
function protocolOf(text: string): number {
  let p = protocols.get(text);
  if (p === undefined) {
    p = protocolNumber(text.replace(/^protocol /, '')) ?? 255;
    if (protocols.size < 1024) protocols.set(text, p);
  }
  return p;
}
