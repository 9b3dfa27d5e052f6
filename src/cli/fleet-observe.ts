// SPDX-License-Identifier: Apache-2.0
// `doorstep fleet observe`: the audit records the enforcers publish to a NATS stream (the audit
// sink `nats`, src/audit/nats-sink.ts), filtered like `observe`, per enforcer. Without --follow
// it reads what the stream holds up to its last message at start and prints the last N matching
// records — reading backwards in growing windows, so `--last 100` on a full stream reads a few
// messages, not the stream; with --follow it then streams new ones until Ctrl-C.
import { type Command, Option } from 'commander';
import { type Consumer, DeliverPolicy, jetstream, JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JsMsg, type OrderedConsumerOptions, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { compileFilter, parseFilterOptions } from '../audit/record-filter.js';
import type { AuditRecord } from '../audit/records.js';
import { DoorstepError } from '../errors.js';
import { connectNats, describeTarget, natsToken, parseNatsUrl } from '../fleet/nats-connection.js';
import { addFilterFlags, type FilterFlags } from './filter-flags.js';
import { addNatsFlags, type NatsFlags, natsAuthOf } from './nats-flags.js';
import { recordLine } from './observe.js';
import { ExitCode, reportError } from './output.js';
import type { OutputFormat } from './table.js';

export interface FleetObserveOptions extends FilterFlags, NatsFlags {
  /** Only these enforcers (their ids as in the records). */
  enforcer?: string[];
  follow?: boolean;
  /** The last N matching records (text from the command line). Default 100; with --follow 0;
   *  with --since (and no --last) every record since then. */
  last?: string;
  output: OutputFormat;
  /** Where the output goes (default stdout). */
  write?: (text: string) => void;
  /** Ends --follow (default: SIGINT or SIGTERM). */
  signal?: AbortSignal;
}

const STREAM_HINT = 'start an agent with --audit nats://HOST:PORT/STREAM (it creates the stream), or check the stream name';
/** The first window read backwards, in messages; each next one is 4× larger. */
const FIRST_WINDOW = 16;
const MAX_WINDOW = 1 << 20;
/** Bytes one pull asks for. */
const PULL_BYTES = 8 * 1024 * 1024;
/** How often a read that expects more messages checks that some are still there (retention may remove them). */
const IDLE_CHECK_MS = 2_000;

/** A matching record and its line as stored. */
interface Found {
  line: string;
  record: AuditRecord;
}

function parseLast(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text.trim())) throw new DoorstepError('DS_E_USAGE', `--last "${text}" is not a number of records`, { hint: 'write e.g. --last 100 (0 with --follow: only new records)' });
  return Number(text.trim());
}

function serverAtLeast(nc: NatsConnection, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(nc.info?.version ?? '');
  return m !== null && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

function natsError(err: unknown, stream: string): DoorstepError {
  if (err instanceof DoorstepError) return err;
  if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
    return new DoorstepError('DS_E_NATS', `the audit stream ${stream} does not exist`, { hint: STREAM_HINT, cause: err });
  }
  const e = err as Error;
  if (e?.name === 'JetStreamNotEnabled' || e?.name === 'NoRespondersError') {
    return new DoorstepError('DS_E_NATS', `JetStream does not answer: ${e.message}`, { hint: 'run nats-server with JetStream (-js), and check the account has JetStream', cause: err });
  }
  return new DoorstepError('DS_E_NATS', `reading the audit stream ${stream} failed: ${e?.message ?? String(err)}`, { hint: 'check the NATS permissions for $JS.API.> and the stream', cause: err });
}

/** Prints records as table lines (enforcer, then `observe`'s line) or as the stored JSON lines. */
class Printer {
  private width = 0;

  constructor(
    private readonly output: OutputFormat,
    private readonly write: (text: string) => void,
  ) {}

  print(found: readonly Found[]): void {
    if (found.length === 0) return;
    if (this.output === 'json') {
      this.write(found.map((f) => `${f.line}\n`).join(''));
      return;
    }
    for (const f of found) this.width = Math.max(this.width, f.record.enforcer.length);
    this.write(found.map((f) => `${f.record.enforcer.padEnd(this.width)}  ${recordLine(f.record)}\n`).join(''));
  }
}

/** What one read selects: subjects for the server, and the exact checks done here. */
class Selection {
  readonly filterSubjects: string | string[] | undefined;
  private readonly subjects: Set<string> | undefined;
  private readonly enforcers: Set<string> | undefined;
  private readonly matches: (r: AuditRecord) => boolean;
  malformed = 0;

  constructor(nc: NatsConnection, stream: string, enforcers: readonly string[] | undefined, matches: (r: AuditRecord) => boolean) {
    this.matches = matches;
    if (enforcers && enforcers.length > 0) {
      this.enforcers = new Set(enforcers);
      const subjects = [...new Set(enforcers.map((id) => `${stream}.${natsToken(id)}`))];
      if (subjects.length === 1) this.filterSubjects = subjects[0]!;
      // several filter subjects need nats-server 2.10; before, the subjects are checked here
      else if (serverAtLeast(nc, 2, 10)) this.filterSubjects = subjects;
      else this.subjects = new Set(subjects);
    }
  }

  /** The matching records of one message, in order. */
  records(m: JsMsg, into: Found[]): void {
    if (this.subjects && !this.subjects.has(m.subject)) return;
    const text = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('latin1');
    let at = 0;
    while (at < text.length) {
      let end = text.indexOf('\n', at);
      if (end < 0) end = text.length;
      const line = text.slice(at, end);
      at = end + 1;
      if (line.length === 0) continue;
      let record: AuditRecord;
      try {
        record = JSON.parse(line) as AuditRecord;
      } catch {
        this.malformed++;
        continue;
      }
      if (typeof record !== 'object' || record === null || typeof record.enforcer !== 'string' || typeof record.time !== 'string') {
        this.malformed++;
        continue;
      }
      // subjects are tokens: two ids may share one; the record says exactly whose it is
      if (this.enforcers && !this.enforcers.has(record.enforcer)) continue;
      if (this.matches(record)) into.push({ line, record });
    }
  }
}

type Start = { seq: number } | { time: Date };

/**
 * Read messages from `start` in order through an ordered consumer: up to `endSeq` (inclusive;
 * stops early when nothing more is stored), or for ever when `endSeq` is undefined, until `stop`.
 */
async function readMessages(nc: NatsConnection, stream: string, sel: Selection, start: Start, endSeq: number | undefined, onMessage: (m: JsMsg) => void, stop?: AbortSignal): Promise<void> {
  const js = jetstream(nc);
  const opts: Partial<OrderedConsumerOptions> =
    'seq' in start ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, start.seq) } : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.time.toISOString() };
  if (sel.filterSubjects !== undefined) opts.filter_subjects = sel.filterSubjects;
  const consumer: Consumer = await js.consumers.get(stream, opts);
  try {
    if (endSeq !== undefined && (await consumer.info(true)).num_pending === 0) return;
    if (stop?.aborted) return;
    // bounded by bytes, not messages: 256 full messages (256 KiB each) would pass the server's
    // 64 MiB limit for a client that is still parsing, and the server would cut it off
    const maxBytes = Math.max(PULL_BYTES, 2 * (nc.info?.max_payload ?? 1024 * 1024));
    const messages = await consumer.consume({ max_bytes: maxBytes });
    const onAbort = () => messages.stop();
    stop?.addEventListener('abort', onAbort);
    if (stop?.aborted) messages.stop();
    let lastMessage = Date.now();
    let checking = false;
    // a read that expects more: if retention removed them meanwhile, nothing would ever come
    const idle =
      endSeq === undefined
        ? undefined
        : setInterval(() => {
            if (checking || Date.now() - lastMessage < IDLE_CHECK_MS) return;
            checking = true;
            consumer
              .info()
              .then((ci) => {
                if (ci.num_pending === 0 && Date.now() - lastMessage >= IDLE_CHECK_MS) messages.stop();
              })
              .catch(() => undefined)
              .finally(() => (checking = false));
          }, IDLE_CHECK_MS);
    try {
      for await (const m of messages) {
        lastMessage = Date.now();
        if (endSeq !== undefined && m.seq > endSeq) break;
        onMessage(m);
        if (endSeq !== undefined && (m.seq >= endSeq || m.info.pending === 0)) break;
      }
    } finally {
      clearInterval(idle);
      stop?.removeEventListener('abort', onAbort);
      messages.stop();
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/** The sequence number of the first selected message stored at or after `time`; undefined if none up to `lastSeq`. */
async function firstSeqSince(nc: NatsConnection, stream: string, sel: Selection, time: Date, lastSeq: number, stop: AbortSignal): Promise<number | undefined> {
  let first: number | undefined;
  const found = new AbortController();
  const onStop = () => found.abort();
  stop.addEventListener('abort', onStop);
  try {
    await readMessages(nc, stream, sel, { time }, lastSeq, (m) => {
      first ??= m.seq;
      found.abort();
    }, found.signal);
  } finally {
    stop.removeEventListener('abort', onStop);
  }
  return first !== undefined && first <= lastSeq ? first : undefined;
}

/** The last `limit` matching records with sequence numbers in [lowerSeq, lastSeq], oldest first:
 *  windows read backwards from the end, each 4× the previous, until enough are found. */
async function lastMatching(nc: NatsConnection, stream: string, sel: Selection, limit: number, lowerSeq: number, lastSeq: number, stop: AbortSignal): Promise<Found[]> {
  let found: Found[] = [];
  let end = lastSeq;
  let window = FIRST_WINDOW;
  while (limit > 0 && end >= lowerSeq && found.length < limit && !stop.aborted) {
    const start = Math.max(lowerSeq, end - window + 1);
    const need = limit - found.length;
    let chunk: Found[] = [];
    await readMessages(nc, stream, sel, { seq: start }, end, (m) => {
      sel.records(m, chunk);
      if (chunk.length > 2 * need + 1024) chunk = chunk.slice(-need);
    }, stop);
    found = chunk.slice(-need).concat(found);
    end = start - 1;
    window = Math.min(window * 4, MAX_WINDOW);
  }
  return found;
}

export async function fleetObserve(o: FleetObserveOptions): Promise<number> {
  const target = parseNatsUrl(o.nats, 'STREAM');
  const stream = target.name;
  const filter = parseFilterOptions({
    ...(o.verdict !== undefined && { verdict: o.verdict }),
    ...(o.from !== undefined && { from: o.from }),
    ...(o.to !== undefined && { to: o.to }),
    ...(o.port !== undefined && { port: o.port }),
    ...(o.protocol !== undefined && { protocol: o.protocol }),
    ...(o.rule !== undefined && { rule: o.rule }),
    ...(o.since !== undefined && { since: o.since }),
  });
  const matches = compileFilter(filter);
  const limit = parseLast(o.last) ?? (filter.since ? Infinity : o.follow ? 0 : 100);
  const printer = new Printer(o.output, o.write ?? ((text) => void process.stdout.write(text)));

  const nc = await connectNats(target, natsAuthOf(o), { name: 'doorstep-cli' });
  // ends every read: Ctrl-C (with --follow), or the connection lost
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  if (o.follow) {
    if (o.signal) o.signal.addEventListener('abort', onSignal);
    else {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }
  }
  let closing = false;
  let lost: Error | undefined;
  void nc.closed().then((err) => {
    if (closing) return;
    lost = err ?? new Error('the connection closed');
    stop.abort();
  });
  const unreachable = (err: Error) =>
    new DoorstepError('DS_E_NATS_UNREACHABLE', `lost the connection to NATS at ${describeTarget(target)}: ${err.message}`, { hint: 'check the NATS servers and run the command again', cause: err });
  const printMessage = (m: JsMsg) => {
    const found: Found[] = [];
    sel.records(m, found);
    printer.print(found);
  };
  let sel: Selection;
  try {
    let info: StreamInfo;
    try {
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      info = await jsm.streams.info(stream);
    } catch (err) {
      throw lost ? unreachable(lost) : natsError(err, stream);
    }
    sel = new Selection(nc, stream, o.enforcer, matches);
    const lastSeq = info.state.last_seq;
    const stored = info.state.messages > 0;
    try {
      if (limit === Infinity) {
        // every record since --since, printed as it is read
        const start: Start = filter.since ? { time: filter.since } : { seq: info.state.first_seq };
        if (stored || o.follow) await readMessages(nc, stream, sel, start, o.follow ? undefined : lastSeq, printMessage, stop.signal);
      } else {
        const lowerSeq = !stored ? undefined : filter.since ? await firstSeqSince(nc, stream, sel, filter.since, lastSeq, stop.signal) : info.state.first_seq;
        if (lowerSeq !== undefined && !stop.signal.aborted) printer.print(await lastMatching(nc, stream, sel, limit, lowerSeq, lastSeq, stop.signal));
        if (o.follow && !stop.signal.aborted) await readMessages(nc, stream, sel, { seq: lastSeq + 1 }, undefined, printMessage, stop.signal);
      }
    } catch (err) {
      throw lost ? unreachable(lost) : natsError(err, stream);
    }
    if (lost) throw unreachable(lost);
    if (sel.malformed > 0) process.stderr.write(`doorstep: ${sel.malformed} lines in ${stream} were not audit records and were skipped\n`);
    return ExitCode.OK;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    o.signal?.removeEventListener('abort', onSignal);
    closing = true;
    if (!nc.isClosed()) await nc.close();
  }
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** `doorstep fleet observe`, under the given `fleet` command. */
export function registerFleetObserve(fleet: Command): Command {
  return addNatsFlags(
    addFilterFlags(fleet.command('observe').description("the enforcers' audit records from the NATS audit stream: filtered, the last N, or --follow")),
    'STREAM',
  )
    .option('--enforcer <id>', 'only this enforcer (repeatable)', collect)
    .option('--follow', 'keep streaming new records until Ctrl-C')
    .option('--last <n>', 'the last N matching records (default 100; with --follow 0; with --since every one since)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action((opts: FleetObserveOptions) =>
      fleetObserve(opts).then(
        (code) => {
          if (code !== 0) process.exitCode = code;
        },
        (err: unknown) => {
          process.exitCode = reportError(err);
        },
      ),
    );
}

/**
 * Every record the audit stream `stream` holds from `since` up to its last message when called,
 * in order, handed to `onRecords` a message at a time (`fleet report`, `diff --history --nats`).
 * Returns the records read.
 */
export async function readStreamSince(nc: NatsConnection, stream: string, since: Date, onRecords: (records: AuditRecord[]) => void): Promise<number> {
  let info: StreamInfo;
  try {
    info = await (await jetstreamManager(nc, { checkAPI: false })).streams.info(stream);
  } catch (err) {
    throw natsError(err, stream);
  }
  if (info.state.messages === 0) return 0;
  const sel = new Selection(nc, stream, undefined, () => true);
  let count = 0;
  try {
    await readMessages(nc, stream, sel, { time: since }, info.state.last_seq, (m) => {
      const found: Found[] = [];
      sel.records(m, found);
      count += found.length;
      onRecords(found.map((f) => f.record));
    });
  } catch (err) {
    throw natsError(err, stream);
  }
  return count;
}
