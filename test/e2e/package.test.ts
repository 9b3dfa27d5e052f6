// SPDX-License-Identifier: Apache-2.0
// The Debian package `npm run package` builds, unpacked (test/lib/installed-package.ts): what it
// holds and declares, the man page and bash completion against the CLI's commands, the unit
// against systemd-analyze (verify, and the security exposure, printed), the launcher on its own.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { packageRoot } from '../../src/paths.js';
import { debPath, InstalledPackage } from '../lib/installed-package.js';

/**
 * Every command the CLI's source registers (`.command('name')`), found in the compiled files
 * themselves, not through the help text the man page is generated from.
 */
function registeredCommands(): string[] {
  const dir = join(packageRoot, 'dist/src/cli');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/\.command\('([a-z-]+)'\)/g)].map((m) => m[1]!));
}

describe('the Debian package', () => {
  let pkg: InstalledPackage;
  before(() => {
    pkg = new InstalledPackage();
  });
  after(() => pkg?.remove());

  it('declares its dependencies and conffiles', () => {
    const field = (name: string) => execFileSync('dpkg-deb', ['-f', debPath, name], { encoding: 'utf8' }).trim();
    assert.match(field('Depends'), /\bnodejs \(>= 20\)/);
    assert.match(field('Depends'), /\blibbpf1\b/);
    assert.match(field('Depends'), /\biproute2\b/);
    assert.equal(field('Version'), JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version);
    const control = execFileSync('dpkg-deb', ['--ctrl-tarfile', debPath]);
    const listing = execFileSync('tar', ['-t'], { input: control, encoding: 'utf8' });
    for (const f of ['conffiles', 'postinst', 'prerm', 'postrm']) assert.match(listing, new RegExp(`\\./${f}\\n`));
    const conffiles = execFileSync('tar', ['-xO', './conffiles'], { input: control, encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(conffiles, ['/etc/doorstep/agent.yaml', '/etc/doorstep/policy/example.yaml']);
  });

  it('installs the program, its addon, BPF objects, production dependencies only, the unit and the folders', () => {
    for (const p of ['/usr/bin/doorstep', '/usr/lib/doorstep/dist/src/cli/main.js', '/usr/lib/doorstep/build/Release/doorstep.node', '/usr/lib/doorstep/bpf/build/engine.bpf.o', '/lib/systemd/system/doorstep.service', '/etc/doorstep/agent.yaml', '/etc/doorstep/policy/example.yaml', '/var/lib/doorstep', '/usr/share/man/man1/doorstep.1.gz', '/usr/share/bash-completion/completions/doorstep']) {
      assert.ok(existsSync(pkg.path(p)), `${p} is in the package`);
    }
    const modules = readdirSync(pkg.path('/usr/lib/doorstep/node_modules'));
    for (const prod of ['commander', 'yaml', 'zod', '@nats-io']) assert.ok(modules.includes(prod), `${prod} is shipped`);
    for (const dev of ['typescript', 'node-gyp', '@types']) assert.ok(!modules.includes(dev), `${dev} (a dev dependency) is not`);
  });

  it('runs from the launcher: validate the example policy, and the agent\'s config file is valid', () => {
    const out = execFileSync(pkg.launcher, ['validate', pkg.path('/etc/doorstep/policy')], { encoding: 'utf8' });
    assert.match(out, /valid|ok|version/i);
    // (its state dir in the unpacked root: the agent prepares it before it checks interfaces)
    const r = pkg.cli(['agent', '--config', pkg.path('/etc/doorstep/agent.yaml'), '--interface', 'no-such-if0', '--state-dir', pkg.path('/var/lib/doorstep')]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /DS_E_NO_INTERFACE/, 'the config file parsed; the agent stopped at the interface check');
  });

  it('has a man page that lists every command', () => {
    const man = gunzipSync(readFileSync(pkg.path('/usr/share/man/man1/doorstep.1.gz'))).toString();
    const headings = [...man.matchAll(/^\.SS "(.*)"$/gm)].map((m) => m[1]!.replace(/\\-/g, '-'));
    const commands = registeredCommands();
    assert.ok(commands.length >= 15, `the source registers the commands (${commands.join(' ')})`);
    for (const c of commands) assert.ok(headings.some((h) => h.split(' ').at(-1) === c), `doorstep(1) has a section for ${c}: ${headings.join(', ')}`);
    assert.match(man, /^\.B \\-\\-detach\\-on\\-exit$/m, 'options are listed');
  });

  it('completes commands, subcommands and options in bash', () => {
    const complete = (line: string) => {
      const words = line.split(' ');
      const script = `source ${pkg.path('/usr/share/bash-completion/completions/doorstep')}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _doorstep; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return execFileSync('bash', ['-c', script], { encoding: 'utf8' }).trim().split('\n');
    };
    assert.deepEqual(complete('doorstep fl'), ['fleet']);
    assert.deepEqual(complete('doorstep fleet st'), ['status']);
    assert.deepEqual(complete('doorstep agent --pin'), ['--pin-root']);
    assert.deepEqual(complete('doorstep fleet status --status-b'), ['--status-bucket']);
  });

  it('has a unit that systemd-analyze verifies, and scores its exposure', () => {
    // verify resolves the unit's commands in the root: the package's, and the host's /bin/kill
    mkdirSync(pkg.path('/bin'), { recursive: true });
    copyFileSync('/bin/kill', pkg.path('/bin/kill'));
    const unit = pkg.path('/lib/systemd/system/doorstep.service');
    execFileSync('systemd-analyze', ['verify', '--man=no', `--root=${pkg.root}`, unit], { stdio: 'pipe' });
    const security = execFileSync('systemd-analyze', ['security', '--offline=true', unit], { encoding: 'utf8' });
    const score = /Overall exposure level for doorstep\.service: ([\d.]+) (\w+)/.exec(security);
    assert.ok(score, security);
    console.log(`systemd-analyze security: ${score[1]} ${score[2]}`);
    assert.ok(Number(score[1]) < 5, `exposure ${score[1]}: the hardening is in force`);
    for (const cap of ['CAP_SYS_MODULE', 'CAP_SYS_TIME', 'CAP_SYS_PTRACE', 'CAP_SYS_RAWIO']) {
      assert.ok(!new RegExp(`CapabilityBoundingSet=\\S*${cap}`).test(security.split('\n').filter((l) => l.startsWith('✗')).join('\n')), `${cap} is not in the bounding set`);
    }
  });
});
