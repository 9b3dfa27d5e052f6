// SPDX-License-Identifier: Apache-2.0
// `doorstep explain`: which rule decides a flow and why, from the policy in force, checked
// against the kernel's live tables.
import type { ExplainReport, ExplainRequest } from '../controller/explain-diff.js';
import { AgentClient } from '../controller/agent-client.js';
import { ExitCode } from './output.js';
import type { OutputFormat } from './table.js';

export async function explain(o: ExplainRequest & { socket: string; output: OutputFormat }): Promise<number> {
  const request: ExplainRequest = { from: o.from, to: o.to, protocol: o.protocol, ...(o.port !== undefined && { port: o.port }), ...(o.sport !== undefined && { sport: o.sport }) };
  const r = await new AgentClient(o.socket).call<ExplainReport>('POST', '/v1/explain', request);
  if (o.output === 'json') {
    console.log(JSON.stringify(r));
    return ExitCode.OK;
  }
  console.log(r.flow);
  for (const line of r.why) console.log(`  ${line}`);
  const live = `${r.live.action} (${r.live.rule ?? r.live.reason}, generation ${r.live.generation})`;
  console.log(r.agree ? `live tables: ${live}: they agree` : `live tables: ${live}: they DO NOT agree with the policy`);
  if (r.note) console.log(`note: ${r.note}`);
  return ExitCode.OK;
}
