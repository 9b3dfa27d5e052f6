#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The doorstep command line: one subcommand per file in this folder.
import { Command, CommanderError, Option } from 'commander';
import { DoorstepError } from '../errors.js';
import { demo } from './demo.js';
import { enforce } from './enforce.js';
import { ExitCode, reportError } from './output.js';
import { validate } from './validate.js';

const collect = (value: string, previous: string[]) => [...previous, value];
const xdpMode = new Option('--xdp-mode <mode>', 'XDP attach mode').choices(['auto', 'native', 'generic']).default('auto');

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

const program = new Command('doorstep')
  .description('Network-policy enforcement at the XDP hook')
  .exitOverride()
  .showHelpAfterError();

program
  .command('enforce')
  .description('enforce a policy on interfaces, streaming audit records as JSON lines (SIGTERM detaches)')
  .requiredOption('-i, --interface <name>', 'interface to enforce on (repeatable)', collect, [])
  .requiredOption('-p, --policy <path>', 'policy file or folder (repeatable)', collect, [])
  .addOption(xdpMode)
  .option('--pin-root <dir>', 'bpffs folder for pins', '/sys/fs/bpf/doorstep')
  .option('--enforcer-id <id>', 'name of this enforcer in audit records')
  .action((o: { interface: string[]; policy: string[]; xdpMode: 'auto'; pinRoot: string; enforcerId?: string }) =>
    run(() =>
      enforce(
        { interfaces: o.interface, policy: o.policy, xdpMode: o.xdpMode, pinRoot: o.pinRoot, enforcer: o.enforcerId },
        (record) => process.stdout.write(`${JSON.stringify(record)}\n`),
      ),
    ),
  );

program
  .command('validate')
  .description('check policy files offline; every problem with file:line:field')
  .argument('<paths...>', 'policy files or folders')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action((paths: string[], o: { output: 'table' | 'json' }) => run(() => validate(paths, o.output)));

program
  .command('demo')
  .description('enforce the example policy on a veth pair between two network namespaces, with real traffic')
  .addOption(xdpMode)
  .action((o: { xdpMode: 'auto' | 'native' | 'generic' }) => run(() => demo(o)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else {
    process.exitCode = reportError(err instanceof Error ? err : new DoorstepError('DS_E_USAGE', String(err)));
  }
}
