// SPDX-License-Identifier: Apache-2.0
// The audit records doorstep writes, one JSON line each, and the sink contract every
// destination (JSON lines, live observers, later NATS) implements. docs/audit.md lists the fields.
import type { SessionRecord } from './session-record.js';

export type { SessionRecord };

/** Fields every record carries. `interface` is "*" for records about the whole enforcer. */
export interface RecordBase {
  /** RFC 3339, millisecond precision, UTC. */
  time: string;
  enforcer: string;
  interface: string;
}

/** A flow and its decision: what session and summary records (and session views) share. */
export interface FlowFields {
  verdict: 'allow' | 'deny';
  protocol: string;
  src: string;
  dst: string;
  /** Only where the protocol has ports (tcp, udp, sctp). */
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  vlan?: number[];
  /** `<policy>/<rule>`, `<policy>/default`, or the reason when no rule decided. */
  rule: string;
}

/** Periodic counts for a session with traffic since the previous summary (never one record per packet). */
export interface SummaryRecord extends RecordBase, FlowFields {
  type: 'summary';
  policy?: string;
  policyVersion?: string;
  generation: number;
  /** Packets and bytes since the previous summary of this session. */
  packets: number;
  bytes: number;
  /** Since the session was first seen. */
  totalPackets: number;
  totalBytes: number;
  firstSeen: string;
  lastSeen: string;
}

export interface PolicyProblemRecord {
  code: string;
  file: string;
  line: number;
  column: number;
  field: string;
  message: string;
}

/** A policy version installed, adopted from a previous agent, restored from the state dir, or rejected. */
export interface PolicyRecord extends RecordBase {
  type: 'policy';
  status: 'installed' | 'adopted' | 'restored' | 'rejected';
  /** Where the version came from: `file:/etc/doorstep/policy`, `api`, `state`, `nats:…`. */
  source: string;
  policyVersion?: string;
  generation?: number;
  rules?: number;
  installMs?: number;
  warnings?: string[];
  /** Why a version was rejected: each problem with file, line and field. */
  problems?: PolicyProblemRecord[];
  /** The version that stays in force after a rejection. */
  inForce?: string;
}

/** Events that never became records, with exact counts. */
export interface LostRecord extends RecordBase {
  type: 'lost';
  /** `ring-buffer`: the kernel could not reserve space (counted by sequence gaps and the kernel counter);
   *  `sink`: a sink could not keep up or was unreachable. */
  cause: 'ring-buffer' | 'sink';
  /** Which sink dropped them (cause sink): `file`, `stdout`, `nats:<stream>`. */
  sink?: string;
  count: number;
  cpu?: number;
  /** First and last missing sequence numbers (ring-buffer losses seen as a gap on one CPU). */
  firstSeq?: number;
  lastSeq?: number;
}

/**
 * Denied sessions whose `session` record the datapath's event budget held back (a flood), for one
 * rule over one interval: with the session records of the same rule they count its denied
 * sessions exactly; `packets` and `bytes` are the rule's over the interval.
 */
export interface FloodRecord extends RecordBase {
  type: 'flood';
  /** `<policy>/<rule>`, `<policy>/default`, or `no-rule` for denies no counted rule decided. */
  rule: string;
  policy?: string;
  policyVersion?: string;
  generation: number;
  /** The interval: the previous reading and this one. */
  from: string;
  to: string;
  /** Denied sessions that got no session record. */
  heldBack: number;
  packets: number;
  bytes: number;
  /** Distinct sources among the held-back sessions: an estimate (HyperLogLog, ~18 % standard error). */
  distinctSources?: number;
  /** How many held-back sessions of this rule the datapath's sample held when it was read. */
  sampled?: number;
  /** The sources and prefixes (IPv4 /24, IPv6 /48) most frequent in the sample, with the held-back sessions each is estimated to account for. */
  topSources?: { source: string; sessions: number }[];
  topPrefixes?: { prefix: string; sessions: number }[];
}

/** One kernel setting the agent changed or found (`hardening`, `unhardened`): sysctl(8) name, old → new. */
export interface SysctlChange {
  key: string;
  from?: string;
  to?: string;
  /** no such key (no IPv6 on the interface; the interface is gone): skipped */
  absent?: true;
}

/** The agent's own life: started, attached, detached, stopped. */
export interface AgentRecord extends RecordBase {
  type: 'agent';
  event: 'started' | 'attached' | 'hardening' | 'serving' | 'tunnel' | 'forwarding' | 'reloaded' | 'unrouted' | 'unhardened' | 'detached' | 'stopping' | 'stopped' | 'spooled' | 'unspooled' | 'error' | 'warning';
  mode?: 'native' | 'generic';
  adopted?: boolean;
  message?: string;
  /** for `hardening` and `unhardened` */
  sysctls?: SysctlChange[];
  /** for `tunnel` (and `reloaded`): a tunnel to the edge as the agent set it up */
  tunnel?: TunnelFields;
  /** for `spooled` and `unspooled`: records kept in the state dir for the next agent, or taken over from the previous one */
  count?: number;
  /** for `spooled` and `unspooled`: the sink, e.g. nats:DOORSTEP_AUDIT */
  sink?: string;
}

/** A tunnel to the edge in an `agent` record. */
export interface TunnelFields {
  kind: 'wireguard' | 'vxlan';
  /** false: VXLAN, clear text on the underlay (for an underlay the operator trusts) */
  encrypted: boolean;
  /** WireGuard: `kernel` or `wireguard-go` */
  implementation?: string;
  /** WireGuard: this enforcer's public key and UDP port */
  publicKey?: string;
  listenPort?: number;
  /** the edge: WireGuard endpoint or VXLAN remote, `host:port` */
  edge: string;
  /** WireGuard: the edge's public key */
  edgePublicKey?: string;
}

/** An `agent` record of `enforcer`, now; about the whole enforcer unless an interface is given. */
export function agentRecord(enforcer: string, fields: Omit<AgentRecord, 'time' | 'type' | 'enforcer' | 'interface'> & { interface?: string }): AgentRecord {
  return { time: new Date().toISOString(), type: 'agent', enforcer, interface: '*', ...fields };
}

export type AuditRecord = SessionRecord | SummaryRecord | PolicyRecord | LostRecord | AgentRecord | FloodRecord;

/** A destination for audit records. `write` must not block the event loop for long; a sink that
 *  cannot keep up drops and counts (reported as `lost` records with cause `sink`). */
export interface AuditSink {
  /** How `lost` records name this sink: `file`, `stdout`, `nats:<stream>`. */
  readonly name?: string;
  write(records: readonly AuditRecord[]): void;
  /**
   * For producers that can wait (summaries, written a slice at a time): a promise that resolves
   * once the sink has room again, while its buffers are filling up; undefined when there is room
   * now. A sink without it never makes them wait.
   */
  ready?(): Promise<void> | undefined;
  /** Flush what is buffered and release resources. */
  close(): Promise<void>;
}
