// SPDX-License-Identifier: Apache-2.0
// `doorstep agent`: run the enforcer daemon until SIGTERM/SIGINT; SIGHUP re-reads the config file
// and applies what changes without a restart (controller/reload-plan.ts, the edge's WireGuard peers).
import { type AgentFlags, resolveConfig } from '../controller/config.js';
import { type RunningAgent, startAgent } from '../agent/agent.js';
import { agentRecord } from '../audit/records.js';
import { nativeEngineHost } from '../engine/native-host.js';
import { ExitCode } from './output.js';

export async function agentCommand(flags: AgentFlags): Promise<number> {
  const config = resolveConfig(flags);
  if (flags.keepOnExit !== undefined) process.stderr.write('doorstep: --keep-on-exit (keepOnExit) is deprecated and has no effect: a stopped agent keeps the engine enforcing unless --detach-on-exit\n');
  // handlers first: a SIGTERM during start-up must stop the agent cleanly once it is up, not kill it
  let agent: RunningAgent | undefined;
  let requested: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (agent) void agent.stop(signal);
    else requested ??= signal;
  };
  const onReload = () => {
    if (!agent) return;
    try {
      agent.reload(resolveConfig(flags));
    } catch (err) {
      agent.pipeline.emit(agentRecord(config.enforcerId, { event: 'error', message: `reload: ${err instanceof Error ? err.message : String(err)}; the running settings stay` }));
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onReload);
  try {
    agent = await startAgent(config, nativeEngineHost); // the kernel's engine, chosen here at the edge
    if (requested) void agent.stop(requested);
    await agent.stopped;
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGHUP', onReload);
  }
  return ExitCode.OK;
}
