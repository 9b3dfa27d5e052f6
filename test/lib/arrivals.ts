// SPDX-License-Identifier: Apache-2.0
// Waiting for something to arrive from a child process (a record, a captured frame): the owner
// calls `notify()` whenever something came (or the child exited); `until()` resolves with the
// first thing `find` finds, and rejects when the child is gone or after a timeout. Owns nothing.

export interface ArrivalSource {
  /** Why nothing more can arrive (e.g. `agent exited (1)`), or undefined while something may. */
  gone(): string | undefined;
  /** Said after every failure (e.g. the child's stderr). */
  detail?(): string;
}

export class Arrivals {
  private readonly waiters = new Set<() => void>();

  constructor(private readonly source: ArrivalSource) {}

  notify(): void {
    for (const w of this.waiters) w();
  }

  /** The first non-undefined `find()`, checked now and at every `notify()`. */
  until<T>(find: () => T | undefined, what: string, ms: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const fail = (why: string) => done(() => reject(new Error(`${why} waiting for ${what}${this.source.detail?.() ?? ''}`)));
      const check = () => {
        const found = find();
        if (found !== undefined) return done(() => resolve(found));
        const why = this.source.gone();
        if (why !== undefined) fail(why);
      };
      const timer = setTimeout(() => fail(`timed out after ${ms} ms`), ms);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }
}
