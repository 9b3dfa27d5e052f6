// SPDX-License-Identifier: Apache-2.0
// `doorstep observe`: the agent's audit stream, filtered; `--last N` from its recent records,
// `--follow` to keep streaming until Ctrl-C.
import type { AuditRecord } from '../audit/records.js';
import { AgentClient } from '../controller/agent-client.js';
import { type FilterFlags, filterQuery } from './filter-flags.js';
import { ExitCode } from './output.js';
import type { OutputFormat } from './table.js';

export function recordLine(r: AuditRecord): string {
  const t = r.time.slice(11, 23);
  switch (r.type) {
    case 'session':
    case 'summary': {
      const ep = (a: string, p?: number) => (p === undefined ? a : a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
      const counts = r.type === 'summary' ? `  +${r.packets} pkts +${r.bytes} B` : '';
      return `${t} ${r.type.padEnd(7)} ${r.verdict.toUpperCase().padEnd(5)} ${r.protocol.padEnd(6)} ${ep(r.src, r.sport)} → ${ep(r.dst, r.dport)}  ${r.rule}  ${r.interface}${counts}`;
    }
    case 'policy':
      return `${t} policy  ${r.status} ${r.policyVersion ?? ''} ${r.generation !== undefined ? `generation ${r.generation}` : ''} from ${r.source}${
        r.problems ? `: ${r.problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.field}: ${p.message}`).join('; ')}` : ''
      }`;
    case 'lost':
      return `${t} lost    ${r.count} events (${r.cause}${r.cpu !== undefined ? `, cpu ${r.cpu}` : ''})`;
    case 'agent':
      return `${t} agent   ${r.event} ${r.interface === '*' ? '' : r.interface} ${r.message ?? ''}`.trimEnd();
    case 'flood':
      return `${t} flood   ${r.heldBack} denied sessions held back  ${r.rule}  +${r.packets} pkts +${r.bytes} B since ${r.from.slice(11, 23)}`;
  }
}

export async function observe(o: FilterFlags & { socket: string; output: OutputFormat; follow?: boolean; last?: string }): Promise<number> {
  const query = filterQuery(o);
  if (o.last !== undefined) query.set('last', o.last);
  else if (!o.since) query.set('last', o.follow ? '0' : '100');
  if (o.follow) query.set('follow', '1');
  const client = new AgentClient(o.socket);
  const s = client.stream(`/v1/observe?${query}`, (value) => {
    const r = value as AuditRecord;
    process.stdout.write(o.output === 'json' ? `${JSON.stringify(r)}\n` : `${recordLine(r)}\n`);
  });
  const stop = () => s.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await s.done;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  return ExitCode.OK;
}
