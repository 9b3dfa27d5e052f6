// SPDX-License-Identifier: Apache-2.0
// The flow history: an embedded DuckDB database (a file, or memory for a fleet's one-off report)
// holding history rows (rows.ts) and answering the report's and the replay's queries
// (queries.ts). Rows go in through an appender a slice at a time, so a large flush never holds the
// event loop; queries run on DuckDB's own threads. Retention is by age and by size: rows older
// than `maxAgeMs` go, then the oldest minutes until the database uses at most `maxBytes` (DuckDB
// reuses the freed blocks, so the file stops growing there). Everything that can fail throws
// DoorstepError DS_E_HISTORY with what to do; the sink (sink.ts) turns that into "no history".
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { DoorstepError } from '../errors.js';
import type { FlowRow, HistoryRows } from './rows.js';

export interface HistoryLimits {
  /** Bytes the database may use (blocks in use). */
  maxBytes: number;
  /** How long rows are kept (ms). */
  maxAgeMs: number;
}

export const DEFAULT_HISTORY_LIMITS: Readonly<HistoryLimits> = Object.freeze({ maxBytes: 256 * 1024 * 1024, maxAgeMs: 7 * 86_400_000 });

/** Rows an appender takes before the event loop may turn. */
const APPEND_SLICE = 2_000;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS flows (minute BIGINT, enforcer VARCHAR, iface VARCHAR, tenant VARCHAR, verdict VARCHAR, reason VARCHAR, rule VARCHAR,
     proto UTINYINT, src VARCHAR, dst VARCHAR, port INTEGER, sessions BIGINT, packets BIGINT, bytes BIGINT)`,
  `CREATE TABLE IF NOT EXISTS floods (minute BIGINT, enforcer VARCHAR, rule VARCHAR, held BIGINT, packets BIGINT, bytes BIGINT)`,
  `CREATE TABLE IF NOT EXISTS policies (time BIGINT, enforcer VARCHAR, status VARCHAR, version VARCHAR, generation BIGINT, rules BIGINT, source VARCHAR)`,
];

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class HistoryStore {
  private closed = false;

  private constructor(
    private readonly instance: DuckDBInstance,
    /** Appends and retention. */
    private readonly writer: DuckDBConnection,
    /** Queries, so a report never waits behind an append. */
    readonly reader: DuckDBConnection,
    readonly path: string,
    readonly limits: HistoryLimits,
  ) {}

  /** Open (or create) the database at `path` (`:memory:` for one in memory). */
  static async open(path: string, limits: Partial<HistoryLimits> = {}): Promise<HistoryStore> {
    try {
      const instance = await DuckDBInstance.create(path, { threads: '1' });
      const writer = await instance.connect();
      for (const sql of SCHEMA) await writer.run(sql);
      const reader = await instance.connect();
      return new HistoryStore(instance, writer, reader, path, { ...DEFAULT_HISTORY_LIMITS, ...limits });
    } catch (err) {
      throw historyError(`cannot open the flow history at ${path}`, err, 'check that its folder exists and is writable, and that no other process has the file open');
    }
  }

  /** Store rows; the event loop turns between slices of APPEND_SLICE. */
  async append(rows: HistoryRows): Promise<void> {
    this.checkOpen();
    try {
      if (rows.flows.length > 0) await this.appendSliced('flows', rows.flows, appendFlow);
      if (rows.floods.length > 0) {
        await this.appendSliced('floods', rows.floods, (a, r) => {
          a.appendBigInt(BigInt(r.minute));
          a.appendVarchar(r.enforcer);
          a.appendVarchar(r.rule);
          a.appendBigInt(BigInt(r.held));
          a.appendBigInt(BigInt(r.packets));
          a.appendBigInt(BigInt(r.bytes));
        });
      }
      if (rows.policies.length > 0) {
        await this.appendSliced('policies', rows.policies, (a, r) => {
          a.appendBigInt(BigInt(r.time));
          a.appendVarchar(r.enforcer);
          a.appendVarchar(r.status);
          a.appendVarchar(r.version);
          a.appendBigInt(BigInt(r.generation));
          a.appendBigInt(BigInt(r.rules));
          a.appendVarchar(r.source);
        });
      }
    } catch (err) {
      throw historyError('writing to the flow history failed', err, 'check the free space of its file system');
    }
  }

  /** Apply retention as of `now`: rows past the age limit go, then the oldest minutes past the size limit. Returns rows deleted. */
  async retain(now = Date.now()): Promise<number> {
    this.checkOpen();
    const cutoff = now - this.limits.maxAgeMs;
    let deleted = 0;
    for (const [table, column] of [['flows', 'minute'], ['floods', 'minute'], ['policies', 'time']] as const) {
      deleted += Number((await this.writer.run(`DELETE FROM ${table} WHERE ${column} < $1`, [BigInt(cutoff)])).rowsChanged);
    }
    // past the size limit: drop the oldest tenth of the minutes held, until under it (or one
    // minute is left); a checkpoint first, so the blocks in use count what the log held
    await this.writer.run('CHECKPOINT');
    for (let round = 0; round < 10 && (await this.usedBytes()) > this.limits.maxBytes; round++) {
      const [span] = (await this.writer.runAndReadAll('SELECT min(minute) AS lo, max(minute) AS hi FROM flows')).getRowObjectsJS() as { lo: bigint | null; hi: bigint | null }[];
      if (!span || span.lo === null || span.hi === null || span.lo === span.hi) break;
      const until = span.lo + (span.hi - span.lo) / 10n + 1n;
      deleted += Number((await this.writer.run('DELETE FROM flows WHERE minute < $1', [until])).rowsChanged);
      deleted += Number((await this.writer.run('DELETE FROM floods WHERE minute < $1', [until])).rowsChanged);
      await this.writer.run('CHECKPOINT');
    }
    return deleted;
  }

  /** Bytes of the blocks the database uses. */
  async usedBytes(): Promise<number> {
    const [row] = (await this.writer.runAndReadAll('SELECT used_blocks * block_size AS used FROM pragma_database_size()')).getRowObjectsJS() as { used: bigint | number }[];
    return Number(row?.used ?? 0);
  }

  /** Run a read query: rows as plain JS values (BIGINT as number). */
  async query<T>(sql: string, values: DuckDBValue[] = []): Promise<T[]> {
    this.checkOpen();
    const rows = (await this.reader.runAndReadAll(sql, values)).getRowObjectsJS();
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]))) as T[];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.closeSync();
    this.reader.closeSync();
    this.instance.closeSync();
  }

  private checkOpen(): void {
    if (this.closed) throw new DoorstepError('DS_E_HISTORY', 'the flow history is closed');
  }

  private async appendSliced<R>(table: string, rows: readonly R[], write: (a: DuckDBAppender, row: R) => void): Promise<void> {
    const appender = await this.writer.createAppender(table);
    try {
      for (let i = 0; i < rows.length; i++) {
        write(appender, rows[i]!);
        appender.endRow();
        if ((i + 1) % APPEND_SLICE === 0) {
          appender.flushSync();
          await yieldTurn();
        }
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
  }
}

function appendFlow(a: DuckDBAppender, r: FlowRow): void {
  a.appendBigInt(BigInt(r.minute));
  a.appendVarchar(r.enforcer);
  a.appendVarchar(r.iface);
  a.appendVarchar(r.tenant);
  a.appendVarchar(r.verdict);
  a.appendVarchar(r.reason);
  a.appendVarchar(r.rule);
  a.appendUTinyInt(r.proto);
  a.appendVarchar(r.src);
  a.appendVarchar(r.dst);
  a.appendInteger(r.port);
  a.appendBigInt(BigInt(r.sessions));
  a.appendBigInt(BigInt(r.packets));
  a.appendBigInt(BigInt(r.bytes));
}

function historyError(what: string, err: unknown, hint: string): DoorstepError {
  if (err instanceof DoorstepError) return err;
  return new DoorstepError('DS_E_HISTORY', `${what}: ${err instanceof Error ? err.message : String(err)}`, { hint });
}
