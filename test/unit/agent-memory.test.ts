// SPDX-License-Identifier: Apache-2.0
// The whole agent (src/agent/agent.ts: folder source, controller, local API, audit file) on
// the in-memory engine and in-memory sysctls, without root: it enforces the folder's policy,
// answers status and apply on its socket, rejects a broken file and keeps the version in force,
// and across restarts adopts the engine it left pinned (--keep-on-exit) or restores the state
// dir's policy onto an engine that starts empty. Verdicts expected are written from the policy text.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentClient } from '../../src/controller/agent-client.js';
import { type RunningAgent, startAgent } from '../../src/agent/agent.js';
import { resolveConfig } from '../../src/controller/config.js';
import { MemorySysctls } from '../../src/controller/hardening.js';
import type { StatusReport } from '../../src/controller/routes.js';
import { parseIp } from '../../src/engine/frame.js';
import { MemoryEngine, memoryEngineHost, MemoryPins } from '../../src/engine/memory-engine.js';
import { until } from '../lib/until.js';

const IFINDEX = 5;

const policy = (open: number) => `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: web }
spec:
  defaultAction: deny
  rules:
    - { name: allow-${open}, action: allow, from: [10.1.0.0/16], protocol: udp, ports: [${open}] }
`;

const udp = (dport: number) => ({ family: 4 as const, src: parseIp('10.1.0.7'), dst: parseIp('10.2.0.9'), protocol: 17, sport: 40000, dport, ifindex: IFINDEX });

describe('agent on the in-memory engine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-h19-agent-'));
  const policyDir = join(dir, 'policy');
  const auditFile = join(dir, 'audit.jsonl');
  mkdirSync(policyDir);
  const pins = new MemoryPins();
  const host = memoryEngineHost({ pins, interfaces: { src0: IFINDEX } });
  const running: RunningAgent[] = [];
  after(async () => {
    for (const a of running) await a.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (detachOnExit: boolean): Promise<{ agent: RunningAgent; engine: MemoryEngine }> => {
    const config = resolveConfig({ interfaces: ['src0'], policy: [policyDir], audit: [auditFile], stateDir: join(dir, 'state'), socket: join(dir, 'agent.sock'), pinRoot: join(dir, 'unused-pins'), enforcerId: 'h19-agent', detachOnExit });
    const agent = await startAgent(config, host, { sysctls: new MemorySysctls() });
    running.push(agent);
    return { agent, engine: host.engines[host.engines.length - 1]! };
  };
  const stop = async (agent: RunningAgent) => {
    await agent.stop('test');
    running.splice(running.indexOf(agent), 1);
  };
  /** The policy records of the audit file so far (complete once the agent that wrote them stopped). */
  const policyRecords = () =>
    readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; status?: string; generation?: number; policyVersion?: string })
      .filter((r) => r.type === 'policy');

  it('enforces the folder, answers on its socket, and keeps the version in force when a file breaks', async () => {
    writeFileSync(join(policyDir, 'web.yaml'), policy(7001));
    const { agent, engine } = await start(false);
    await until(() => agent.controller.current, 'the folder policy installed');
    assert.equal(engine.packet(udp(7001)).verdict, 'pass');
    assert.equal(engine.packet(udp(7002)).verdict, 'drop');
    const status = await new AgentClient(join(dir, 'agent.sock')).call<StatusReport>('GET', '/v1/status');
    assert.equal(status.policy?.generation, 1);
    assert.deepEqual(status.interfaces.map((i) => [i.name, i.ifindex, i.adopted]), [['src0', IFINDEX, false]]);
    assert.equal(status.rules['web/allow-7001']?.packets, 1);

    const version = agent.controller.current?.version;
    writeFileSync(join(policyDir, 'web.yaml'), `${policy(7002)}    - { name: bad, action: allow, protocol: udp, ports: [70000] }\n`);
    await until(() => agent.controller.lastRejected, 'the broken file rejected');
    assert.equal(agent.controller.current?.version, version);
    assert.equal(engine.activePolicy()?.generation, 1);
    assert.equal(engine.packet(udp(7001)).verdict, 'pass');
    await stop(agent); // a stop: the engine stays pinned, enforcing
    assert.ok(pins.state, 'the engine is left pinned');
  });

  it('a restart adopts the pinned engine: the same generation, nothing installed again', async () => {
    const before = policyRecords().length;
    const { agent, engine } = await start(true);
    await until(() => agent.controller.lastRejected, 'the broken file rejected again'); // the source is read after adopting
    assert.equal(engine.adopted, true);
    assert.deepEqual(engine.attachments().map((a) => a.adopted), [true]);
    assert.equal(engine.activePolicy()?.generation, 1);
    assert.equal(engine.packet(udp(7001)).cached, true, 'the session cached before the restart is still there');
    await stop(agent); // --detach-on-exit: detached, pins removed
    assert.equal(pins.state, null);
    assert.deepEqual(policyRecords().slice(before).map((r) => [r.status, r.generation]), [['adopted', 1], ['rejected', undefined]]);
  });

  it('a restart onto an empty engine restores the state dir\'s policy, then takes the repaired file', async () => {
    const before = policyRecords().length;
    writeFileSync(join(policyDir, 'web.yaml'), policy(7002));
    const { agent, engine } = await start(false);
    await until(() => engine.activePolicy()?.generation === 2, 'the repaired file installed', 20_000);
    assert.equal(engine.adopted, false);
    assert.equal(engine.activePolicy()?.generation, 2);
    assert.equal(engine.packet(udp(7002)).verdict, 'pass');
    assert.equal(engine.packet(udp(7001)).verdict, 'drop');
    await stop(agent);
    assert.deepEqual(policyRecords().slice(before).map((r) => [r.status, r.generation]), [['restored', 1], ['installed', 2]]);
  });
});
