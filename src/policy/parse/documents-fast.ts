// SPDX-License-Identifier: Apache-2.0
// The JSON fast path of `parseSource`: a file whose documents (separated by `---` lines) are all
// JSON objects is read with the native JSON.parse — two orders of magnitude faster than the YAML
// parser, which matters for generated address feeds of a million CIDRs. Positions are found
// lazily by scanning the text only when something asks where a field is written.
// Anything else (YAML syntax, comments, duplicate keys, invalid JSON) returns undefined, and the
// caller parses the file as YAML, which yields the same values or the proper syntax error.
// The fast path of documents.ts (test/unit/documents-fast.equivalence.test.ts holds them together).

import type { FieldPath, Position, SourceDocument } from './documents.js';

const DOCUMENT_MARKER = /^---[ \t\r]*$/gm;

export function parseJsonDocuments(file: string, text: string): SourceDocument[] | undefined {
  const lines = new LineIndex(text);
  const documents: SourceDocument[] = [];
  for (const [start, end] of documentSpans(text)) {
    const first = skipSpace(text, start);
    if (first >= end) continue; // empty document
    if (text.charCodeAt(first) !== 0x7b /* { */) return undefined;
    const chunk = text.slice(start, end);
    let value: unknown;
    try {
      value = JSON.parse(chunk);
    } catch {
      return undefined;
    }
    // JSON.parse keeps the last of duplicate keys; YAML rejects them. Let the YAML parser report them.
    if (hasDuplicateKeys(chunk, value)) return undefined;
    documents.push(new JsonDocument(file, value, text, first, lines));
  }
  return documents;
}

/** One document of a JSON file; its locator is made on first use, as most documents are never asked. */
class JsonDocument implements SourceDocument {
  private locator: JsonLocator | undefined;

  constructor(
    readonly file: string,
    readonly value: unknown,
    private readonly text: string,
    private readonly start: number,
    private readonly lines: LineIndex,
  ) {}

  locate(path: FieldPath, at?: 'key' | 'value'): Position {
    this.locator ??= new JsonLocator(this.text, this.start);
    return this.lines.position(this.locator.offsetOf(path, at));
  }
}

/** [start, end) of each document between `---` marker lines. */
function documentSpans(text: string): [number, number][] {
  const spans: [number, number][] = [];
  let start = 0;
  DOCUMENT_MARKER.lastIndex = 0;
  for (let m = DOCUMENT_MARKER.exec(text); m; m = DOCUMENT_MARKER.exec(text)) {
    spans.push([start, m.index]);
    start = m.index + m[0].length;
  }
  spans.push([start, text.length]);
  return spans;
}

/**
 * Whether the JSON text writes more keys than its parsed value has. Each written key has one colon
 * outside strings, so colons in all ≥ keys written ≥ keys parsed: when the (native, fast) count of
 * all colons equals the parsed keys, there is no duplicate. Colons inside strings (IPv6 addresses)
 * make the first count larger, and then the exact scan decides.
 */
function hasDuplicateKeys(text: string, value: unknown): boolean {
  const keys = countKeys(value);
  return countColons(text) !== keys && countKeyTokens(text) !== keys;
}

function countColons(text: string): number {
  let count = 0;
  for (let c = text.indexOf(':'); c >= 0; c = text.indexOf(':', c + 1)) count++;
  return count;
}

/** Number of object keys written in a JSON text: colons outside strings. */
function countKeyTokens(text: string): number {
  let count = 0;
  let i = 0;
  for (;;) {
    const quote = text.indexOf('"', i);
    const stop = quote < 0 ? text.length : quote;
    for (let c = text.indexOf(':', i); c >= 0 && c < stop; c = text.indexOf(':', c + 1)) count++;
    if (quote < 0) return count;
    i = skipString(text, quote);
  }
}

/** Number of object keys in a parsed JSON value. */
function countKeys(value: unknown): number {
  if (Array.isArray(value)) {
    let n = 0;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'object' && item !== null) n += countKeys(item);
    }
    return n;
  }
  if (typeof value !== 'object' || value === null) return 0;
  let n = 0;
  for (const key in value) {
    n++;
    const item = (value as Record<string, unknown>)[key];
    if (typeof item === 'object' && item !== null) n += countKeys(item);
  }
  return n;
}

/** Maps field paths to offsets in a (valid) JSON document, indexing each container on first use. */
class JsonLocator {
  private readonly indexes = new Map<number, ContainerIndex>();

  constructor(
    private readonly text: string,
    private readonly root: number,
  ) {}

  offsetOf(path: FieldPath, at?: 'key' | 'value'): number {
    let node = this.root;
    let shown = this.root;
    for (let i = 0; i < path.length; i++) {
      const segment = path[i]!;
      const index = this.index(node);
      if (index?.isObject) {
        const member = index.member(String(segment));
        if (!member) break;
        const wantKey = at === 'key' && i === path.length - 1;
        const isContainer = this.isContainer(member.value) || this.text.startsWith('null', member.value);
        shown = wantKey || isContainer ? member.key : member.value;
        node = member.value;
      } else {
        const item = index && typeof segment === 'number' ? index.item(segment) : undefined;
        if (item === undefined) break;
        node = item;
        shown = item;
      }
    }
    return shown;
  }

  private isContainer(offset: number): boolean {
    const c = this.text.charCodeAt(offset);
    return c === 0x7b || c === 0x5b;
  }

  private index(offset: number): ContainerIndex | undefined {
    if (!this.isContainer(offset)) return undefined;
    let index = this.indexes.get(offset);
    if (!index) {
      index = new ContainerIndex(this.text, offset);
      this.indexes.set(offset, index);
    }
    return index;
  }
}

/**
 * Offsets of the children of one object or array, found by scanning it only as far as asked: a
 * rule's line needs the rules before it, never the text after it (which, in a policy of 100,000
 * rules, is most of the file each time a container around it is indexed).
 */
class ContainerIndex {
  readonly isObject: boolean;
  private readonly members = new Map<string, { key: number; value: number }>();
  private readonly items: number[] = [];
  /** Where scanning goes on: the first child, or (atValue) the value of the last child found, still to be skipped. */
  private at: number;
  private atValue = false;
  private done = false;

  constructor(
    private readonly text: string,
    offset: number,
  ) {
    this.isObject = text.charCodeAt(offset) === 0x7b;
    this.at = skipSpace(text, offset + 1);
  }

  member(name: string): { key: number; value: number } | undefined {
    while (!this.members.has(name) && this.scanChild());
    return this.members.get(name);
  }

  item(k: number): number | undefined {
    while (this.items.length <= k && this.scanChild());
    return this.items[k];
  }

  /** Finds the next child; false at the end of the container. */
  private scanChild(): boolean {
    if (this.done) return false;
    const text = this.text;
    let i = this.at;
    if (this.atValue) {
      i = skipSpace(text, skipValue(text, i));
      if (text.charCodeAt(i) === 0x2c /* , */) i = skipSpace(text, i + 1);
    }
    if (text.charCodeAt(i) === (this.isObject ? 0x7d : 0x5d)) {
      this.done = true;
      return false;
    }
    if (this.isObject) {
      const key = i;
      i = skipString(text, i);
      const name = JSON.parse(text.slice(key, i)) as string;
      i = skipSpace(text, skipSpace(text, i) + 1); // past ':'
      this.members.set(name, { key, value: i });
    } else {
      this.items.push(i);
    }
    this.at = i;
    this.atValue = true;
    return true;
  }
}

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/** Offset just past the string starting at the quote at `i`. */
function skipString(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** Offset just past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return skipString(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (;;) {
      const d = text.charCodeAt(i);
      if (d === 0x22) {
        i = skipString(text, i);
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if ((d === 0x7d || d === 0x5d) && --depth === 0) return i + 1;
      i++;
    }
  }
  while (i < text.length) {
    const d = text.charCodeAt(i);
    if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
    i++;
  }
  return i;
}

/** Offset → 1-based line and column, with the line starts computed on first use. */
class LineIndex {
  private starts: number[] | undefined;

  constructor(private readonly text: string) {}

  position(offset: number): Position {
    const starts = (this.starts ??= lineStarts(this.text));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 };
  }
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}
