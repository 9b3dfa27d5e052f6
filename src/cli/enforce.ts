// SPDX-License-Identifier: Apache-2.0
// `doorstep enforce`: compile a policy, attach the engine to interfaces in default deny, install
// the policy, and stream audit records as JSON lines until SIGINT/SIGTERM (which detach). A
// single-process enforcer for one host; `doorstep agent` (the daemon) builds on the same parts.
//
// stdin commands, one per line: `stats` (counters and per-rule hits), `sessions`, `reload`.
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { type EnrichContext, formatAddress16, monotonicToWall, ruleName, sessionRecord } from '../audit/session-record.js';
import { Engine, type XdpMode } from '../engine/engine.js';
import { compileSources } from '../policy/compile.js';
import { readPolicySources } from '../policy/files.js';
import { buildImage } from '../policy/image.js';
import type { PolicyIr } from '../policy/ir.js';
import { PolicyError } from '../errors.js';

export interface EnforceOptions {
  interfaces: string[];
  policy: string[];
  xdpMode: XdpMode;
  pinRoot: string | null;
  enforcer?: string;
}

type Emit = (record: Record<string, unknown>) => void;

async function compilePolicy(paths: string[]) {
  const compiled = compileSources(await readPolicySources(paths));
  return { ...compiled, image: buildImage(compiled.ir, compiled.tables) };
}

export async function enforce(options: EnforceOptions, emit: Emit): Promise<void> {
  // Validate before touching the kernel: a bad policy leaves nothing attached.
  let compiled = await compilePolicy(options.policy);

  const engine = Engine.open({ pinRoot: options.pinRoot });
  const ctx: EnrichContext & { interfaces: Map<number, string>; policies: Map<number, PolicyIr> } = {
    enforcer: options.enforcer ?? hostname(),
    interfaces: new Map(),
    policies: new Map(),
  };
  const toWall = monotonicToWall();
  engine.onEvents((events) => {
    for (const e of events) emit(sessionRecord(e, ctx, toWall) as unknown as Record<string, unknown>);
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    emit({ type: 'stats', ...statsOf(engine, ctx) });
    engine.close();
    emit({ type: 'stopped', signal });
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    for (const ifname of options.interfaces) {
      const a = engine.attach(ifname, options.xdpMode);
      ctx.interfaces.set(a.ifindex, a.ifname);
      emit({ type: 'attached', interface: a.ifname, ifindex: a.ifindex, mode: a.mode, adopted: a.adopted });
    }
    const install = () => {
      const r = engine.install(compiled.image);
      ctx.policies.set(r.generation, compiled.ir);
      emit({
        type: 'policy',
        version: r.version,
        generation: r.generation,
        rules: r.ruleCount,
        installMs: Math.round(r.durationMs * 10) / 10,
        warnings: compiled.warnings,
      });
    };
    install();

    const input = createInterface({ input: process.stdin });
    input.on('line', (line) => {
      const command = line.trim();
      if (command === 'stats') emit({ type: 'stats', ...statsOf(engine, ctx) });
      else if (command === 'sessions') emit({ type: 'sessions', sessions: sessionsOf(engine) });
      else if (command === 'reload') {
        compilePolicy(options.policy)
          .then((next) => {
            compiled = next;
            install();
          })
          .catch((err: unknown) =>
            emit({ type: 'policy-rejected', problems: err instanceof PolicyError ? err.problems : [String(err)] }),
          );
      } else if (command) emit({ type: 'error', message: `unknown command "${command}" (stats, sessions, reload)` });
    });
    emit({ type: 'ready' });
  } catch (err) {
    engine.close();
    throw err;
  }
}

function statsOf(engine: Engine, ctx: EnrichContext) {
  const s = engine.stats();
  const active = engine.activePolicy();
  const ir = active ? ctx.policies.get(active.generation) : undefined;
  const rules: Record<string, { packets: number; bytes: number }> = {};
  for (const [index, stat] of engine.ruleStats()) {
    rules[ruleName(ir, index)] = stat;
  }
  return { generation: active?.generation ?? 0, counters: s.counters, byReason: s.byReason, rules };
}

function sessionsOf(engine: Engine) {
  return engine.sessions().map(({ key, value }) => ({
    src: formatAddress16(key.family, key.src),
    dst: formatAddress16(key.family, key.dst),
    proto: key.proto,
    sport: key.sport,
    dport: key.dport,
    ifindex: key.ifindex,
    action: value.action,
    reason: value.reason,
    rule: value.rule,
    generation: value.generation,
    packets: value.packets,
    bytes: value.bytes,
  }));
}
