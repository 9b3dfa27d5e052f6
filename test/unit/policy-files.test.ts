// SPDX-License-Identifier: Apache-2.0
// Reading policy sources from files and folders (src/policy/parse/files.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPolicySources } from '../../src/policy/parse/files.js';

test('a folder contributes its .yaml, .yml and .json files sorted by name; files are read as given', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'doorstep-policy-'));
  try {
    await writeFile(join(dir, 'b.yaml'), 'b');
    await writeFile(join(dir, 'a.yml'), 'a');
    await writeFile(join(dir, 'C.json'), 'c');
    await writeFile(join(dir, 'notes.txt'), 'ignored');
    await mkdir(join(dir, 'sub.yaml'));
    await writeFile(join(dir, 'sub.yaml', 'deep.yaml'), 'not read');
    const extra = join(dir, 'notes.txt');
    const sources = await readPolicySources([dir, extra]);
    assert.deepEqual(sources, [
      { file: join(dir, 'C.json'), text: 'c' },
      { file: join(dir, 'a.yml'), text: 'a' },
      { file: join(dir, 'b.yaml'), text: 'b' },
      { file: extra, text: 'ignored' },
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a missing path is an error from the file system', async () => {
  await assert.rejects(readPolicySources(['/nonexistent/doorstep/policy.yaml']), { code: 'ENOENT' });
});
