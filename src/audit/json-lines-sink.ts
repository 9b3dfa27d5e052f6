// SPDX-License-Identifier: Apache-2.0
// JsonLinesSink: audit records as JSON lines on standard output or in a file, rotated by size
// (file → file.1 → … → file.N). Owns the file descriptor, a writer thread and a bounded pool of
// buffers ("slabs") that travel between the two without copies. The event loop only encodes:
// batches are encoded straight into a slab (JsonLineEncoder, below), which goes to the writer
// thread once 256 KiB have gathered or 5 ms after its first line; the writer writes it with one
// write(2) (rotating between lines when needed) and hands it back. So a flood costs one write
// per 256 KiB and a trickle one every few milliseconds, never one per record. When every slab
// is with the writer, the event loop waits for one at most `maxWaitMs` — which slows the ring-buffer reader,
// so an overload is dropped (and counted) by the kernel, where it costs nothing — and past that
// bound it drops whole batches and counts them (`dropped`; the pipeline reports them as `lost`
// records with cause `sink`). A stalled stdout pipe therefore never blocks the event loop for
// more than one bounded wait.
import { closeSync, fstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { isMainThread, MessageChannel, type MessagePort, parentPort, receiveMessageOnPort, Worker, workerData } from 'node:worker_threads';
import { DoorstepError } from '../errors.js';
import type { AuditRecord, AuditSink, FlowFields, SummaryRecord } from './records.js';
import type { SessionRecord } from './session-record.js';

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

const NEWLINE = 0x0a;
const DEFAULT_MAX_BUFFER = 32 * 1024 * 1024;
const SLAB_BYTES = 4 * 1024 * 1024;
/** A slab goes to the writer once this much is in it… */
const HANDOVER_BYTES = 256 * 1024;
/** …or this long after its first line. */
const HANDOVER_MS = 5;
const WRITER = 'doorstep-json-lines-writer';

// counters the writer thread keeps in shared memory (Float64: exact to 2^53)
const C_WRITTEN = 0;
const C_DROPPED = 1;
const C_BYTES = 2;
const C_ROTATIONS = 3;
const C_CONSUMED = 4;
/** Slabs handed back (the main thread waits on it). */
const C_RETURNED = 0;

interface WriterInit {
  kind: typeof WRITER;
  fd: number;
  path: string | null;
  size: number;
  maxBytes: number;
  keep: number;
  counters: SharedArrayBuffer;
  signal: SharedArrayBuffer;
  returns: MessagePort;
}

type ToWriter =
  | { t: 'slab'; buf: ArrayBuffer; end: number; lines: number }
  | { t: 'text'; text: string; lines: number }
  | { t: 'flush'; id: number }
  | { t: 'close' };
type FromWriter = { t: 'flushed'; id: number } | { t: 'closed' } | { t: 'error'; message: string; code: string };

function countLines(buf: Uint8Array): number {
  let n = 0;
  for (let at = buf.indexOf(NEWLINE); at >= 0; at = buf.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

export class JsonLinesSink implements AuditSink {
  readonly path: string | null;
  readonly name: string;
  private readonly fd: number;
  private readonly worker: Worker;
  private readonly returns: MessagePort;
  private readonly counters: Float64Array;
  private readonly signal: Int32Array;
  private readonly maxSlabs: number;
  private readonly maxWaitMs: number;
  private readonly closeTimeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly encoder = new JsonLineEncoder();
  private readonly free: ArrayBuffer[] = [];
  private allocated = 0;
  // the slab being filled: handed to the writer at HANDOVER_BYTES, or HANDOVER_MS after its first line
  private slab: ArrayBuffer | undefined;
  private out: Buffer | undefined;
  private fill = 0;
  private lines = 0;
  private handoverTimer: NodeJS.Timeout | undefined;
  /** A wait for the writer timed out: drop without waiting until a slab comes back. */
  private congested = false;
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
    this.maxWaitMs = options.maxWaitMs ?? 100;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.onError = options.onError;
    this.maxSlabs = Math.max(2, Math.ceil((options.maxBufferBytes ?? DEFAULT_MAX_BUFFER) / SLAB_BYTES));
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
    const init: WriterInit = {
      kind: WRITER,
      fd: this.fd,
      path: this.path,
      size,
      maxBytes: this.path === null ? 0 : Math.max(0, options.maxBytes ?? 0),
      keep: Math.max(0, options.keep ?? 5),
      counters,
      signal,
      returns: channel.port2,
    };
    // the writer closes and reopens a descriptor it did not open: it owns it, not the worker's tracker
    // (and it needs none of this process's flags: --input-type, --inspect, … would only get in its way)
    this.worker = new Worker(new URL(import.meta.url), { workerData: init, transferList: [channel.port2], trackUnmanagedFds: false, execArgv: [] });
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
    const slab = this.take();
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

  /** A free slab: one the writer handed back, a new one within the bound, or — waiting at most
   *  maxWaitMs for the writer — none. */
  private take(): ArrayBuffer | undefined {
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

  /** Slabs the writer handed back (read synchronously: the event loop may be waiting for one). */
  private collect(): void {
    for (let m = receiveMessageOnPort(this.returns); m; m = receiveMessageOnPort(this.returns)) this.free.push(m.message as ArrayBuffer);
  }

  private send(slab: ArrayBuffer, end: number, lines: number): void {
    if (this.dead) {
      this.droppedHere += lines;
      return;
    }
    if (end === 0) {
      this.free.push(slab);
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
    return queued > (this.maxSlabs * SLAB_BYTES) / 4 ? this.flush() : undefined;
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

// ---- the writer thread ----

function runWriter(init: WriterInit): void {
  const port = parentPort!;
  const counters = new Float64Array(init.counters);
  const signal = new Int32Array(init.signal);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const reported = new Set<string>();
  let fd = init.fd;
  let size = init.size;
  let broken = false;

  const report = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'EPIPE' || code === 'EBADF') broken = true; // nobody reads any more
    if (reported.has(code)) return;
    reported.add(code);
    port.postMessage({ t: 'error', message: (err as Error).message, code } satisfies FromWriter);
  };

  const writeAll = (buf: Uint8Array) => {
    for (let off = 0; off < buf.length; ) {
      try {
        off += writeSync(fd, buf, off, buf.length - off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        Atomics.wait(sleeper, 0, 0, 5); // a non-blocking pipe that is full
      }
    }
  };

  const output = (buf: Uint8Array, lines: number) => {
    if (broken) {
      counters[C_DROPPED]! += lines;
      return;
    }
    try {
      writeAll(buf);
      counters[C_WRITTEN]! += lines;
      counters[C_BYTES]! += buf.length;
    } catch (err) {
      counters[C_DROPPED]! += lines;
      report(err);
    }
  };

  const rotate = () => {
    const path = init.path as string;
    try {
      closeSync(fd);
      if (init.keep === 0) unlinkSync(path);
      else {
        for (let i = init.keep - 1; i >= 0; i--) {
          try {
            renameSync(i === 0 ? path : `${path}.${i}`, `${path}.${i + 1}`);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
        }
      }
      counters[C_ROTATIONS]! += 1;
    } catch (err) {
      report(err);
    }
    try {
      fd = openSync(path, 'a', 0o640);
      size = 0;
    } catch (err) {
      broken = true;
      report(err);
    }
  };

  /** Write whole lines, rotating between lines whenever the next one would not fit. */
  const write = (chunk: Uint8Array, lines: number) => {
    if (init.maxBytes === 0 || chunk.length <= init.maxBytes - size) {
      output(chunk, lines);
      size += chunk.length;
      return;
    }
    let off = 0;
    while (off < chunk.length) {
      const space = init.maxBytes - size;
      if (chunk.length - off <= space) {
        const piece = chunk.subarray(off);
        output(piece, countLines(piece));
        size += piece.length;
        return;
      }
      let end = space > 0 ? chunk.lastIndexOf(NEWLINE, off + space - 1) + 1 : 0;
      if (end <= off && size === 0) {
        // a single line longer than maxBytes: it gets a file of its own
        const nl = chunk.indexOf(NEWLINE, off);
        end = nl < 0 ? chunk.length : nl + 1;
      }
      if (end > off) {
        const piece = chunk.subarray(off, end);
        output(piece, countLines(piece));
        size += piece.length;
        off = end;
        if (off >= chunk.length) return; // the next write rotates if it must
      }
      rotate();
    }
  };

  port.on('message', (m: ToWriter) => {
    switch (m.t) {
      case 'slab':
        write(new Uint8Array(m.buf, 0, m.end), m.lines);
        counters[C_CONSUMED]! += m.end;
        init.returns.postMessage(m.buf, [m.buf]);
        Atomics.add(signal, C_RETURNED, 1);
        Atomics.notify(signal, C_RETURNED);
        break;
      case 'text':
        write(Buffer.from(m.text, 'latin1'), m.lines);
        counters[C_CONSUMED]! += m.text.length;
        break;
      case 'flush':
        port.postMessage({ t: 'flushed', id: m.id } satisfies FromWriter);
        break;
      case 'close':
        if (init.path !== null) {
          try {
            closeSync(fd);
          } catch (err) {
            report(err);
          }
        }
        port.postMessage({ t: 'closed' } satisfies FromWriter);
        init.returns.close();
        port.close();
        break;
    }
  });
}

if (!isMainThread && (workerData as Partial<WriterInit> | null)?.kind === WRITER) runWriter(workerData as WriterInit);

// ---- serialization ----
// Output is pure ASCII: every character outside it is written as a \uXXXX escape (valid JSON, the
// same string once parsed), so a line's length in characters is its length in bytes and
// Buffer#write(…, "latin1") copies it into the output slab as is.

const NEEDS_ESCAPE = /[\u0000-\u001f"\\\u007f-\uffff]/;
const NON_ASCII = /[\u007f-\uffff]/g;
const hex4 = (c: string) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');

/** A JSON string literal in ASCII. */
function str(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  return JSON.stringify(s).replace(NON_ASCII, hex4);
}

/** A JSON number as JSON.stringify writes it (null when not finite). */
function num(n: number): string {
  return n - n === 0 ? '' + n : 'null';
}

function vlanJson(v: readonly number[]): string {
  return '[' + v.map(num).join(',') + ']';
}

/** Any record, via JSON.stringify, in ASCII. */
function genericJson(r: AuditRecord): string {
  return JSON.stringify(r).replace(NON_ASCII, hex4);
}

/** The flow fields session and summary records share, from `protocol` to `policyVersion`. */
function flowJson(r: FlowFields & { policy?: string; policyVersion?: string }): string {
  let s =
    ',"protocol":' + str(r.protocol) +
    ',"src":' + str(r.src) +
    ',"dst":' + str(r.dst);
  if (r.sport !== undefined) s += ',"sport":' + num(r.sport);
  if (r.dport !== undefined) s += ',"dport":' + num(r.dport);
  if (r.icmpType !== undefined) s += ',"icmpType":' + num(r.icmpType);
  if (r.icmpCode !== undefined) s += ',"icmpCode":' + num(r.icmpCode);
  if (r.vlan !== undefined) s += ',"vlan":' + vlanJson(r.vlan);
  s += ',"rule":' + str(r.rule);
  if (r.policy !== undefined) s += ',"policy":' + str(r.policy);
  if (r.policyVersion !== undefined) s += ',"policyVersion":' + str(r.policyVersion);
  return s;
}

/** One session record, fields in the documented order (the reference for the cached path below). */
export function sessionJson(r: SessionRecord): string {
  const s =
    '{"time":' + str(r.time) +
    ',"type":"session","event":' + str(r.event) +
    ',"enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
    ',"reason":' + str(r.reason) +
    flowJson(r) +
    (r.tenant !== undefined ? ',"tenant":' + str(r.tenant) : '') +
    (r.path !== undefined ? ',"path":' + str(r.path) : '');
  return s + ',"generation":' + num(r.generation) + ',"cpu":' + num(r.cpu) + ',"seq":' + num(r.seq) + '}';
}

/** One summary record, fields in the documented order. */
export function summaryJson(r: SummaryRecord): string {
  const s =
    '{"time":' + str(r.time) +
    ',"type":"summary","enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
    flowJson(r);
  return (
    s +
    ',"generation":' + num(r.generation) +
    ',"packets":' + num(r.packets) +
    ',"bytes":' + num(r.bytes) +
    ',"totalPackets":' + num(r.totalPackets) +
    ',"totalBytes":' + num(r.totalBytes) +
    ',"firstSeen":' + str(r.firstSeen) +
    ',"lastSeen":' + str(r.lastSeen) +
    '}'
  );
}

/** One record as one line of ASCII JSON (without the newline). */
export function recordJson(r: AuditRecord): string {
  if (r.type === 'session') return sessionJson(r);
  if (r.type === 'summary') return summaryJson(r);
  return genericJson(r);
}

/** Records as JSON lines, each ending in a newline. */
export function serializeRecords(records: readonly AuditRecord[]): string {
  let out = '';
  for (let i = 0; i < records.length; i++) out += recordJson(records[i]!) + '\n';
  return out;
}

const tailHash = (s: string): number => {
  const n = s.length;
  if (n < 3) return n === 0 ? 0 : Math.imul(s.charCodeAt(n - 1), 31) ^ n;
  return Math.imul(n, 0x9e3779b1) ^ Math.imul(s.charCodeAt(n - 1), 31) ^ Math.imul(s.charCodeAt(n - 2), 961) ^ Math.imul(s.charCodeAt(n - 3), 29791);
};

/** Write `s` at `o` when every character is printable ASCII needing no escape; -1 otherwise. */
function putPlain(out: Uint8Array, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
    out[o + i] = c;
  }
  return o + s.length;
}

const DIGIT_PAIRS = new Uint8Array(200);
for (let i = 0; i < 100; i++) {
  DIGIT_PAIRS[2 * i] = 0x30 + ((i / 10) | 0);
  DIGIT_PAIRS[2 * i + 1] = 0x30 + (i % 10);
}

/** Write a JSON number at `o`, as JSON.stringify writes it: non-negative int32s digit by digit
 *  (two at a time), anything else through V8's number-to-text. */
function putNumber(out: Uint8Array, o: number, n: number): number {
  if (n >= 0 && n <= 0x7fffffff && (n | 0) === n) {
    const len = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
    let e = o + len;
    let t = n | 0;
    while (t >= 100) {
      const q = (t / 100) | 0;
      const r = (t - q * 100) << 1;
      out[--e] = DIGIT_PAIRS[r + 1]!;
      out[--e] = DIGIT_PAIRS[r]!;
      t = q;
    }
    if (t >= 10) {
      out[--e] = DIGIT_PAIRS[(t << 1) + 1]!;
      out[--e] = DIGIT_PAIRS[t << 1]!;
    } else out[--e] = 0x30 + t;
    return o + len;
  }
  const text = num(n);
  for (let i = 0; i < text.length; i++) out[o + i] = text.charCodeAt(i);
  return o + text.length;
}

/** Copy a short constant (cheaper than a TypedArray#set call for a few bytes). */
function putConst(out: Uint8Array, o: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) out[o + i] = bytes[i]!;
  return o + bytes.length;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');
/** Sets of the rule-fragment cache (two entries each): room for thousands of rules without evictions. */
const TAIL_SETS = 8192;
/** Slots of the head cache (two per set). */
const HEAD_SLOTS = 256;
const DST = ascii('","dst":"');
const SPORT = ascii(',"sport":');
const DPORT = ascii(',"dport":');
const ICMP_TYPE = ascii(',"icmpType":');
const ICMP_CODE = ascii(',"icmpCode":');
const VLAN = ascii(',"vlan":[');
/** The longest fixed text of the fast path (keys, quotes, digits of five numbers, vlan). */
const FIXED_MAX = 9 + 1 + DST.length + 1 + SPORT.length + DPORT.length + ICMP_TYPE.length + ICMP_CODE.length + VLAN.length + 8 * 22 + 4;

/**
 * Audit records as JSON lines written straight into a byte buffer. Session records, the hot path,
 * are assembled from cached byte fragments: the time text (one per millisecond), the fields fixed
 * for an interface and verdict (`head`) and for a rule (`tail`), with the addresses copied and
 * checked in one pass and the numbers written digit by digit. The caches are direct-mapped and
 * keyed by string identity (the pipeline hands out the same string objects again and again), so a
 * hit costs a few pointer compares; a miss, or any text that needs escaping, takes the string
 * serializers above. Every other record is serialized as a string. Output is ASCII.
 */
export class JsonLineEncoder {
  private lastTime: string | undefined;
  private lastTimeBytes: Buffer | undefined;
  /** Bumped whenever the time text changes: prefixes built for an older time are stale. */
  private stamp = 0;
  private readonly headKeys: (string | undefined)[] = new Array(HEAD_SLOTS * 6).fill(undefined);
  private readonly heads: Buffer[] = new Array(HEAD_SLOTS);
  /** Time + head, per head slot, for the current time text. */
  private readonly prefixStamp = new Int32Array(HEAD_SLOTS).fill(-1);
  private readonly prefixes: Buffer[] = new Array(HEAD_SLOTS);
  private readonly tailKeys: (string | undefined)[] = new Array(TAIL_SETS * 2 * 3).fill(undefined);
  private readonly tailGen = new Float64Array(TAIL_SETS * 2).fill(-1);
  private readonly tailCpu = new Float64Array(TAIL_SETS * 2).fill(-1);
  private readonly tails: Buffer[] = new Array(TAIL_SETS * 2);

  /** Append one record and its newline to `out` at `o`: the new offset, or -1 when `out` is too short. */
  encode(r: AuditRecord, out: Buffer, o: number): number {
    if (r.type === 'session') {
      const next = this.session(r, out, o);
      if (next !== -2) return next;
    }
    const text = recordJson(r) + '\n';
    if (out.length - o < text.length) return -1;
    out.write(text, o, text.length, 'latin1');
    return o + text.length;
  }

  /** The fast path; -2 when the record needs the string serializer (escapes, a cache that cannot hold it). */
  private session(r: SessionRecord, out: Buffer, o: number): number {
    if (!this.time(r.time) || r.tenant !== undefined || r.path !== undefined) return -2;
    const prefix = this.prefix(this.head(r));
    const tail = this.tail(r);
    if (out.length - o < FIXED_MAX + prefix.length + tail.length + r.src.length + r.dst.length + (r.vlan ? r.vlan.length * 22 : 0)) return -1;
    out.set(prefix, o);
    o = putPlain(out, o + prefix.length, r.src);
    if (o < 0) return -2;
    o = putPlain(out, putConst(out, o, DST), r.dst);
    if (o < 0) return -2;
    out[o++] = 0x22; // "
    if (r.sport !== undefined) o = putNumber(out, putConst(out, o, SPORT), r.sport);
    if (r.dport !== undefined) o = putNumber(out, putConst(out, o, DPORT), r.dport);
    if (r.icmpType !== undefined) o = putNumber(out, putConst(out, o, ICMP_TYPE), r.icmpType);
    if (r.icmpCode !== undefined) o = putNumber(out, putConst(out, o, ICMP_CODE), r.icmpCode);
    if (r.vlan !== undefined) {
      o = putConst(out, o, VLAN);
      for (let i = 0; i < r.vlan.length; i++) {
        if (i > 0) out[o++] = 0x2c; // ,
        o = putNumber(out, o, r.vlan[i]!);
      }
      out[o++] = 0x5d; // ]
    }
    out.set(tail, o);
    o = putNumber(out, o + tail.length, r.seq);
    out[o++] = 0x7d; // }
    out[o++] = NEWLINE;
    return o;
  }

  /** Make `t` the current time text ('{"time":"<t>"'); false when it needs escaping. */
  private time(t: string): boolean {
    if (t === this.lastTime) return true;
    if (NEEDS_ESCAPE.test(t)) return false;
    this.lastTime = t;
    this.lastTimeBytes = ascii('{"time":"' + t + '"');
    this.stamp++;
    return true;
  }

  /** '{"time":…' + the head in `slot`, built once per time text. */
  private prefix(slot: number): Buffer {
    if (this.prefixStamp[slot] === this.stamp) return this.prefixes[slot]!;
    const bytes = Buffer.concat([this.lastTimeBytes!, this.heads[slot]!]);
    this.prefixStamp[slot] = this.stamp;
    this.prefixes[slot] = bytes;
    return bytes;
  }

  /** The slot of ',"type":"session","event":…,"protocol":…,"src":"' (two-way set associative). */
  private head(r: SessionRecord): number {
    // few distinct heads: lengths and a character or two tell them apart well enough
    const p = r.protocol;
    const set = (Math.imul(r.interface.length, 31) ^ Math.imul(r.reason.charCodeAt(0), 7) ^ Math.imul(p.charCodeAt(0) + p.length, 13) ^ (r.verdict.length << 1) ^ r.event.length) & (HEAD_SLOTS / 2 - 1);
    const k = this.headKeys;
    for (let way = 0; way < 2; way++) {
      const slot = set * 2 + way;
      const at = slot * 6;
      if (k[at] === r.event && k[at + 1] === r.enforcer && k[at + 2] === r.interface && k[at + 3] === r.verdict && k[at + 4] === r.reason && k[at + 5] === r.protocol) return slot;
    }
    const head = ascii(
      ',"type":"session","event":' + str(r.event) +
      ',"enforcer":' + str(r.enforcer) +
      ',"interface":' + str(r.interface) +
      ',"verdict":' + str(r.verdict) +
      ',"reason":' + str(r.reason) +
      ',"protocol":' + str(r.protocol) +
      ',"src":"',
    );
    // the new entry takes way 0; the one there moves to way 1 (with its prefix)
    const slot = set * 2;
    for (let f = 0; f < 6; f++) k[(slot + 1) * 6 + f] = k[slot * 6 + f];
    this.heads[slot + 1] = this.heads[slot]!;
    this.prefixes[slot + 1] = this.prefixes[slot]!;
    this.prefixStamp[slot + 1] = this.prefixStamp[slot]!;
    k[slot * 6] = r.event;
    k[slot * 6 + 1] = r.enforcer;
    k[slot * 6 + 2] = r.interface;
    k[slot * 6 + 3] = r.verdict;
    k[slot * 6 + 4] = r.reason;
    k[slot * 6 + 5] = r.protocol;
    this.heads[slot] = head;
    this.prefixStamp[slot] = -1;
    return slot;
  }

  /** ',"rule":…,"policy":…,"policyVersion":…,"generation":N,"cpu":N,"seq":'; two-way set associative. */
  private tail(r: SessionRecord): Buffer {
    const set = (tailHash(r.rule) ^ Math.imul(r.generation, 0x85ebca6b) ^ Math.imul(r.cpu, 0x27d4eb2f)) & (TAIL_SETS - 1);
    const k = this.tailKeys;
    for (let way = 0; way < 2; way++) {
      const i = set * 2 + way;
      if (k[i * 3] === r.rule && k[i * 3 + 1] === r.policy && k[i * 3 + 2] === r.policyVersion && this.tailGen[i] === r.generation && this.tailCpu[i] === r.cpu) return this.tails[i]!;
    }
    let tail = ',"rule":' + str(r.rule);
    if (r.policy !== undefined) tail += ',"policy":' + str(r.policy);
    if (r.policyVersion !== undefined) tail += ',"policyVersion":' + str(r.policyVersion);
    tail += ',"generation":' + num(r.generation) + ',"cpu":' + num(r.cpu) + ',"seq":';
    const bytes = ascii(tail);
    // the new entry takes way 0; the one there moves to way 1
    const i = set * 2;
    for (let f = 0; f < 3; f++) k[(i + 1) * 3 + f] = k[i * 3 + f];
    this.tailGen[i + 1] = this.tailGen[i]!;
    this.tailCpu[i + 1] = this.tailCpu[i]!;
    this.tails[i + 1] = this.tails[i]!;
    k[i * 3] = r.rule;
    k[i * 3 + 1] = r.policy;
    k[i * 3 + 2] = r.policyVersion;
    this.tailGen[i] = r.generation;
    this.tailCpu[i] = r.cpu;
    this.tails[i] = bytes;
    return bytes;
  }
}

/** Records as JSON-lines bytes, as the sink writes them (tests, tools). */
export function encodeRecords(records: readonly AuditRecord[]): Buffer {
  const encoder = new JsonLineEncoder();
  let out = Buffer.alloc(64 * 1024);
  let o = 0;
  for (const r of records) {
    let next = encoder.encode(r, out, o);
    while (next < 0) {
      const bigger = Buffer.alloc(out.length * 2);
      out.copy(bigger, 0, 0, o);
      out = bigger;
      next = encoder.encode(r, out, o);
    }
    o = next;
  }
  return out.subarray(0, o);
}
