// SPDX-License-Identifier: Apache-2.0
// `doorstep detach`: take the engine off its interfaces with no agent running — a stopped agent
// leaves it enforcing (DESIGN.md §9), so removing it is this explicit act. Reads the state dir's
// enforcement record (controller/detach.ts does the work); idempotent.
import { checkPrivileges } from '../engine/bpffs.js';
import { DEFAULT_PIN_ROOT, DEFAULT_STATE_DIR } from '../controller/config.js';
import { detachEnforcement } from '../controller/detach.js';
import { nativeEngineHost } from '../engine/native-host.js';
import { sysctlName } from '../controller/hardening-plan.js';
import { DoorstepError } from '../errors.js';
import { ExitCode } from './output.js';
import type { OutputFormat } from './table.js';

export interface DetachFlags {
  stateDir?: string;
  pinRoot?: string;
  output: OutputFormat;
}

export function detach(o: DetachFlags): number {
  checkPrivileges();
  const stateDir = o.stateDir ?? DEFAULT_STATE_DIR;
  const problems: string[] = [];
  const out = detachEnforcement({ stateDir, host: nativeEngineHost, ...(o.pinRoot !== undefined && { pinRoot: o.pinRoot }), onProblem: (m) => problems.push(m) });
  // without a record (an older agent, or none), the default pin folder is still looked at
  const fallback = !out.found && o.pinRoot === undefined ? detachEnforcement({ stateDir, host: nativeEngineHost, pinRoot: DEFAULT_PIN_ROOT }) : undefined;
  const result = fallback?.found ? fallback : out;
  if (o.output === 'json') {
    console.log(JSON.stringify({ ...result, stateDir, problems }));
  } else {
    for (const p of problems) console.log(`warning    ${p}`);
    if (!result.found) console.log(`nothing to detach: no enforcement record in ${stateDir} and no pins at ${o.pinRoot ?? DEFAULT_PIN_ROOT}`);
    if (result.unrouted) console.log('unrouted   forwarding rules, routing tables and forwarding settings removed');
    if (result.detached.length > 0) console.log(`detached   XDP from ${result.detached.join(', ')}`);
    if (result.pinsRemoved) console.log(`removed    pins at ${result.pinRoot}`);
    for (const s of result.unhardened) console.log(`restored   ${sysctlName(s.path)}${s.absent ? ' (gone with its interface)' : ` ${s.from} → ${s.to}`}`);
    if (result.tunnels.length > 0) console.log(`removed    tunnels ${result.tunnels.join(', ')}`);
  }
  if (result.failed.length > 0) {
    throw new DoorstepError('DS_E_DETACH', `could not restore ${result.failed.join('; ')}`, { hint: 'set those keys by hand (sysctl -w), everything else is detached' });
  }
  return ExitCode.OK;
}
