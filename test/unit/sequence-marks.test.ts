// SPDX-License-Identifier: Apache-2.0
// The accepted sequences kept in the state dir: what is saved loads again in a new process; a
// missing file is no marks; a damaged one is reported and ignored; a write is atomic (no
// temporary file left behind). And the check itself: above the mark, or the very set that made it.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildEnvelope, type PolicyEnvelope } from '../../src/fleet/policy-envelope.js';
import { FileMarkStore, markOf, replayProblem } from '../../src/watcher/sequence-marks.js';

const at = (sequence: number, value = `sig-${sequence}`): PolicyEnvelope => ({
  ...buildEnvelope('web', {}, [{ file: 'w.yaml', text: 'x' }]),
  sequence,
  signature: { alg: 'ed25519', key: 'k', value },
});

describe('sequence marks', () => {
  it('a set is accepted above the mark, or as the set that made it; below or a second set with that number is a replay', () => {
    const mark = markOf(at(5));
    assert.equal(replayProblem(at(1), undefined), undefined);
    assert.equal(replayProblem(at(6), mark), undefined);
    assert.equal(replayProblem(at(5), mark), undefined);
    assert.match(replayProblem(at(4), mark) ?? '', /has sequence 4, not above 5 accepted before: a replayed older set/);
    assert.match(replayProblem(at(5, 'other'), mark) ?? '', /the number of another set/);
  });

  it('the file store: saved marks load in a new store, missing is none, damaged is reported and ignored', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-marks-'));
    try {
      const problems: string[] = [];
      const store = new FileMarkStore(dir, 'policy-a');
      assert.deepEqual([...store.load((m) => problems.push(m))], []);
      store.save(new Map([['sets.web', markOf(at(3))]]));
      assert.deepEqual(readdirSync(dir), ['sequences.policy-a.json'], 'no temporary file is left');
      assert.deepEqual([...new FileMarkStore(dir, 'policy-a').load((m) => problems.push(m))], [['sets.web', { sequence: 3, signature: 'sig-3' }]]);
      assert.deepEqual([...new FileMarkStore(dir, 'policy-b').load((m) => problems.push(m))], [], 'one file per bucket');
      assert.equal(problems.length, 0, problems.join());
      writeFileSync(store.path, '{"format":1,');
      assert.deepEqual([...store.load((m) => problems.push(m))], []);
      assert.match(problems.join(), /sequences.policy-a.json is damaged and ignored/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
