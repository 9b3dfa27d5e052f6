// SPDX-License-Identifier: Apache-2.0
// `doorstep status`: the policy in force, the interfaces and their XDP mode, the counters.
import { Reason } from '../abi/generated.js';
import { type ReasonName, reasonLabel } from '../abi/records.js';
import type { StatusReport } from '../controller/routes.js';
import type { TunnelStatus } from '../placement/tunnel-status.js';
import { AgentClient } from '../controller/agent-client.js';
import { ExitCode } from './output.js';
import { table, type OutputFormat } from './table.js';

export async function status(o: { socket: string; output: OutputFormat }): Promise<number> {
  const s = await new AgentClient(o.socket).call<StatusReport>('GET', '/v1/status');
  if (o.output === 'json') {
    console.log(JSON.stringify(s));
    return ExitCode.OK;
  }
  const p = s.policy;
  console.log(`enforcer   ${s.enforcer} (pid ${s.pid}, up since ${s.startedAt})`);
  console.log(
    `policy     ${p ? `${p.version ?? '(adopted, documents unknown)'} generation ${p.generation}, ${p.rules} rules, from ${p.origin ?? '?'}${p.installedAt ? ` at ${p.installedAt}` : ''}` : 'none: default deny'}`,
  );
  console.log(`interfaces ${s.interfaces.map((i) => `${i.name} (${i.mode} XDP${i.adopted ? ', adopted' : ''})`).join(', ')}`);
  for (const t of s.tunnels ?? []) console.log(`tunnel     ${tunnelLine(t)}`);
  console.log(`sessions   ${s.sessions} cached`);
  console.log(`events     ${s.events.read} read, ${s.events.lost} lost`);
  const a = s.agent;
  if (a) {
    console.log(
      `agent      longest event-loop stall ${a.maxStallMs.toFixed(1)} ms (since the last status ${a.maxStallSinceLastReadMs.toFixed(1)} ms; target ≤ 50 ms), RSS ${(a.rssBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  const c = s.counters;
  console.log(`packets    ${c.PASS_PACKETS} passed, ${c.DROP_PACKETS} dropped (${c.PARSE_ERRORS} malformed); cache ${c.CACHE_HITS} hits, ${c.CACHE_MISSES} misses`);
  const rows = Object.entries(s.byReason)
    .filter(([, v]) => v.pass.packets + v.drop.packets > 0)
    .map(([reason, v]) => [reasonLabel(Reason[reason as ReasonName]), v.pass.packets, v.pass.bytes, v.drop.packets, v.drop.bytes]);
  if (rows.length) console.log(`\n${table(['reason', 'passed', 'bytes', 'dropped', 'bytes'], rows)}`);
  return ExitCode.OK;
}

/** One tunnel to the edge: WireGuard with our key and endpoint and the handshake, or VXLAN marked clear text. */
export function tunnelLine(t: TunnelStatus): string {
  const state = t.up ? '' : ' (device missing)';
  if (t.kind === 'vxlan') return `${t.device}${state}: VXLAN to ${t.edge}, clear text (trusted underlay only)`;
  const handshake =
    t.handshake === 'established' ? `handshake ${t.latestHandshake}` : t.handshake === 'stale' ? `no handshake since ${t.latestHandshake}: the edge stopped answering` : 'handshake pending: the edge has not answered yet (check its key, endpoint and our key on its side)';
  return `${t.device}${state}: WireGuard (${t.implementation}), public key ${t.publicKey}, endpoint ${t.endpoint ?? `(any):${t.listenPort}`} → edge ${t.edge} (key ${t.edgePublicKey}); ${handshake}; ${t.rxBytes ?? 0} B in, ${t.txBytes ?? 0} B out`;
}
