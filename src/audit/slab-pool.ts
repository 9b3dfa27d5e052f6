// SPDX-License-Identifier: Apache-2.0
// The JSON-lines sink's bounded pool of output buffers ("slabs"): at most `maxSlabs` of 4 MiB,
// made on demand, transferred to the writer thread (json-lines-writer.ts) and back without copies.
// When every slab is with the writer, take() waits for one at most `maxWaitMs` on the shared
// signal the writer bumps, and after such a wait timed out it waits no more until a slab comes
// back. Owns the slabs and the return port's reading; nothing else.
import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { C_RETURNED } from './json-lines-writer.js';

export const SLAB_BYTES = 4 * 1024 * 1024;

export class SlabPool {
  private readonly free: ArrayBuffer[] = [];
  private allocated = 0;
  /** A wait for the writer timed out: no waiting until a slab comes back. */
  private congested = false;

  constructor(
    readonly maxSlabs: number,
    private readonly maxWaitMs: number,
    /** Where the writer hands slabs back. */
    private readonly returns: MessagePort,
    /** Bumped and notified by the writer at every slab it hands back. */
    private readonly signal: Int32Array,
  ) {}

  /** A free slab: one the writer handed back, a new one within the bound, or — waiting at most
   *  maxWaitMs for the writer — none. */
  take(): ArrayBuffer | undefined {
    this.collect();
    let slab = this.free.pop();
    if (!slab && this.allocated < this.maxSlabs) {
      this.allocated++;
      slab = new ArrayBuffer(SLAB_BYTES);
    }
    if (!slab && !this.congested && this.maxWaitMs > 0) {
      const deadline = performance.now() + this.maxWaitMs;
      for (;;) {
        const seen = Atomics.load(this.signal, C_RETURNED);
        this.collect();
        slab = this.free.pop();
        const left = deadline - performance.now();
        if (slab || left <= 0) break;
        Atomics.wait(this.signal, C_RETURNED, seen, left);
      }
    }
    this.congested = slab === undefined;
    return slab;
  }

  /** A slab that was not sent after all. */
  give(slab: ArrayBuffer): void {
    this.free.push(slab);
  }

  /** Slabs the writer handed back (read synchronously: the event loop may be waiting for one). */
  private collect(): void {
    for (let m = receiveMessageOnPort(this.returns); m; m = receiveMessageOnPort(this.returns)) this.free.push(m.message as ArrayBuffer);
  }
}
