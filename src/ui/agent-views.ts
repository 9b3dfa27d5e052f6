// SPDX-License-Identifier: Apache-2.0
// The agent's UI views, from what it has live: the local API's own routes (observe's stream and
// filters, status's rule counters) read in-process, the installed policy (its rules and its lint
// findings, asked of the controller's policy thread, which holds its IR and lints it once per
// version) and three audit sinks the agent adds to its pipeline (verdicts over time, denied
// sources, policy records). Reads only.
import { DoorstepError } from '../errors.js';
import type { AuditRecord, AuditSink } from '../audit/records.js';
import type { Route, Routes } from '../controller/local-api.js';
import type { NetworkController } from '../controller/network-controller.js';
import type { StatusReport } from '../controller/routes.js';
import { LiveDeniedSources } from './live-denied-sources.js';
import { LiveVerdicts } from './live-verdicts.js';
import { PolicyHistory } from './policy-history.js';
import type { UiViews } from './views.js';

export interface AgentViewDeps {
  enforcer: string;
  /** The local API's routes (agentRoutes), once it serves: the UI reads `observe` and `status` through them. */
  routes: () => Routes;
  /** The controller, once there is one: the version in force, and its policy thread to ask about it. */
  controller: () => NetworkController | undefined;
  /** A flow-history store's views, when one is configured: they replace the live counts. */
  history?: Partial<Pick<UiViews, 'verdicts' | 'deniedSources'>>;
}

function route<K extends Route['kind']>(routes: () => Routes, name: string, kind: K): Extract<Route, { kind: K }> {
  const r = routes()[name];
  if (r?.kind !== kind) throw new DoorstepError('DS_E_AGENT_API', 'the agent is starting', { hint: 'the page tries again by itself' });
  return r as Extract<Route, { kind: K }>;
}

/** The views, and the sinks that feed them (add them to the audit pipeline before the policy is resumed, so its records reach the history). */
export function agentViews(d: AgentViewDeps): { views: UiViews; sinks: AuditSink[] } {
  const verdicts = new LiveVerdicts();
  const deniedSources = new LiveDeniedSources();
  const history = new PolicyHistory();

  const views: UiViews = {
    title: d.enforcer,
    flows: {
      follow: (query, send) => {
        const q = new URLSearchParams(query);
        q.set('follow', '1');
        if (!q.has('last')) q.set('last', '500');
        return route(d.routes, 'GET /v1/observe', 'stream').handle(q, (r) => (send(r as AuditRecord), true), () => {});
      },
    },
    verdicts: d.history?.verdicts ?? verdicts,
    deniedSources: d.history?.deniedSources ?? deniedSources,
    ruleHits: {
      read: async () => {
        const report = (await route(d.routes, 'GET /v1/status', 'json').handle(new URLSearchParams(), undefined)) as StatusReport;
        const ctl = d.controller();
        const c = ctl?.current;
        if (!ctl || !c) return { version: null, rules: [] };
        const all = await ctl.policyThread.rules(c.version);
        return {
          version: c.version,
          rules: all.map((r) => {
            const hits = report.rules[r.id];
            return { ...r, packets: hits?.packets ?? 0, bytes: hits?.bytes ?? 0, hit: hits !== undefined };
          }),
        };
      },
    },
    lint: {
      read: async () => {
        const ctl = d.controller();
        const c = ctl?.current;
        if (!ctl || !c) return { version: null, findings: [] };
        return { version: c.version, findings: await ctl.policyThread.lint(c.version) };
      },
    },
    policyHistory: {
      read: () => {
        const c = d.controller()?.current;
        return { entries: history.read(), inForce: c ? { version: c.version, generation: c.generation } : null };
      },
    },
  };
  return { views, sinks: [verdicts, deniedSources, history] };
}
