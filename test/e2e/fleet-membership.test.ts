// SPDX-License-Identifier: Apache-2.0
// Fleet membership against a real nats-server on loopback (no agents: the real StatusReporter
// reports for made-up enforcers): an enforcer registers once and stays; `fleet status` counts a
// registered enforcer that does not report as missing and never says converged; `apply --wait`
// waits for it and, timing out, says the set was published and names it; `fleet forget` refuses
// an enforcer that still reports and removes one that is gone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EnforcerStatus } from '../../src/fleet/enforcer-status.js';
import { type Member, membersBucketOf, openMembersBucket, readMembers } from '../../src/fleet/membership.js';
import { StatusReporter } from '../../src/fleet/status-reporter.js';
import { mainJs, sleep } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const STATUS_BUCKET = 'h17-status';
const POLICY = (port: number) => `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: p${port}, action: allow, protocol: udp, ports: [${port}] }\n`;

function report(enforcer: string, labels: Record<string, string>, version: string): EnforcerStatus {
  const now = new Date().toISOString();
  return {
    format: 1,
    enforcer,
    labels,
    health: 'enforcing',
    policy: { version, generation: 1, origin: 'nats:doorstep-policy', rules: 1, installedAt: now },
    rejected: null,
    counters: { passed: 0, dropped: 0, sessions: 0, eventsLost: 0, auditDropped: 0 },
    interfaces: [],
    agent: { pid: process.pid, startedAt: now },
    updatedAt: now,
  };
}

interface FleetJson {
  converged: boolean;
  members: number;
  missing: string[];
  enforcers: { enforcer: string; state: string; registeredAt: string | null }[];
}

describe('fleet membership', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let members: KV;
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-h17-members-'));
  const reporters: StatusReporter[] = [];
  const url = () => `${server.url}/doorstep-policy`;
  // asynchronous: the reporters in this process keep reporting while a command runs
  const run = (args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [mainJs, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
    });
  const cli = (args: string[]) => run([...args, '--nats', url(), '--status-bucket', STATUS_BUCKET]);
  const fleetJson = async (): Promise<FleetJson> => {
    const r = await cli(['fleet', 'status', '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as FleetJson;
  };
  let version = '';
  const reporter = (enforcer: string, labels: Record<string, string>) => {
    const r = new StatusReporter({ connection: async () => nc, bucket: STATUS_BUCKET, ttlMs: 3000, enforcer, report: () => report(enforcer, labels, version) });
    reporters.push(r);
    r.start();
    return r;
  };
  /** The member record of `enforcer` once `ok` holds for it (bounded: 10 s). */
  const memberOnce = async (enforcer: string, ok: (m: Member) => boolean = () => true): Promise<Member> => {
    for (let t = 0; t < 100; t++) {
      const m = (await readMembers(members)).find((x) => x.enforcer === enforcer);
      if (m && ok(m)) return m;
      await sleep(100);
    }
    assert.fail(`${enforcer} did not register`);
  };

  before(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    members = await openMembersBucket(nc, membersBucketOf(STATUS_BUCKET));
    const file = join(dir, 'web.yaml');
    writeFileSync(file, POLICY(53));
    const r = await run(['apply', '--nats', url(), '--name', 'web', '-o', 'json', file]);
    assert.equal(r.status, 0, r.stderr);
    version = (JSON.parse(r.stdout) as { version: string }).version;
  });
  after(async () => {
    for (const r of reporters) await r.close();
    await nc?.close();
    await server?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an enforcer registers once; one that stops reporting is missing, and the fleet is not converged', async () => {
    reporter('edge-a', { region: 'eu' });
    const b = reporter('edge-b', { region: 'eu' });
    await memberOnce('edge-a');
    const mb = await memberOnce('edge-b');
    assert.deepEqual(mb.labels, { region: 'eu' });
    let f = await fleetJson();
    for (let t = 0; t < 50 && f.enforcers.filter((e) => e.state === 'in-sync').length < 2; t++) {
      await sleep(100);
      f = await fleetJson();
    }
    assert.equal(f.converged, true);
    assert.equal(f.members, 2);

    await b.close(); // a clean stop: its report goes at once, its registration stays
    f = await fleetJson();
    assert.equal(f.converged, false);
    assert.deepEqual(f.missing, ['edge-b']);
    assert.deepEqual(f.enforcers.map((e) => [e.enforcer, e.state]), [['edge-a', 'in-sync'], ['edge-b', 'missing']]);
    assert.equal(f.enforcers[1]?.registeredAt, mb.registeredAt);
    const text = await cli(['fleet', 'status']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /edge-b .*MISSING/);
    assert.match(text.stdout, /not converged: 1 of 2 enforcers .*\(1 missing\)/);
    assert.doesNotMatch(text.stdout, /^converged/m);
  });

  it('apply --wait waits for a missing enforcer and, timing out, says it published and names it (exit 6)', async () => {
    const file = join(dir, 'web2.yaml');
    writeFileSync(file, POLICY(54));
    const r = await cli(['apply', '--name', 'web', '--wait', '--timeout', '2s', file]);
    assert.equal(r.status, 6, r.stderr);
    assert.match(r.stdout, /^published sets\.web revision \d+/m);
    assert.match(r.stdout, /edge-b: missing \(registered, no report within the status TTL\)/);
    assert.match(r.stderr, /DS_E_FLEET_TIMEOUT: sets\.web revision \d+ was published, but 2 of 2 selected enforcers did not report/);
    assert.match(r.stderr, /reporting another version: edge-a; missing \(registered, no report\): edge-b/);
  });

  it('fleet forget refuses an enforcer that reports, and removes one that is gone', async () => {
    const busy = await cli(['fleet', 'forget', '--name', 'edge-a']);
    assert.equal(busy.status, 2, busy.stderr);
    assert.match(busy.stderr, /edge-a still reports .*nothing was forgotten/);
    const gone = await cli(['fleet', 'forget', '--name', 'edge-b']);
    assert.equal(gone.status, 0, gone.stderr);
    assert.match(gone.stdout, /forgot edge-b/);
    assert.deepEqual((await readMembers(members)).map((m) => m.enforcer), ['edge-a']);
    const f = await fleetJson();
    assert.deepEqual(f.missing, []);
    assert.equal(f.members, 1);
    const again = await cli(['fleet', 'forget', '--name', 'edge-b']);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /edge-b is not a registered enforcer/);
  });

  it('registering again with the same labels writes nothing; with new labels keeps the first registration time', async () => {
    const first = await memberOnce('edge-a');
    const revision = (await members.get('members.edge-a'))?.revision;
    const same = reporter('edge-a', { region: 'eu' });
    for (let t = 0; t < 100 && same.written === 0; t++) await sleep(50);
    assert.ok(same.written > 0, 'the second reporter reported');
    assert.equal((await members.get('members.edge-a'))?.revision, revision, 'no write');
    await same.close();
    reporter('edge-a', { region: 'us' });
    const moved = await memberOnce('edge-a', (m) => m.labels.region === 'us');
    assert.equal(moved.registeredAt, first.registeredAt);
    assert.notEqual(moved.updatedAt, first.updatedAt);
  });
});
