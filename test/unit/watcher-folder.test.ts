// SPDX-License-Identifier: Apache-2.0
// The folder policy source (src/watcher/folder-source.ts) on real temp folders: initial delivery,
// debounced and stable-only delivery, rename-replace, no-op touches, missing and recreated
// folders, and close() leaving nothing running. Waits are for events, with generous timeouts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DoorstepError } from '../../src/errors.js';
import { FolderSource, type FolderSourceOptions, type SettlePass } from '../../src/watcher/folder-source.js';
import type { PolicyCandidate } from '../../src/watcher/source.js';

const WAIT_MS = 30_000;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), `doorstep-watch-${process.pid}-`));
}

/** Records what a source reports and lets a test wait for a condition on it. */
class Recorder {
  readonly deliveries: PolicyCandidate[] = [];
  readonly passes: SettlePass[] = [];
  readonly errors: Error[] = [];
  private waiters = new Set<() => void>();

  options(extra: FolderSourceOptions = {}): FolderSourceOptions {
    return {
      debounceMs: 100,
      retryMs: 100,
      ...extra,
      onError: (err) => {
        this.errors.push(err);
        this.notify();
      },
      onSettled: (pass) => {
        this.passes.push(pass);
        this.notify();
      },
    };
  }

  readonly deliver = (c: PolicyCandidate): void => {
    this.deliveries.push(c);
    this.notify();
  };

  until(check: () => boolean, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out waiting for ${what}; deliveries: ${JSON.stringify(this.texts())}`));
      }, WAIT_MS);
      const waiter = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      this.waiters.add(waiter);
    });
  }

  /** Each delivery as { file basename: text }. */
  texts(): Record<string, string>[] {
    return this.deliveries.map((d) => Object.fromEntries(d.sources.map((s) => [s.file.split('/').pop(), s.text])));
  }

  last(): Record<string, string> | undefined {
    return this.texts().at(-1);
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** A content change that no test otherwise makes: once it is delivered, earlier changes were fully processed. */
async function sentinel(rec: Recorder, dir: string): Promise<void> {
  writeFileSync(join(dir, 'zz-sentinel.yaml'), 'sentinel');
  await rec.until(() => rec.last()?.['zz-sentinel.yaml'] === 'sentinel', 'the sentinel');
}

async function withSource(
  paths: string | string[],
  rec: Recorder,
  body: (src: FolderSource) => Promise<void>,
  extra: FolderSourceOptions = {},
): Promise<void> {
  const src = new FolderSource(paths, rec.options(extra));
  try {
    await src.start(rec.deliver);
    await body(src);
  } finally {
    await src.close();
  }
}

test('start delivers the current set: policy files of the folder, not other files or subfolders', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'b.yaml'), 'b: 1');
    writeFileSync(join(dir, 'a.json'), '{}');
    writeFileSync(join(dir, 'notes.txt'), 'no');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'deep.yaml'), 'no');
    const rec = new Recorder();
    await withSource(dir, rec, async () => {
      assert.equal(rec.deliveries.length, 1);
      const [c] = rec.deliveries;
      assert.equal(c?.origin, `file:${dir}`);
      assert.equal(c?.revision, 1);
      assert.deepEqual(c?.sources, [
        { file: join(dir, 'a.json'), text: '{}' },
        { file: join(dir, 'b.yaml'), text: 'b: 1' },
      ]);
    });
    assert.deepEqual(rec.errors, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an edit delivers one new candidate with the edited content', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'a.yaml'), 'old');
    const rec = new Recorder();
    await withSource(dir, rec, async () => {
      writeFileSync(join(dir, 'a.yaml'), 'new');
      await rec.until(() => rec.last()?.['a.yaml'] === 'new', 'the edit');
      await sentinel(rec, dir);
      assert.deepEqual(rec.texts(), [{ 'a.yaml': 'old' }, { 'a.yaml': 'new' }, { 'a.yaml': 'new', 'zz-sentinel.yaml': 'sentinel' }]);
      assert.deepEqual(
        rec.deliveries.map((d) => d.revision),
        [1, 2, 3],
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a burst of 20 writes delivers one candidate with the final content', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'a.yaml'), 'v-initial');
    const rec = new Recorder();
    await withSource(dir, rec, async () => {
      for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'a.yaml'), `v${i}`);
      await rec.until(() => rec.last()?.['a.yaml'] === 'v19', 'the final write');
      await sentinel(rec, dir);
      assert.deepEqual(
        rec.texts().map((t) => t['a.yaml']),
        ['v-initial', 'v19', 'v19'],
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file written in two halves with a pause shorter than the debounce is delivered only complete', async () => {
  const dir = tempDir();
  const full = 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: web }\nspec: { defaultAction: deny }\n';
  const half = full.slice(0, full.length / 2);
  try {
    writeFileSync(join(dir, 'a.yaml'), 'before');
    const rec = new Recorder();
    await withSource(
      dir,
      rec,
      async () => {
        const fd = openSync(join(dir, 'b.yaml'), 'w');
        try {
          writeSync(fd, half);
          await sleep(100); // the writer pauses; not an assertion
          writeSync(fd, full.slice(half.length));
        } finally {
          closeSync(fd);
        }
        await rec.until(() => rec.last()?.['b.yaml'] === full, 'the complete file');
        await sentinel(rec, dir);
        assert.deepEqual(
          rec.texts().map((t) => t['b.yaml']),
          [undefined, full, full],
        );
      },
      { debounceMs: 400 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watched single file replaced by rename keeps being watched', async () => {
  const dir = tempDir();
  const file = join(dir, 'policy.yaml');
  try {
    writeFileSync(file, 'one');
    writeFileSync(join(dir, 'other.yaml'), 'not part of the set');
    const rec = new Recorder();
    await withSource(file, rec, async () => {
      assert.equal(rec.deliveries[0]?.origin, `file:${file}`);
      for (const text of ['two', 'three']) {
        writeFileSync(join(dir, '.policy.yaml.swp'), text);
        renameSync(join(dir, '.policy.yaml.swp'), file);
        await rec.until(() => rec.last()?.['policy.yaml'] === text, `rename-replace to ${text}`);
      }
      assert.deepEqual(
        rec.texts().map((t) => t['policy.yaml']),
        ['one', 'two', 'three'],
      );
      assert.deepEqual(Object.keys(rec.last() ?? {}), ['policy.yaml']);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a touch or a rewrite with the same content delivers nothing', async () => {
  const dir = tempDir();
  const file = join(dir, 'a.yaml');
  try {
    writeFileSync(file, 'same');
    const rec = new Recorder();
    await withSource(dir, rec, async () => {
      const before = rec.passes.length;
      const now = new Date();
      utimesSync(file, now, now);
      writeFileSync(file, 'same');
      await rec.until(() => rec.passes.length > before, 'a settle pass after the touch');
      assert.equal(rec.passes.at(-1)?.outcome, 'unchanged');
      assert.equal(rec.deliveries.length, 1);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder that disappears is reported and watched again when it is recreated or swapped', async () => {
  const root = tempDir();
  const dir = join(root, 'policies');
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'first');
    const rec = new Recorder();
    await withSource(dir, rec, async () => {
      rmSync(dir, { recursive: true });
      await rec.until(() => rec.errors.length > 0, 'an error for the missing folder');
      const err = rec.errors[0];
      assert.ok(err instanceof DoorstepError);
      assert.equal(err.code, 'DS_E_POLICY_SOURCE');
      assert.ok(err.message.includes(dir), err.message);

      mkdirSync(dir);
      writeFileSync(join(dir, 'a.yaml'), 'second');
      await rec.until(() => rec.last()?.['a.yaml'] === 'second', 'the recreated folder');

      // swap in a whole new folder by rename, then edit inside it: the new folder is watched
      const next = join(root, 'next');
      mkdirSync(next);
      writeFileSync(join(next, 'a.yaml'), 'third');
      renameSync(dir, join(root, 'old'));
      renameSync(next, dir);
      await rec.until(() => rec.last()?.['a.yaml'] === 'third', 'the swapped folder');
      writeFileSync(join(dir, 'a.yaml'), 'fourth');
      await rec.until(() => rec.last()?.['a.yaml'] === 'fourth', 'an edit in the swapped folder');
      writeFileSync(join(root, 'old', 'a.yaml'), 'stale');
      await sentinel(rec, dir);
      assert.ok(!rec.texts().some((t) => t['a.yaml'] === 'stale'));
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a single file missing at start is reported, then delivered when it appears', async () => {
  const dir = tempDir();
  const file = join(dir, 'policy.yaml');
  try {
    const rec = new Recorder();
    await withSource(file, rec, async () => {
      assert.equal(rec.deliveries.length, 0);
      assert.equal((rec.errors[0] as DoorstepError | undefined)?.code, 'DS_E_POLICY_SOURCE');
      writeFileSync(file, 'here');
      await rec.until(() => rec.last()?.['policy.yaml'] === 'here', 'the new file');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('close() stops watchers and timers: the process exits on its own, with no delivery after close', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'a.yaml'), 'one');
    const module = fileURLToPath(new URL('../../src/watcher/folder-source.js', import.meta.url));
    const script = `
      import { writeFileSync } from 'node:fs';
      import { join } from 'node:path';
      const { FolderSource } = await import(${JSON.stringify(module)});
      const dir = process.argv[1];
      const seen = [];
      let changed;
      const got = new Promise((r) => (changed = r));
      const src = new FolderSource(dir, { debounceMs: 50, retryMs: 50 });
      await src.start((c) => { seen.push(c.sources[0].text); if (c.sources[0].text === 'two') changed(); });
      writeFileSync(join(dir, 'a.yaml'), 'two');
      await got;
      // a change in flight when close() is called must not be delivered
      writeFileSync(join(dir, 'a.yaml'), 'three');
      await src.close();
      writeFileSync(join(dir, 'a.yaml'), 'four');
      process.on('exit', () => console.log(JSON.stringify(seen)));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('the process did not exit after close()'));
      }, WAIT_MS);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(out), ['one', 'two']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
