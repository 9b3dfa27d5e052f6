// SPDX-License-Identifier: Apache-2.0
// How doorstep reaches NATS: `nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/NAME` addresses (NAME
// is a bucket or a stream), the credentials and TLS files an operator gives, and one connect()
// that every fleet part (policy source, status, audit sink, CLI) uses with the same options.
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';

/** Where a bucket or stream lives. */
export interface NatsTarget {
  /** `nats://host:port` entries (a cluster's seed servers). */
  servers: string[];
  /** The bucket or stream. */
  name: string;
  user?: string;
  password?: string;
}

/** Credentials and TLS: the same for every target of one process. */
export interface NatsAuth {
  /** A NATS credentials file (JWT and NKey seed), as `nsc` writes them. */
  creds?: string;
  /** CA bundle that signs the servers' certificates; giving any TLS file turns TLS on. */
  tlsCa?: string;
  /** Client certificate and key, for servers that verify clients. */
  tlsCert?: string;
  tlsKey?: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Parse `nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/NAME`; `what` names NAME in the error ("BUCKET"). */
export function parseNatsUrl(url: string, what = 'BUCKET'): NatsTarget {
  const m = /^nats:\/\/(?:([^:@/]+):([^@/]*)@)?([^/@]+)\/([^/]+)$/.exec(url);
  const example = `nats://127.0.0.1:4222/${what === 'STREAM' ? 'DOORSTEP_AUDIT' : 'doorstep-policy'}`;
  if (!m) throw new DoorstepError('DS_E_USAGE', `"${url}" is not a NATS address`, { hint: `write nats://HOST:PORT/${what}, e.g. ${example}` });
  const name = m[4] as string;
  if (!NAME.test(name)) {
    throw new DoorstepError('DS_E_USAGE', `"${name}" in ${url} is not a ${what.toLowerCase()} name`, { hint: 'use letters, digits, - and _ (at most 64)' });
  }
  const servers = (m[3] as string).split(',').map((h) => {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(h)) {
      throw new DoorstepError('DS_E_USAGE', `"${h}" in ${url} is not HOST:PORT`, { hint: `write nats://HOST:PORT/${what}, e.g. ${example}` });
    }
    return `nats://${h}`;
  });
  return {
    servers,
    name,
    ...(m[1] !== undefined && { user: decodeURIComponent(m[1]) }),
    ...(m[2] !== undefined && { password: decodeURIComponent(m[2]) }),
  };
}

/** The address again, with the password left out (for records and messages). */
export function describeTarget(t: NatsTarget): string {
  return `nats://${t.user ? `${t.user}@` : ''}${t.servers.map((s) => s.slice('nats://'.length)).join(',')}/${t.name}`;
}

/** The same connection serves targets on the same servers with the same user. */
export function connectionKey(t: NatsTarget): string {
  return `${t.user ?? ''}@${t.servers.join(',')}`;
}

/**
 * A subject token or key part for an enforcer id: NATS tokens may not hold `.`, `*`, `>` or
 * white space, host names often hold dots. Each such character becomes `_`.
 */
export function natsToken(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_');
}

function readAuthFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new DoorstepError('DS_E_CONFIG', `cannot read the NATS ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
      hint: 'check the path and its permissions',
      cause,
    });
  }
}

/** Connection options for `target` with `auth`; reads the credentials and TLS files now. */
export function connectionOptions(target: NatsTarget, auth: NatsAuth, name: string): ConnectionOptions {
  const tls = auth.tlsCa || auth.tlsCert || auth.tlsKey;
  if ((auth.tlsCert === undefined) !== (auth.tlsKey === undefined)) {
    throw new DoorstepError('DS_E_CONFIG', 'a NATS client certificate needs its key, and a key its certificate', { hint: 'give both --nats-tls-cert and --nats-tls-key' });
  }
  for (const [path, what] of [[auth.tlsCa, 'CA bundle'], [auth.tlsCert, 'client certificate'], [auth.tlsKey, 'client key']] as const) {
    if (path) readAuthFile(path, what); // fail now with a clear message, not on first connect
  }
  return {
    servers: target.servers,
    name,
    ...(target.user !== undefined && { user: target.user, pass: target.password ?? '' }),
    ...(auth.creds && { authenticator: credsAuthenticator(new Uint8Array(readAuthFile(auth.creds, 'credentials file'))) }),
    ...(tls && {
      tls: {
        ...(auth.tlsCa && { caFile: auth.tlsCa }),
        ...(auth.tlsCert && { certFile: auth.tlsCert }),
        ...(auth.tlsKey && { keyFile: auth.tlsKey }),
      },
    }),
  };
}

/**
 * How long one connect handshake (TCP, TLS, the server's INFO, our CONNECT and its PONG) may take
 * before the next server is tried. A few round trips, well under a second even across regions;
 * nats.js waits 20 s, so a seed server whose host went away (no answer at all) held a
 * reconnecting agent that long before it tried the next one.
 */
export const HANDSHAKE_TIMEOUT_MS = 5000;

/** Between two connect attempts to one server (nats.js adds up to 100 ms of jitter). */
export const RECONNECT_WAIT_MS = 500;

/** What of nats.js's connection internals failDeadHandshakes reads (none of it is public API). */
interface ProtocolInternals {
  connected?: unknown;
  connectError?: unknown;
  transport?: { isClosed?: unknown };
}

/**
 * nats.js fails a connect handshake only on its timeout, even when the server closed the socket
 * in the middle of it (a server killed while the client was connecting to it: a fleet that loses
 * every server one after the other): its reconnect loop then stood still for the whole timeout
 * while the servers came back and JetStream answered (issue 14, bench:fleet's full outage: the
 * stayed-up agents that were late had all waited there 20 s). The closed socket is a fact the
 * client announces (a `disconnect` while no connection is up): on it, the handshake is failed
 * at once, so the loop goes on to the next server (after the reconnect wait and its jitter).
 * Only the internals named in ProtocolInternals are read; with another nats.js that lacks them
 * this does nothing, and HANDSHAKE_TIMEOUT_MS still bounds the wait.
 */
export function failDeadHandshakes(nc: NatsConnection): void {
  const protocol = (nc as unknown as { protocol?: ProtocolInternals }).protocol;
  if (!protocol) return;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type !== 'disconnect') continue;
      // the handshake in progress, if any, has lost its socket: nothing will answer it
      const fail = protocol.connectError;
      if (protocol.connected === false && protocol.transport?.isClosed === true && typeof fail === 'function') {
        fail(new Error('the server closed the connection during the handshake'));
      }
    }
  })().catch(() => undefined);
}

/**
 * Connect. `background`: for daemons: wait for the first connect however long it takes and
 * reconnect for ever (failDeadHandshakes). Otherwise (the CLI): one attempt round, a clear error
 * if nobody answers.
 */
export async function connectNats(target: NatsTarget, auth: NatsAuth, options: { name: string; background?: boolean }): Promise<NatsConnection> {
  const base = connectionOptions(target, auth, options.name);
  try {
    const nc = await connect({
      ...base,
      ...(options.background
        ? { waitOnFirstConnect: true, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: RECONNECT_WAIT_MS, timeout: HANDSHAKE_TIMEOUT_MS }
        : { timeout: HANDSHAKE_TIMEOUT_MS, reconnect: false }),
    });
    if (options.background) failDeadHandshakes(nc);
    return nc;
  } catch (cause) {
    throw new DoorstepError('DS_E_NATS_UNREACHABLE', `cannot connect to NATS at ${describeTarget(target)}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      hint: 'check the address, that nats-server runs with JetStream (-js), and the credentials and TLS options',
      cause,
    });
  }
}

/**
 * The agent's NATS connections: one per server set and user, made in the background on first
 * use and shared by the policy source, the status reporter and the audit sink.
 */
export class NatsConnections {
  private readonly connections = new Map<string, Promise<NatsConnection>>();
  private readonly up = new Set<NatsConnection>();
  private closed = false;

  constructor(
    private readonly auth: NatsAuth,
    private readonly name: string,
  ) {}

  /** Resolves once connected (however long NATS is away); rejects only when closed first. */
  get(target: NatsTarget): Promise<NatsConnection> {
    if (this.closed) return Promise.reject(new DoorstepError('DS_E_NATS', 'the NATS connections are closed'));
    const key = connectionKey(target);
    let c = this.connections.get(key);
    if (!c) {
      c = connectNats(target, this.auth, { name: this.name, background: true }).then(async (nc) => {
        if (this.closed) {
          await nc.close();
          throw new DoorstepError('DS_E_NATS', 'the NATS connections are closed');
        }
        this.up.add(nc);
        return nc;
      });
      c.catch(() => undefined);
      this.connections.set(key, c);
    }
    return c;
  }

  /** Check the credentials and TLS files now (before the agent attaches anything). */
  check(targets: readonly NatsTarget[]): void {
    for (const t of targets) connectionOptions(t, this.auth, this.name);
  }

  /**
   * Close the connections that are up. One still waiting for its first connect cannot be
   * cancelled (nats.js has no handle for it): it closes itself if it ever connects, and the
   * agent exits without waiting for it.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.connections.clear();
    const up = [...this.up];
    this.up.clear();
    await Promise.all(up.map((nc) => nc.close()));
  }
}
