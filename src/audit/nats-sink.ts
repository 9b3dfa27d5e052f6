// SPDX-License-Identifier: Apache-2.0
// The audit sink `nats`: records as JSON lines (the very bytes the file sink writes) in messages
// of a JetStream stream, subject `<stream>.<enforcer token>`. Owns the in-memory buffer that
// carries records over NATS outages (bounded: session and summary records by
// `maxBufferedRecords`, control records by their own bound; what does not fit is dropped and
// counted), the batching into messages, the publishing with a bounded number of messages awaiting
// their ack, retries in order with the same message id (JetStream drops the duplicate of a publish
// whose ack was lost), and creating the stream when it does not exist. Touches only the
// connection it is given, which it never closes (its owner does). With a spool file (the agent's
// state dir), what close() cannot deliver is kept there, message by message with its id, and the
// next sink on that file sends it before anything new (JetStream drops a copy it already stored
// within its duplicate window), so a stop loses nothing. docs/audit.md has the fields.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { DiscardPolicy, jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient, jetstreamManager, type PubAck, RetentionPolicy, StorageType, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { headers, nanos, type NatsConnection, type Status } from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';
import { natsToken } from '../fleet/nats-connection.js';
import { writeAtomic } from '../host/state-store.js';
import { isControlRecord } from './control-sink.js';
import { encodeRecords, JsonLineEncoder } from './json-lines-sink.js';
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

/** Retry delays after a failure: 250 ms, doubling up to 2 s (a reconnect cuts them short). */
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 2_000;
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
  /** Where close() keeps what it could not deliver, and where the sink starts from (none: that is
   *  counted as dropped). */
  spoolPath?: string;
  /** A problem, once per kind (again after the sink recovered from it), never per message. */
  onError?: (err: Error) => void;
}

/** One line of the spool file: a message as it was (or would have been) published. */
interface SpooledMessage {
  msgID: string;
  records: number;
  control: number;
  /** The message's JSON lines. */
  data: string;
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
  /** Records close() kept in the spool file for the next sink. */
  spooled: number;
}

/** The server refused (a permission, a JetStream API error), as opposed to not answering. */
function isRefusal(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof JetStreamApiError || e.name === 'PermissionViolationError') return true;
  }
  return false;
}

/** Records the data bound does not apply to. */
const isControl = isControlRecord;

/** One message: formed once, retried as is (same id, same bytes). */
interface Batch {
  seq: number;
  msgID: string;
  data: Uint8Array;
  records: number;
  control: number;
  /** The publish whose outcome counts; a settled publish of an older attempt is ignored. */
  attempt: number;
}

/** A FIFO of records with O(1) push and removal at the front. */
class RecordQueue {
  private items: (AuditRecord | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(r: AuditRecord): void {
    this.items.push(r);
  }

  at(i: number): AuditRecord {
    return this.items[this.head + i]!;
  }

  /** Remove the first `n`. */
  shift(n: number): void {
    for (let i = 0; i < n; i++) this.items[this.head + i] = undefined;
    this.head += n;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

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
  private readonly scratch: Buffer;
  /** Bytes of records per message: maxMessageBytes, or less for a stream with a smaller max_msg_size. */
  private messageLimit: number;
  private maxMsgSize = Infinity;

  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private statusIter: AsyncIterable<Status> | undefined;
  private connected = false;
  private streamReady = false;
  private ensuring = false;

  private readonly queue = new RecordQueue();
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
  /** Messages taken from the spool file and not yet acknowledged: the file goes once they are. */
  private readonly fromSpool = new Set<Batch>();

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
    this.scratch = Buffer.alloc(options.maxMessageBytes ?? NATS_AUDIT_DEFAULTS.maxMessageBytes);
    this.messageLimit = this.scratch.length;
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

  stats(): NatsAuditSinkStats {
    return { ...this.counts, buffered: this.bufferedData + this.bufferedControl, inFlight: this.inFlight.size };
  }

  write(records: readonly AuditRecord[]): void {
    if (this.closing) {
      this.counts.dropped += records.length;
      return;
    }
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (isControl(r)) {
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
      this.queue.push(r);
    }
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
    const flushed = await this.flush(this.connected || !this.options.spoolPath ? this.closeTimeoutMs : 0);
    this.finalized = true;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    (this.statusIter as { stop?: () => void } | undefined)?.stop?.();
    const kept = flushed ? 0 : this.spool();
    // spool() dropped and counted any record too large for a message
    const left = this.bufferedData + this.bufferedControl;
    this.queue.clear();
    this.retry.length = 0;
    this.inFlight.clear();
    this.bufferedData = 0;
    this.bufferedControl = 0;
    if (!flushed && left > kept) {
      this.counts.dropped += left - kept;
      this.onError?.(
        new DoorstepError('DS_E_NATS', `${this.name}: ${left - kept} audit records were still buffered after ${this.closeTimeoutMs} ms and are lost`, {
          hint: 'check that NATS is reachable and the stream accepts messages, and that the state dir is writable (undelivered records are kept there)',
        }),
      );
    }
  }

  // ---- the spool file ----

  /** Take over what a previous sink kept: those messages go first, with their ids. */
  private unspool(): void {
    const path = this.options.spoolPath;
    if (!path) return;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.report('spool', `cannot read ${path}: ${String(err)}; its records are not delivered`, err);
      return;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let m: SpooledMessage;
      try {
        m = JSON.parse(line) as SpooledMessage;
      } catch {
        continue; // written atomically: a damaged line is not ours
      }
      const b: Batch = { seq: ++this.messageSeq, msgID: m.msgID, data: Buffer.from(m.data), records: m.records, control: m.control, attempt: 0 };
      this.retry.push(b);
      this.fromSpool.add(b);
      this.bufferedControl += m.control;
      this.bufferedData += m.records - m.control;
      this.counts.unspooled += m.records;
    }
    if (this.fromSpool.size === 0) rmSync(path, { force: true });
  }

  /** Everything still buffered, as messages in order (formed now for the queue), into the spool
   *  file. Returns the records kept (0 when the file cannot be written). */
  private spool(): number {
    const path = this.options.spoolPath;
    if (!path) return 0;
    const batches = [...this.inFlight, ...this.retry].sort((a, b) => a.seq - b.seq);
    for (let b = this.nextBatch(); b; b = this.nextBatch()) batches.push(b);
    const lines = batches.map((b) => JSON.stringify({ msgID: b.msgID, records: b.records, control: b.control, data: Buffer.from(b.data).toString('utf8') } satisfies SpooledMessage));
    const records = batches.reduce((n, b) => n + b.records, 0);
    try {
      writeAtomic(path, lines.length > 0 ? `${lines.join('\n')}\n` : '');
    } catch (err) {
      this.onError?.(new DoorstepError('DS_E_NATS', `${this.name}: cannot keep ${records} undelivered audit records in ${path}: ${String(err)}`, { hint: 'make the state dir writable', cause: err }));
      return 0;
    }
    this.counts.spooled = records;
    return records;
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
      const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: this.publishTimeoutMs });
      let info: StreamInfo;
      try {
        info = await jsm.streams.info(this.stream);
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
        info = await jsm.streams.add({
          name: this.stream,
          subjects: [`${this.stream}.>`],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
          max_age: nanos(this.options.maxAgeMs ?? NATS_AUDIT_DEFAULTS.maxAgeMs),
          max_bytes: this.options.maxBytes ?? NATS_AUDIT_DEFAULTS.maxBytes,
          duplicate_window: nanos(NATS_AUDIT_DEFAULTS.duplicateWindowMs),
          num_replicas: 1,
        });
      }
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
    if (max > 0) this.messageLimit = Math.min(this.scratch.length, max - Math.min(MESSAGE_OVERHEAD, Math.floor(max / 4)));
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
    while (this.inFlight.size < this.maxInFlight) {
      const b = this.retry.shift() ?? this.nextBatch();
      if (!b) break;
      this.send(b);
    }
  }

  /** The next message from the queue: as many records as fit, in order. */
  private nextBatch(): Batch | undefined {
    for (;;) {
      const n = Math.min(this.queue.length, this.perMessage);
      if (n === 0) return undefined;
      const out = this.messageLimit === this.scratch.length ? this.scratch : this.scratch.subarray(0, this.messageLimit);
      let o = 0;
      let k = 0;
      let control = 0;
      for (; k < n; k++) {
        const r = this.queue.at(k);
        const next = this.encoder.encode(r, out, o);
        if (next < 0) break;
        o = next;
        if (isControl(r)) control++;
      }
      let data: Uint8Array;
      if (k > 0) {
        data = Buffer.from(out.subarray(0, o));
      } else {
        // one record larger than a message: alone, if the server takes it
        const r = this.queue.at(0);
        data = encodeRecords([r]);
        k = 1;
        control = isControl(r) ? 1 : 0;
        const maxPayload = Math.min(this.nc?.info?.max_payload ?? 1024 * 1024, this.maxMsgSize);
        if (data.length > maxPayload - Math.min(MESSAGE_OVERHEAD, Math.floor(maxPayload / 4))) {
          this.queue.shift(1);
          this.bufferedControl -= control;
          this.bufferedData -= 1 - control;
          this.counts.dropped++;
          this.report('too-large', `a record (type ${r.type}) of ${data.length} bytes is larger than the largest message the server or the stream takes (${maxPayload} bytes); dropped`);
          this.notifyDrained();
          continue;
        }
      }
      this.queue.shift(k);
      const seq = ++this.messageSeq;
      return { seq, msgID: `${this.token}.${this.bootId}.${seq}`, data, records: k, control, attempt: 0 };
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
        if (this.fromSpool.delete(b) && this.fromSpool.size === 0 && this.options.spoolPath) rmSync(this.options.spoolPath, { force: true });
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
    const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.failures - 1, 8));
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
