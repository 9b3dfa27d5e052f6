// SPDX-License-Identifier: Apache-2.0
// `doorstep demo` (what `npm start` runs): the placement demo of src/demo/placements.ts, printed
// for a person — each enforcer's tunnels and session records as they arrive (verdict, rule,
// tenant, where the session went) and where each serves its web UI, then per flow what arrived and came back and what the underlay
// carried (only WireGuard, or not), and each engine's counters.
import { type PlacementFlowResult, runPlacementDemo } from '../demo/placements.js';

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
/** host:port, with IPv6 hosts in brackets (RFC 3986). */
const endpoint = (host: unknown, port: unknown) => (String(host).includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** Where each demo agent serves the web UI: its namespace's loopback, so every agent can use the same port. */
const DEMO_UI = '127.0.0.1:9470';

const MAP = `
  region eu-1   vpc-a 10.1.0.0/24 ─┐
                vpc-b 10.2.0.0/24 ─┴─ [infra enforcer] ══ WireGuard dswg101, dswg102 ══╗   (vpc-a ↔ vpc-b: hairpin)
  region us-1   vpc-r 10.9.0.0/24 ─── [workload enforcer] ══ WireGuard dswg109 ══════╬══ edge (wireguard-go)
  data center   dc-fra 10.50.0.0/24 ─ [datacenter enforcer] ══ WireGuard dswg150 ════╝
`;

function describe(enforcer: string, r: Record<string, unknown>): string | undefined {
  const tag = `[${pad(enforcer, 10)}]`;
  if (r.type === 'agent' && r.event === 'attached') return `${tag} attached to ${r.interface} (${r.mode} XDP), default deny`;
  if (r.type === 'agent' && r.event === 'tunnel') return `${tag} tunnel ${r.message}${r.adopted ? ' (adopted)' : ''}`;
  if (r.type === 'agent' && r.event === 'forwarding') return `${tag} forwarding ${r.message}`;
  if (r.type === 'agent' && r.event === 'unrouted') return `${tag} ${r.message}`;
  if (r.type === 'agent' && r.event === 'serving' && String(r.message).startsWith('web UI')) return `${tag} ${r.message} (in its network namespace)`;
  if (r.type === 'agent' && r.event === 'error') return `${tag} error: ${r.message}`;
  if (r.type === 'policy') return `${tag} ${r.status} policy ${String(r.policyVersion ?? '').slice(0, 19)}… generation ${r.generation}, ${r.rules} rules`;
  if (r.type !== 'session') return undefined;
  const flow = r.sport !== undefined ? `${endpoint(r.src, r.sport)} → ${endpoint(r.dst, r.dport)}` : `${r.src} → ${r.dst}`;
  const from = r.path === 'source' || /^ds(vx|wg)/.test(String(r.interface)) ? `from the edge (${r.interface})` : `from ${r.tenant ?? r.interface}`;
  const went = r.verdict === 'allow' ? `→ ${r.path ?? 'passed'}` : '→ dropped at XDP';
  return `${tag} ${r.verdict === 'allow' ? 'ALLOW' : 'DENY '} ${pad(String(r.protocol), 4)} ${pad(flow, 36)} ${pad(from, 24)} rule ${pad(String(r.rule), 24)} ${went}`;
}

export async function demo(): Promise<number> {
  const started = Date.now();
  console.log(`doorstep demo: an enforcer in each placement, in network namespaces, with examples/placement/*.yaml${MAP}`);
  const result = await runPlacementDemo({
    onRecord: (enforcer, r) => {
      const line = describe(enforcer, r);
      if (line) console.log(line);
    },
    ui: DEMO_UI,
    onReady: async (topology) => {
      console.log(`\nweb UI (read-only, while the demo runs): each enforcer serves http://${DEMO_UI}/ on the loopback of its own network namespace:`);
      for (const e of topology.enforcers) console.log(`  ${pad(e.name, 10)} nsenter --net=/run/netns/${e.ns} curl -s http://${DEMO_UI}/api/rules   (docs/ui.md)`);
      console.log('\nflows: a host in one network sends to a server in another, which echoes every byte back');
    },
    onFlow: (f) => console.log(`\n── ${f.name}: ${f.proto}/${f.port}, the policy says ${f.expect}`),
    onFlowDone: (f) => {
      console.log(`   ${f.delivered} of ${f.sent} B arrived, ${f.echoed} B came back; the edge carried ${f.edgePackets} packets`);
      console.log(`   ${underlayLine(f)}`);
    },
  });
  console.log('\nflow                     expect  sent     arrived  came back  edge packets');
  for (const f of result.flows) {
    const outcome = f.delivered > 0 ? (f.edgePackets > 0 ? 'via edge' : 'hairpin') : 'dropped';
    console.log(`${pad(f.name, 24)} ${pad(f.expect, 7)} ${pad(`${f.sent} B`, 8)} ${pad(`${f.delivered} B`, 8)} ${pad(`${f.echoed} B`, 10)} ${pad(String(f.edgePackets), 5)} ${outcome}`);
  }
  console.log('\nengines:');
  for (const [name, s] of Object.entries(result.status)) {
    const c = s.counters;
    console.log(`  ${pad(name, 10)} ${c.PASS_PACKETS ?? 0} passed, ${c.DROP_PACKETS ?? 0} dropped at XDP, ${c.REPLIES ?? 0} replies passed as replies, ${c.EVENTS ?? 0} session events, ${c.EVENTS_LOST ?? 0} lost`);
  }
  const left = Object.entries(result.leftovers).filter(([, l]) => l.length > 0);
  console.log(
    left.length === 0
      ? '\nevery agent stopped (SIGTERM: the engines kept enforcing), then `doorstep detach` removed its engine, tunnels, routes and forwarding settings; namespaces, links and pins removed.'
      : `\nleft behind: ${left.map(([n, l]) => `${n}: ${l.join(', ')}`).join('; ')}`,
  );
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return left.length === 0 ? 0 : 1;
}

/** What the underlay carried during a flow, in one sentence. */
function underlayLine(f: PlacementFlowResult): string {
  const u = f.underlay;
  const what = u.packets === 0 ? 'nothing' : `${u.packets} packets, ${u.bytes} B`;
  const only = u.packets > 0 && u.other === 0 ? `, only WireGuard (UDP ${[...new Set(u.udp.map((x) => x.split(' → ')[1]))].join(', ')})` : u.other > 0 ? `, ${u.other} of them NOT WireGuard` : '';
  const clear = u.clear > 0 ? `; ${u.clear} show the flow in clear` : u.packets > 0 ? '; none shows the flow in clear' : '';
  return `underlay: ${what}${only}${clear}`;
}
