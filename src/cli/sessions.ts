// SPDX-License-Identifier: Apache-2.0
// `doorstep sessions`: the engine's session cache, with the same filters as `observe`.
import type { SessionView } from '../controller/session-view.js';
import { AgentClient } from '../controller/agent-client.js';
import { type FilterFlags, filterQuery } from './filter-flags.js';
import { ExitCode } from './output.js';
import { table, type OutputFormat } from './table.js';

export async function sessions(o: FilterFlags & { socket: string; output: OutputFormat; limit: string }): Promise<number> {
  const query = filterQuery(o);
  query.set('limit', o.limit);
  const r = await new AgentClient(o.socket).call<{ matched: number; sessions: SessionView[] }>('GET', `/v1/sessions?${query}`);
  if (o.output === 'json') {
    console.log(JSON.stringify(r));
    return ExitCode.OK;
  }
  const ep = (a: string, p?: number) => (p === undefined ? a : a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  console.log(
    table(
      ['verdict', 'protocol', 'source', 'destination', 'rule', 'packets', 'bytes', 'last seen', 'interface'],
      r.sessions.map((s) => [
        s.current ? s.verdict : `${s.verdict} (stale)`,
        s.protocol,
        ep(s.src, s.sport),
        ep(s.dst, s.dport),
        s.rule,
        s.packets,
        s.bytes,
        s.lastSeen.slice(11, 23),
        s.interface,
      ]),
    ),
  );
  console.log(`${r.matched} sessions${r.matched > r.sessions.length ? ` (first ${r.sessions.length} shown; --limit N)` : ''}`);
  return ExitCode.OK;
}
