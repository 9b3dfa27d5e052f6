// SPDX-License-Identifier: Apache-2.0
// `doorstep apply FILE…`: validate locally (every problem with file:line:field, nothing sent),
// then hand the set to the local agent and print the version and generation it installed.
import { compileIr } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import type { ApplyOutcome } from '../controller/network-controller.js';
import { AgentClient } from '../controller/agent-client.js';
import type { OutputFormat } from './table.js';
import { ExitCode } from './output.js';

export async function apply(paths: string[], o: { socket: string; output: OutputFormat }): Promise<number> {
  const sources = await readPolicySources(paths);
  compileIr(sources); // throws PolicyError: exit 3 before anything reaches the agent
  const outcome = await new AgentClient(o.socket).call<Extract<ApplyOutcome, { status: 'installed' | 'unchanged' }>>('POST', '/v1/apply', { sources });
  if (o.output === 'json') {
    console.log(JSON.stringify(outcome));
  } else {
    for (const w of outcome.warnings) console.log(`warning: ${w}`);
    const verb = outcome.status === 'unchanged' ? 'already in force' : `installed in ${outcome.installMs.toFixed(1)} ms`;
    console.log(`${outcome.version} ${verb}: generation ${outcome.generation}, ${outcome.rules} rules`);
  }
  return ExitCode.OK;
}
