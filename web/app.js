// SPDX-License-Identifier: Apache-2.0
// doorstep's web UI: preact + htm, bundled by esbuild into dist/ui/app.js (no CDN). Reads the
// server's read-only JSON views and the `/api/live` Server-Sent Events stream: `flow` events
// fill the flow table, `tick` events make the other views read again. Shows only the views the
// server offers (`/api/views`).
import { h, render } from 'preact';
import { useEffect, useState, useCallback } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
/** Rows the flow table keeps (newest first). */
const MAX_FLOWS = 500;
const FILTERS = ['verdict', 'from', 'to', 'port', 'protocol', 'rule', 'since'];

async function getJson(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  const body = await res.json();
  if (!res.ok) throw new Error(`${body.message ?? res.status}${body.hint ? ` (${body.hint})` : ''}`);
  return body;
}

/** A view read on mount and on every tick. */
function useView(path, tick) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  useEffect(() => {
    let live = true;
    getJson(path).then((data) => live && setState({ data, error: undefined }), (err) => live && setState((s) => ({ ...s, error: String(err.message ?? err) })));
    return () => { live = false; };
  }, [path, tick]);
  return state;
}

const hostPort = (addr, port) => (port === undefined ? addr : addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
const Verdict = ({ v }) => html`<span class=${v}>${v}</span>`;
const Err = ({ error }) => (error ? html`<p class="error">${error}</p>` : null);
const HistoryNote = ({ history }) => (history ? html`<p class="note" data-history=${history.kind}>${history.message}</p>` : null);

function FilterForm({ filters, onChange }) {
  const [draft, setDraft] = useState(filters);
  const field = (k, placeholder) => html`<input name=${k} placeholder=${placeholder} value=${draft[k] ?? ''} onInput=${(e) => setDraft({ ...draft, [k]: e.target.value })} />`;
  return html`<form class="filters" onSubmit=${(e) => { e.preventDefault(); onChange(draft); }}>
    <select name="verdict" value=${draft.verdict ?? ''} onChange=${(e) => setDraft({ ...draft, verdict: e.target.value })}>
      <option value="">any verdict</option><option value="allow">allow</option><option value="deny">deny</option>
    </select>
    ${field('from', 'from CIDR')}${field('to', 'to CIDR')}${field('port', 'port')}${field('protocol', 'protocol')}${field('rule', 'rule')}${field('since', 'since (5m)')}
    <button type="submit">filter</button>
  </form>`;
}

function FlowTable({ flows, error, filters, setFilters }) {
  return html`<section class="wide" id="flows">
    <h2>Live flows</h2>
    <${FilterForm} filters=${filters} onChange=${setFilters} />
    <${Err} error=${error} />
    <div class="flows"><table>
      <thead><tr><th>time</th><th>verdict</th><th>protocol</th><th>source</th><th>destination</th><th>rule</th><th>interface</th></tr></thead>
      <tbody>${flows.map((r) => html`<tr class="flow" data-verdict=${r.verdict} data-src=${r.src} data-dst=${r.dst}>
        <td>${r.time.slice(11, 23)}</td><td><${Verdict} v=${r.verdict} /></td><td>${r.protocol}</td>
        <td>${hostPort(r.src, r.sport)}</td><td>${hostPort(r.dst, r.dport)}</td><td>${r.rule}</td><td>${r.interface}</td></tr>`)}</tbody>
    </table></div>
    <p class="note">${flows.length} session records shown (newest first, at most ${MAX_FLOWS}); filters as in <code>doorstep observe</code>.</p>
  </section>`;
}

/** Allowed and denied sessions per interval as two lines of points, hand-drawn SVG. */
function VerdictChart({ tick }) {
  const { data, error } = useView('/api/verdicts', tick);
  const W = 560, H = 180, P = 28;
  const buckets = data?.buckets ?? [];
  const max = Math.max(1, ...buckets.flatMap((b) => [b.allowed, b.denied]));
  const x = (i) => P + (buckets.length <= 1 ? (W - 2 * P) / 2 : (i * (W - 2 * P)) / (buckets.length - 1));
  const y = (n) => H - P - (n * (H - 2 * P)) / max;
  const line = (key) => buckets.map((b, i) => `${x(i)},${y(b[key])}`).join(' ');
  return html`<section id="verdicts">
    <h2>Verdicts over time</h2>
    <${Err} error=${error} /><${HistoryNote} history=${data?.history} />
    <svg class="chart" viewBox="0 0 ${W} ${H}" width=${W} height=${H} role="img" aria-label="new sessions per interval, allowed and denied">
      <line x1=${P} y1=${H - P} x2=${W - P} y2=${H - P} stroke="#d0d7de" />
      <text x="2" y=${y(max) + 4}>${max}</text><text x="2" y=${H - P + 4}>0</text>
      ${buckets.length > 0 && html`<text x=${P} y=${H - 8}>${buckets[0].at.slice(11, 19)}</text><text x=${W - P - 44} y=${H - 8}>${buckets[buckets.length - 1].at.slice(11, 19)}</text>`}
      <polyline points=${line('allowed')} fill="none" stroke="#1a7f37" stroke-width="2" />
      <polyline points=${line('denied')} fill="none" stroke="#cf222e" stroke-width="2" />
      ${buckets.map((b, i) => html`<circle class="point allowed" cx=${x(i)} cy=${y(b.allowed)} r="3" fill="#1a7f37" data-at=${b.at} data-value=${b.allowed}><title>${b.at} allowed ${b.allowed}</title></circle>
        <circle class="point denied" cx=${x(i)} cy=${y(b.denied)} r="3" fill="#cf222e" data-at=${b.at} data-value=${b.denied}><title>${b.at} denied ${b.denied}</title></circle>`)}
    </svg>
    <p class="note"><span class="allow">allowed</span> and <span class="deny">denied</span> new sessions per ${data ? data.intervalMs / 1000 : '…'} s</p>
  </section>`;
}

function DeniedSources({ tick }) {
  const { data, error } = useView('/api/denied-sources?limit=10', tick);
  return html`<section id="denied-sources">
    <h2>Top denied sources</h2>
    <${Err} error=${error} /><${HistoryNote} history=${data?.history} />
    <table><thead><tr><th>source</th><th>denied sessions</th><th>last seen</th></tr></thead>
      <tbody>${(data?.sources ?? []).map((s) => html`<tr class="denied-source"><td>${s.source}</td><td class="num">${s.estimated ? '≈' : ''}${s.sessions}</td><td>${s.lastSeen.slice(11, 19)}</td></tr>`)}</tbody></table>
  </section>`;
}

function RuleHits({ tick }) {
  const { data, error } = useView('/api/rules', tick);
  const rules = data?.rules ?? [];
  const quiet = rules.filter((r) => !r.hit).length;
  return html`<section id="rules">
    <h2>Rule hits</h2>
    <${Err} error=${error} />
    ${data && !data.version ? html`<p class="note">no policy installed: default deny</p>` : html`<p class="note">${rules.length} rules of ${data?.version?.slice(0, 19) ?? '…'}; ${quiet} never hit</p>`}
    <table><thead><tr><th>rule</th><th>action</th><th>packets</th><th>bytes</th></tr></thead>
      <tbody>${rules.map((r) => html`<tr class=${r.hit ? 'rule' : 'rule quiet'} data-rule=${r.id}><td>${r.id}</td><td><${Verdict} v=${r.action} /></td>
        <td class="num">${r.hit ? r.packets : 'never hit'}</td><td class="num">${r.hit ? r.bytes : ''}</td></tr>`)}</tbody></table>
  </section>`;
}

function Lint({ tick }) {
  const { data, error } = useView('/api/lint', tick);
  const findings = data?.findings ?? [];
  return html`<section id="lint">
    <h2>Lint findings</h2>
    <${Err} error=${error} />
    <p class="note">${data ? (data.version ? `${findings.length} findings in the policy in force (doorstep lint)` : 'no policy installed') : '…'}</p>
    <ul class="findings">${findings.map((f) => html`<li class="finding" data-kind=${f.kind}>
      <strong>${f.kind}</strong> ${f.rules.map((r) => html`<code>${r.id}</code> (${r.file}:${r.line}) `)}— ${f.message}${f.example ? html`<br /><span class="note">e.g. ${f.example}</span>` : null}</li>`)}</ul>
  </section>`;
}

function PolicyHistory({ tick }) {
  const { data, error } = useView('/api/policy-history', tick);
  return html`<section id="policy-history">
    <h2>Policy versions</h2>
    <${Err} error=${error} />
    <p class="note">in force: ${data?.inForce ? html`<code>${data.inForce.version}</code> (generation ${data.inForce.generation})` : 'none (default deny)'}</p>
    <table><thead><tr><th>time</th><th>status</th><th>source</th><th>version</th><th>gen</th><th>rules</th></tr></thead>
      <tbody>${(data?.entries ?? []).map((e) => html`<tr class="policy-entry" data-status=${e.status}><td>${e.time.slice(0, 19)}</td><td class=${e.status === 'rejected' ? 'deny' : ''}>${e.status}</td><td>${e.source}</td>
        <td><code>${e.version?.slice(0, 19) ?? '-'}</code>${e.problems ? html`<br /><span class="note">${e.problems.slice(0, 3).join('; ')}</span>` : null}</td><td class="num">${e.generation ?? ''}</td><td class="num">${e.rules ?? ''}</td></tr>`)}</tbody></table>
  </section>`;
}

function Fleet({ tick }) {
  const { data, error } = useView('/api/fleet', tick);
  const enforcers = data?.enforcers ?? [];
  return html`<section class="wide" id="fleet">
    <h2>Fleet</h2>
    <${Err} error=${error} />
    <p class="note">${data ? (enforcers.length === 0 ? 'no enforcer has reported within the status TTL' : data.converged ? `converged: all ${enforcers.length} enforcers run the latest policy for their labels` : `not converged: ${enforcers.filter((e) => !e.inSync).length} of ${enforcers.length} behind`) : '…'}</p>
    <table><thead><tr><th>enforcer</th><th>labels</th><th>health</th><th>version</th><th>in sync</th><th>WireGuard key</th><th>reported</th></tr></thead>
      <tbody>${enforcers.map((e) => html`<tr class="enforcer" data-in-sync=${String(e.inSync)}><td>${e.enforcer}</td><td>${Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(', ')}</td>
        <td>${e.health}</td><td><code>${e.version?.slice(0, 19) ?? '-'}</code></td><td class=${e.inSync ? 'allow' : 'deny'}>${e.inSync ? 'yes' : `no, should run ${e.expected.slice(0, 19)}`}</td>
        <td><code>${e.wireguardKey ?? '-'}</code></td><td>${e.reportedAt.slice(11, 19)}</td></tr>`)}</tbody></table>
  </section>`;
}

function App() {
  const views = useView('/api/views', 0);
  const [filters, setFilters] = useState({});
  const [flows, setFlows] = useState([]);
  const [tick, setTick] = useState(0);
  const [liveError, setLiveError] = useState(undefined);
  const has = useCallback((v) => views.data?.views.includes(v), [views.data]);

  useEffect(() => {
    if (!views.data) return undefined;
    const q = new URLSearchParams();
    for (const k of FILTERS) if (filters[k]) q.set(k, filters[k]);
    setFlows([]);
    const source = new EventSource(`/api/live?${q}`);
    let batch = [];
    source.addEventListener('flow', (e) => {
      const r = JSON.parse(e.data);
      if (r.type === 'session') batch.push(r);
    });
    // flows are drawn in batches so a burst of records costs one render
    const draw = setInterval(() => {
      if (batch.length === 0) return;
      const add = batch.reverse();
      batch = [];
      setFlows((old) => add.concat(old).slice(0, MAX_FLOWS));
    }, 250);
    source.addEventListener('tick', () => { setLiveError(undefined); setTick((t) => t + 1); });
    source.onerror = () => setLiveError('the live stream is down (bad filter, or the server went away); retrying');
    return () => { clearInterval(draw); source.close(); };
  }, [views.data, filters]);

  if (views.error) return html`<p class="error">${views.error}</p>`;
  if (!views.data) return html`<p>loading…</p>`;
  return html`<header><h1>doorstep · ${views.data.title}</h1><span class="live">${liveError ?? `live (tick ${tick})`}</span></header>
    <main>
      ${has('flows') && html`<${FlowTable} flows=${flows} error=${liveError} filters=${filters} setFilters=${setFilters} />`}
      ${has('verdicts') && html`<${VerdictChart} tick=${tick} />`}
      ${has('deniedSources') && html`<${DeniedSources} tick=${tick} />`}
      ${has('ruleHits') && html`<${RuleHits} tick=${tick} />`}
      ${has('lint') && html`<${Lint} tick=${tick} />`}
      ${has('policyHistory') && html`<${PolicyHistory} tick=${tick} />`}
      ${has('fleet') && html`<${Fleet} tick=${tick} />`}
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
