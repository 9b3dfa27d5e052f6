// SPDX-License-Identifier: Apache-2.0
// `doorstep agent`: run the enforcer daemon until SIGTERM/SIGINT.
import { type AgentFlags, resolveConfig } from '../controller/config.js';
import { startAgent } from '../controller/agent.js';
import { ExitCode } from './output.js';

export async function agentCommand(flags: AgentFlags): Promise<number> {
  const config = resolveConfig(flags);
  const agent = await startAgent(config);
  const onSignal = (signal: NodeJS.Signals) => void agent.stop(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await agent.stopped;
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  return ExitCode.OK;
}
