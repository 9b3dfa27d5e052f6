#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The doorstep command line: one subcommand per file in this folder. Exit codes: docs/operations.md.
import { Command, CommanderError, Option } from 'commander';
import { DoorstepError } from '../errors.js';
import { agentCommand } from './agent.js';
import type { AgentFlags } from '../controller/config.js';
import { apply } from './apply.js';
import { socketPath } from '../controller/agent-client.js';
import { demo } from './demo.js';
import { detach, type DetachFlags } from './detach.js';
import { diff } from './diff.js';
import { explain } from './explain.js';
import { addFilterFlags, type FilterFlags } from './filter-flags.js';
import { observe } from './observe.js';
import { ExitCode, reportError } from './output.js';
import { sessions } from './sessions.js';
import { status } from './status.js';
import type { OutputFormat } from './table.js';
import { validate } from './validate.js';
import { lint } from './lint.js';
import { fleetReport, historyDiff, report } from './report.js';
import { fleetApply, type FleetApplyFlags } from './fleet-apply.js';
import { registerFleetObserve } from './fleet-observe.js';
import { fleetForget } from './fleet-forget.js';
import { fleetRemove } from './fleet-remove.js';
import { fleetStatus } from './fleet-status.js';
import { fleetUi, type FleetUiFlags } from './fleet-ui.js';
import { fleetEdgeConfig } from './fleet-edge-config.js';
import { addNatsFlags, type NatsFlags } from './nats-flags.js';
import { DEFAULT_SET_NAME, keygen, sign, type SignFlags } from './sign.js';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
const xdpModeOption = () => new Option('--xdp-mode <mode>', 'XDP attach mode').choices(['auto', 'native', 'generic']);
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
const socketOption = () => new Option('--socket <path>', 'the agent\'s API socket (default $DOORSTEP_SOCKET or /run/doorstep/agent.sock)');

type ClientFlags = { socket?: string; output: OutputFormat };
const client = <T extends ClientFlags>(o: T) => ({ ...o, socket: socketPath(o.socket) });

function run(task: () => Promise<number | void>): Promise<void> {
  return task().then(
    (code) => {
      if (typeof code === 'number' && code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.exitCode = reportError(err);
    },
  );
}

async function runThenExit(task: () => Promise<number | void>): Promise<void> {
  await run(task);
  process.exit();
}

const program = new Command('doorstep')
  .description('Network-policy enforcement at the XDP hook')
  .exitOverride()
  .showHelpAfterError();

program
  .command('agent')
  .description('run the enforcer: attach in default deny, install and watch the policy, write the audit trail, serve the CLI')
  .option('-i, --interface <name>', 'interface to enforce on (repeatable)', collect)
  .option('-p, --policy <path>', 'policy file or folder to watch, or nats://HOST:PORT/BUCKET (repeatable)', collect)
  .option('-l, --label <key=value>', 'a label of this enforcer, for fleet policy selectors (repeatable)', collect)
  .option('--audit <dest>', 'audit destination: a JSON-lines file, - for stdout, or nats://HOST:PORT/STREAM (repeatable; default -)', collect)
  .option('--audit-buffer <n>', 'records the NATS audit sink holds while NATS is away (default 100000)', (v) => Number(v))
  .option('--audit-max-bytes <size>', 'rotate the audit file at this size (default 100M)')
  .option('--audit-keep <n>', 'rotated audit files to keep (default 5)', (v) => Number(v))
  .option('--summary-interval <duration>', 'how often active sessions get a summary record (default 10s; 0 = never)')
  .option('--deny-event-budget <n>', 'session records a second, per CPU and rule, for denied sessions; the rest are counted in flood records (default 100; 0 = no limit)', (v) => Number(v))
  .option('--deny-event-cap <n>', 'session records a second for denied sessions on the whole enforcer, all rules together; the rest are counted in flood records (default 2000; 0 = no limit)', (v) => Number(v))
  .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
  .option('--history <file>', 'keep a flow history in this DuckDB file, for `doorstep report` and `diff --history`')
  .option('--history-max-bytes <size>', 'the flow history\'s size bound (default 256M)')
  .option('--history-max-age <duration>', 'how long the flow history keeps flows (default 7d)')
  .option('--ui <host:port>', 'serve the read-only web UI at http://HOST:PORT/ (loopback only unless --ui-allow-remote)')
  .option('--ui-allow-remote', 'let --ui bind beyond loopback (give it --ui-token)')
  .option('--ui-token <file>', 'the web UI requires the token in this file (bearer header, or open /?token=TOKEN once)')
  .option('--state-dir <dir>', 'where the last installed policy is kept (default /var/lib/doorstep)')
  .option('--enforcer-id <id>', 'this enforcer\'s name in records (default: the host name)')
  .option('--config <file>', 'agent settings as YAML; flags override them')
  .addOption(socketOption())
  .option('--pin-root <dir>', 'bpffs folder for the engine\'s pins (default /sys/fs/bpf/doorstep)')
  .addOption(xdpModeOption())
  .option('--detach-on-exit', 'detach the engine and take back tunnels, routes and settings when the agent stops (default: they keep enforcing for the next agent; `doorstep detach` removes them)')
  .addOption(new Option('--keep-on-exit', 'deprecated, no effect: a stopped agent keeps the engine enforcing by default').hideHelp())
  .option('--policy-pubkey <file>', 'install only fleet policies signed by this ed25519 key (PEM; repeatable)', collect)
  .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status)')
  .option('--status-ttl <duration>', 'how long a status report lives in the bucket (default 30s)')
  .option('--nats-creds <file>', 'NATS credentials file (JWT and NKey seed)')
  .option('--nats-tls-ca <file>', "CA bundle for the NATS servers' certificates (turns TLS on)")
  .option('--nats-tls-cert <file>', 'client certificate for NATS')
  .option('--nats-tls-key <file>', 'client key for NATS')
  // once stopped, exit even if a NATS connect that never succeeded is still retrying
  // the option names are AgentFlags' names, but for the repeatable singular ones
  .action(({ interface: interfaces, label: labels, ...rest }: AgentFlags & { interface?: string[]; label?: string[] }) =>
    runThenExit(() => agentCommand({ ...rest, interfaces, labels })),
  );

program
  .command('detach')
  .description('take the engine off its interfaces with no agent running: XDP links, pins, tunnels, routes, and the settings the agent hardened')
  .option('--state-dir <dir>', 'the agents\' state dir (default /var/lib/doorstep)')
  .option('--pin-root <dir>', 'bpffs folder of the engine\'s pins (default: as the state dir records, else /sys/fs/bpf/doorstep)')
  .addOption(outputOption())
  .action((o: DetachFlags) => run(async () => detach(o)));

program
  .command('validate')
  .description('check policy files offline; every problem with file:line:field')
  .argument('<paths...>', 'policy files or folders')
  .addOption(outputOption())
  .action((paths: string[], o: { output: OutputFormat }) => run(() => validate(paths, o.output)));

program
  .command('lint')
  .description('analyse policy files offline: unmatchable, shadowed and redundant rules, allow/deny overlaps only order decides, port ranges that never decide')
  .argument('<paths...>', 'policy files or folders')
  .option('--strict', 'exit 3 when there is any finding')
  .addOption(outputOption())
  .action((paths: string[], o: { output: OutputFormat; strict?: boolean }) => run(() => lint(paths, o.output, o.strict ?? false)));

const envelopeFlags = (cmd: Command) =>
  cmd
    .option('--name <name>', `the set's name in the fleet bucket: key sets.NAME (default ${DEFAULT_SET_NAME})`)
    .option('--selector <key=value>', 'only enforcers with this label (repeatable; none = every enforcer)', collect);

addNatsFlags(
  envelopeFlags(
    program
      .command('apply')
      .description('validate a policy set and install it through the local agent, or publish it to the fleet with --nats')
      .argument('<paths...>', 'policy files or folders, or one envelope written by `doorstep sign`'),
  )
    .option('--sign-key <file>', 'sign the set with this ed25519 private key (PEM)')
    .option('--wait', 'with --nats: wait until every selected enforcer reports it installed')
    .option('--timeout <duration>', 'with --wait: give up after this long (default 60s)')
    .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status)'),
  'BUCKET',
  true,
)
  .addOption(socketOption())
  .addOption(outputOption())
  .action((paths: string[], o: ClientFlags & Partial<FleetApplyFlags>) => {
    if (o.nats) return run(() => fleetApply(paths, { ...o, nats: o.nats as string }));
    const fleetOnly = (['name', 'selector', 'signKey', 'wait', 'timeout', 'statusBucket'] as const).filter((k) => o[k] !== undefined);
    if (fleetOnly.length > 0) {
      return run(async () => {
        throw new DoorstepError('DS_E_USAGE', `--${fleetOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for fleet publishing`, { hint: 'add --nats nats://HOST:PORT/BUCKET' });
      });
    }
    return run(() => apply(paths, client(o)));
  });

addNatsFlags(
  envelopeFlags(
    program
      .command('sign')
    .description('validate a policy set and write it as a signed fleet envelope, for `doorstep apply --nats`')
    .argument('<paths...>', 'policy files or folders')
    .requiredOption('--key <file>', 'ed25519 private key (PEM), e.g. from `doorstep keygen`')
    .option('--out <file>', 'write the envelope here (default: stdout)')
    .option('--sequence <n>', "the set's sequence number: above the highest under its key (or --nats to read it)"),
  ),
  'BUCKET',
  true,
).action((paths: string[], o: SignFlags) => run(() => sign(paths, o)));

program
  .command('keygen')
  .description('create an ed25519 key pair for signed fleet policies: PREFIX.key and PREFIX.pub')
  .argument('<prefix>', 'file name prefix')
  .action((prefix: string) => run(async () => keygen(prefix)));

const fleet = program.command('fleet').description('the enforcers that share a NATS policy bucket');
addNatsFlags(
  fleet
    .command('status')
    .description('every enforcer, the version it runs and should run, and whether the fleet has converged')
    .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status)'),
  'BUCKET',
)
  .addOption(outputOption())
  .action((o: NatsFlags & { statusBucket?: string; output: OutputFormat }) => run(() => fleetStatus(o)));
addNatsFlags(
  fleet
    .command('remove')
    .description('take a set out of the policy bucket')
    .requiredOption('--name <name>', 'the set (key sets.NAME)')
    .option('--sign-key <file>', 'publish a tombstone signed with this ed25519 key (needed when enforcers require signed sets)'),
  'BUCKET',
).action((o: NatsFlags & { name: string; signKey?: string }) => run(() => fleetRemove(o)));
addNatsFlags(
  fleet
    .command('forget')
    .description('take an enforcer that is gone for good off the list of expected enforcers (fleet status counts it as missing until then)')
    .requiredOption('--name <id>', 'the enforcer id')
    .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status; the list is STATUS-BUCKET-members)'),
  'BUCKET',
).action((o: NatsFlags & { name: string; statusBucket?: string }) => run(() => fleetForget(o)));
addNatsFlags(
  fleet
    .command('edge-config')
    .description("the edge's WireGuard peer list (wg-quick [Peer] sections) from every live enforcer's published key, endpoint and networks")
    .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status)')
    .option('--edge-port <port>', "only the peers of the edge's interface on this UDP port", (v) => Number(v))
    .option('--out <file>', 'write it to this file instead of stdout'),
  'BUCKET',
).action((o: NatsFlags & { statusBucket?: string; edgePort?: number; out?: string }) => run(() => fleetEdgeConfig(o)));
registerFleetObserve(fleet);
addNatsFlags(
  fleet
    .command('report')
    .description("the fleet's flow history, read from its audit stream: `report` for every enforcer")
    .option('--since <when>', 'an RFC 3339 time or a duration back from now (default 24h)')
    .option('--limit <n>', 'rows per top list (default 10)')
    .option('--policy <path>', 'policy files or folders whose rules to check for hits (repeatable)', collect),
  'STREAM',
)
  .addOption(outputOption())
  .action((o: NatsFlags & { since?: string; limit?: string; policy?: string[]; output: OutputFormat }) => run(() => fleetReport(o)));
addNatsFlags(
  fleet
    .command('ui')
    .description('serve the read-only web UI of the fleet: enforcers, versions, convergence, keys')
    .requiredOption('--ui <host:port>', 'listen at http://HOST:PORT/ (loopback only unless --ui-allow-remote)')
    .option('--ui-allow-remote', 'let --ui bind beyond loopback (give it --ui-token)')
    .option('--ui-token <file>', 'require the token in this file (bearer header, or open /?token=TOKEN once)')
    .option('--status-bucket <name>', 'the fleet status bucket (default doorstep-status)'),
  'BUCKET',
).action((o: FleetUiFlags) => run(() => fleetUi(o)));

program
  .command('status')
  .description('the policy in force, interfaces and XDP mode, counters, events lost')
  .addOption(socketOption())
  .addOption(outputOption())
  .action((o: ClientFlags) => run(() => status(client(o))));

addFilterFlags(
  program
    .command('observe')
    .description('the live audit stream, filtered')
    .option('-f, --follow', 'keep streaming until Ctrl-C')
    .option('--last <n>', 'start with the last N matching records (default 100 without --follow)'),
)
  .addOption(socketOption())
  .addOption(outputOption())
  .action((o: ClientFlags & FilterFlags & { follow?: boolean; last?: string }) => run(() => observe(client(o))));

addFilterFlags(program.command('sessions').description('the session cache, filtered').option('--limit <n>', 'show at most N sessions', '1000'))
  .addOption(socketOption())
  .addOption(outputOption())
  .action((o: ClientFlags & FilterFlags & { limit: string }) => run(() => sessions(client(o))));

program
  .command('explain')
  .description('which rule decides a flow and why, from the policy and checked against the live tables')
  .requiredOption('--from <ip>', 'source address')
  .requiredOption('--to <ip>', 'destination address')
  .requiredOption('--protocol <p>', 'tcp, udp, icmp, icmpv6, sctp or a number')
  .option('--port <n>', 'destination port (tcp, udp, sctp) or ICMP type[/code]')
  .option('--sport <n>', 'source port', '40000')
  .addOption(socketOption())
  .addOption(outputOption())
  .action((o: ClientFlags & { from: string; to: string; protocol: string; port?: string; sport: string }) => run(() => explain(client(o))));

program
  .command('diff')
  .description('what a candidate policy would change against the installed one, and which cached sessions would flip; with --history, which recorded flows would flip')
  .argument('<paths...>', 'candidate policy files or folders')
  .option('--history <duration>', 'replay the flows recorded in the last DURATION (the agent\'s flow history, or the fleet\'s stream with --nats) through the candidate')
  .option('--nats <url>', 'with --history: the fleet\'s audit stream, nats://HOST:PORT/STREAM')
  .addOption(socketOption())
  .addOption(outputOption())
  .action((paths: string[], o: ClientFlags & { history?: string; nats?: string }) =>
    run(() => (o.history ? historyDiff(paths, { ...client(o), history: o.history, ...(o.nats && { nats: o.nats }) }) : diff(paths, client(o)))),
  );

program
  .command('report')
  .description("the agent's flow history: top denied sources, ports and rules, per-rule trends, rules with no hits, new talkers")
  .option('--since <when>', 'an RFC 3339 time or a duration back from now (default 24h)')
  .option('--limit <n>', 'rows per top list (default 10)')
  .addOption(socketOption())
  .addOption(outputOption())
  .action((o: ClientFlags & { since?: string; limit?: string }) => run(() => report({ ...client(o), ...(o.since && { since: o.since }), ...(o.limit && { limit: o.limit }) })));

program
  .command('demo')
  .description('an enforcer in each placement (workload, infra, datacenter) in network namespaces, an edge, and real traffic between them')
  .action(() => run(() => demo()));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else {
    process.exitCode = reportError(err instanceof Error ? err : new DoorstepError('DS_E_USAGE', String(err)));
  }
}
