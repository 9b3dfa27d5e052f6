// SPDX-License-Identifier: Apache-2.0
// Bad input to the CLI: one clear error line each, a documented non-zero exit code, and nothing
// left attached or pinned.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../../src/paths.js';
import { runToken } from '../../src/demo/topology.js';

const main = join(packageRoot, 'dist/src/cli/main.js');
const examplePolicy = join(packageRoot, 'examples/demo.yaml');

function doorstep(args: string[], asUser?: string) {
  const [cmd, argv] = asUser ? ['runuser', ['-u', asUser, '--', process.execPath, main, ...args]] : [process.execPath, [main, ...args]];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

describe('CLI: bad input', () => {
  it('a missing interface: exit 4, one line, nothing pinned', () => {
    const pinRoot = `/sys/fs/bpf/doorstep-test-${runToken()}`;
    const r = doorstep(['enforce', '-i', 'nosuchif0', '-p', examplePolicy, '--pin-root', pinRoot]);
    assert.equal(r.code, 4);
    assert.equal(r.stderr.split('\n').length, 1);
    assert.match(r.stderr, /DS_E_NO_INTERFACE: no network interface named "nosuchif0"/);
    assert.equal(existsSync(pinRoot), false);
  });

  it('an invalid policy: exit 3, file:line:field, the kernel untouched', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doorstep-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: bad }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: x, action: allow, protocol: tcp, ports: [70000] }\n');
    const pinRoot = `/sys/fs/bpf/doorstep-test-${runToken()}`;
    const r = doorstep(['enforce', '-i', 'lo', '-p', bad, '--pin-root', pinRoot]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`^${bad.replaceAll('/', '\\/')}:7:\\d+: spec\\.rules\\[0\\]\\.ports\\[0\\]: `));
    assert.equal(existsSync(pinRoot), false);
    const v = doorstep(['validate', bad]);
    assert.equal(v.code, 3);
    assert.match(v.stderr, /bad\.yaml:7:\d+: spec\.rules\[0\]\.ports\[0\]/);
  });

  it('missing privileges: exit 4 with DS_E_NO_PRIVILEGE', () => {
    const r = doorstep(['enforce', '-i', 'lo', '-p', examplePolicy, '--pin-root', '/tmp/never'], 'nobody');
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^doorstep: DS_E_NO_PRIVILEGE: /);
  });

  it('an unknown flag: exit 2 with usage', () => {
    const r = doorstep(['enforce', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option '--bogus'/);
  });

  it('validate accepts the example policies', () => {
    const r = doorstep(['validate', examplePolicy, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).valid, true);
  });
});
