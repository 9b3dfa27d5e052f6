// SPDX-License-Identifier: Apache-2.0
// JsonLinesSink: audit records as JSON lines on standard output or in a file, rotated by size
// (file → file.1 → … → file.N). Owns its file descriptor, a bounded queue of serialized batches,
// and the one write in flight. Writes run on libuv's thread pool, one writev per queued batch
// or group of batches, never one per record, so a slow disk or a stalled stdout pipe never
// blocks the event loop: the queue grows to its bound, then whole batches are dropped and
// counted (`dropped`), and the pipeline reports them as `lost` records with cause `sink`.
// Session and summary records take a specialised serializer (the hot path); every other record
// is JSON.stringify'd. Both give the same JSON values (test/unit/audit-json-sink.test.ts).
import { close, closeSync, fstatSync, open, openSync, rename, unlink, writev } from 'node:fs';
import { DoorstepError } from '../errors.js';
import type { AuditRecord, AuditSink, SummaryRecord } from './records.js';
import type { SessionRecord } from './session-record.js';

export interface JsonLinesSinkOptions {
  /** A file to append to, or "-" for standard output. */
  path?: string;
  /** Standard output (same as path "-"). */
  stdout?: boolean;
  /** Rotate before a file would grow past this many bytes (0 or absent: never). Files: a file
   *  only exceeds it when a single line is longer. */
  maxBytes?: number;
  /** Rotated files kept: file.1 (newest) … file.N (default 5; 0 = none kept). */
  keep?: number;
  /** Serialized bytes queued behind the write in flight before batches are dropped (default 32 MiB). */
  maxBufferBytes?: number;
  /** How long close() waits for queued records to be written (default 5,000 ms). */
  closeTimeoutMs?: number;
  /** Write and rotation errors (once per distinct error code). Records that failed are counted in `dropped`. */
  onError?: (err: Error) => void;
}

export interface JsonLinesSinkStats {
  /** Records written (in a write the kernel accepted). */
  written: number;
  /** Records dropped: queue full, write failed, or still queued when close() gave up. */
  dropped: number;
  bytesWritten: number;
  rotations: number;
  /** Bytes queued, including the write in flight. */
  queuedBytes: number;
}

const NEWLINE = 0x0a;
const DEFAULT_MAX_BUFFER = 32 * 1024 * 1024;
/** Serialized text is appended to reusable slabs of this size (fresh memory costs page faults). */
const SLAB_BYTES = 4 * 1024 * 1024;
const FREE_SLABS = 2;

function writevAll(fd: number, buffers: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (bufs: Buffer[]) =>
      writev(fd, bufs, (err, written) => {
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return void setTimeout(() => step(bufs), 5); // a non-blocking pipe that is full
          return reject(err);
        }
        // a short write (pipes): go on with what is left
        let rest = written;
        let i = 0;
        while (i < bufs.length && rest >= bufs[i]!.length) rest -= bufs[i++]!.length;
        if (i === bufs.length) return resolve();
        step([bufs[i]!.subarray(rest), ...bufs.slice(i + 1)]);
      });
    step(buffers);
  });
}

const closeFd = (fd: number) => new Promise<void>((resolve) => close(fd, () => resolve()));
const renameIfThere = (from: string, to: string) =>
  new Promise<void>((resolve, reject) => rename(from, to, (err) => (err && err.code !== 'ENOENT' ? reject(err) : resolve())));
const unlinkIfThere = (path: string) => new Promise<void>((resolve, reject) => unlink(path, (err) => (err && err.code !== 'ENOENT' ? reject(err) : resolve())));
const openAppend = (path: string) => new Promise<number>((resolve, reject) => open(path, 'a', 0o640, (err, fd) => (err ? reject(err) : resolve(fd))));

function countLines(buf: Buffer): number {
  let n = 0;
  for (let at = buf.indexOf(NEWLINE); at >= 0; at = buf.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

interface Slab {
  buf: Buffer;
  fill: number;
  /** Queued chunks still pointing into it. */
  refs: number;
}

/** Serialized lines waiting for the disk: a region of a slab. */
interface Chunk {
  slab: Slab;
  start: number;
  end: number;
  lines: number;
}

/** Part of a chunk, as written to one file. */
interface Piece {
  buf: Buffer;
  lines: number;
}

export class JsonLinesSink implements AuditSink {
  readonly path: string | null;
  private fd: number;
  private size = 0;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly maxBuffer: number;
  private readonly closeTimeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly reportedErrors = new Set<string>();
  private readonly encoder = new JsonLineEncoder();
  private slab: Slab | undefined;
  private readonly freeSlabs: Slab[] = [];
  private queue: Chunk[] = [];
  private queuedBytes = 0;
  private pumping: Promise<void> | undefined;
  private broken = false;
  private closed = false;
  private readonly counts = { written: 0, dropped: 0, bytesWritten: 0, rotations: 0 };

  constructor(options: JsonLinesSinkOptions) {
    const stdout = options.stdout === true || options.path === '-' || options.path === undefined;
    this.path = stdout ? null : (options.path as string);
    this.maxBytes = stdout ? 0 : Math.max(0, options.maxBytes ?? 0);
    this.keep = Math.max(0, options.keep ?? 5);
    this.maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.onError = options.onError;
    if (this.path === null) {
      this.fd = 1;
      return;
    }
    try {
      this.fd = openSync(this.path, 'a', 0o640);
      this.size = fstatSync(this.fd).size;
    } catch (cause) {
      throw new DoorstepError('DS_E_AUDIT_SINK', `cannot open the audit file ${this.path}: ${(cause as Error).message}`, {
        hint: 'check that its folder exists and is writable, or write the audit to stdout with --audit -',
        cause,
      });
    }
  }

  /** Records dropped so far (monotonic): what the pipeline reports as lost with cause `sink`. */
  get dropped(): number {
    return this.counts.dropped;
  }

  stats(): JsonLinesSinkStats {
    return { ...this.counts, queuedBytes: this.queuedBytes };
  }

  /**
   * Encode the batch into the current slab and queue it for the next write; when the queue is
   * already at its bound, drop the batch and count its records. (So the queue holds at most
   * maxBufferBytes plus one batch.)
   */
  write(records: readonly AuditRecord[]): void {
    const n = records.length;
    if (n === 0) return;
    if (this.closed || this.broken || this.queuedBytes >= this.maxBuffer) {
      this.counts.dropped += n;
      return;
    }
    let slab = this.slab ?? this.newSlab(0);
    let start = slab.fill;
    let o = start;
    let lines = 0;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      let next = this.encoder.encode(r, slab.buf, o);
      if (next < 0) {
        // the slab is full: queue what it holds, go on in a fresh one (big enough for this record)
        slab.fill = o;
        this.enqueue(slab, start, o, lines);
        lines = 0;
        slab = this.newSlab(recordJson(r).length + 1);
        start = o = 0;
        next = this.encoder.encode(r, slab.buf, o);
      }
      o = next;
      lines++;
    }
    slab.fill = o;
    this.enqueue(slab, start, o, lines);
    this.pumping ??= this.pump();
  }

  private newSlab(atLeast: number): Slab {
    const old = this.slab;
    if (old && old.refs === 0 && this.freeSlabs.length < FREE_SLABS) this.freeSlabs.push(old);
    let slab = atLeast <= SLAB_BYTES ? this.freeSlabs.pop() : undefined;
    if (slab) slab.fill = 0;
    else slab = { buf: Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, atLeast)), fill: 0, refs: 0 };
    this.slab = slab;
    return slab;
  }

  /** Queue bytes [start, end) of a slab, merged with the chunk before when they are adjacent. */
  private enqueue(slab: Slab, start: number, end: number, lines: number): void {
    if (end === start) return;
    this.queuedBytes += end - start;
    const last = this.queue[this.queue.length - 1];
    if (last && last.slab === slab && last.end === start) {
      last.end = end;
      last.lines += lines;
      return;
    }
    slab.refs++;
    this.queue.push({ slab, start, end, lines });
  }

  private release(chunk: Chunk): void {
    const slab = chunk.slab;
    if (--slab.refs === 0 && slab !== this.slab && this.freeSlabs.length < FREE_SLABS) this.freeSlabs.push(slab);
  }

  /** Resolves when everything queued so far has been written (or dropped). */
  async flush(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  /** Write what is queued (waiting at most closeTimeoutMs), then close the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.closeTimeoutMs);
      timer.unref();
    });
    const done = await Promise.race([this.flush().then(() => true), timeout]);
    clearTimeout(timer);
    if (!done) {
      // the reader stalled: what is still queued will not be written
      for (const c of this.queue) this.counts.dropped += c.lines;
      this.queue = [];
      this.broken = true;
      return; // the write in flight still owns the descriptor
    }
    if (this.path !== null) closeSync(this.fd);
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const bytes = batch.reduce((n, c) => n + (c.end - c.start), 0);
        try {
          if (this.broken) for (const c of batch) this.counts.dropped += c.lines;
          else await this.writeChunks(batch);
        } finally {
          this.queuedBytes -= bytes;
          for (const c of batch) this.release(c);
        }
      }
    } finally {
      this.pumping = undefined;
    }
  }

  /** Write queued chunks in one writev, rotating between lines whenever the next line would not fit. */
  private async writeChunks(batch: Chunk[]): Promise<void> {
    const pending: Piece[] = [];
    for (const c of batch) {
      const chunk = c.slab.buf.subarray(c.start, c.end);
      const room = this.maxBytes > 0 ? this.maxBytes - this.size : Infinity;
      if (chunk.length <= room) {
        pending.push({ buf: chunk, lines: c.lines });
        this.size += chunk.length;
        continue;
      }
      let off = 0;
      while (off < chunk.length) {
        const space = this.maxBytes - this.size;
        if (chunk.length - off <= space) {
          const buf = chunk.subarray(off);
          pending.push({ buf, lines: countLines(buf) });
          this.size += buf.length;
          break;
        }
        let end = space > 0 ? chunk.lastIndexOf(NEWLINE, off + space - 1) + 1 : 0;
        if (end <= off && this.size === 0) {
          // a single line longer than maxBytes: it gets a file of its own
          const nl = chunk.indexOf(NEWLINE, off);
          end = nl < 0 ? chunk.length : nl + 1;
        }
        if (end > off) {
          const buf = chunk.subarray(off, end);
          pending.push({ buf, lines: countLines(buf) });
          this.size += buf.length;
          off = end;
        }
        await this.output(pending.splice(0));
        await this.rotate();
        if (this.broken) {
          this.counts.dropped += countLines(chunk.subarray(off));
          return;
        }
      }
    }
    await this.output(pending);
  }

  private async output(pieces: Piece[]): Promise<void> {
    if (pieces.length === 0) return;
    let lines = 0;
    let bytes = 0;
    for (const p of pieces) {
      lines += p.lines;
      bytes += p.buf.length;
    }
    if (this.broken) {
      this.counts.dropped += lines;
      return;
    }
    try {
      await writevAll(
        this.fd,
        pieces.map((p) => p.buf),
      );
      this.counts.written += lines;
      this.counts.bytesWritten += bytes;
    } catch (err) {
      this.counts.dropped += lines;
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'EPIPE' || code === 'EBADF') this.broken = true; // nobody reads any more
      this.report(err as Error, code);
    }
  }

  private async rotate(): Promise<void> {
    if (this.path === null) return;
    const path = this.path;
    try {
      await closeFd(this.fd);
      if (this.keep === 0) await unlinkIfThere(path);
      else {
        for (let i = this.keep - 1; i >= 1; i--) await renameIfThere(`${path}.${i}`, `${path}.${i + 1}`);
        await renameIfThere(path, `${path}.1`);
      }
      this.counts.rotations++;
    } catch (err) {
      this.report(err as Error, (err as NodeJS.ErrnoException).code ?? 'EIO');
    }
    try {
      this.fd = await openAppend(path);
      this.size = 0;
    } catch (err) {
      this.broken = true;
      this.report(err as Error, (err as NodeJS.ErrnoException).code ?? 'EIO');
    }
  }

  private report(err: Error, code: string): void {
    if (this.reportedErrors.has(code)) return;
    this.reportedErrors.add(code);
    this.onError?.(err);
  }
}

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

/** One session record, fields in the documented order (the reference for the cached path below). */
export function sessionJson(r: SessionRecord): string {
  let s =
    '{"time":' + str(r.time) +
    ',"type":"session","event":' + str(r.event) +
    ',"enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
    ',"reason":' + str(r.reason) +
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
  return s + ',"generation":' + num(r.generation) + ',"cpu":' + num(r.cpu) + ',"seq":' + num(r.seq) + '}';
}

/** One summary record, fields in the documented order. */
export function summaryJson(r: SummaryRecord): string {
  let s =
    '{"time":' + str(r.time) +
    ',"type":"summary","enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
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

/** Write a JSON number at `o`, as JSON.stringify writes it (V8's number-to-text is the fast part). */
function putNumber(out: Uint8Array, o: number, n: number): number {
  if (n >>> 0 === n && n < 10) {
    out[o] = 0x30 + n;
    return o + 1;
  }
  const text = n - n === 0 ? '' + n : 'null';
  for (let i = 0; i < text.length; i++) out[o + i] = text.charCodeAt(i);
  return o + text.length;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');
const DST = ascii('","dst":"');
const SPORT = ascii(',"sport":');
const DPORT = ascii(',"dport":');
const ICMP_TYPE = ascii(',"icmpType":');
const ICMP_CODE = ascii(',"icmpCode":');
const VLAN = ascii(',"vlan":[');
const SEQ = ascii(',"seq":');
/** The longest fixed text of the fast path (keys, quotes, digits of five numbers, vlan). */
const FIXED_MAX = 9 + 1 + DST.length + 1 + SPORT.length + DPORT.length + ICMP_TYPE.length + ICMP_CODE.length + VLAN.length + SEQ.length + 8 * 22 + 4;

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
  private readonly headKeys: (string | undefined)[] = new Array(256 * 6).fill(undefined);
  private readonly heads: Buffer[] = new Array(256);
  private readonly tails = new Map<string, { policy: string | undefined; policyVersion: string | undefined; generation: number; bytes: Buffer }>();

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
    const time = this.time(r.time);
    if (time === undefined) return -2;
    const head = this.head(r);
    const tail = this.tail(r);
    if (out.length - o < FIXED_MAX + time.length + head.length + tail.length + r.src.length + r.dst.length + (r.vlan ? r.vlan.length * 22 : 0)) return -1;
    out.set(time, o);
    o += time.length;
    out.set(head, o);
    o = putPlain(out, o + head.length, r.src);
    if (o < 0) return -2;
    out.set(DST, o);
    o = putPlain(out, o + DST.length, r.dst);
    if (o < 0) return -2;
    out[o++] = 0x22; // "
    if (r.sport !== undefined) {
      out.set(SPORT, o);
      o = putNumber(out, o + SPORT.length, r.sport);
    }
    if (r.dport !== undefined) {
      out.set(DPORT, o);
      o = putNumber(out, o + DPORT.length, r.dport);
    }
    if (r.icmpType !== undefined) {
      out.set(ICMP_TYPE, o);
      o = putNumber(out, o + ICMP_TYPE.length, r.icmpType);
    }
    if (r.icmpCode !== undefined) {
      out.set(ICMP_CODE, o);
      o = putNumber(out, o + ICMP_CODE.length, r.icmpCode);
    }
    if (r.vlan !== undefined) {
      out.set(VLAN, o);
      o += VLAN.length;
      for (let i = 0; i < r.vlan.length; i++) {
        if (i > 0) out[o++] = 0x2c; // ,
        o = putNumber(out, o, r.vlan[i]!);
      }
      out[o++] = 0x5d; // ]
    }
    out.set(tail, o);
    o = putNumber(out, o + tail.length, r.cpu);
    out.set(SEQ, o);
    o = putNumber(out, o + SEQ.length, r.seq);
    out[o++] = 0x7d; // }
    out[o++] = NEWLINE;
    return o;
  }

  /** '{"time":"<time>"', or undefined when the time text needs escaping. */
  private time(t: string): Buffer | undefined {
    if (t === this.lastTime) return this.lastTimeBytes;
    if (NEEDS_ESCAPE.test(t)) return undefined;
    this.lastTime = t;
    this.lastTimeBytes = ascii('{"time":"' + t + '"');
    return this.lastTimeBytes;
  }

  /** ',"type":"session","event":…,"protocol":…,"src":"'; a two-way set-associative cache. */
  private head(r: SessionRecord): Buffer {
    const set = (tailHash(r.interface) ^ tailHash(r.reason) ^ Math.imul(tailHash(r.protocol), 7) ^ (r.verdict.length << 1) ^ r.event.length) & 127;
    const k = this.headKeys;
    for (let way = 0; way < 2; way++) {
      const at = (set * 2 + way) * 6;
      if (k[at] === r.event && k[at + 1] === r.enforcer && k[at + 2] === r.interface && k[at + 3] === r.verdict && k[at + 4] === r.reason && k[at + 5] === r.protocol) {
        return this.heads[set * 2 + way]!;
      }
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
    // the new entry takes way 0; the one there moves to way 1
    const slot = set * 2;
    for (let f = 0; f < 6; f++) k[(slot + 1) * 6 + f] = k[slot * 6 + f];
    this.heads[slot + 1] = this.heads[slot]!;
    k[slot * 6] = r.event;
    k[slot * 6 + 1] = r.enforcer;
    k[slot * 6 + 2] = r.interface;
    k[slot * 6 + 3] = r.verdict;
    k[slot * 6 + 4] = r.reason;
    k[slot * 6 + 5] = r.protocol;
    this.heads[slot] = head;
    return head;
  }

  /** ',"rule":…,"policy":…,"policyVersion":…,"generation":N,"cpu":', by rule id. */
  private tail(r: SessionRecord): Buffer {
    const hit = this.tails.get(r.rule);
    if (hit && hit.policy === r.policy && hit.policyVersion === r.policyVersion && hit.generation === r.generation) return hit.bytes;
    let tail = ',"rule":' + str(r.rule);
    if (r.policy !== undefined) tail += ',"policy":' + str(r.policy);
    if (r.policyVersion !== undefined) tail += ',"policyVersion":' + str(r.policyVersion);
    tail += ',"generation":' + num(r.generation) + ',"cpu":';
    const bytes = ascii(tail);
    if (this.tails.size >= 65_536) this.tails.clear();
    this.tails.set(r.rule, { policy: r.policy, policyVersion: r.policyVersion, generation: r.generation, bytes });
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
