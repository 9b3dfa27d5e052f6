// SPDX-License-Identifier: Apache-2.0
// Bad input to the CLI and the agent: one clear error each, a documented non-zero exit code, and
// nothing left attached or pinned.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { packageRoot } from '../../src/paths.js';
import { runToken } from '../../src/demo/topology.js';
import { AgentRig } from '../lib/agent-rig.js';

const main = join(packageRoot, 'dist/src/cli/main.js');
const examplePolicy = join(packageRoot, 'examples/demo.yaml');

function doorstep(args: string[], asUser?: string) {
  const [cmd, argv] = asUser ? ['runuser', ['-u', asUser, '--', process.execPath, main, ...args]] : [process.execPath, [main, ...args]];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

describe('CLI: bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** Agent flags that keep a failing start away from the host's real paths. */
  const isolated = () => {
    const token = runToken();
    return { pinRoot: `/sys/fs/bpf/doorstep-test-${token}`, args: ['--pin-root', `/sys/fs/bpf/doorstep-test-${token}`, '--state-dir', join(dir, `state-${token}`), '--socket', join(dir, `${token}.sock`)] };
  };

  it('a missing interface: exit 4, one line, nothing pinned', () => {
    const { pinRoot, args } = isolated();
    const r = doorstep(['agent', '-i', 'nosuchif0', '-p', examplePolicy, ...args]);
    assert.equal(r.code, 4);
    assert.equal(r.stderr.split('\n').length, 1);
    assert.match(r.stderr, /DS_E_NO_INTERFACE: no network interface named "nosuchif0"/);
    assert.equal(existsSync(pinRoot), false);
  });

  it('validate: an invalid policy exits 3 with file:line:field', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: bad }\nspec:\n  defaultAction: deny\n  rules:\n    - { name: x, action: allow, protocol: tcp, ports: [70000] }\n');
    const v = doorstep(['validate', bad]);
    assert.equal(v.code, 3);
    assert.match(v.stderr, /bad\.yaml:7:\d+: spec\.rules\[0\]\.ports\[0\]/);
    // apply checks locally first: nothing is sent (there is no agent here to send it to anyway)
    const a = doorstep(['apply', bad, '--socket', join(dir, 'none.sock')]);
    assert.equal(a.code, 3);
    assert.match(a.stderr, /bad\.yaml:7:\d+: spec\.rules\[0\]\.ports\[0\]/);
  });

  it('missing capabilities: exit 4 with DS_E_CAPABILITY naming every one missing', () => {
    const { args } = isolated();
    const open = join(dir, 'open');
    spawnSync('mkdir', ['-p', open]);
    chmodSync(dir, 0o755);
    chmodSync(open, 0o777);
    const r = doorstep(['agent', '-i', 'lo', '-p', examplePolicy, ...args.slice(0, 2), '--state-dir', join(open, 'state'), '--socket', join(open, 'a.sock')], 'nobody');
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^doorstep: DS_E_CAPABILITY: missing capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN /);
  });

  it('an unknown flag: exit 2 with usage', () => {
    const r = doorstep(['agent', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option '--bogus'/);
  });

  it('an unreadable or invalid config: exit 2 naming the file', () => {
    const { args } = isolated();
    const missing = doorstep(['agent', '--config', join(dir, 'nope.yaml'), ...args]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /DS_E_CONFIG: cannot read the config file .*nope\.yaml: ENOENT/);
    const wrong = join(dir, 'wrong.yaml');
    writeFileSync(wrong, 'interfaces: [lo]\nxdpMode: turbo\n');
    const invalid = doorstep(['agent', '--config', wrong, ...args]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /DS_E_CONFIG: .*wrong\.yaml: xdpMode: /);
  });

  it('a state dir that cannot be written: exit 4, nothing attached', () => {
    const { pinRoot, args } = isolated();
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const r = doorstep(['agent', '-i', 'lo', '-p', examplePolicy, ...args.slice(0, 2), '--state-dir', join(file, 'state'), '--socket', join(dir, `${runToken()}.sock`)]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /DS_E_STATE_DIR: cannot write the state dir/);
    assert.equal(existsSync(pinRoot), false);
  });

  it('a CLI with no agent to talk to says so and how to start one: exit 5', () => {
    const r = doorstep(['status', '--socket', join(dir, 'nobody-home.sock')]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /DS_E_AGENT_UNREACHABLE: no agent answers on .*nobody-home\.sock .*start one with `doorstep agent/);
  });

  it('validate accepts the example policies', () => {
    const r = doorstep(['validate', examplePolicy, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).valid, true);
  });
});

describe('agent: a socket already in use', () => {
  const rig = new AgentRig();
  after(() => rig.cleanup());

  it('the second agent exits 4 and the first one keeps enforcing', async () => {
    rig.writePolicy('demo.yaml', '{"apiVersion":"doorstep/v1","kind":"NetworkPolicy","metadata":{"name":"p"},"spec":{"defaultAction":"deny","rules":[]}}');
    const first = rig.startAgent();
    try {
      await first.waitFor((r) => r.type === 'policy' && r.status === 'installed', 'install');
      const second = rig.startAgent(['--pin-root', `${rig.pinRoot}-second`]);
      const code = await second.exited;
      assert.equal(code, 4);
      assert.match(second.stderr, /DS_E_SOCKET_IN_USE: another agent is listening on /);
      assert.equal(existsSync(`${rig.pinRoot}-second`), false, 'nothing pinned by the refused agent');
      assert.equal(rig.cli(['status']).code, 0, 'the first agent still answers');
    } finally {
      await first.terminate();
    }
  });
});
