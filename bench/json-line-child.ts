// SPDX-License-Identifier: Apache-2.0
// A benchmark's child process that answers in JSON lines on stdout and takes commands on stdin:
// the parent waits for each answer with a time limit, and stops the child however it ends.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export class JsonLineChild {
  private readonly replies: string[] = [];
  private waiting: ((line: string) => void) | undefined;
  readonly exited: Promise<number | null>;

  /** `what` names the child in errors ("the consumer", "a watcher worker"). */
  constructor(
    readonly proc: ChildProcess,
    private readonly what: string,
  ) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(line);
      } else this.replies.push(line);
    });
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  }

  /** The next JSON line; rejects when the child exits first or after `timeoutMs`. */
  async reply<T>(timeoutMs = 120_000): Promise<T> {
    const line =
      this.replies.shift() ??
      (await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiting = undefined;
          reject(new Error(`${this.what} did not answer within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        void this.exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${this.what} exited (${code})`));
        });
        this.waiting = (l) => {
          clearTimeout(timer);
          resolve(l);
        };
      }));
    return JSON.parse(line) as T;
  }

  sendLine(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  /** No more commands: the child sees the end of its input. */
  end(): void {
    this.proc.stdin!.end();
  }

  /** Stop it if it still runs: end its input, SIGTERM after `graceMs`, SIGKILL 5 s later. */
  async stop(graceMs = 0): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.end();
    const term = setTimeout(() => this.proc.kill('SIGTERM'), graceMs);
    const kill = setTimeout(() => this.proc.kill('SIGKILL'), graceMs + 5000);
    await this.exited;
    clearTimeout(term);
    clearTimeout(kill);
  }
}
