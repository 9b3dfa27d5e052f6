// SPDX-License-Identifier: Apache-2.0
// MemoryEngine (src/engine/memory-engine.ts), the in-memory side of the engine seam: what it
// decides for packets and explains for frames (written here from the policy text), the failsafe,
// tenants of interfaces, `log: false`, a failed install, and that nothing above the seam (the
// controller, the agent, the in-memory engine) loads the native addon.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Action, Reason } from '../../src/abi/generated.js';
import type { RawEvent } from '../../src/abi/records.js';
import { arpFrame, frame, parseIp } from '../../src/engine/frame.js';
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { compileSources } from '../../src/policy/compile.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { buildImage } from '../../src/policy/tables/image.js';
import { tenantId } from '../../src/policy/ir/tenants.js';

const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: p }
spec:
  defaultAction: deny
  rules:
    - { name: web, action: allow, from: [10.1.0.0/16], protocol: tcp, ports: [80], tenants: [vpc-a] }
    - { name: quiet, action: allow, protocol: udp, ports: [123], log: false }
    - { name: dns, action: allow, protocol: udp, ports: [53] }
`;

function compiled(text = POLICY) {
  const { ir, tables } = compileSources([{ file: 'p.yaml', text }]);
  return { ir, image: buildImage(ir, tables) };
}

const packet = (src: string, protocol: number, dport: number, ifindex: number) => ({ family: 4 as const, src: parseIp(src), dst: parseIp('10.2.0.1'), protocol, sport: 5000, dport, ifindex });

describe('in-memory engine', () => {
  it('decides by the installed version for the tenant of the ingress interface, and logs what the rules log', async () => {
    const engine = MemoryEngine.open({ interfaces: { a0: 3, b0: 4 } });
    const events: RawEvent[] = [];
    engine.onEvents((batch) => events.push(...batch));
    engine.attach('a0');
    engine.attach('b0');
    assert.equal(engine.setInterfaceRoles([{ ifindex: 3, role: 'source', tenant: tenantId('vpc-a') }]), true);
    assert.equal(engine.setInterfaceRoles([{ ifindex: 3, role: 'source', tenant: tenantId('vpc-a') }]), false, 'the same roles again change nothing');
    await engine.installAsync(compiled());
    assert.deepEqual(engine.packet(packet('10.1.0.5', 6, 80, 3)), { verdict: 'pass', reason: 'POLICY', rule: 1, generation: 1, cached: false });
    assert.deepEqual(engine.packet(packet('10.1.0.5', 6, 80, 4)), { verdict: 'drop', reason: 'POLICY', rule: 0, generation: 1, cached: false }, 'not vpc-a on b0');
    assert.equal(engine.packet(packet('10.9.0.5', 6, 80, 3)).verdict, 'drop', 'not from 10.1.0.0/16');
    assert.deepEqual(engine.packet(packet('10.9.0.5', 17, 123, 4)), { verdict: 'pass', reason: 'POLICY', rule: 2, generation: 1, cached: false });
    assert.equal(engine.packet(packet('10.9.0.5', 17, 53, 4)).rule, 3);
    // four new sessions that log (rule 2 does not): four events, in order, numbered without gaps
    assert.deepEqual(events.map((e) => [e.rule, e.action, e.seq]), [[1, Action.ALLOW, 1], [0, Action.DENY, 2], [0, Action.DENY, 3], [3, Action.ALLOW, 4]]);
    const c = engine.stats().counters;
    assert.deepEqual([c.RX_PACKETS, c.PASS_PACKETS, c.DROP_PACKETS, c.CACHE_MISSES, c.EVENTS], [5, 3, 2, 5, 4]);
    assert.throws(() => engine.packet(packet('10.1.0.5', 6, 80, 9)), { code: 'DS_E_USAGE' }, 'no engine on that interface');
    engine.close();
    assert.throws(() => engine.activePolicy(), { code: 'DS_E_ENGINE_CLOSED' });
  });

  it('passes the failsafe before any policy, and caches it until the next version', async () => {
    const engine = MemoryEngine.open({ interfaces: { a0: 3 } });
    engine.attach('a0');
    const mgmt = parseCidr('192.0.2.0/24');
    assert.ok(!('problem' in mgmt));
    assert.equal(engine.setFailsafe([{ cidr: mgmt, protocol: 6, ports: { lo: 22, hi: 22 } }]), true);
    assert.deepEqual(engine.packet(packet('192.0.2.9', 6, 22, 3)), { verdict: 'pass', reason: 'FAILSAFE', rule: 0, generation: 0, cached: false });
    assert.deepEqual(engine.packet(packet('192.0.2.9', 6, 23, 3)), { verdict: 'drop', reason: 'NO_POLICY', rule: 0, generation: 0, cached: false });
    engine.setFailsafe([]);
    assert.equal(engine.packet(packet('192.0.2.9', 6, 22, 3)).cached, true, 'a cached failsafe verdict stays until a new generation');
    await engine.installAsync(compiled());
    assert.equal(engine.packet(packet('192.0.2.9', 6, 22, 3)).reason, 'POLICY');
    engine.close();
  });

  it('explains frames as the active version decides them, writing nothing', async () => {
    const engine = MemoryEngine.open();
    await engine.installAsync(compiled());
    const dns = engine.explain(frame({ src: '10.9.0.5', dst: '10.2.0.1', proto: 17, sport: 5000, dport: 53, vlans: [7] }));
    assert.deepEqual([dns.action, dns.reason, dns.rule, dns.generation, dns.log, dns.key.vlanOuter, dns.key.dport], [Action.ALLOW, Reason.POLICY, 3, 1, true, 7, 53]);
    const web = engine.explain(frame({ src: '10.1.0.5', dst: '10.2.0.1', proto: 6, sport: 5000, dport: 80 }), { tenant: tenantId('vpc-a') });
    assert.deepEqual([web.action, web.rule, web.tenant], [Action.ALLOW, 1, tenantId('vpc-a')]);
    const v6 = engine.explain(frame({ src: '2001:db8::1', dst: '2001:db8::2', proto: 17, sport: 1, dport: 123 }));
    assert.deepEqual([v6.action, v6.rule, v6.log, v6.key.family], [Action.ALLOW, 2, false, 6]);
    assert.equal(engine.explain(arpFrame()).reason, Reason.NON_IP);
    assert.equal(engine.explain(frame({ src: '10.9.0.5', dst: '10.2.0.1', proto: 17, sport: 5000, dport: 53 }).subarray(0, 20)).reason, Reason.MALFORMED);
    assert.deepEqual([engine.stats().counters.RX_PACKETS, await engine.sessionCountAsync()], [0, 0], 'explain wrote nothing');
  });

  it('a failed install leaves the version in force; installs count generations on', async () => {
    const engine = MemoryEngine.open();
    const first = await engine.installAsync(compiled());
    engine.failNextInstall();
    await assert.rejects(engine.installAsync(compiled(POLICY.replace('ports: [53]', 'ports: [54]'))), { code: 'DS_E_BPF_MAP' });
    assert.deepEqual(engine.activePolicy(), { generation: first.generation, slot: first.slot, ruleCount: 3 });
    const second = await engine.installAsync(compiled());
    assert.deepEqual([second.generation, second.slot], [2, 1]);
    engine.uninstall();
    assert.equal(engine.activePolicy(), null);
    assert.equal((await engine.installAsync(compiled())).generation, 3, 'after an uninstall the generation still counts on');
  });
});

describe('nothing above the seam loads the addon', () => {
  const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
  /** Every module a compiled module loads at run time (type-only imports are gone from dist), transitively. */
  function loads(entry: string): Set<string> {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/gms)) visit(join(dirname(file), m[1]!));
    };
    visit(join(dist, entry));
    return seen;
  }

  for (const entry of ['controller/network-controller.js', 'agent/agent.js', 'engine/memory-engine.js']) {
    it(entry, () => {
      const native = [...loads(entry)].filter((f) => /engine\/(native|engine|native-host)\.js$/.test(f));
      assert.deepEqual(native, []);
    });
  }

  it('the check sees the edge: cli/agent.js loads the native engine', () => {
    assert.ok([...loads('cli/agent.js')].some((f) => f.endsWith('engine/native.js')));
  });
});
