// SPDX-License-Identifier: Apache-2.0
// `doorstep demo` (what `npm start` runs): the demo of src/demo/run.ts, printed for a person —
// the agent's audit records as they arrive, then a table of what was sent, delivered and dropped.
import { runDemo } from '../demo/run.js';

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
/** host:port, with IPv6 hosts in brackets (RFC 3986). */
const endpoint = (host: unknown, port: unknown) => (String(host).includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

export async function demo(options: { xdpMode: 'auto' | 'native' | 'generic' }): Promise<number> {
  console.log('doorstep demo: client and server namespaces joined by a veth pair; the enforcer sits on the server side.\n');
  const result = await runDemo({
    xdpMode: options.xdpMode,
    onRecord: (r) => {
      if (r.type === 'agent' && r.event === 'attached') console.log(`attached to ${r.interface} (${r.mode} XDP) — default deny until the policy is in`);
      if (r.type === 'policy') console.log(`${r.status} policy ${String(r.policyVersion).slice(0, 19)}… generation ${r.generation}, ${r.rules} rules, ${r.installMs} ms\n`);
      if (r.type === 'session') {
        const where = r.sport !== undefined ? `${endpoint(r.src, r.sport)} → ${endpoint(r.dst, r.dport)}` : `${r.src} → ${r.dst}`;
        console.log(`  ${r.verdict === 'allow' ? 'ALLOW' : 'DENY '} ${pad(String(r.protocol), 6)} ${pad(where, 44)} rule ${r.rule}`);
      }
    },
  });
  console.log('\nflow                               sent      delivered');
  for (const f of result.flows) {
    console.log(`${pad(f.name, 34)} ${pad(`${f.sentBytes} B`, 9)} ${f.deliveredBytes} B`);
  }
  const counters = result.finalStats?.counters ?? {};
  const rules = result.finalStats?.rules ?? {};
  console.log(`\nengine: ${counters.PASS_PACKETS ?? 0} packets passed, ${counters.DROP_PACKETS ?? 0} dropped at XDP, ${counters.EVENTS ?? 0} session events, ${counters.EVENTS_LOST ?? 0} lost`);
  console.log(`per rule: ${Object.entries(rules).map(([k, v]) => `${k}=${v.packets}`).join('  ')}`);
  console.log('\nnamespaces, links and pins removed.');
  return 0;
}
