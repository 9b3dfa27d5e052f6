// SPDX-License-Identifier: Apache-2.0
// The web UI end to end: a real agent enforcing a policy on two namespaces, real UDP traffic (one
// allowed stream, one denied), and headless chromium (playwright-core) reading the agent's
// `--ui` page with its token: the flow table shows both flows with their verdicts, a filter
// narrows it, the chart draws points, rule hits show a rule never hit, the lint view lists the
// planted shadowed rule, the policy history the installed version. Without the token the UI
// refuses, and a bind beyond loopback is refused unless allowed. DOORSTEP_UI_SCREENSHOT=PATH also writes the page's screenshot there (docs/ui.png).
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { AgentRig } from '../lib/agent-rig.js';
import { browserIn } from '../lib/browser.js';

const ALLOWED = 5353;
const DENIED = 6363;
/** In the server's namespace: no other run can hold it. */
const UI = '127.0.0.1:9470';
const TOKEN = 'h21-ui-token-0123456789abcdef';

// `telemetry-again` can never decide a flow: `telemetry` before it takes all its flows (the planted lint finding)
const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: ui }
spec:
  defaultAction: deny
  rules:
    - { name: telemetry, action: allow, from: [10.231.0.0/24], to: [10.231.0.2/32], protocol: udp, ports: [${ALLOWED}] }
    - { name: telemetry-again, action: allow, from: [10.231.0.1/32], to: [10.231.0.2/32], protocol: udp, ports: [${ALLOWED}] }
    - { name: syslog, action: deny, from: [10.231.0.0/24], protocol: udp, ports: [${DENIED}] }
`;

/** Rows of the flow table as [verdict, destination]. */
async function flowRows(page: Page): Promise<[string, string][]> {
  return page.$$eval('#flows tr.flow', (rows) => rows.map((r) => [r.getAttribute('data-verdict') ?? '', r.children[4]?.textContent ?? '']));
}

describe('web UI (--ui) against a live agent', { timeout: 180_000 }, () => {
  const rig = new AgentRig('dsu');
  let browser: Browser | undefined;
  after(async () => {
    await browser?.close().catch(() => undefined);
    rig.cleanup();
  });

  it('shows the live flows with their verdicts, filters them, charts them, lists lint findings; refuses without the token', async () => {
    rig.writePolicy('ui.yaml', POLICY);
    const tokenFile = join(rig.dir, 'ui.token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const agent = rig.startAgent(['--ui', UI, '--ui-token', tokenFile]);
    const serving = await agent.waitFor((r) => r.type === 'agent' && r.event === 'serving' && String(r.message).startsWith('web UI'), 'the UI serving');
    assert.match(String(serving.message), /^web UI at http:\/\/127\.0\.0\.1:9470\/ \(token required\)$/);
    await agent.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'the policy installed');

    // real traffic: one allowed stream, one denied, each a session; bounded in count and time
    const sink = await rig.sink(ALLOWED, 20);
    const allowed = rig.stream(ALLOWED, 20, 3);
    const denied = rig.stream(DENIED, 20, 3);
    await agent.waitFor((r) => r.type === 'session' && r.verdict === 'allow' && r.dport === ALLOWED, 'the allowed session');
    await agent.waitFor((r) => r.type === 'session' && r.verdict === 'deny' && r.dport === DENIED, 'the denied session');
    await Promise.all([allowed.done, denied.done]);
    const received = await sink.stop();
    assert.ok(received.length > 0, 'the allowed stream arrived');

    browser = await browserIn(rig.topo.server.ns, rig.dir);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });

    // without the token: 401 on the page and on the API
    const stranger = await context.newPage();
    for (const path of ['/', '/api/views', '/api/live']) {
      const res = await stranger.goto(`http://${UI}${path}`);
      assert.equal(res?.status(), 401, `${path} without the token`);
    }
    assert.match(await stranger.textContent('body') ?? '', /DS_E_UI_REQUEST/);
    await stranger.close();

    const page = await context.newPage();
    const opened = await page.goto(`http://${UI}/?token=${TOKEN}`);
    assert.equal(opened?.status(), 200);
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar for a cookie');

    // the flow table: both flows, each with its verdict
    await page.waitForSelector(`#flows tr.flow[data-verdict="allow"]`, { timeout: 20_000 });
    await page.waitForSelector(`#flows tr.flow[data-verdict="deny"]`, { timeout: 20_000 });
    const rows = await flowRows(page);
    assert.ok(rows.some(([v, dst]) => v === 'allow' && dst === `10.231.0.2:${ALLOWED}`), JSON.stringify(rows));
    assert.ok(rows.some(([v, dst]) => v === 'deny' && dst === `10.231.0.2:${DENIED}`), JSON.stringify(rows));
    assert.ok(rows.every(([v, dst]) => (dst.endsWith(`:${ALLOWED}`) ? v === 'allow' : dst.endsWith(`:${DENIED}`) ? v === 'deny' : true)), JSON.stringify(rows));

    // the chart: points for both verdicts, counting the sessions
    await page.waitForFunction(() => [...document.querySelectorAll('#verdicts circle.point.denied')].some((c) => Number(c.getAttribute('data-value')) >= 1), undefined, { timeout: 20_000 });
    const allowedPoints = await page.$$eval('#verdicts circle.point.allowed', (cs) => cs.reduce((n, c) => n + Number(c.getAttribute('data-value')), 0));
    assert.ok(allowedPoints >= 1, 'an allowed session is charted');
    assert.match((await page.textContent('#verdicts .note[data-history]')) ?? '', /no flow history configured/);

    // rule hits: telemetry and syslog hit, telemetry-again never
    await page.waitForSelector('#rules tr.rule[data-rule="ui/syslog"]:not(.quiet)', { timeout: 20_000 });
    await page.waitForSelector('#rules tr.rule.quiet[data-rule="ui/telemetry-again"]');
    assert.match((await page.textContent('#rules tr.rule.quiet[data-rule="ui/telemetry-again"]')) ?? '', /never hit/);

    // lint: the planted finding names the shadowed rule with its file and line
    await page.waitForSelector('#lint li.finding');
    const findings = await page.$$eval('#lint li.finding', (li) => li.map((l) => `${l.getAttribute('data-kind')} ${l.textContent}`));
    assert.ok(findings.some((f) => /^(shadowed|redundant) /.test(f) && f.includes('ui/telemetry-again') && f.includes('ui.yaml:')), JSON.stringify(findings));

    // policy history: the installed version; top denied sources: the client
    await page.waitForSelector('#policy-history tr.policy-entry[data-status="installed"]');
    await page.waitForSelector('#denied-sources tr.denied-source');
    assert.match((await page.textContent('#denied-sources tbody')) ?? '', /10\.231\.0\.1/);

    const screenshot = join(rig.dir, 'ui.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    assert.deepEqual([...readFileSync(screenshot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
    if (process.env.DOORSTEP_UI_SCREENSHOT) copyFileSync(screenshot, process.env.DOORSTEP_UI_SCREENSHOT);

    // a filter narrows the table: verdict deny leaves only the denied flow
    await page.selectOption('#flows select[name="verdict"]', 'deny');
    await page.click('#flows form button[type="submit"]');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#flows tr.flow')];
      return rows.length > 0 && rows.every((r) => r.getAttribute('data-verdict') === 'deny');
    }, undefined, { timeout: 20_000 });
    const narrowed = await flowRows(page);
    // (the host's own neighbour solicitations to ff02::2 may be denied flows too)
    assert.ok(narrowed.every(([v]) => v === 'deny'), JSON.stringify(narrowed));
    assert.ok(narrowed.some(([, dst]) => dst === `10.231.0.2:${DENIED}`), JSON.stringify(narrowed));
    assert.ok(narrowed.length < rows.length, 'the filter left rows out');

    // and a bad filter is the agent's own error, shown on the page
    const api = await page.goto(`http://${UI}/api/live?port=notaport`);
    assert.equal(api?.status(), 400);

    // the UI is read-only: a POST is refused
    const posted = await page.evaluate(async (url) => (await fetch(url, { method: 'POST' })).status, `http://${UI}/api/views`);
    assert.equal(posted, 405);
    await browser.close();
    browser = undefined;
    assert.equal(await agent.terminate(), 0);
  });

  it('refuses a bind beyond loopback before touching anything, and binds there when allowed', async () => {
    const refused = rig.startAgent(['--ui', '0.0.0.0:9470']);
    assert.equal(await refused.exited, 2, refused.stderr);
    assert.match(refused.stderr, /DS_E_CONFIG: the web UI would listen on 0\.0\.0\.0, beyond loopback/);
    assert.deepEqual(refused.records, [], 'the agent started nothing');

    const tokenFile = join(rig.dir, 'ui.token');
    const agent = rig.startAgent(['--ui', '0.0.0.0:9470', '--ui-allow-remote', '--ui-token', tokenFile]);
    const serving = await agent.waitFor((r) => r.type === 'agent' && r.event === 'serving' && String(r.message).startsWith('web UI'), 'the UI serving');
    assert.equal(serving.message, 'web UI at http://0.0.0.0:9470/ (token required)');
    browser = await browserIn(rig.topo.server.ns, rig.dir);
    const page = await browser.newPage();
    assert.equal((await page.goto(`http://${UI}/api/views`))?.status(), 401, 'still the token');
    assert.equal((await page.goto(`http://${UI}/?token=${TOKEN}`))?.status(), 200);
    await browser.close();
    browser = undefined;
    assert.equal(await agent.terminate(), 0);
  });
});
