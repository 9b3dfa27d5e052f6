// SPDX-License-Identifier: Apache-2.0
// The NATS audit sink's messages and queue: a message is a run of records' JSON lines, formed
// once and retried as is (same id, same bytes); the queue of lines not yet in a message; and the
// retry delays after a failure. Pure.
import type { SpooledLine, SpoolSegment } from './nats-spool.js';

/** Retry delays after a failure: 250 ms, doubling up to 2 s (a reconnect cuts them short). */
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 2_000;

/** The delay before the next attempt after `failures` failures in a row. */
export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures - 1, 8));
}

/** One message: formed once, retried as is (same id, same bytes). */
export interface Batch {
  seq: number;
  msgID: string;
  data: Uint8Array;
  records: number;
  control: number;
  /** Its records' lines: their numbers and spool segments. */
  lines: SpooledLine[];
  /** The publish whose outcome counts; a settled publish of an older attempt is ignored. */
  attempt: number;
}

/** The lines' bytes as one buffer (a slice, when they lie side by side). */
export function joinLines(lines: readonly SpooledLine[], bytes: number): Buffer {
  const first = lines[0]!.bytes;
  let end = first.byteOffset + first.length;
  let i = 1;
  for (; i < lines.length; i++) {
    const b = lines[i]!.bytes;
    if (b.buffer !== first.buffer || b.byteOffset !== end) break;
    end += b.length;
  }
  if (i === lines.length) return Buffer.from(first.buffer, first.byteOffset, bytes);
  const out = Buffer.allocUnsafe(bytes);
  let o = 0;
  for (const l of lines) o += l.bytes.copy(out, o);
  return out;
}

/** How many of the lines lie in each spool segment. */
export function segmentCounts(lines: readonly SpooledLine[]): Map<SpoolSegment, number> {
  const parts = new Map<SpoolSegment, number>();
  for (const l of lines) if (l.segment) parts.set(l.segment, (parts.get(l.segment) ?? 0) + 1);
  return parts;
}

/** A FIFO with O(1) push and removal at the front. */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(r: T): void {
    this.items.push(r);
  }

  at(i: number): T {
    return this.items[this.head + i]!;
  }

  /** Remove and return the first `n`. */
  take(n: number): T[] {
    const out = this.items.slice(this.head, this.head + n) as T[];
    for (let i = 0; i < n; i++) this.items[this.head + i] = undefined;
    this.head += n;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
