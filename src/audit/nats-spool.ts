// SPDX-License-Identifier: Apache-2.0
// The NATS audit sink's write-ahead spool: every record the sink accepts is appended to a segment
// file in the spool folder (the agent's state dir) before it is queued for publishing, every
// message is noted there (its id and its records) before it is published, and every ack after.
// A sink started on the folder takes over what no ack covers: the messages with their ids (so
// JetStream drops the copy of one that was in fact stored), then the records no message took. A
// write torn by a kill is found and counted, never replayed. Owns the folder's files and nothing
// else; never publishes. docs/audit.md ("The NATS stream's spool") has the format.
//
// A segment (`<n>.spool`, n increasing) is a sequence of lines, each written by one append:
//   b <firstSeq> <count>       then `count` record lines (JSON, the bytes a message carries), in the same write
//   m <from> <to> <msgID>      the records numbered from..to form the message msgID (written before its publish)
//   a <from> <to>              the records from..to are done: acknowledged, or dropped and counted
//   t <count>                  the write before was torn (a kill): `count` records of it lost, counted
// Records are numbered for the folder's life. A segment goes once every record in it is done and
// every older one has gone (an `m` or `a` line only ever names records of its own or older
// segments, so nothing a survivor needs goes with it).
import { appendFileSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { isControlRecord } from './control-sink.js';
import type { AuditRecord } from './records.js';

/** A segment is closed for appends once it holds this much; it goes once all of it is done. */
export const SPOOL_SEGMENT_BYTES = 4 * 1024 * 1024;
const SEGMENT = /^(\d+)\.spool$/;
const NEWLINE = 0x0a;

/** One segment file, with how many of its records are not yet done. */
export interface SpoolSegment {
  readonly path: string;
  readonly n: number;
  size: number;
  pending: number;
}

/** A record line in memory: its bytes (a slice of a larger buffer), number and segment. */
export interface SpooledLine {
  readonly bytes: Buffer;
  readonly seq: number;
  readonly control: boolean;
  readonly segment: SpoolSegment | undefined;
}

/** A message a previous sink formed (and perhaps published): sent again with the same id. */
export interface RecoveredMessage {
  msgID: string;
  lines: SpooledLine[];
}

export interface SpoolRecovery {
  /** Messages noted and not acknowledged, in order. */
  messages: RecoveredMessage[];
  /** Records no message took, in order. */
  open: SpooledLine[];
  /** Records whose write was torn by a kill (complete ones before it are kept): lost, counted. */
  torn: number;
  /** A torn write whose header was cut too: at least one record more is lost (counted as one). */
  tornHeader: boolean;
}

export const isControlLine = (line: Buffer): boolean => {
  try {
    return isControlRecord(JSON.parse(line.toString('latin1')) as AuditRecord);
  } catch {
    return false;
  }
};

/** The write-ahead spool in `dir` (created if missing; its parent must exist). */
export class NatsSpool {
  private readonly segments: SpoolSegment[] = [];
  private fd = -1;
  private nextSegment = 1;
  private nextSeq = 1;
  private readonly header = Buffer.alloc(64);

  constructor(
    readonly dir: string,
    private readonly segmentBytes = SPOOL_SEGMENT_BYTES,
  ) {}

  /** The first record number no earlier sink used. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Files left from an earlier sink: read them, cut a torn tail, and say what is still to send. Throws when the folder cannot be made or read. */
  recover(): SpoolRecovery {
    try {
      mkdirSync(this.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return this.read();
  }

  private read(): SpoolRecovery {
    const names = readdirSync(this.dir)
      .map((f) => SEGMENT.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ file: m[0], n: Number(m[1]) }))
      .sort((a, b) => a.n - b.n);
    const records = new Map<number, SpooledLine>();
    const marks: { from: number; to: number; msgID: string }[] = [];
    const done: { from: number; to: number }[] = [];
    let torn = 0;
    let tornHeader = false;
    for (const { file, n } of names) {
      const path = join(this.dir, file);
      const buf = readFileSync(path);
      const segment: SpoolSegment = { path, n, size: buf.length, pending: 0 };
      let at = 0;
      let seq = 0;
      let left = 0;
      let headerCut = false;
      while (at < buf.length) {
        const end = buf.indexOf(NEWLINE, at);
        if (end < 0) {
          // a write cut short by a kill: keep the whole lines before it, count the rest
          if (left === 0 && buf[at] === 0x62 /* b */) headerCut = true;
          truncateSync(path, at);
          segment.size = at;
          break;
        }
        const line = buf.subarray(at, end + 1);
        at = end + 1;
        if (left > 0 && line[0] === 0x7b /* { */) {
          records.set(seq, { bytes: line, seq, control: isControlLine(line), segment });
          segment.pending++;
          seq++;
          left--;
          continue;
        }
        left = 0; // a batch a `t` line closed: its loss was counted when it was found
        const f = line.toString('latin1', 0, line.length - 1).split(' ');
        if (f[0] === 'b') {
          seq = Number(f[1]);
          left = Number(f[2]);
          this.nextSeq = Math.max(this.nextSeq, seq + left);
        } else if (f[0] === 'm') marks.push({ from: Number(f[1]), to: Number(f[2]), msgID: f[3]! });
        else if (f[0] === 'a') done.push({ from: Number(f[1]), to: Number(f[2]) });
      }
      if (left > 0 || headerCut) {
        // counted now, and said in the file, so the next sink does not count it again
        const lost = headerCut ? 1 : left;
        const t = `t ${lost}\n`;
        appendFileSync(path, t);
        segment.size += t.length;
        torn += lost;
        tornHeader ||= headerCut;
      }
      this.segments.push(segment);
      this.nextSegment = Math.max(this.nextSegment, n + 1);
    }
    for (const d of done) {
      for (let s = d.from; s <= d.to; s++) {
        const r = records.get(s);
        if (r && records.delete(s) && r.segment) r.segment.pending--;
      }
    }
    const messages: RecoveredMessage[] = [];
    for (const m of marks.sort((a, b) => a.from - b.from)) {
      const lines: SpooledLine[] = [];
      for (let s = m.from; s <= m.to; s++) {
        const r = records.get(s);
        if (!r) continue;
        records.delete(s);
        lines.push(r);
      }
      if (lines.length > 0) messages.push({ msgID: m.msgID, lines });
    }
    const open = [...records.values()].sort((a, b) => a.seq - b.seq);
    this.trim();
    return { messages, open, torn, tornHeader };
  }

  /**
   * Append `count` records (their JSON lines, `bytes`), numbered seq…seq+count-1, as one write;
   * they belong to the segment returned. Throws when the write fails (the spool
   * is then unusable: the caller goes on without it).
   */
  append(bytes: Uint8Array, seq: number, count: number): SpoolSegment {
    const seg = this.current(bytes.length);
    const h = this.header;
    const hl = h.write(`b ${seq} ${count}\n`, 0, 'latin1');
    this.writeAll(seg, [h.subarray(0, hl), bytes]);
    seg.pending += count;
    this.nextSeq = Math.max(this.nextSeq, seq + count);
    return seg;
  }

  /** Note messages before they are published: one write for all of them. */
  mark(messages: readonly { from: number; to: number; msgID: string }[]): void {
    if (messages.length === 0) return;
    let text = '';
    for (const m of messages) text += `m ${m.from} ${m.to} ${m.msgID}\n`;
    this.writeAll(this.current(text.length), [Buffer.from(text, 'latin1')]);
  }

  /** Records from..to are done (acknowledged, or dropped and counted); `parts`: how many per segment. */
  done(from: number, to: number, parts: ReadonlyMap<SpoolSegment, number>): void {
    const text = `a ${from} ${to}\n`;
    this.writeAll(this.current(text.length), [Buffer.from(text, 'latin1')]);
    for (const [seg, n] of parts) seg.pending -= n;
    this.trim();
  }

  /** Records not yet done. */
  pending(): number {
    let n = 0;
    for (const s of this.segments) n += s.pending;
    return n;
  }

  /** Stop appending; with nothing pending, the files go. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    if (this.pending() === 0) this.removeAll();
  }

  /** Give up on the spool: close and remove every file (the caller counts what it held). */
  discard(): void {
    try {
      if (this.fd >= 0) closeSync(this.fd);
    } catch {
      // already unusable
    }
    this.fd = -1;
    this.removeAll();
  }

  private removeAll(): void {
    for (const s of this.segments.splice(0)) rmSync(s.path, { force: true });
  }

  /** The segment to append `bytes` to: a new one once the last is full (or was a previous sink's). */
  private current(bytes: number): SpoolSegment {
    const last = this.segments.at(-1);
    if (last && this.fd >= 0 && (last.size === 0 || last.size + bytes <= this.segmentBytes)) return last;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.trim();
    const n = this.nextSegment++;
    const path = join(this.dir, `${n}.spool`);
    this.fd = openSync(path, 'wx', 0o600);
    const seg: SpoolSegment = { path, n, size: 0, pending: 0 };
    this.segments.push(seg);
    return seg;
  }

  /** One append; a short write (disk full) is undone and thrown, so no line is ever left half. */
  private writeAll(seg: SpoolSegment, parts: Uint8Array[]): void {
    const want = parts.reduce((n, p) => n + p.length, 0);
    let wrote = 0;
    try {
      wrote = parts.length === 1 ? writeSync(this.fd, parts[0]!) : writevSync(this.fd, parts);
    } finally {
      if (wrote !== want) {
        try {
          truncateSync(seg.path, seg.size);
        } catch {
          // the spool is given up on by the caller
        }
      }
    }
    if (wrote !== want) throw new Error(`short write to ${seg.path} (${wrote} of ${want} bytes)`);
    seg.size += want;
  }

  /** Remove the oldest segments while every record in them is done (never the one appended to). */
  private trim(): void {
    while (this.segments.length > 0) {
      const oldest = this.segments[0]!;
      const appending = this.fd >= 0 && oldest === this.segments.at(-1);
      if (oldest.pending > 0 || appending) break;
      rmSync(oldest.path, { force: true });
      this.segments.shift();
    }
  }
}

/** One line of an earlier version's spool file: a message as it was (or would have been) published. */
interface LegacySpooledMessage {
  msgID: string;
  records: number;
  control: number;
  /** The message's JSON lines. */
  data: string;
}

/**
 * The spool file of an earlier version (messages kept at its stop, one JSON line each), appended
 * to `spool` as messages with their ids: the messages, or undefined when there is no such file.
 * Throws when it cannot be read or the spool written; the caller removes the file once it has them.
 */
export function takeLegacySpool(spool: NatsSpool, path: string): RecoveredMessage[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const messages: RecoveredMessage[] = [];
  for (const line of text.split('\n')) {
    let m: LegacySpooledMessage;
    try {
      m = JSON.parse(line) as LegacySpooledMessage;
    } catch {
      continue; // written atomically: a damaged line is not ours
    }
    const data = Buffer.from(m.data ?? '', 'latin1');
    const records = data.reduce((n, c) => n + (c === NEWLINE ? 1 : 0), 0);
    if (records === 0) continue;
    const seq = spool.seq;
    const segment = spool.append(data.subarray(0, data.lastIndexOf(NEWLINE) + 1), seq, records);
    const lines: SpooledLine[] = [];
    for (let start = 0, i = 0; i < records; i++) {
      const end = data.indexOf(NEWLINE, start) + 1;
      const bytes = data.subarray(start, end);
      lines.push({ bytes, seq: seq + i, control: isControlLine(bytes), segment });
      start = end;
    }
    messages.push({ msgID: m.msgID, lines });
  }
  spool.mark(messages.map((m) => ({ from: m.lines[0]!.seq, to: m.lines[m.lines.length - 1]!.seq, msgID: m.msgID })));
  return messages;
}
