// SPDX-License-Identifier: Apache-2.0
// A MetricsSource without an engine, for tests of the agent's Prometheus exposition: every
// counter and reason with a distinct value, two rules, two interfaces, a policy.
import { Counter, Reason } from '../../src/abi/generated.js';
import type { CounterName, CpuStats } from '../../src/abi/records.js';
import type { MetricsSource } from '../../src/audit/metrics.js';

export function fakeStats(): CpuStats {
  const counters = Object.fromEntries(
    Object.keys(Counter)
      .filter((k) => k !== 'COUNT')
      .map((k, i) => [k, 1000 + i]),
  ) as Record<CounterName, number>;
  const byReason = Object.fromEntries(
    Object.keys(Reason)
      .filter((k) => k !== 'COUNT')
      .map((k, i) => [k, { pass: { packets: 10 * i + 1, bytes: 100 * i + 1 }, drop: { packets: 10 * i + 2, bytes: 100 * i + 2 } }]),
  ) as CpuStats['byReason'];
  return { counters, heldWithoutRule: 0, sketchWithoutRule: null, eventSeq: [0, 0], byReason };
}

export function fakeSource(over: Partial<MetricsSource> = {}): MetricsSource & { calls: number } {
  const source = {
    calls: 0,
    enforcer: 'edge-1',
    stats() {
      source.calls++;
      return fakeStats();
    },
    ruleStats: () =>
      new Map([
        ['web-tier/corp-https', { packets: 42, bytes: 4200 }],
        ['web-tier/default', { packets: 7, bytes: 700 }],
      ]),
    sessionCount: () => 12,
    events: () => ({ read: 99, lost: 3 }),
    policy: () => ({ generation: 5, version: 'sha256:abc' }),
    interfaces: () => [
      { name: 'eth1', mode: 'native' as const },
      { name: 'veth0', mode: 'generic' as const },
    ],
    historyAvailable: () => true,
    ...over,
  };
  return source;
}

