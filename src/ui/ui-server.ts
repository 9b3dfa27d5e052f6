// SPDX-License-Identifier: Apache-2.0
// The web UI's HTTP server, for the agent (`--ui`) and the fleet (`doorstep fleet ui`): the
// bundled page from dist/ui, one read-only JSON route per view, and `/api/live`: the flow table's
// records over Server-Sent Events (`flow`), with a `tick` event that tells the page to read the
// other views again.
// GET only: no route changes anything. With a token, every request carries it (bearer header, or
// the cookie `/?token=…` sets); on loopback, a Host header naming another host is refused
// (DNS rebinding).
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DoorstepError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { isLoopback } from '../controller/ui-settings.js';
import type { UiViews } from './views.js';

/** The bundled page (scripts: `npm run build:ui`). */
export const uiAssetsDir = join(packageRoot, 'dist/ui');
const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const COOKIE = 'doorstep_ui';
/** How often the page is told to read its views again. */
const TICK_MS = 2000;

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface UiServer {
  /** The bound address, e.g. `http://127.0.0.1:9470/`. */
  readonly url: string;
  close(): Promise<void>;
}

function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const out = new Map<string, { type: string; body: Buffer }>();
  for (const [path, file] of Object.entries(ASSETS)) {
    try {
      out.set(path, { type: TYPES[file.split('.').pop()!]!, body: readFileSync(join(uiAssetsDir, file)) });
    } catch (cause) {
      throw new DoorstepError('DS_E_UI_LISTEN', `the web UI's page is missing: ${join(uiAssetsDir, file)}`, { hint: 'build it: npm run build:ui (part of npm run build)', cause });
    }
  }
  return out;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

function hostOf(req: IncomingMessage): string {
  const host = req.headers.host ?? '';
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host) ?? /^([^:]+)(?::\d+)?$/.exec(host);
  return m?.[1] ?? '';
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A view's failure: the agent's own errors as 400 with their code, anything else as 500. */
function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof DoorstepError) sendJson(res, 400, { code: err.code, message: err.message, hint: err.hint });
  else sendJson(res, 500, { code: 'DS_E_AGENT_API', message: err instanceof Error ? err.message : String(err) });
}

/** One JSON route per view that `views` has. */
function viewRoutes(v: UiViews): Record<string, (q: URLSearchParams) => unknown> {
  const routes: Record<string, (q: URLSearchParams) => unknown> = {
    '/api/views': () => ({
      title: v.title,
      views: Object.keys(v).filter((k) => k !== 'title'),
    }),
  };
  if (v.verdicts) routes['/api/verdicts'] = () => v.verdicts!.read();
  if (v.deniedSources) routes['/api/denied-sources'] = (q) => v.deniedSources!.read(Math.min(100, Number(q.get('limit') ?? 10) || 10));
  if (v.ruleHits) routes['/api/rules'] = () => v.ruleHits!.read();
  if (v.lint) routes['/api/lint'] = () => v.lint!.read();
  if (v.policyHistory) routes['/api/policy-history'] = () => v.policyHistory!.read();
  if (v.fleet) routes['/api/fleet'] = () => v.fleet!.read();
  return routes;
}

export async function serveUi(o: { host: string; port: number; token: string | undefined; views: UiViews }): Promise<UiServer> {
  const assets = loadAssets();
  const routes = viewRoutes(o.views);
  const streams = new Set<() => void>();
  const loopbackOnly = isLoopback(o.host);

  const live = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void => {
    let started = false;
    const start = () => {
      started = true;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
    };
    let stopFollow: () => void;
    try {
      // without a flow table (the fleet's UI) the stream carries only the ticks
      stopFollow = (o.views.flows?.follow ?? (() => () => {}))(query, (r) => {
        if (!started) start();
        res.write(`event: flow\ndata: ${JSON.stringify(r)}\n\n`);
      });
    } catch (err) {
      return sendError(res, err);
    }
    if (!started) start();
    const tick = setInterval(() => res.write(`event: tick\ndata: ${Date.now()}\n\n`), TICK_MS);
    const stop = () => {
      clearInterval(tick);
      stopFollow();
      res.end();
    };
    streams.add(stop);
    req.on('close', () => {
      streams.delete(stop);
      clearInterval(tick);
      stopFollow();
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://ui');
    if (loopbackOnly && !isLoopback(hostOf(req))) {
      return sendJson(res, 403, { code: 'DS_E_UI_REQUEST', message: `the UI answers only to a loopback Host, not "${req.headers.host ?? ''}"`, hint: 'open it as http://127.0.0.1:PORT/ or http://localhost:PORT/' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { code: 'DS_E_UI_REQUEST', message: 'the UI is read-only: GET only' });
    }
    if (o.token !== undefined) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (url.pathname === '/' && sameToken(url.searchParams.get('token') ?? undefined, o.token)) {
        // the token from the address moves into a cookie, and out of the address bar and history
        res.writeHead(303, { ...SECURITY_HEADERS, location: '/', 'set-cookie': `${COOKIE}=${encodeURIComponent(o.token)}; HttpOnly; SameSite=Strict; Path=/` });
        return void res.end();
      }
      if (!sameToken(bearer, o.token) && !sameToken(cookieOf(req, COOKIE), o.token)) {
        return sendJson(res, 401, { code: 'DS_E_UI_REQUEST', message: 'this UI needs its token', hint: 'open /?token=TOKEN once (it sets a cookie), or send Authorization: Bearer TOKEN' });
      }
    }
    const asset = assets.get(url.pathname);
    if (asset) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'content-length': asset.body.length });
      return void res.end(req.method === 'HEAD' ? undefined : asset.body);
    }
    if (url.pathname === '/api/live') return live(req, res, url.searchParams);
    const route = routes[url.pathname];
    if (!route) return sendJson(res, 404, { code: 'DS_E_UI_REQUEST', message: `no page ${url.pathname}` });
    sendJson(res, 200, await route(url.searchParams));
  };

  // whatever a view throws is answered, never left to end the process (the agent's)
  const server: Server = createServer((req, res) =>
    void handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else sendError(res, err);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new DoorstepError('DS_E_UI_LISTEN', `cannot serve the web UI on ${o.host}:${o.port}: ${err.code ?? err.message}`, { hint: 'configure another --ui address or port', cause: err })),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const host = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}/`,
    close: async () => {
      for (const stop of streams) stop();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
