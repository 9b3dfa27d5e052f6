// SPDX-License-Identifier: Apache-2.0
// The one registry of doorstep error codes. Every error a user can see carries a stable
// `code` from this table and a message that says what to do about it.

export const ErrorCodes = {
  DS_E_POLICY_PARSE: 'the policy file is not valid YAML/JSON',
  DS_E_POLICY_INVALID: 'a policy document does not match the schema',
  DS_E_POLICY_REFERENCE: 'a policy refers to an AddressGroup that does not exist',
  DS_E_POLICY_DUPLICATE: 'two documents or rules share a name',
  DS_E_POLICY_EMPTY: 'no NetworkPolicy document was given',
  DS_E_TABLE_BUDGET: 'the compiled lookup tables would exceed their size budget',
  DS_E_NO_PRIVILEGE: 'the operation is not permitted to this user (the agent socket is root-only; the kernel refused a BPF operation)',
  DS_E_CAPABILITY: 'the process lacks a capability the engine needs (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN); the message names it',
  DS_E_NO_BTF: 'the kernel does not expose BTF (/sys/kernel/btf/vmlinux)',
  DS_E_NO_INTERFACE: 'the named network interface does not exist',
  DS_E_BPF_LOAD: 'the kernel refused to load the XDP program',
  DS_E_BPF_ATTACH: 'the XDP program could not be attached',
  DS_E_BPF_MAP: 'a BPF map operation failed',
  DS_E_BPF_OBJECT: 'the compiled BPF object is missing or unreadable',
  DS_E_NATIVE: 'the native addon is missing or failed to load',
  DS_E_ABI_MISMATCH: 'the BPF object, the TypeScript ABI, or the pins an earlier engine left (its ABI version, map sizes or BTF types) disagree',
  DS_E_ENGINE_CLOSED: 'the engine was used after close()',
  DS_E_USAGE: 'the command line is not valid',
  DS_E_CONFIG: 'the agent configuration file is unreadable or invalid',
  DS_E_STATE_DIR: 'the state directory cannot be created or written',
  DS_E_SOCKET_IN_USE: 'another agent already listens on the local API socket',
  DS_E_SOCKET: 'the local API socket cannot be created',
  DS_E_AGENT_UNREACHABLE: 'the CLI cannot reach a running agent',
  DS_E_AGENT_API: 'the agent answered the CLI with an error',
  DS_E_POLICY_SOURCE: 'a policy source (file, folder, NATS bucket) cannot be read or watched, or holds an entry that is not a policy',
  DS_E_METRICS_LISTEN: 'the metrics endpoint cannot listen on its address',
  DS_E_UI_REQUEST: 'the web UI refused a request: without its token, for a Host that is not loopback, not a GET, or for no such page',
  DS_E_UI_LISTEN: 'the web UI cannot listen on its address, or its bundled page is missing',
  DS_E_AUDIT_SINK: 'the audit destination (file, stdout or NATS stream) cannot be opened',
  DS_E_POLICY_SIGNATURE: 'a fleet policy is unsigned, or not signed by a key the enforcer trusts',
  DS_E_POLICY_SEQUENCE: "a set's sequence number is not above the highest already under its key (a stale or replayed envelope), or publishers kept racing for it",
  DS_E_NATS_UNREACHABLE: 'no NATS server answers at the given address',
  DS_E_NATS: 'a NATS JetStream operation (bucket, stream, publish) failed',
  DS_E_FLEET_TIMEOUT: 'the selected enforcers did not all report the policy installed in time',
  DS_E_FORWARDING: 'the agent could not set up (or remove) its tunnel, routes or forwarding settings',
  DS_E_WIREGUARD: 'WireGuard is unavailable (no kernel module and no wireguard-go), or its tunnel device could not be created or configured',
  DS_E_AGENT_RUNNING: 'an agent still runs on the engine `doorstep detach` was asked to remove',
  DS_E_DETACH: '`doorstep detach` could not remove every part of the engine (a link, a pin, a tunnel or a setting)',
  DS_E_HARDENING: 'the agent could not turn off (or restore) Router Advertisements, redirects or source routing on an enforced interface',
  DS_E_HISTORY: 'the flow history (its DuckDB file) cannot be opened, written or read, or this agent keeps none',
  DS_E_POLICY_THREAD: "the agent's policy thread (it compiles policies, answers explain and diff) stopped while it had a request; that request failed, the next one starts the thread again",
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class DoorstepError extends Error {
  override name = 'DoorstepError';
  readonly code: ErrorCode;
  /** What the operator should do; printed after the message. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }

  /** One line for a terminal: `DS_E_X: message (hint)`. */
  toLine(): string {
    return `${this.code}: ${this.message}${this.hint ? ` — ${this.hint}` : ''}`;
  }
}

/** A position-bearing validation problem: file, line and the dotted field path. */
export interface PolicyProblem {
  code: ErrorCode;
  file: string;
  line: number;
  column: number;
  /** e.g. `spec.rules[2].ports[0]` */
  field: string;
  message: string;
}

export class PolicyError extends DoorstepError {
  override name = 'PolicyError';
  readonly problems: PolicyProblem[];

  constructor(problems: PolicyProblem[]) {
    const first = problems[0];
    const head = first ? formatProblem(first) : 'invalid policy';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super(first?.code ?? 'DS_E_POLICY_INVALID', head + more, {
      hint: 'fix the policy and re-apply; the policy in force stays in force',
    });
    this.problems = problems;
  }
}

export function formatProblem(p: PolicyProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.field}: ${p.message} [${p.code}]`;
}
