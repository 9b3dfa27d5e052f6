// SPDX-License-Identifier: Apache-2.0
// How commands end: one clear line per error on stderr and a documented exit code.
import { DoorstepError, PolicyError, formatProblem } from '../errors.js';

/**
 * Exit codes (docs/operations.md): 0 ok, 1 unexpected, 2 usage or config, 3 policy rejected,
 * 4 host (kernel, privileges, interface, state dir, socket, metrics port), 5 no agent to talk to,
 * 6 fleet: NATS unreachable or failing, or enforcers that did not converge in time.
 */
export const ExitCode = { OK: 0, UNEXPECTED: 1, USAGE: 2, POLICY: 3, KERNEL: 4, AGENT: 5, FLEET: 6 } as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof PolicyError) return ExitCode.POLICY;
  if (err instanceof DoorstepError) {
    if (err.code === 'DS_E_USAGE' || err.code === 'DS_E_CONFIG') return ExitCode.USAGE;
    if (err.code === 'DS_E_AGENT_UNREACHABLE' || err.code === 'DS_E_AGENT_API') return ExitCode.AGENT;
    if (err.code.startsWith('DS_E_NATS') || err.code === 'DS_E_FLEET_TIMEOUT') return ExitCode.FLEET;
    if (err.code.startsWith('DS_E_POLICY') || err.code === 'DS_E_TABLE_BUDGET') return ExitCode.POLICY;
    return ExitCode.KERNEL;
  }
  return ExitCode.UNEXPECTED;
}

export function reportError(err: unknown): number {
  if (err instanceof PolicyError) {
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
  } else if (err instanceof DoorstepError) {
    process.stderr.write(`doorstep: ${err.toLine()}\n`);
  } else {
    process.stderr.write(`doorstep: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  return exitCodeOf(err);
}
