// SPDX-License-Identifier: Apache-2.0
// The CLI's side of the local API: JSON requests and JSON-line streams over the agent's Unix
// socket, with errors that say how to reach (or start) the agent.
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { DoorstepError, PolicyError, type PolicyProblem } from '../errors.js';
import { DEFAULT_SOCKET } from './config.js';

export function socketPath(option?: string): string {
  return option ?? process.env.DOORSTEP_SOCKET ?? DEFAULT_SOCKET;
}

function unreachable(path: string, cause: NodeJS.ErrnoException): DoorstepError {
  if (cause.code === 'EACCES' || cause.code === 'EPERM') {
    return new DoorstepError('DS_E_NO_PRIVILEGE', `permission denied on the agent socket ${path}`, { hint: 'the local API is root-only: run the CLI as root', cause });
  }
  return new DoorstepError('DS_E_AGENT_UNREACHABLE', `no agent answers on ${path} (${cause.code ?? cause.message})`, {
    hint: 'start one with `doorstep agent --interface IF --policy DIR`, or point --socket at its socket',
    cause,
  });
}

function fromBody(status: number, body: Record<string, unknown>): Error {
  if (Array.isArray(body.problems)) return new PolicyError(body.problems as PolicyProblem[]);
  return new DoorstepError('DS_E_AGENT_API', `the agent answered ${status}: ${String(body.message ?? '')}`, {
    hint: typeof body.hint === 'string' ? body.hint : 'see the agent log',
  });
}

export class AgentClient {
  constructor(readonly path: string) {}

  /** One JSON request; rejects with DS_E_AGENT_UNREACHABLE, a PolicyError (422) or DS_E_AGENT_API. */
  call<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { socketPath: this.path, method, path: route, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(new DoorstepError('DS_E_AGENT_API', `the agent answered ${res.statusCode} with a body that is not JSON`));
              return;
            }
            if (res.statusCode === 200) resolve(parsed as T);
            else reject(fromBody(res.statusCode ?? 0, (parsed ?? {}) as Record<string, unknown>));
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(this.path, err)));
      req.end(payload);
    });
  }

  /** A stream of JSON lines; resolves when the agent ends it, or when `stop` is called. */
  stream(route: string, onValue: (value: unknown) => void): { done: Promise<void>; stop: () => void } {
    let stop = () => {};
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: this.path, method: 'GET', path: route }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let body: Record<string, unknown> = {};
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            } catch {
              // keep the empty body
            }
            reject(fromBody(res.statusCode ?? 0, body));
          });
          return;
        }
        const lines = createInterface({ input: res });
        lines.on('line', (line) => {
          if (line) onValue(JSON.parse(line));
        });
        lines.on('close', () => resolve());
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET') resolve();
        else reject(unreachable(this.path, err));
      });
      req.end();
      stop = () => {
        req.destroy();
        resolve();
      };
    });
    return { done, stop };
  }
}
