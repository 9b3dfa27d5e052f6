// SPDX-License-Identifier: Apache-2.0
// The record filters that `observe` and `sessions` share: flags on the command line, a query
// string to the agent, which applies them (src/audit/record-filter.ts).
import { type Command, Option } from 'commander';
import { parseFilterOptions } from '../audit/record-filter.js';

export interface FilterFlags {
  verdict?: string;
  from?: string;
  to?: string;
  port?: string;
  protocol?: string;
  rule?: string;
  since?: string;
}

export function addFilterFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--verdict <verdict>', 'allow or deny').choices(['allow', 'deny']))
    .option('--from <cidr>', 'source address inside this prefix')
    .option('--to <cidr>', 'destination address inside this prefix')
    .option('--port <n>', 'destination port')
    .option('--protocol <p>', 'tcp, udp, icmp, icmpv6, sctp or a number')
    .option('--rule <id>', 'deciding rule: `policy/rule`, or a part of it')
    .option('--since <when>', 'RFC 3339 time or a duration back from now (30s, 5m, 2h)');
}

/** The filters as the agent's query string; checked here first so mistakes exit 2 locally. */
export function filterQuery(f: FilterFlags): URLSearchParams {
  const q = new URLSearchParams();
  const given: Record<string, string> = {};
  for (const k of ['verdict', 'from', 'to', 'port', 'protocol', 'rule', 'since'] as const) {
    const v = f[k];
    if (v !== undefined) {
      q.set(k, v);
      given[k] = v;
    }
  }
  parseFilterOptions(given);
  return q;
}
