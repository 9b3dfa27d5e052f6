// SPDX-License-Identifier: Apache-2.0
// NATS credentials and TLS: a server that requires a user and password and verifies client
// certificates (a CA made here with openssl). The agent's connection path (NatsConnections +
// NatsSource) and the CLI get in with the right options and are refused, with a clear error that
// never prints the password, without them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DoorstepError } from '../../src/errors.js';
import { connectNats, NatsConnections, type NatsAuth, parseNatsUrl } from '../../src/fleet/nats-connection.js';
import { buildEnvelope } from '../../src/fleet/policy-envelope.js';
import { NatsSource } from '../../src/watcher/nats-source.js';
import type { PolicyCandidate } from '../../src/watcher/source.js';
import { mainJs } from '../lib/agent-rig.js';
import { NatsServer } from '../lib/nats-server.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-nats-tls-'));
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=doorstep test CA');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=doorstep ${name}`);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`));
  }
}

const POLICY = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: dns, action: allow, protocol: udp, ports: [53] }\n';

describe('NATS credentials and TLS', () => {
  let server: NatsServer | undefined;
  const tls: NatsAuth = { tlsCa: f('ca.pem'), tlsCert: f('client.pem'), tlsKey: f('client.key') };
  const url = (password: string, name = 'doorstep-policy') => `nats://doorstep:${password}@127.0.0.1:${server!.port}/${name}`;

  before(async () => {
    makeCertificates();
    server = await NatsServer.start(['--user', 'doorstep', '--pass', 's3cret', '--tlsverify', '--tlscert', f('server.pem'), '--tlskey', f('server.key'), '--tlscacert', f('ca.pem')]);
  });
  after(async () => {
    await server?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a wrong password, a missing client certificate and plain text, without printing the password', async () => {
    const refused = async (target: string, auth: NatsAuth) => {
      await assert.rejects(connectNats(parseNatsUrl(target), auth, { name: 'test' }), (e: unknown) => {
        assert.ok(e instanceof DoorstepError && e.code === 'DS_E_NATS_UNREACHABLE', String(e));
        assert.doesNotMatch(e.message, /s3cret|wrong/);
        return true;
      });
    };
    await refused(url('wrong'), tls);
    await refused(url('s3cret'), { tlsCa: f('ca.pem') });
    await refused(url('s3cret'), {});
    const nc = await connectNats(parseNatsUrl(url('s3cret')), tls, { name: 'test' });
    await nc.close();
  });

  it('the agent path (shared connection + policy source) and the CLI get in with the right options', async () => {
    // the CLI publishes over TLS with the password in the address
    const cli = (args: string[]) => spawnSync(process.execPath, [mainJs, ...args], { encoding: 'utf8', timeout: 30_000 });
    writeFileSync(f('web.yaml'), POLICY);
    const tlsFlags = ['--nats-tls-ca', f('ca.pem'), '--nats-tls-cert', f('client.pem'), '--nats-tls-key', f('client.key')];
    const published = cli(['apply', '--nats', url('s3cret'), '--name', 'web', f('web.yaml'), ...tlsFlags]);
    assert.equal(published.status, 0, published.stderr);
    assert.match(published.stdout, /published sets\.web revision 1/);
    assert.doesNotMatch(published.stdout, /s3cret/);
    const denied = cli(['apply', '--nats', url('wrong'), '--name', 'web', f('web.yaml'), ...tlsFlags]);
    assert.equal(denied.status, 6, 'exit 6: NATS unreachable');
    assert.match(denied.stderr, /DS_E_NATS_UNREACHABLE/);
    assert.doesNotMatch(denied.stderr, /wrong/);

    const pool = new NatsConnections(tls, 'test');
    const target = parseNatsUrl(url('s3cret'));
    const source = new NatsSource({ connection: () => pool.get(target), bucket: target.name, labels: {}, debounceMs: 20 });
    try {
      const candidate = await new Promise<PolicyCandidate>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no candidate within 10 s')), 10_000);
        void source.start((c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.deepEqual(candidate.sources, buildEnvelope('web', {}, [{ file: f('web.yaml'), text: POLICY }]).documents.map((d) => ({ file: `doorstep-policy/sets.web/${d.file}`, text: d.text })));
    } finally {
      await source.close();
      await pool.close();
    }
  });

  it('a client certificate without its key is a configuration error, found before connecting', () => {
    assert.throws(() => new NatsConnections({ tlsCert: f('client.pem') }, 'test').check([parseNatsUrl(url('s3cret'))]), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_CONFIG');
    assert.throws(() => new NatsConnections({ tlsCa: f('missing.pem') }, 'test').check([parseNatsUrl(url('s3cret'))]), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_CONFIG');
  });
});
