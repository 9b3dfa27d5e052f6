// SPDX-License-Identifier: Apache-2.0
// The audit sink `nats`: records as JSON lines (the very bytes the file sink writes) in messages
// of a JetStream stream, subject `<stream>.<enforcer token>`. Owns the publishing: the buffer that
// carries records over NATS outages (bounded: session and summary records by
// `maxBufferedRecords`, control records by their own bound; what does not fit is dropped and
// counted), a bounded number of messages awaiting their ack, retries in order with the same
// message id (JetStream drops the duplicate of a publish whose ack was lost) after a backoff, and
// the connection's ups and downs. Its parts: messages and their queue (nats-batches.ts), the
// stream's provisioning (nats-stream.ts), and, with a spool folder (the agent's state dir), the
// write-ahead spool (nats-spool.ts): a record is there before it is queued, a message before it
// is published, an ack after it; a sink started on the folder sends what no ack covers first,
// with the same message ids, so neither a stop nor a kill loses a record, and a write a kill tore
// is counted as lost. Touches only the connection it is given, which it never closes (its owner
// does). docs/audit.md has the fields.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { jetstream, JetStreamApiError, type JetStreamClient, type PubAck, type StreamConfig } from '@nats-io/jetstream';
import { headers, type NatsConnection, type Status } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { natsToken } from '../fleet/nats-connection.js';
import { isControlRecord } from './control-sink.js';
import { backoffMs, type Batch, Fifo, joinLines, segmentCounts } from './nats-batches.js';
import { NatsSpool, type RecoveredMessage, type SpooledLine, type SpoolSegment, takeLegacySpool } from './nats-spool.js';
import { ensureAuditStream, isRefusal } from './nats-stream.js';
import { JsonLineEncoder } from './record-json-fast.js';
import type { AuditRecord, AuditSink } from './records.js';

/** The header that says how many records (lines) a message holds. */
export const RECORDS_HEADER = 'Doorstep-Records';

export const NATS_AUDIT_DEFAULTS = {
  maxBufferedRecords: 100_000,
  /** policy, lost and agent records: few, never dropped for the data bound, bounded on their own. */
  maxBufferedControlRecords: 10_000,
  maxRecordsPerMessage: 500,
  maxMessageBytes: 256 * 1024,
  maxInFlight: 4,
  closeTimeoutMs: 5_000,
  publishTimeoutMs: 5_000,
  maxAgeMs: 7 * 24 * 3600 * 1000,
  maxBytes: 1024 * 1024 * 1024,
  /** JetStream drops a message whose id it stored this recently (a retry after a lost ack). */
  duplicateWindowMs: 2 * 60 * 1000,
} as const;

/** Room for the subject and headers (message id, record count) next to the records. */
const MESSAGE_OVERHEAD = 1024;

export interface NatsAuditSinkOptions {
  /** Resolves once connected, however long NATS is away (src/fleet/nats-connection.ts); the
   *  connection reconnects by itself. The sink never closes it. */
  connection: () => Promise<NatsConnection>;
  /** The stream, e.g. DOORSTEP_AUDIT: subjects `<stream>.>`. */
  stream: string;
  /** This enforcer's id: the subject is `<stream>.<natsToken(enforcer)>`. */
  enforcer: string;
  /** Session and summary records held while NATS is away or slow (default 100,000); past it new
   *  ones are dropped and counted. */
  maxBufferedRecords?: number;
  /** Records per message (default 500). */
  maxRecordsPerMessage?: number;
  /** Bytes of records per message (default 256 KiB; the server's max_payload is 1 MiB by default;
   *  less when an existing stream has a smaller max_msg_size). */
  maxMessageBytes?: number;
  /** Messages awaiting their ack (default 4). */
  maxInFlight?: number;
  /** How long close() tries to publish what is buffered (default 5 s). */
  closeTimeoutMs?: number;
  /** How long one publish waits for its ack before it is retried (default 5 s). */
  publishTimeoutMs?: number;
  /** Limits of the stream when the sink creates it (an existing stream is used as it is). */
  maxAgeMs?: number;
  maxBytes?: number;
  /** The folder of the write-ahead spool (made if missing; its parent must exist): every record
   *  is there until JetStream acknowledged it, and a sink starts from what it holds. None: the
   *  buffer is in memory only, and what close() cannot deliver is counted as dropped. */
  spoolDir?: string;
  /** The single spool file of an earlier version (kept at its close): taken over, then removed. */
  legacySpoolFile?: string;
  /** Segment size of the spool (default 4 MiB; tests). */
  spoolSegmentBytes?: number;
  /** A problem, once per kind (again after the sink recovered from it), never per message. */
  onError?: (err: Error) => void;
}

export interface NatsAuditSinkStats {
  /** Records (and messages) JetStream acknowledged. */
  publishedRecords: number;
  publishedMessages: number;
  /** Records waiting: queued, waiting for a retry, or in a message awaiting its ack. */
  buffered: number;
  /** Records dropped (the buffer was full, a record too large, or still buffered at close). */
  dropped: number;
  /** Messages awaiting their ack. */
  inFlight: number;
  /** Retries JetStream recognised as already stored (their first ack was lost). */
  duplicates: number;
  /** Records a previous sink kept in the spool file, taken over at the start. */
  unspooled: number;
  /** Records left in the spool for the next sink at close (not acknowledged). */
  spooled: number;
}

/** Records the data bound does not apply to. */
const isControl = isControlRecord;

export class NatsAuditSink implements AuditSink {
  readonly name: string;
  readonly subject: string;
  private readonly stream: string;
  private readonly token: string;
  private readonly bootId = randomBytes(6).toString('hex');
  private readonly maxData: number;
  private readonly maxControl: number = NATS_AUDIT_DEFAULTS.maxBufferedControlRecords;
  private readonly perMessage: number;
  private readonly maxInFlight: number;
  private readonly closeTimeoutMs: number;
  private readonly publishTimeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly encoder = new JsonLineEncoder();
  /** Where write() encodes a batch (grows for a larger one). */
  private scratch = Buffer.alloc(256 * 1024);
  private readonly maxMessageBytes: number;
  /** Bytes of records per message: maxMessageBytes, or less for a stream with a smaller max_msg_size. */
  private messageLimit: number;
  private maxMsgSize = Infinity;

  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private statusIter: AsyncIterable<Status> | undefined;
  private connected = false;
  private streamReady = false;
  private ensuring = false;

  /** Records accepted and not yet in a message, as their JSON lines. */
  private readonly queue = new Fifo<SpooledLine>();
  /** The number of the next record (the spool's numbering, when there is one). */
  private recordSeq = 1;
  /** The write-ahead spool; undefined without a folder, or once it failed. */
  private spool: NatsSpool | undefined;
  /** Why the spool was given up (close() says it). */
  private spoolError: unknown;
  /** Messages that failed, in message order: sent before anything new. */
  private readonly retry: Batch[] = [];
  private readonly inFlight = new Set<Batch>();
  private bufferedData = 0;
  private bufferedControl = 0;
  private messageSeq = 0;
  private attempts = 0;

  private failures = 0;
  private backoffTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private readonly reported = new Set<string>();
  private drainWaiters: (() => void)[] = [];

  /** No new records (close() was called). */
  private closing = false;
  /** close() is done: nothing buffered, late outcomes ignored. */
  private finalized = false;
  private closePromise: Promise<void> | undefined;

  private readonly counts = { publishedRecords: 0, publishedMessages: 0, duplicates: 0, dropped: 0, unspooled: 0, spooled: 0 };
  private tornRecords = 0;

  constructor(private readonly options: NatsAuditSinkOptions) {
    this.stream = options.stream;
    this.name = `nats:${options.stream}`;
    this.token = natsToken(options.enforcer);
    this.subject = `${options.stream}.${this.token}`;
    this.maxData = options.maxBufferedRecords ?? NATS_AUDIT_DEFAULTS.maxBufferedRecords;
    this.perMessage = Math.max(1, options.maxRecordsPerMessage ?? NATS_AUDIT_DEFAULTS.maxRecordsPerMessage);
    this.maxInFlight = Math.max(1, options.maxInFlight ?? NATS_AUDIT_DEFAULTS.maxInFlight);
    this.closeTimeoutMs = options.closeTimeoutMs ?? NATS_AUDIT_DEFAULTS.closeTimeoutMs;
    this.publishTimeoutMs = options.publishTimeoutMs ?? NATS_AUDIT_DEFAULTS.publishTimeoutMs;
    this.onError = options.onError;
    this.maxMessageBytes = options.maxMessageBytes ?? NATS_AUDIT_DEFAULTS.maxMessageBytes;
    this.messageLimit = this.maxMessageBytes;
    this.unspool();
    options.connection().then(
      (nc) => this.attach(nc),
      (err: unknown) => {
        // the owner closed its connections before NATS ever answered: close() will count what is left
        if (!this.closing) this.report('connect', `cannot connect: ${err instanceof Error ? err.message : String(err)}`, err);
      },
    );
  }

  /** Monotonic: records dropped since the sink was made (the pipeline reports increases as `lost`). */
  get dropped(): number {
    return this.counts.dropped;
  }

  /** Records of a write a kill tore, found in the spool at the start (in `dropped` too). */
  get torn(): number {
    return this.tornRecords;
  }

  stats(): NatsAuditSinkStats {
    return { ...this.counts, buffered: this.bufferedData + this.bufferedControl, inFlight: this.inFlight.size };
  }

  write(records: readonly AuditRecord[]): void {
    if (this.closing) {
      this.counts.dropped += records.length;
      return;
    }
    // the accepted records' lines, encoded once: into the spool, then the queue, then messages
    const ends: number[] = [];
    const controls: boolean[] = [];
    let out = this.scratch;
    let o = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const control = isControl(r);
      if (control) {
        if (this.bufferedControl >= this.maxControl) {
          this.counts.dropped++;
          continue;
        }
        this.bufferedControl++;
      } else {
        if (this.bufferedData >= this.maxData) {
          this.counts.dropped++;
          continue;
        }
        this.bufferedData++;
      }
      let next = this.encoder.encode(r, out, o);
      while (next < 0) {
        const bigger = Buffer.alloc(out.length * 2);
        out.copy(bigger, 0, 0, o);
        this.scratch = out = bigger;
        next = this.encoder.encode(r, out, o);
      }
      o = next;
      ends.push(o);
      controls.push(control);
    }
    const n = ends.length;
    if (n === 0) return;
    const chunk = Buffer.allocUnsafeSlow(o);
    out.copy(chunk, 0, 0, o);
    const seq = this.recordSeq;
    this.recordSeq += n;
    let segment: SpoolSegment | undefined;
    if (this.spool) {
      try {
        segment = this.spool.append(chunk, seq, n);
      } catch (err) {
        this.dropSpool(err);
      }
    }
    for (let i = 0, start = 0; i < n; start = ends[i]!, i++) this.queue.push({ bytes: chunk.subarray(start, ends[i]), seq: seq + i, control: controls[i]!, segment });
    this.schedulePump();
  }

  /** Resolves true once nothing is buffered, false after `timeoutMs` (tests, tools). */
  flush(timeoutMs = this.closeTimeoutMs): Promise<boolean> {
    if (this.bufferedData + this.bufferedControl === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.drainWaiters = this.drainWaiters.filter((w) => w !== onDrain);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.drainWaiters.push(onDrain);
      this.pump();
    });
  }

  /** Stop accepting records, publish what is buffered (for at most closeTimeoutMs), count the
   *  rest as dropped. The connection stays open. */
  close(): Promise<void> {
    this.closePromise ??= this.closeNow();
    return this.closePromise;
  }

  private async closeNow(): Promise<void> {
    this.closing = true;
    // not connected: waiting would only delay the agent's exit, the spool keeps the records
    const flushed = await this.flush(this.connected || !this.options.spoolDir ? this.closeTimeoutMs : 0);
    this.finalized = true;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    (this.statusIter as { stop?: () => void } | undefined)?.stop?.();
    const left = this.bufferedData + this.bufferedControl;
    // what the spool holds stays there for the next sink (nothing: its files go)
    const kept = this.spool ? left : 0;
    this.closeSpool();
    this.counts.spooled = kept;
    this.queue.clear();
    this.retry.length = 0;
    this.inFlight.clear();
    this.bufferedData = 0;
    this.bufferedControl = 0;
    if (!flushed && left > kept) {
      this.counts.dropped += left - kept;
      const dir = this.options.spoolDir;
      this.onError?.(
        dir && this.spoolError !== undefined
          ? new DoorstepError('DS_E_NATS', `${this.name}: cannot keep ${left - kept} undelivered audit records in ${dir}: ${String(this.spoolError)}; they are lost`, { hint: 'make the state dir writable', cause: this.spoolError })
          : new DoorstepError('DS_E_NATS', `${this.name}: ${left - kept} audit records were still buffered after ${this.closeTimeoutMs} ms and are lost`, {
              hint: 'check that NATS is reachable and the stream accepts messages, and that the state dir is writable (undelivered records are kept there)',
            }),
      );
    }
  }

  // ---- the spool ----

  /** Open the spool and take over what an earlier sink left: its messages first, with their ids,
   *  then its records that no message took; a torn write is counted as dropped. */
  private unspool(): void {
    const dir = this.options.spoolDir;
    if (!dir) return;
    const spool = new NatsSpool(dir, this.options.spoolSegmentBytes);
    let found;
    try {
      found = spool.recover();
    } catch (err) {
      this.spoolError = err;
      this.report('spool', `cannot use the spool ${dir}: ${String(err)}; records are buffered in memory only`, err);
      return;
    }
    this.spool = spool;
    this.recordSeq = spool.seq;
    const take = (lines: readonly SpooledLine[]) => {
      for (const l of lines) {
        if (l.control) this.bufferedControl++;
        else this.bufferedData++;
      }
      this.counts.unspooled += lines.length;
    };
    for (const m of found.messages) {
      this.retry.push(this.batch(m.msgID, m.lines));
      take(m.lines);
    }
    for (const l of found.open) this.queue.push(l);
    take(found.open);
    this.takeLegacy(spool);
    if (found.torn > 0) {
      this.tornRecords = found.torn;
      this.counts.dropped += found.torn;
      this.report('torn', `the spool ${dir} ended in a write cut short (the previous agent was killed): ${found.torn}${found.tornHeader ? ' or more' : ''} audit records in it are lost`);
    }
  }

  /** An earlier version's spool file (messages kept at its close): into the spool, as messages. */
  private takeLegacy(spool: NatsSpool): void {
    const path = this.options.legacySpoolFile;
    if (!path) return;
    let found: RecoveredMessage[] | undefined;
    try {
      found = takeLegacySpool(spool, path);
    } catch (err) {
      this.report('spool', `cannot take over ${path}: ${String(err)}; it stays for the next agent`, err);
      return;
    }
    if (!found) return;
    this.recordSeq = spool.seq;
    for (const m of found) {
      const b = this.batch(m.msgID, m.lines);
      this.retry.push(b);
      this.bufferedControl += b.control;
      this.bufferedData += b.records - b.control;
      this.counts.unspooled += b.records;
    }
    rmSync(path, { force: true });
  }

  /** The spool cannot be written (disk full, a folder gone): give it up, go on in memory. */
  private dropSpool(err: unknown): void {
    if (!this.spool) return;
    this.spoolError = err;
    this.report('spool', `cannot write the spool ${this.spool.dir}: ${String(err)}; records are buffered in memory only from now on (a stop counts what is left as lost)`, err);
    this.spool.discard();
    this.spool = undefined;
  }

  private closeSpool(): void {
    try {
      this.spool?.close();
    } catch (err) {
      this.report('spool', `cannot close the spool: ${String(err)}`, err);
    }
  }

  /** Records done (acknowledged, or dropped and counted): noted in the spool. */
  private done(lines: readonly SpooledLine[]): void {
    if (!this.spool || lines.length === 0) return;
    try {
      this.spool.done(lines[0]!.seq, lines[lines.length - 1]!.seq, segmentCounts(lines));
    } catch (err) {
      this.dropSpool(err);
    }
  }

  // ---- the connection ----

  private attach(nc: NatsConnection): void {
    if (this.finalized) return;
    this.nc = nc;
    this.js = jetstream(nc, { timeout: this.publishTimeoutMs });
    this.connected = !nc.isClosed();
    void this.watch(nc);
    this.pump();
  }

  private async watch(nc: NatsConnection): Promise<void> {
    const iter = nc.status();
    this.statusIter = iter;
    try {
      for await (const s of iter) {
        if (this.finalized) break;
        if (s.type === 'disconnect' || s.type === 'close') {
          this.connected = false;
          this.abandonInFlight();
          if (s.type === 'disconnect') this.report('disconnected', `lost the connection to NATS; records are kept (up to ${this.maxData}) until it is back`);
        } else if (s.type === 'reconnect') {
          this.connected = true;
          this.failures = 0;
          clearTimeout(this.backoffTimer);
          this.backoffTimer = undefined;
          this.pump();
        }
      }
    } catch {
      // the connection closed
    }
  }

  /** The server went away: what awaits an ack is retried after the reconnect (same ids: a copy
   *  that did arrive is dropped by JetStream as a duplicate) instead of waiting for time-outs. */
  private abandonInFlight(): void {
    for (const b of this.inFlight) {
      b.attempt = 0;
      this.requeue(b);
    }
    this.inFlight.clear();
  }

  private requeue(b: Batch): void {
    let i = this.retry.length;
    while (i > 0 && this.retry[i - 1]!.seq > b.seq) i--;
    this.retry.splice(i, 0, b);
  }

  /** Create the stream unless it exists; an existing one is used as it is. */
  private async ensureStream(): Promise<void> {
    const nc = this.nc!;
    this.ensuring = true;
    try {
      const info = await ensureAuditStream(nc, this.stream, {
        maxAgeMs: this.options.maxAgeMs ?? NATS_AUDIT_DEFAULTS.maxAgeMs,
        maxBytes: this.options.maxBytes ?? NATS_AUDIT_DEFAULTS.maxBytes,
        duplicateWindowMs: NATS_AUDIT_DEFAULTS.duplicateWindowMs,
        timeoutMs: this.publishTimeoutMs,
      });
      this.fitStream(info.config);
      this.streamReady = true;
      this.reported.delete('stream');
    } catch (err) {
      const e = err as Error;
      if (isRefusal(err)) {
        // refused (no permission, a stream of that name with other subjects, no room, …): publish
        // anyway, an operator may have made a stream that takes the subject
        this.report('stream', `cannot create the stream ${this.stream}: ${e.message}; publishing to ${this.subject} anyway`, err);
        this.streamReady = true;
      } else {
        // JetStream not (yet) answering (time-out, no responders, reconnecting): try again later
        this.report('stream', `JetStream does not answer (${e.message}); records stay buffered and the stream is checked again`, err);
        this.fail();
      }
    } finally {
      this.ensuring = false;
    }
    this.pump();
  }

  /** Messages small enough for a stream an operator sized (max_msg_size); a warning when the
   *  stream could not even hold one full message (JetStream would discard it at once). */
  private fitStream(config: StreamConfig): void {
    const max = config.max_msg_size;
    this.maxMsgSize = max > 0 ? max : Infinity;
    if (max > 0) this.messageLimit = Math.min(this.maxMessageBytes, max - Math.min(MESSAGE_OVERHEAD, Math.floor(max / 4)));
    if (config.max_bytes > 0 && config.max_bytes < 4 * this.messageLimit) {
      this.report('stream-size', `the stream ${this.stream} holds at most ${config.max_bytes} bytes, less than 4 messages of ${this.messageLimit} bytes: records will be discarded (or refused) almost at once`);
    }
  }

  // ---- publishing ----

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // records written in the same turn of the event loop go out together
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.finalized || !this.js || !this.connected || this.backoffTimer !== undefined || this.ensuring) return;
    if (!this.streamReady) {
      void this.ensureStream();
      return;
    }
    const fresh: Batch[] = [];
    while (this.inFlight.size + fresh.length < this.maxInFlight) {
      const retry = this.retry.shift();
      if (retry) {
        this.send(retry);
        continue;
      }
      const b = this.nextBatch();
      if (!b) break;
      fresh.push(b);
    }
    if (fresh.length === 0) return;
    // noted in the spool before they are published: a kill after this sends them again with these ids
    if (this.spool) {
      try {
        this.spool.mark(fresh.map((b) => ({ from: b.lines[0]!.seq, to: b.lines[b.lines.length - 1]!.seq, msgID: b.msgID })));
      } catch (err) {
        this.dropSpool(err);
      }
    }
    for (const b of fresh) this.send(b);
  }

  private batch(msgID: string, lines: SpooledLine[]): Batch {
    let bytes = 0;
    let control = 0;
    for (const l of lines) {
      bytes += l.bytes.length;
      if (l.control) control++;
    }
    return { seq: ++this.messageSeq, msgID, data: joinLines(lines, bytes), records: lines.length, control, lines, attempt: 0 };
  }

  /** The next message from the queue: as many records as fit, in order. */
  private nextBatch(): Batch | undefined {
    for (;;) {
      const n = Math.min(this.queue.length, this.perMessage);
      if (n === 0) return undefined;
      let k = 0;
      for (let bytes = 0; k < n; k++) {
        bytes += this.queue.at(k).bytes.length;
        if (bytes > this.messageLimit) break;
      }
      if (k === 0) {
        // one record larger than a message: alone, if the server takes it
        const l = this.queue.at(0);
        k = 1;
        const maxPayload = Math.min(this.nc?.info?.max_payload ?? 1024 * 1024, this.maxMsgSize);
        if (l.bytes.length > maxPayload - Math.min(MESSAGE_OVERHEAD, Math.floor(maxPayload / 4))) {
          this.queue.take(1);
          this.done([l]);
          if (l.control) this.bufferedControl--;
          else this.bufferedData--;
          this.counts.dropped++;
          const type = /"type":"([a-z]+)"/.exec(l.bytes.toString('latin1', 0, 200))?.[1] ?? 'unknown';
          this.report('too-large', `a record (type ${type}) of ${l.bytes.length} bytes is larger than the largest message the server or the stream takes (${maxPayload} bytes); dropped`);
          this.notifyDrained();
          continue;
        }
      }
      const seq = this.messageSeq + 1;
      return this.batch(`${this.token}.${this.bootId}.${seq}`, this.queue.take(k));
    }
  }

  private send(b: Batch): void {
    const attempt = ++this.attempts;
    b.attempt = attempt;
    this.inFlight.add(b);
    const h = headers();
    h.set(RECORDS_HEADER, String(b.records));
    let publish: Promise<PubAck>;
    try {
      publish = this.js!.publish(this.subject, b.data, { msgID: b.msgID, headers: h, timeout: this.publishTimeoutMs });
    } catch (err) {
      publish = Promise.reject(err);
    }
    publish.then(
      (ack) => {
        if (this.finalized || b.attempt !== attempt) return;
        if (ack.duplicate) this.counts.duplicates++;
        this.inFlight.delete(b);
        this.bufferedControl -= b.control;
        this.bufferedData -= b.records - b.control;
        this.counts.publishedRecords += b.records;
        this.counts.publishedMessages++;
        this.done(b.lines);
        if (this.failures > 0) {
          // recovered: publish again at once
          this.failures = 0;
          clearTimeout(this.backoffTimer);
          this.backoffTimer = undefined;
        }
        // a message went through: the next outage is reported again
        if (this.reported.size > 0) for (const kind of [...this.reported]) if (kind.startsWith('publish:') || kind === 'stream' || kind === 'disconnected') this.reported.delete(kind);
        this.notifyDrained();
        this.pump();
      },
      (err: unknown) => {
        if (this.finalized || b.attempt !== attempt) return;
        this.inFlight.delete(b);
        this.requeue(b);
        const e = err instanceof Error ? err : new Error(String(err));
        if (e.name === 'JetStreamNotEnabled') this.streamReady = false; // nobody takes the subject: the stream is gone
        const why = e.name === 'JetStreamNotEnabled' ? `no stream takes the subject, or JetStream is off` : e.message;
        this.report(`publish:${e.name}:${e instanceof JetStreamApiError ? e.code : ''}`, `publishing to ${this.subject} failed (${why}); records stay buffered and are retried`, err);
        this.fail();
      },
    );
  }

  /** Wait before the next attempt: 250 ms, doubling up to 2 s; a reconnect cuts it short. */
  private fail(): void {
    this.failures++;
    if (this.backoffTimer !== undefined || this.finalized) return;
    const ms = backoffMs(this.failures);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.pump();
    }, ms);
    this.backoffTimer.unref();
  }

  private notifyDrained(): void {
    if (this.bufferedData + this.bufferedControl > 0) return;
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private report(kind: string, message: string, cause?: unknown): void {
    if (this.reported.has(kind)) return;
    this.reported.add(kind);
    this.onError?.(new DoorstepError('DS_E_NATS', `${this.name}: ${message}`, { cause }));
  }
}
