// SPDX-License-Identifier: Apache-2.0
// The commands the placement runs (iproute2, wg) and what it asks of links: one way to run a
// command and turn its failure into a DoorstepError naming the command and its stderr, and the
// kind of a link in this network namespace (not /sys/class/net: nsenter --net keeps the host's /sys).
import { execFileSync } from 'node:child_process';
import { DoorstepError, type ErrorCode } from '../errors.js';

/** `cmd args` (with `input` on stdin), its stdout; a failure is `code` with the command (or `as`, what it is called there), its stderr and `hint`. */
export function runCommand(cmd: string, args: string[], o: { code: ErrorCode; hint: string; input?: string; as?: string }): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000, ...(o.input !== undefined && { input: o.input }) });
  } catch (cause) {
    const stderr = String((cause as { stderr?: string }).stderr ?? '').trim();
    throw new DoorstepError(o.code, `${o.as ?? `${cmd} ${args.join(' ')}`}: ${stderr || String(cause)}`, { hint: o.hint, cause });
  }
}

/** The kind of link `device` is in this network namespace (`wireguard`, `tun`, `vxlan`, … `none` for a plain one), undefined when there is none. */
export function linkKind(device: string): string | undefined {
  try {
    const [link] = JSON.parse(execFileSync('ip', ['-j', '-d', 'link', 'show', 'dev', device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 })) as {
      linkinfo?: { info_kind?: string };
    }[];
    return link?.linkinfo?.info_kind ?? 'none';
  } catch {
    return undefined;
  }
}
