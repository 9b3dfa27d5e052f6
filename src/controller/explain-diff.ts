// SPDX-License-Identifier: Apache-2.0
// The agent's answers to `doorstep explain` and `doorstep diff`. Explain decides a flow twice:
// from the IR of the version in force (which rule, and why the rules before it did not match),
// asked of the policy thread that holds it, and in the kernel, by running a probe frame through
// ds_xdp_explain against the live tables; the answer says whether the two agree. Diff compares a
// candidate with the installed IR and runs every cached session through both, on the policy
// thread (diff-report.ts), the sessions read here a slice at a time.
import { isIP } from 'node:net';
import { Action, Reason } from '../abi/generated.js';
import { reasonLabel } from '../abi/records.js';
import { ruleName } from '../audit/rule-names.js';
import { frame, tupleOf, type FrameSpec } from '../engine/frame.js';
import { protocolLabel, protocolNumber } from '../policy/ir/protocols.js';
import type { PolicyText } from '../watcher/source.js';
import { ApiError } from './local-api.js';
import type { RouteDeps } from './routes.js';
import type { DiffReport } from './diff-report.js';

export interface ExplainRequest {
  from: string;
  to: string;
  protocol: string;
  /** Destination port (tcp, udp, sctp) or `type[/code]` (icmp, icmpv6). */
  port?: string;
  sport?: string;
}

export interface ExplainReport {
  flow: string;
  /** From the IR of the version in force (absent when none is installed). */
  action: 'allow' | 'deny' | null;
  rule: string | null;
  why: string[];
  /** What the kernel's live tables decide for the same flow. */
  live: { action: 'allow' | 'deny'; reason: string; rule: string | null; generation: number };
  agree: boolean;
  note?: string;
}


function bad(message: string): ApiError {
  return new ApiError(400, { code: 'DS_E_USAGE', message, hint: 'e.g. doorstep explain --from 10.0.0.1 --to 10.0.0.2 --protocol tcp --port 443' });
}

/** The request as a frame spec: addresses of one family, a known protocol, a port or ICMP type. */
function specOf(body: unknown): FrameSpec {
  const r = (body ?? {}) as Partial<ExplainRequest>;
  const family = isIP(r.from ?? '');
  if (!family || family !== isIP(r.to ?? '')) throw bad(`--from "${r.from}" and --to "${r.to}" must be addresses of the same family`);
  const proto = protocolNumber(String(r.protocol ?? ''));
  if (proto === undefined) throw bad(`unknown protocol "${r.protocol}"`);
  const spec: FrameSpec = { src: r.from as string, dst: r.to as string, proto, sport: Number(r.sport ?? 40000) };
  if (proto === 1 || proto === 58) {
    const [type, code] = String(r.port ?? (proto === 1 ? '8' : '128')).split('/').map(Number);
    if (!Number.isInteger(type) || (type as number) > 255 || (code !== undefined && !(code >= 0 && code <= 255))) throw bad(`"${r.port}" is not an ICMP type[/code]`);
    spec.icmpType = type as number;
    spec.icmpCode = code ?? 0;
  } else if (r.port !== undefined) {
    const port = Number(r.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw bad(`"${r.port}" is not a port`);
    spec.dport = port;
  }
  return spec;
}

export async function explainRoute(d: RouteDeps, body: unknown): Promise<ExplainReport> {
  const spec = specOf(body);
  const tuple = tupleOf(spec);
  const current = d.controller.current;
  const live = d.engine.explain(frame(spec));
  const liveNames = d.controller.context.policies.get(live.generation);
  const liveReport = {
    action: live.action === Action.ALLOW ? ('allow' as const) : ('deny' as const),
    reason: reasonLabel(live.reason),
    rule: live.reason === Reason.POLICY ? ruleName(liveNames, live.rule) : null,
    generation: live.generation,
  };
  const flow = `${protocolLabel(spec.proto)} ${spec.src}${spec.dport !== undefined ? `:${spec.dport}` : ''} → ${spec.dst}`;
  if (!current || current.generation !== live.generation) {
    return {
      flow,
      action: null,
      rule: null,
      why: [current ? `the agent's version (generation ${current.generation}) is not the engine's (${live.generation})` : 'no policy documents known to the agent'],
      live: liveReport,
      agree: false,
      note: live.generation === 0 ? 'no policy installed: default deny' : 'the live tables decide as shown; the agent cannot explain them',
    };
  }
  const e = await d.controller.policyThread.explain(current.version, tuple);
  const report: ExplainReport = {
    flow,
    action: e.action,
    rule: e.rule,
    why: e.why,
    live: liveReport,
    agree: live.reason === Reason.POLICY && liveReport.action === e.action && live.rule === e.index,
  };
  if (live.reason === Reason.FAILSAFE) report.note = 'the failsafe passes this flow before the policy is consulted';
  else if (!report.agree) report.note = 'the live tables disagree with the policy: reinstall it (doorstep apply) and report a bug';
  return report;
}

/** Cached sessions sent to the policy thread per slice of a diff. */
const DIFF_SLICE = 256;

/** The installed policy against `sources`, and every cached session through both, on the policy thread. */
export function diffRoute(d: RouteDeps, sources: PolicyText[]): Promise<DiffReport> {
  // the cache a small slice at a time (each session may need the reference evaluator, on the
  // thread): the agent's event loop runs between slices
  return d.controller.policyThread.diff(d.controller.current?.version ?? null, sources, d.engine.activePolicy()?.generation ?? 0, d.engine.sessionSlices(DIFF_SLICE));
}
