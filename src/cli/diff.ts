// SPDX-License-Identifier: Apache-2.0
// `doorstep diff FILE…`: what a candidate policy changes against the installed one, and which
// cached sessions would flip. Validated locally first; nothing is installed.
import type { DiffReport } from '../controller/diff-report.js';
import { compileIr } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import { AgentClient } from '../controller/agent-client.js';
import { ExitCode } from './output.js';
import type { OutputFormat } from './table.js';

export async function diff(paths: string[], o: { socket: string; output: OutputFormat }): Promise<number> {
  const sources = await readPolicySources(paths);
  compileIr(sources);
  const r = await new AgentClient(o.socket).call<DiffReport>('POST', '/v1/diff', { sources });
  if (o.output === 'json') console.log(JSON.stringify(r));
  else for (const line of r.lines) console.log(line);
  return ExitCode.OK;
}
