// SPDX-License-Identifier: Apache-2.0
// `doorstep agent`: run the enforcer daemon until SIGTERM/SIGINT.
import { type AgentFlags, resolveConfig } from '../controller/config.js';
import { type RunningAgent, startAgent } from '../controller/agent.js';
import { ExitCode } from './output.js';

export async function agentCommand(flags: AgentFlags): Promise<number> {
  const config = resolveConfig(flags);
  // handlers first: a SIGTERM during start-up must stop the agent cleanly once it is up, not kill it
  let agent: RunningAgent | undefined;
  let requested: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (agent) void agent.stop(signal);
    else requested ??= signal;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    agent = await startAgent(config);
    if (requested) void agent.stop(requested);
    await agent.stopped;
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  }
  return ExitCode.OK;
}
