// SPDX-License-Identifier: Apache-2.0
// A real nats-server (Debian's, installed by the bootstrap) for tests: JetStream on, loopback
// only, a free port and a store folder of its own per run. `stop()` and `start()` again keep the
// store, so tests can take the server away and bring it back; `cleanup()` removes everything.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export class NatsServer {
  private child: ChildProcess | undefined;
  private log = '';
  readonly storeDir = mkdtempSync(join(tmpdir(), 'doorstep-nats-'));

  private constructor(
    readonly port: number,
    readonly host = '127.0.0.1',
    /** The network namespace it runs in (none: this one, on loopback). */
    readonly netns?: string,
    private readonly extraArgs: string[] = [],
  ) {}

  /** On loopback, on a free port; `extraArgs` go to nats-server (e.g. `--user`, `--pass`, `--tls…`). */
  static async start(extraArgs: string[] = [], o: { jetstream?: boolean } = {}): Promise<NatsServer> {
    const server = new NatsServer(await freePort(), '127.0.0.1', undefined, extraArgs);
    await server.start(15_000, o);
    return server;
  }

  /** Inside a namespace the test created, listening on `host` there (the namespace is fresh: 4222 is free). */
  static async startIn(netns: string, host: string, port = 4222, extraArgs: string[] = []): Promise<NatsServer> {
    const server = new NatsServer(port, host, netns, extraArgs);
    await server.start();
    return server;
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  /**
   * Start (again) on the same port and store; resolves when the server says it is ready.
   * `jetstream: false` starts it without JetStream: clients connect, JetStream calls fail (as
   * while a cluster has no JetStream leader yet).
   */
  start(ms = 15_000, o: { jetstream?: boolean } = {}): Promise<void> {
    const args = [...(o.jetstream === false ? [] : ['-js']), '-a', this.host, '-p', String(this.port), '-sd', this.storeDir, ...this.extraArgs];
    const child = this.netns
      ? spawn('nsenter', [`--net=/run/netns/${this.netns}`, 'nats-server', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server not ready after ${ms} ms: ${this.log}`)), ms);
      const onData = (d: Buffer) => {
        this.log += d.toString();
        if (this.log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}): ${this.log}`));
      });
    });
  }

  /** Stop the server (SIGTERM, then SIGKILL after `ms`); the store stays. */
  async stop(ms = 5_000): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
    this.log = '';
  }

  /** kill -9: no goodbye to clients or to the cluster (the store stays); resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.log = '';
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}
