// SPDX-License-Identifier: Apache-2.0
// End to end: two network namespaces joined by a veth pair, the enforcer attached (native XDP)
// on the server side, real TCP and UDP traffic. Asserts what was delivered, what the engine
// dropped, and the audit records it wrote.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DemoResult, DEMO_FLOWS, runDemo } from '../../src/demo/run.js';

describe('e2e: enforcement on a veth pair with real traffic', () => {
  let result: DemoResult;

  it('runs the flows through the enforcer', async () => {
    result = await runDemo({ xdpMode: 'native' });
    assert.equal(result.attachMode, 'native');
    assert.equal(result.flows.length, DEMO_FLOWS.length);
  });

  it('delivers every byte of the allowed flows and nothing of the denied ones', () => {
    const by = (name: string) => result.flows.find((f) => f.name.startsWith(name));
    for (const name of ['web over TCP (', 'web over TCP/IPv6', 'telemetry over UDP']) {
      const f = by(name);
      assert.ok(f && f.sentBytes > 0, `${name} sent`);
      assert.equal(f.deliveredBytes, f.count * f.size, `${name} delivered`);
    }
    const admin = by('admin over TCP');
    assert.equal(admin?.connected, false, 'the denied TCP connection never completes');
    assert.equal(admin?.deliveredBytes, 0);
    const syslog = by('syslog over UDP');
    assert.equal(syslog?.sentBytes, 50 * 200, 'the client did send');
    assert.equal(syslog?.deliveredBytes, 0, 'nothing reached the server');
  });

  it('writes one session record per flow, naming the deciding rule', () => {
    const sessions = result.records.filter((r) => r.type === 'session' && (r.protocol === 'tcp' || r.protocol === 'udp'));
    const find = (proto: string, dport: number, family: 4 | 6) =>
      sessions.filter((r) => r.protocol === proto && r.dport === dport && String(r.src).includes(':') === (family === 6));
    const expect: [string, number, 4 | 6, string, string][] = [
      ['tcp', 8080, 4, 'allow', 'demo/app-http'],
      ['tcp', 8080, 6, 'allow', 'demo/app-http'],
      ['tcp', 9090, 4, 'deny', 'demo/block-admin'],
      ['udp', 5353, 4, 'allow', 'demo/app-telemetry'],
      ['udp', 6363, 4, 'deny', 'demo/default'],
    ];
    for (const [proto, port, family, verdict, rule] of expect) {
      const found = find(proto, port, family);
      assert.equal(found.length, 1, `one record for ${proto}/${port} IPv${family}`);
      assert.equal(found[0]?.verdict, verdict);
      assert.equal(found[0]?.rule, rule);
      assert.equal(found[0]?.interface !== undefined, true);
      assert.match(String(found[0]?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(found[0]?.enforcer, 'demo');
      assert.match(String(found[0]?.policyVersion), /^sha256:[0-9a-f]{64}$/);
    }
  });

  it('counted the drops at XDP, per rule, and lost no event', () => {
    const stats = result.finalStats as { counters: Record<string, number>; rules: Record<string, { packets: number }> };
    assert.ok(stats, 'final stats were printed');
    assert.ok((stats.rules['demo/default']?.packets ?? 0) >= 50, 'all 50 denied datagrams hit the default');
    assert.ok((stats.rules['demo/block-admin']?.packets ?? 0) >= 1, 'the SYN hit block-admin');
    assert.ok((stats.rules['demo/app-telemetry']?.packets ?? 0) === 50, 'all 50 allowed datagrams hit app-telemetry');
    assert.ok(stats.counters.DROP_PACKETS! >= 51);
    assert.equal(stats.counters.EVENTS_LOST, 0);
    assert.equal(stats.counters.PARSE_ERRORS, 0);
  });
});
