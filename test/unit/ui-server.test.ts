// SPDX-License-Identifier: Apache-2.0
// The web UI's server without an agent: its bind rules (loopback unless allowed, in the agent's
// config too), its token (bearer, cookie, refused without), read-only GET, the loopback Host
// check, its JSON views and the live stream; and the live sinks behind the views.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveConfig } from '../../src/controller/config.js';
import { DoorstepError } from '../../src/errors.js';
import type { AuditRecord } from '../../src/audit/records.js';
import { parseFilterOptions } from '../../src/audit/record-filter.js';
import { LiveDeniedSources } from '../../src/ui/live-denied-sources.js';
import { LiveVerdicts } from '../../src/ui/live-verdicts.js';
import { PolicyHistory } from '../../src/ui/policy-history.js';
import { lintFindings, lintOnWorker } from '../../src/controller/lint-worker.js';
import { compileIr } from '../../src/policy/compile.js';
import { serveUi } from '../../src/ui/ui-server.js';
import { checkUiBind, isLoopback, readUiToken } from '../../src/controller/ui-settings.js';
import type { UiViews } from '../../src/ui/views.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-ui-h21-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const errorCode = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return err instanceof DoorstepError ? `${err.code}: ${err.message}` : String(err);
  }
  return 'no error';
};

const session = (time: string, verdict: 'allow' | 'deny', src: string): AuditRecord => ({
  type: 'session', event: 'new', time, enforcer: 'e', interface: 'eth0', verdict, protocol: 'udp', src, dst: '10.0.0.2', sport: 1000, dport: 53, rule: 'p/r', reason: 'policy', generation: 1, cpu: 0, seq: 1,
});
const flood = (to: string, heldBack: number, topSources: { source: string; sessions: number }[]): AuditRecord => ({
  type: 'flood', time: to, enforcer: 'e', interface: '*', rule: 'p/default', generation: 1, from: to, to, heldBack, packets: heldBack, bytes: heldBack * 60, topSources,
});

describe('UI settings', () => {
  it('knows loopback: 127.0.0.0/8, ::1, localhost; nothing else', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopback(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '']) assert.ok(!isLoopback(h), h);
  });

  it('refuses a bind beyond loopback unless allowed, in the agent config too', () => {
    assert.match(errorCode(() => checkUiBind({ host: '0.0.0.0', allowRemote: false })), /^DS_E_CONFIG: the web UI would listen on 0\.0\.0\.0, beyond loopback$/);
    assert.equal(errorCode(() => checkUiBind({ host: '0.0.0.0', allowRemote: true })), 'no error');
    assert.match(errorCode(() => resolveConfig({ interfaces: ['eth0'], ui: '0.0.0.0:9470' })), /^DS_E_CONFIG: .*beyond loopback/);
    assert.deepEqual(resolveConfig({ interfaces: ['eth0'], ui: '0.0.0.0:9470', uiAllowRemote: true }).ui, { host: '0.0.0.0', port: 9470, allowRemote: true, tokenFile: undefined });
    assert.deepEqual(resolveConfig({ interfaces: ['eth0'], ui: '[::1]:9470' }).ui, { host: '::1', port: 9470, allowRemote: false, tokenFile: undefined });
    assert.equal(resolveConfig({ interfaces: ['eth0'] }).ui, null, 'off by default');
    assert.match(errorCode(() => resolveConfig({ interfaces: ['eth0'], uiToken: '/x' })), /^DS_E_CONFIG: --ui-token and --ui-allow-remote go with --ui/);
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, 'interfaces: [eth0]\nui: 10.1.2.3:9470\n');
    assert.match(errorCode(() => resolveConfig({ config })), /^DS_E_CONFIG: the web UI would listen on 10\.1\.2\.3, beyond loopback/);
  });

  it('reads a token file; an empty, short or missing one is an error', () => {
    const file = join(dir, 'token');
    writeFileSync(file, '  0123456789abcdefXYZ\n');
    assert.equal(readUiToken(file), '0123456789abcdefXYZ');
    writeFileSync(file, 'short');
    assert.match(errorCode(() => readUiToken(file)), /^DS_E_CONFIG: .*shorter than 16/);
    writeFileSync(file, '\n');
    assert.match(errorCode(() => readUiToken(file)), /^DS_E_CONFIG: .*is empty/);
    assert.match(errorCode(() => readUiToken(join(dir, 'absent'))), /^DS_E_CONFIG: cannot read the UI token file .*ENOENT/);
  });
});

/** One request to the server: status, headers, body (an SSE stream: until `until` matches it). */
function get(url: string, o: { headers?: Record<string, string>; method?: string; until?: RegExp } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
        if (o.until?.test(body)) {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          req.destroy();
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

describe('UI server', () => {
  const TOKEN = 'a-token-of-twenty-chars';
  const records = [session('2026-01-01T00:00:01.000Z', 'allow', '10.0.0.1'), session('2026-01-01T00:00:02.000Z', 'deny', '10.0.0.9')];
  const followed: URLSearchParams[] = [];
  let stopped = 0;
  const views: UiViews = {
    title: 'unit',
    flows: {
      follow: (query, send) => {
        followed.push(query);
        const keep = (r: AuditRecord) => (query.get('verdict') ? (r as { verdict?: string }).verdict === query.get('verdict') : true);
        parseFilterOptions(Object.fromEntries(query)); // the agent's checks: a bad filter throws DS_E_USAGE
        for (const r of records) if (keep(r)) send(r);
        return () => stopped++;
      },
    },
    verdicts: { read: () => ({ intervalMs: 1000, buckets: [{ at: '2026-01-01T00:00:00.000Z', allowed: 1, denied: 1 }], history: { kind: 'live', since: 'x', message: 'no flow history configured' } }) },
  };

  it('serves the page and the views with the token; refuses without it', async () => {
    const ui = await serveUi({ host: '127.0.0.1', port: 0, token: TOKEN, views });
    try {
      assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const refused = await get(`${ui.url}api/views`);
      assert.equal(refused.status, 401);
      assert.equal(JSON.parse(refused.body).code, 'DS_E_UI_REQUEST');
      assert.equal((await get(ui.url)).status, 401, 'the page too');
      assert.equal((await get(`${ui.url}api/views`, { headers: { authorization: 'Bearer not-the-token-at-all!!' } })).status, 401);

      const bearer = { authorization: `Bearer ${TOKEN}` };
      const listed = await get(`${ui.url}api/views`, { headers: bearer });
      assert.equal(listed.status, 200);
      assert.deepEqual(JSON.parse(listed.body), { title: 'unit', views: ['flows', 'verdicts'] });
      assert.equal(JSON.parse((await get(`${ui.url}api/verdicts`, { headers: bearer })).body).buckets[0].denied, 1);
      assert.equal((await get(`${ui.url}api/rules`, { headers: bearer })).status, 404, 'a view it does not have');

      // the address's token becomes a cookie, which then opens the page
      const moved = await get(`${ui.url}?token=${TOKEN}`);
      assert.equal(moved.status, 303);
      assert.equal(moved.headers.location, '/');
      const cookie = String(moved.headers['set-cookie']).split(';')[0]!;
      assert.match(String(moved.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
      const page = await get(ui.url, { headers: { cookie } });
      assert.equal(page.status, 200);
      assert.match(page.body, /<script type="module" src="\/app.js">/);
      assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
      assert.equal((await get(`${ui.url}app.js`, { headers: { cookie } })).status, 200);

      // read-only, and only for a loopback Host
      assert.equal((await get(`${ui.url}api/views`, { headers: bearer, method: 'POST' })).status, 405);
      assert.equal((await get(`${ui.url}api/views`, { headers: { ...bearer, host: 'rebound.example:80' } })).status, 403);
    } finally {
      await ui.close();
    }
  });

  it('streams the filtered flows and ticks over SSE; a bad filter is a 400', async () => {
    const ui = await serveUi({ host: '127.0.0.1', port: 0, token: undefined, views });
    try {
      const live = await get(`${ui.url}api/live?verdict=deny`, { until: /event: tick/ });
      assert.equal(live.status, 200);
      assert.equal(live.headers['content-type'], 'text/event-stream');
      const flows = [...live.body.matchAll(/event: flow\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!) as { src: string });
      assert.deepEqual(flows.map((f) => f.src), ['10.0.0.9'], 'the filter reached the flow source');
      assert.equal(followed.at(-1)?.get('verdict'), 'deny');
      const bad = await get(`${ui.url}api/live?port=notaport`);
      assert.equal(bad.status, 400);
      assert.equal(JSON.parse(bad.body).code, 'DS_E_USAGE');
    } finally {
      await ui.close();
    }
    assert.ok(stopped >= 1, 'a closed stream stops following');
  });
});

describe('UI server, when a view fails', () => {
  it('answers 500 (400 for the agent\'s own errors) and goes on serving', async () => {
    const broken: UiViews = {
      title: 'broken',
      flows: { follow: () => { throw new Error('the pipeline is gone'); } },
      verdicts: { read: () => { throw new DoorstepError('DS_E_AGENT_API', 'the agent is starting'); } },
      deniedSources: { read: () => ({ sources: [], history: { kind: 'live', since: 'x', message: 'm' } }) },
    };
    const ui = await serveUi({ host: '127.0.0.1', port: 0, token: undefined, views: broken });
    try {
      const live = await get(`${ui.url}api/live`);
      assert.equal(live.status, 500);
      assert.match(JSON.parse(live.body).message, /the pipeline is gone/);
      const starting = await get(`${ui.url}api/verdicts`);
      assert.equal(starting.status, 400);
      assert.equal(JSON.parse(starting.body).code, 'DS_E_AGENT_API');
      assert.equal((await get(`${ui.url}api/denied-sources`)).status, 200, 'still serving');
    } finally {
      await ui.close();
    }
  });
});

describe('UI live sources', () => {
  it('counts verdicts per interval, floods as denies, in a bounded ring', () => {
    const v = new LiveVerdicts(10_000, 2);
    v.write([session('2026-01-01T00:00:01.000Z', 'allow', 'a'), session('2026-01-01T00:00:09.000Z', 'deny', 'b'), flood('2026-01-01T00:00:12.000Z', 40, [])]);
    const at = (t: string) => Date.parse(t);
    assert.deepEqual(v.read(at('2026-01-01T00:00:15.000Z')).buckets, [
      { at: '2026-01-01T00:00:00.000Z', allowed: 1, denied: 1 },
      { at: '2026-01-01T00:00:10.000Z', allowed: 0, denied: 40 },
    ]);
    v.write([session('2026-01-01T00:00:25.000Z', 'allow', 'a')]);
    assert.deepEqual(v.read(at('2026-01-01T00:00:25.000Z')).buckets.map((b) => b.at), ['2026-01-01T00:00:10.000Z', '2026-01-01T00:00:20.000Z'], 'the oldest fell out');
    const wide = new LiveVerdicts(10_000, 6);
    wide.write([session('2026-01-01T00:00:01.000Z', 'deny', 'b')]);
    assert.deepEqual(wide.read(at('2026-01-01T00:00:31.000Z')).buckets.map((b) => b.denied), [1, 0, 0, 0], 'quiet intervals up to now are zeros');
    assert.equal(wide.read(at('2026-01-01T00:05:00.000Z')).buckets.length, 6, 'at most `keep` intervals');
    assert.deepEqual(new LiveVerdicts().read().buckets, [], 'nothing counted yet');
    assert.equal(v.read().history.kind, 'live');
  });

  it('ranks denied sources, floods as estimates, and forgets the least recently seen', () => {
    const d = new LiveDeniedSources(2);
    d.write([session('2026-01-01T00:00:01.000Z', 'deny', '10.0.0.1'), session('2026-01-01T00:00:02.000Z', 'allow', '10.0.0.2'), session('2026-01-01T00:00:03.000Z', 'deny', '10.0.0.1')]);
    d.write([flood('2026-01-01T00:00:04.000Z', 500, [{ source: '10.9.9.9', sessions: 300 }])]);
    assert.deepEqual(d.read(10).sources.map((s) => [s.source, s.sessions, s.estimated]), [['10.9.9.9', 300, true], ['10.0.0.1', 2, false]]);
    d.write([session('2026-01-01T00:00:05.000Z', 'deny', '10.0.0.3')]);
    assert.deepEqual(d.read(10).sources.map((s) => s.source), ['10.9.9.9', '10.0.0.3'], '10.0.0.1 was seen least recently');
    assert.equal(d.read(1).sources.length, 1);
  });

  it('keeps the policy records, newest first, whatever else flows past', () => {
    const h = new PolicyHistory(2);
    const policy = (generation: number, status: 'installed' | 'rejected'): AuditRecord => ({ type: 'policy', time: `2026-01-01T00:00:0${generation}.000Z`, enforcer: 'e', interface: '*', status, source: 'api', generation, policyVersion: `sha256:${generation}` });
    h.write([policy(1, 'installed'), session('2026-01-01T00:00:01.500Z', 'deny', 'x'), policy(2, 'rejected'), policy(3, 'installed')]);
    assert.deepEqual(h.read().map((e) => [e.generation, e.status]), [[3, 'installed'], [2, 'rejected']]);
  });
});

describe('UI lint view', () => {
  it('lints the installed IR on a worker thread, with the same findings as on this one', async () => {
    const text = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: wide, action: allow, protocol: udp, ports: [53] }\n    - { name: narrow, action: allow, from: [10.0.0.0/8], protocol: udp, ports: [53] }\n';
    const { ir } = compileIr([{ file: 'p.yaml', text }]);
    const findings = await lintOnWorker(ir);
    assert.deepEqual(findings, lintFindings(ir));
    const narrow = findings.find((f) => f.rules[0]?.id === 'p/narrow');
    assert.ok(narrow && /^(shadowed|redundant)$/.test(narrow.kind), JSON.stringify(findings));
    assert.deepEqual(narrow.rules[0], { id: 'p/narrow', file: 'p.yaml', line: 8 });
  });
});
