// SPDX-License-Identifier: Apache-2.0
// JsonLinesSink: audit records as JSON lines on standard output or in a file, rotated by size
// (file → file.1 → … → file.N). Owns the event loop's side: encoding batches straight into a
// slab (record-json-fast.ts) from a bounded pool (slab-pool.ts), handing a slab to the writer
// thread (json-lines-writer.ts, which writes and rotates) once 256 KiB have gathered or 5 ms
// after its first line, flush, close and the counts. So a flood costs one write per 256 KiB and
// a trickle one every few milliseconds, never one per record. When every slab is with the
// writer, the event loop waits for one at most `maxWaitMs` — which slows the ring-buffer reader,
// so an overload is dropped (and counted) by the kernel, where it costs nothing — and past that
// bound it drops whole batches and counts them (`dropped`; the pipeline reports them as `lost`
// records with cause `sink`). A stalled stdout pipe therefore never blocks the event loop for
// more than one bounded wait.
import { fstatSync, openSync } from 'node:fs';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { DoorstepError } from '../errors.js';
import { C_BYTES, C_CONSUMED, C_DROPPED, C_ROTATIONS, C_WRITTEN, type FromWriter, startWriter, type ToWriter, type WriterInit } from './json-lines-writer.js';
import { recordJson } from './record-json.js';
import { JsonLineEncoder } from './record-json-fast.js';
import type { AuditRecord, AuditSink } from './records.js';
import { SLAB_BYTES, SlabPool } from './slab-pool.js';

export interface JsonLinesSinkOptions {
  /** A file to append to, or "-" for standard output. */
  path?: string;
  /** Standard output (same as path "-"). */
  stdout?: boolean;
  /** Rotate before a file would grow past this many bytes (0 or absent: never). A file only
   *  exceeds it when a single line is longer. */
  maxBytes?: number;
  /** Rotated files kept: file.1 (newest) … file.N (default 5; 0 = none kept). */
  keep?: number;
  /** Encoded bytes that may wait for the writer (default 32 MiB, in 4 MiB slabs). */
  maxBufferBytes?: number;
  /** How long one batch may wait for the writer when all of that is in use (default 100 ms; 0 = drop at once). */
  maxWaitMs?: number;
  /** How long close() waits for queued records to be written (default 5,000 ms). */
  closeTimeoutMs?: number;
  /** Write and rotation errors (once per distinct error code). Records that failed are counted in `dropped`. */
  onError?: (err: Error) => void;
}

export interface JsonLinesSinkStats {
  /** Records written (in a write the kernel accepted). */
  written: number;
  /** Records dropped: no buffer within maxWaitMs, a write failed, or still queued when close() gave up. */
  dropped: number;
  bytesWritten: number;
  rotations: number;
  /** Bytes encoded and not yet written. */
  queuedBytes: number;
}

const DEFAULT_MAX_BUFFER = 32 * 1024 * 1024;
/** A slab goes to the writer once this much is in it… */
const HANDOVER_BYTES = 256 * 1024;
/** …or this long after its first line. */
const HANDOVER_MS = 5;

export class JsonLinesSink implements AuditSink {
  readonly path: string | null;
  readonly name: string;
  private readonly fd: number;
  private readonly worker: Worker;
  private readonly returns: MessagePort;
  private readonly counters: Float64Array;
  private readonly signal: Int32Array;
  private readonly pool: SlabPool;
  private readonly closeTimeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly encoder = new JsonLineEncoder();
  // the slab being filled: handed to the writer at HANDOVER_BYTES, or HANDOVER_MS after its first line
  private slab: ArrayBuffer | undefined;
  private out: Buffer | undefined;
  private fill = 0;
  private lines = 0;
  private handoverTimer: NodeJS.Timeout | undefined;
  private postedBytes = 0;
  private postedLines = 0;
  private droppedHere = 0;
  private broken = false;
  /** The writer thread is gone. */
  private dead = false;
  private closed = false;
  private nextFlush = 0;
  private readonly flushes = new Map<number, () => void>();
  private onClosed: (() => void) | undefined;

  constructor(options: JsonLinesSinkOptions) {
    const stdout = options.stdout === true || options.path === '-' || options.path === undefined;
    this.path = stdout ? null : (options.path as string);
    this.name = stdout ? 'stdout' : 'file';
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.onError = options.onError;
    let size = 0;
    if (this.path === null) this.fd = 1;
    else {
      try {
        this.fd = openSync(this.path, 'a', 0o640);
        size = fstatSync(this.fd).size;
      } catch (cause) {
        throw new DoorstepError('DS_E_AUDIT_SINK', `cannot open the audit file ${this.path}: ${(cause as Error).message}`, {
          hint: 'check that its folder exists and is writable, or write the audit to stdout with --audit -',
          cause,
        });
      }
    }
    const counters = new SharedArrayBuffer(5 * 8);
    const signal = new SharedArrayBuffer(4);
    this.counters = new Float64Array(counters);
    this.signal = new Int32Array(signal);
    const channel = new MessageChannel();
    this.returns = channel.port1;
    this.pool = new SlabPool(Math.max(2, Math.ceil((options.maxBufferBytes ?? DEFAULT_MAX_BUFFER) / SLAB_BYTES)), options.maxWaitMs ?? 100, this.returns, this.signal);
    const init: WriterInit = {
      fd: this.fd,
      path: this.path,
      size,
      maxBytes: this.path === null ? 0 : Math.max(0, options.maxBytes ?? 0),
      keep: Math.max(0, options.keep ?? 5),
      counters,
      signal,
      returns: channel.port2,
    };
    this.worker = startWriter(init);
    this.worker.unref();
    this.worker.on('message', (m: FromWriter) => this.fromWriter(m));
    this.worker.on('error', (err) => {
      this.onError?.(err);
      this.writerGone();
    });
    this.worker.on('exit', () => this.writerGone());
  }

  /** The writer thread stopped (closed, or failed): whatever it had not written is lost. */
  private writerGone(): void {
    if (this.dead) return;
    this.dead = true;
    this.broken = true;
    const c = this.counters;
    this.droppedHere += Math.max(0, this.postedLines - c[C_WRITTEN]! - c[C_DROPPED]!) + this.lines;
    this.slab = undefined;
    this.out = undefined;
    this.fill = 0;
    this.lines = 0;
    this.settle();
  }

  /** Records dropped so far (monotonic): what the pipeline reports as lost with cause `sink`. */
  get dropped(): number {
    return this.droppedHere + this.counters[C_DROPPED]!;
  }

  stats(): JsonLinesSinkStats {
    const c = this.counters;
    return { written: c[C_WRITTEN]!, dropped: this.dropped, bytesWritten: c[C_BYTES]!, rotations: c[C_ROTATIONS]!, queuedBytes: this.postedBytes - c[C_CONSUMED]! + this.fill };
  }

  /**
   * Encode the batch into the current slab; hand slabs to the writer when they fill up, when
   * HANDOVER_BYTES have gathered, or HANDOVER_MS after the first line (so a trickle of records
   * costs one write every few milliseconds, not one per batch). See the header for when it
   * waits or drops.
   */
  write(records: readonly AuditRecord[]): void {
    const n = records.length;
    if (n === 0) return;
    if (this.closed || this.broken) {
      this.droppedHere += n;
      return;
    }
    if (!this.out && !this.open()) {
      this.droppedHere += n;
      return;
    }
    let out = this.out!;
    let o = this.fill;
    let lines = this.lines;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      let next = this.encoder.encode(r, out, o);
      if (next < 0) {
        // the slab is full: hand it over, go on in another
        this.fill = o;
        this.lines = lines;
        this.handover();
        if (!this.open()) {
          this.droppedHere += n - i;
          return;
        }
        out = this.out!;
        o = 0;
        lines = 0;
        next = this.encoder.encode(r, out, o);
        if (next < 0) {
          // one record larger than a slab travels as text
          const text = recordJson(r) + '\n';
          this.postedBytes += text.length;
          this.postedLines++;
          this.worker.postMessage({ t: 'text', text, lines: 1 } satisfies ToWriter);
          continue;
        }
      }
      o = next;
      lines++;
    }
    this.fill = o;
    this.lines = lines;
    if (o >= HANDOVER_BYTES) this.handover();
    else if (o > 0 && !this.handoverTimer) {
      this.handoverTimer = setTimeout(() => this.handover(), HANDOVER_MS);
      this.handoverTimer.unref();
    }
  }

  /** Take a free slab as the current one; false when none came within maxWaitMs. */
  private open(): boolean {
    const slab = this.pool.take();
    if (!slab) return false;
    this.slab = slab;
    this.out = Buffer.from(slab);
    this.fill = 0;
    this.lines = 0;
    return true;
  }

  /** Give the current slab's lines to the writer. */
  private handover(): void {
    if (this.handoverTimer) clearTimeout(this.handoverTimer);
    this.handoverTimer = undefined;
    const slab = this.slab;
    if (!slab) return;
    this.slab = undefined;
    this.out = undefined;
    this.send(slab, this.fill, this.lines);
    this.fill = 0;
    this.lines = 0;
  }

  private send(slab: ArrayBuffer, end: number, lines: number): void {
    if (this.dead) {
      this.droppedHere += lines;
      return;
    }
    if (end === 0) {
      this.pool.give(slab);
      return;
    }
    this.postedBytes += end;
    this.postedLines += lines;
    this.worker.postMessage({ t: 'slab', buf: slab, end, lines } satisfies ToWriter, [slab]);
  }

  private fromWriter(m: FromWriter): void {
    if (m.t === 'flushed') {
      this.flushes.get(m.id)?.();
      this.flushes.delete(m.id);
    } else if (m.t === 'closed') {
      this.onClosed?.();
    } else {
      if (m.code === 'EPIPE' || m.code === 'EBADF') this.broken = true;
      this.onError?.(Object.assign(new Error(m.message), { code: m.code }));
    }
  }

  /** Resolve everything waiting on the writer (it stopped). */
  private settle(): void {
    for (const done of this.flushes.values()) done();
    this.flushes.clear();
    this.onClosed?.();
  }

  /** Room for producers that can wait (AuditSink.ready): while more than a quarter of the
   *  buffer bound waits for the writer, a flush; so a summary of a full cache never makes write()
   *  wait for a slab on the event loop. */
  ready(): Promise<void> | undefined {
    if (this.closed || this.broken || this.dead) return undefined;
    const queued = this.postedBytes - this.counters[C_CONSUMED]! + this.fill;
    return queued > (this.pool.maxSlabs * SLAB_BYTES) / 4 ? this.flush() : undefined;
  }

  /** Resolves when everything handed over so far has been written (or dropped). */
  async flush(): Promise<void> {
    this.handover();
    if (this.dead || this.postedBytes === this.counters[C_CONSUMED]) return;
    const id = this.nextFlush++;
    this.worker.ref();
    try {
      await new Promise<void>((resolve) => {
        this.flushes.set(id, resolve);
        this.worker.postMessage({ t: 'flush', id } satisfies ToWriter);
      });
    } finally {
      if (this.flushes.size === 0) this.worker.unref();
    }
  }

  /** Write what is queued (waiting at most closeTimeoutMs), close the file and stop the writer. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.handover();
    this.closed = true;
    if (this.dead) return;
    this.worker.ref();
    let timer: NodeJS.Timeout | undefined;
    const done = await new Promise<boolean>((resolve) => {
      this.onClosed = () => resolve(true);
      timer = setTimeout(() => resolve(false), this.closeTimeoutMs);
      this.worker.postMessage({ t: 'close' } satisfies ToWriter);
    });
    clearTimeout(timer);
    this.onClosed = undefined;
    this.returns.close();
    if (!done) {
      // the writer is stuck (a stdout nobody reads): what it still holds is lost
      this.writerGone();
      void this.worker.terminate();
    }
    this.worker.unref();
  }
}
