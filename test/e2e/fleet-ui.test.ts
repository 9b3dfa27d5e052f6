// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet ui` end to end: a real NATS server with a policy bucket (one set) and a status
// bucket (two enforcers: one on the set's version, one behind), the command serving the fleet
// view, and headless chromium reading it: both enforcers, their versions, which one is in sync,
// the WireGuard key, "not converged". A bind beyond loopback is refused before NATS is asked.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import type { Browser } from 'playwright-core';
import { type EnforcerStatus, statusKey } from '../../src/fleet/enforcer-status.js';
import { createPolicyBucket, publishEnvelope } from '../../src/fleet/fleet-client.js';
import { connectNats, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { compileIr } from '../../src/policy/compile.js';
import { buildEnvelope } from '../../src/fleet/policy-envelope.js';
import { mainJs } from '../lib/agent-rig.js';
import { browserIn } from '../lib/browser.js';
import { NatsServer } from '../lib/nats-server.js';

const POLICY = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: base }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: dns, action: allow, protocol: udp, ports: [53] }\n';
const BUCKET = 'h21uipolicy';
const STATUS = 'h21uistatus';
const KEY = 'Wm9ydW0gaXBzdW0gZG9sb3Igc2l0IGFtZXQgYWJjZGU=';

function status(enforcer: string, version: string | null): EnforcerStatus {
  const now = new Date().toISOString();
  return {
    format: 1, enforcer, labels: { region: 'eu' }, health: 'enforcing',
    policy: version === null ? null : { version, generation: 2, origin: `nats:${BUCKET}`, rules: 1, installedAt: now },
    rejected: null, counters: { passed: 1, dropped: 1, sessions: 1, eventsLost: 0, auditDropped: 0 },
    interfaces: [{ name: 'eth0', mode: 'native' }], agent: { pid: 1, startedAt: now }, updatedAt: now,
    ...(enforcer === 'eu-1' && { wireguard: { publicKey: KEY, tunnels: [] } }),
  };
}

describe('doorstep fleet ui', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-fleet-ui-h21-'));
  let nats: NatsServer | undefined;
  let child: ChildProcess | undefined;
  let browser: Browser | undefined;
  after(async () => {
    await browser?.close().catch(() => undefined);
    child?.kill('SIGKILL');
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bind beyond loopback unless allowed', () => {
    const r = spawnSync(process.execPath, [mainJs, 'fleet', 'ui', '--nats', `nats://127.0.0.1:9/${BUCKET}`, '--ui', '0.0.0.0:9471'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /DS_E_CONFIG/);
    assert.match(r.stderr, /--ui-allow-remote/);
  });

  it('shows every enforcer, its version, whether it is in sync, its key, and the convergence', async () => {
    nats = await NatsServer.start();
    const url = `${nats.url}/${BUCKET}`;
    const nc = await connectNats(parseNatsUrl(url, 'BUCKET'), {}, { name: 'test' });
    const version = compileIr([{ file: `${BUCKET}/sets.base/base.yaml`, text: POLICY }]).ir.version;
    try {
      await publishEnvelope(await createPolicyBucket(nc, BUCKET), buildEnvelope('base', {}, [{ file: 'base.yaml', text: POLICY }]));
      const kv = await new Kvm(nc).create(STATUS, { history: 1, ttl: 120_000 });
      await kv.put(statusKey('eu-1'), JSON.stringify(status('eu-1', version)));
      await kv.put(statusKey('eu-2'), JSON.stringify(status('eu-2', 'sha256:behind')));
    } finally {
      await nc.close();
    }

    child = spawn(process.execPath, [mainJs, 'fleet', 'ui', '--nats', url, '--status-bucket', STATUS, '--ui', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address within 20 s; stderr: ${stderr}`)), 20_000);
      createInterface({ input: child!.stdout! }).on('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child!.on('exit', (code) => reject(new Error(`fleet ui exited ${code}: ${stderr}`)));
    });
    const address = /^web UI of the fleet at (http:\/\/127\.0\.0\.1:\d+\/);/.exec(line)?.[1];
    assert.ok(address, line);

    browser = await browserIn(undefined, dir);
    const page = await browser.newPage();
    await page.goto(address);
    await page.waitForSelector('#fleet tr.enforcer', { timeout: 20_000 });
    const rows = await page.$$eval('#fleet tr.enforcer', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '').concat(tr.getAttribute('data-in-sync') ?? '')));
    assert.equal(rows.length, 2, JSON.stringify(rows));
    const [one, two] = [rows.find((r) => r[0] === 'eu-1'), rows.find((r) => r[0] === 'eu-2')];
    assert.equal(one?.[7], 'true');
    assert.equal(one?.[3], version.slice(0, 19));
    assert.equal(one?.[5], KEY);
    assert.equal(two?.[7], 'false');
    assert.match(two?.[4] ?? '', /^no, should run sha256:/);
    assert.match((await page.textContent('#fleet .note')) ?? '', /not converged: 1 of 2 behind/);
    assert.equal(await page.$('#flows'), null, 'no flow table in the fleet view');
    await page.close();

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => (child!.exitCode !== null ? resolve(child!.exitCode) : child!.on('exit', resolve)));
    assert.equal(code, 0, stderr);
  });
});
