// SPDX-License-Identifier: Apache-2.0
// Policy files → documents: splits one file's text (YAML, multi-document with `---`; JSON is YAML)
// into plain values, and keeps enough of the source to map any field path back to line:column.
// Syntax errors become DS_E_POLICY_PARSE problems. Pure: text in, documents out.

import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Document, type YAMLError } from 'yaml';
import type { PolicyProblem } from '../../errors.js';
import { parseJsonDocuments } from './documents-fast.js';

/** One policy file's content, named as the operator should see it in messages. */
export interface PolicySource {
  file: string;
  text: string;
}

/** A path into a document: object keys and array indexes, e.g. ['spec', 'rules', 2, 'ports', 0]. */
export type FieldPath = readonly (string | number)[];

export interface Position {
  line: number;
  column: number;
}

/** One parsed document: its plain value and a way back to the source. */
export interface SourceDocument {
  file: string;
  value: unknown;
  /**
   * Where `path` is written (1-based line and column). `at: 'key'` points at the key of the last
   * segment rather than its value. A path that does not exist resolves to its deepest existing part.
   */
  locate(path: FieldPath, at?: 'key' | 'value'): Position;
}

export interface ParsedSource {
  documents: SourceDocument[];
  problems: PolicyProblem[];
}

/**
 * Parses every document of one file. Documents with syntax errors are reported and left out;
 * empty documents (only comments, nothing between two `---`, or a bare null) are skipped.
 * Files whose documents are all JSON objects take a fast path (JSON.parse); the result is the same.
 */
export function parseSource(source: PolicySource): ParsedSource {
  const json = parseJsonDocuments(source.file, source.text);
  if (json) return { documents: json, problems: [] };
  return parseYamlSource(source);
}

/** `spec.rules[2].ports[0]` for ['spec', 'rules', 2, 'ports', 0]. */
export function formatField(path: FieldPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

function parseYamlSource({ file, text }: PolicySource): ParsedSource {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, prettyErrors: true });
  const documents: SourceDocument[] = [];
  const problems: PolicyProblem[] = [];
  const toProblem = (error: YAMLError): PolicyProblem => {
    const pos = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
    return {
      code: 'DS_E_POLICY_PARSE',
      file,
      line: pos.line,
      column: pos.col,
      field: '(syntax)',
      message: `${syntaxMessage(error)}; the file must be YAML or JSON`,
    };
  };
  if ('empty' in parsed) {
    problems.push(...parsed.errors.map(toProblem));
    return { documents, problems };
  }
  for (const doc of parsed) {
    if (doc.errors.length > 0) {
      problems.push(...doc.errors.map(toProblem));
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue; // empty document
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      const start = doc.contents.range[0];
      const pos = lineCounter.linePos(start);
      const message = error instanceof Error ? error.message : String(error);
      problems.push({ code: 'DS_E_POLICY_PARSE', file, line: pos.line, column: pos.col, field: '(syntax)', message });
      continue;
    }
    documents.push({ file, value, locate: (path, at) => locateYaml(doc, lineCounter, path, at) });
  }
  return { documents, problems };
}

/** The first line of a yaml error without its " at line L, column C:" tail (we report those separately). */
function syntaxMessage(error: YAMLError): string {
  const first = error.message.split('\n')[0] ?? error.message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

function locateYaml(doc: Document.Parsed, lineCounter: LineCounter, path: FieldPath, at?: 'key' | 'value'): Position {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      const value = pair.value;
      const wantKey = at === 'key' && i === path.length - 1;
      // Scalars point at their value; collections and empty values at their key, where the reader looks.
      const pointAtKey = wantKey || !isScalar(value) || value.value === null;
      offset = (pointAtKey ? rangeStart(pair.key) : rangeStart(value)) ?? offset;
      node = value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  const pos = lineCounter.linePos(offset);
  return { line: pos.line, column: pos.col };
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range?.[0];
}
