// SPDX-License-Identifier: Apache-2.0
// Exit codes of the fleet commands when NATS answers but JetStream does not (as while a cluster
// has no JetStream leader): 6 with DS_E_NATS and what was being done, never 1 ("unexpected").
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mainJs } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const POLICY = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules: []\n';

describe('fleet commands against NATS without JetStream', () => {
  let server: NatsServer;
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-exit-'));
  const cli = (args: string[]) => spawnSync(process.execPath, [mainJs, ...args], { encoding: 'utf8', timeout: 60_000 });

  before(async () => {
    server = await NatsServer.start([], { jetstream: false });
  });
  after(async () => {
    await server.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('apply exits 6 and says nothing was published', () => {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, POLICY);
    const r = cli(['apply', '--nats', `${server.url}/doorstep-policy`, '--name', 'web', file]);
    assert.equal(r.status, 6, r.stderr);
    assert.match(r.stderr, /DS_E_NATS: nothing was published/);
    assert.doesNotMatch(r.stderr, /unexpected/);
  });

  it('fleet status and fleet remove exit 6', () => {
    const s = cli(['fleet', 'status', '--nats', `${server.url}/doorstep-policy`]);
    assert.equal(s.status, 6, s.stderr);
    assert.match(s.stderr, /DS_E_NATS: reading the fleet/);
    const rm = cli(['fleet', 'remove', '--nats', `${server.url}/doorstep-policy`, '--name', 'web']);
    assert.equal(rm.status, 6, rm.stderr);
    assert.match(rm.stderr, /DS_E_NATS: removing sets.web/);
  });
});
