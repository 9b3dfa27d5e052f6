// SPDX-License-Identifier: Apache-2.0
// The JSON-lines sink's writer thread: takes slabs of whole lines from the sink
// (json-lines-sink.ts), writes each with write(2), rotating between lines (rotation.ts), hands
// the slab back on a port of its own and wakes a waiting event loop through shared memory.
// Counts lines written and dropped, bytes and rotations in shared counters. Owns the file
// descriptor once started (it reopens it at a rotation); touches only the audit files.
import { closeSync, openSync, writeSync } from 'node:fs';
import { isMainThread, type MessagePort, parentPort, Worker, workerData } from 'node:worker_threads';
import { pieceEnd, shiftRotated } from './rotation.js';

const NEWLINE = 0x0a;
const WRITER = 'doorstep-json-lines-writer';

// counters the writer thread keeps in shared memory (Float64: exact to 2^53)
export const C_WRITTEN = 0;
export const C_DROPPED = 1;
export const C_BYTES = 2;
export const C_ROTATIONS = 3;
export const C_CONSUMED = 4;
/** Slabs handed back (the main thread waits on it). */
export const C_RETURNED = 0;

export interface WriterInit {
  kind?: typeof WRITER;
  fd: number;
  path: string | null;
  size: number;
  maxBytes: number;
  keep: number;
  counters: SharedArrayBuffer;
  signal: SharedArrayBuffer;
  returns: MessagePort;
}

export type ToWriter =
  | { t: 'slab'; buf: ArrayBuffer; end: number; lines: number }
  | { t: 'text'; text: string; lines: number }
  | { t: 'flush'; id: number }
  | { t: 'close' };
export type FromWriter = { t: 'flushed'; id: number } | { t: 'closed' } | { t: 'error'; message: string; code: string };

function countLines(buf: Uint8Array): number {
  let n = 0;
  for (let at = buf.indexOf(NEWLINE); at >= 0; at = buf.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

/** Start the writer thread on `init` (its port is transferred). */
export function startWriter(init: WriterInit): Worker {
  // the writer closes and reopens a descriptor it did not open: it owns it, not the worker's tracker
  // (and it needs none of this process's flags: --input-type, --inspect, … would only get in its way)
  return new Worker(new URL(import.meta.url), { workerData: { ...init, kind: WRITER }, transferList: [init.returns], trackUnmanagedFds: false, execArgv: [] });
}

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
      shiftRotated(path, init.keep);
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
      const end = pieceEnd(chunk, off, init.maxBytes - size, size === 0);
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
