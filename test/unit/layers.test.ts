// SPDX-License-Identifier: Apache-2.0
// The folders are the layers (docs/architecture.md#layers). This file declares their order, once;
// the test reads every import of the TypeScript sources (type-only imports too: a type is a
// dependency) with the compiler's own pre-processor and fails on a folder-level cycle anywhere in
// src/, test/, bench/ or scripts/, on an import in src/ that goes against the order, on a folder
// of src/ that no layer names, and on src/ importing from outside src/.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

/**
 * The layers of src/, lowest first. A folder may import only from folders of earlier rows; the
 * folders of one row know nothing of each other. A subfolder not named here belongs to the layer
 * of its nearest named parent. `.` is src/ itself (errors.ts, paths.ts, units.ts).
 */
const LAYERS: readonly (readonly string[])[] = [
  ['.'],
  ['abi'],
  ['policy/ir'],
  ['policy/parse', 'policy/tables'],
  ['policy/tools'],
  ['policy'],
  ['host', 'fleet'],
  ['audit'],
  ['engine', 'history', 'placement', 'watcher'],
  ['controller'],
  ['ui'],
  ['agent'],
  ['demo'],
  ['cli'],
];

const ROOT = resolve(import.meta.dirname, '../../..');
const TREES = ['src', 'test', 'bench', 'scripts'];

/** Every .ts file below `dir`, relative to the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

interface Import {
  from: string;
  to: string;
}

/** Every relative import (static, dynamic, re-export, type-only) of every source, resolved to its .ts file. */
function importGraph(): Import[] {
  return TREES.flatMap(sources).flatMap((from) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, from), 'utf8'), true, true);
    return importedFiles
      .filter((i) => i.fileName.startsWith('.') && i.fileName.endsWith('.js'))
      .map((i) => ({ from, to: relative(ROOT, resolve(ROOT, dirname(from), i.fileName.replace(/\.js$/, '.ts'))) }));
  });
}

/** The folder-level graph: folder → folder → the file imports that make the edge. */
function folderGraph(imports: readonly Import[]): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const { from, to } of imports) {
    const a = dirname(from);
    const b = dirname(to);
    if (a === b) continue;
    const out = graph.get(a) ?? graph.set(a, new Map()).get(a)!;
    (out.get(b) ?? out.set(b, []).get(b)!).push(`${from} → ${to}`);
  }
  return graph;
}

/** The strongly connected components of more than one folder (Tarjan), each sorted. */
function cycles(graph: Map<string, Map<string, string[]>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/**
 * The cycles of one component, for a reader: every pair of folders that import each other, then,
 * for each folder in no such pair, one shortest cycle through it; each with the imports of its edges.
 */
function cycleEdges(graph: Map<string, Map<string, string[]>>, component: readonly string[]): string[] {
  const inside = new Set(component);
  const imports = (a: string, b: string) => graph.get(a)?.get(b) ?? [];
  const lines: string[] = [];
  const paired = new Set<string>();
  for (const a of component) {
    for (const b of component) {
      if (a < b && imports(a, b).length && imports(b, a).length) {
        paired.add(a).add(b);
        lines.push(`${a} ⇄ ${b}: ${[...imports(a, b), ...imports(b, a)].join('; ')}`);
      }
    }
  }
  for (const start of component.filter((f) => !paired.has(f))) {
    // breadth first from start's successors back to start
    const previous = new Map<string, string>();
    const queue = [start];
    while (queue.length && !previous.has(start)) {
      const v = queue.shift()!;
      for (const w of graph.get(v)?.keys() ?? []) {
        if (!inside.has(w) || previous.has(w)) continue;
        previous.set(w, v);
        queue.push(w);
      }
    }
    const path = [start];
    for (let v = previous.get(start)!; v !== start; v = previous.get(v)!) path.unshift(v);
    path.unshift(start);
    lines.push(`${path.join(' → ')}: ${path.slice(1).map((b, i) => imports(path[i]!, b)[0]).join('; ')}`);
  }
  return lines;
}

/** The layer a folder of src/ belongs to: its nearest named parent's, with the row it sits in. */
function layerOf(folder: string): { name: string; row: number } | undefined {
  for (let f = folder; ; f = dirname(f)) {
    const row = LAYERS.findIndex((names) => names.includes(f));
    if (row >= 0) return { name: f, row };
    if (f === '.') return undefined;
  }
}

const srcFolder = (file: string) => relative('src', dirname(file)) || '.';

describe('layers', () => {
  const imports = importGraph();
  const graph = folderGraph(imports);

  it('reads the import graph (the check sees real edges)', () => {
    assert.ok(imports.length > 500, `only ${imports.length} imports read`);
    assert.ok(graph.get('src/cli')?.has('src/controller'), 'cli → controller not seen');
  });

  it('no folder-level cycle', () => {
    const text = cycles(graph).map((component) => `${component.join(', ')}:\n    ${cycleEdges(graph, component).join('\n    ')}`);
    assert.equal(text.length, 0, `folder-level cycles (each set of folders, then its cycles, folder by folder, with the imports that close them):\n  ${text.join('\n  ')}`);
  });

  it('every folder of src/ belongs to a layer', () => {
    const folders = [...new Set(sources('src').map(srcFolder))];
    assert.deepEqual(folders.filter((f) => !layerOf(f)), []);
  });

  it('src/ imports only from lower layers, and nothing from outside src/', () => {
    const wrong = imports.filter((i) => i.from.startsWith('src/')).flatMap(({ from, to }) => {
      if (!to.startsWith('src/')) return [`${from} → ${to} (outside src/)`];
      const a = layerOf(srcFolder(from));
      const b = layerOf(srcFolder(to));
      if (!a || !b || a.name === b.name || b.row < a.row) return [];
      return [`${from} → ${to} (${a.name} may not import ${b.name}: ${b.row === a.row ? 'same row' : 'a higher layer'})`];
    });
    assert.deepEqual(wrong, []);
  });
});
