// SPDX-License-Identifier: Apache-2.0
// The local API: HTTP over a Unix socket that only root can open (folder 0700, socket 0600),
// used by the CLI (`doorstep apply | status | observe | sessions | explain | diff`). Owns the
// socket's life and the request plumbing; what each route does is the agent's (routes below).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { DoorstepError } from '../errors.js';

/** The largest request body accepted (policy sets with a million CIDRs are ~20 MB of text). */
const MAX_BODY = 512 * 1024 * 1024;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? status));
  }
}

export type Query = URLSearchParams;

/** A route answers with JSON, or streams JSON lines through `line` until the client goes away. */
export type Route =
  | { kind: 'json'; handle: (query: Query, body: unknown) => unknown | Promise<unknown> }
  | { kind: 'stream'; handle: (query: Query, line: (value: unknown) => boolean, end: () => void) => () => void };

export type Routes = Record<string, Route>;

/** Is something answering on this socket? (false for a stale file left by a killed agent) */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class LocalApi {
  private server: Server | undefined;
  private readonly streams = new Set<() => void>();
  /** Until set, every request is answered 503: the socket is bound early (the in-use check). */
  private routes: Routes | undefined;

  constructor(readonly path: string) {}

  /** Start answering with `routes`. */
  serve(routes: Routes): void {
    this.routes = routes;
  }

  async listen(): Promise<void> {
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new DoorstepError('DS_E_SOCKET', `cannot create the folder of the API socket ${this.path}: ${String(cause)}`, {
        hint: 'give --socket a path in a writable folder',
        cause,
      });
    }
    if (existsSync(this.path)) {
      if (await socketAnswers(this.path)) {
        throw new DoorstepError('DS_E_SOCKET_IN_USE', `another agent is listening on ${this.path}`, {
          hint: 'stop it (doorstep status shows it) or start this one with --socket PATH',
        });
      }
      unlinkSync(this.path); // left behind by an agent that was killed
    }
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause) =>
        reject(new DoorstepError('DS_E_SOCKET', `cannot listen on ${this.path}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause })),
      );
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    const route = this.routes?.[`${req.method} ${url.pathname}`];
    try {
      if (!this.routes) throw new ApiError(503, { code: 'DS_E_AGENT_API', message: 'the agent is starting', hint: 'try again in a moment' });
      if (!route) throw new ApiError(404, { code: 'DS_E_AGENT_API', message: `no route ${req.method} ${url.pathname}` });
      if (route.kind === 'stream') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const stop = route.handle(
          url.searchParams,
          (value) => res.write(`${JSON.stringify(value)}\n`),
          () => res.end(),
        );
        this.streams.add(stop);
        res.on('close', () => {
          this.streams.delete(stop);
          stop();
        });
        return;
      }
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const result = await route.handle(url.searchParams, body);
      send(res, 200, result);
    } catch (err) {
      if (err instanceof ApiError) send(res, err.status, err.body);
      else if (err instanceof DoorstepError) send(res, 400, { code: err.code, message: err.message, hint: err.hint });
      else send(res, 500, { code: 'DS_E_AGENT_API', message: String(err) });
    }
  }

  async close(): Promise<void> {
    for (const stop of this.streams) stop();
    this.streams.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (existsSync(this.path)) unlinkSync(this.path);
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ApiError(413, { code: 'DS_E_AGENT_API', message: `request body over ${MAX_BODY} bytes` });
    chunks.push(chunk);
  }
  try {
    return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
  } catch {
    throw new ApiError(400, { code: 'DS_E_AGENT_API', message: 'the request body is not JSON' });
  }
}
