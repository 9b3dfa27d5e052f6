// SPDX-License-Identifier: Apache-2.0
// The Debian package as an operator gets it: built by `npm run package` (again only when the
// build is newer than the .deb), unpacked with `dpkg -x` into a temporary root (the host's /usr
// is never touched), and its agent run the way doorstep.service runs it: the unit's ExecStart,
// its ExecStartPre/Post, its capability sets, as an unprivileged user (a free uid standing for
// the `doorstep` user) with ambient capabilities through setpriv. `remove()` deletes the root.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNetns } from '../../src/demo/topology.js';
import { packageRoot } from '../../src/paths.js';

export const debPath = (() => {
  const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  return join(packageRoot, 'build/deb', `doorstep_${version}_${arch}.deb`);
})();

/** Build the package unless the .deb is newer than everything it is built from. */
export function ensurePackage(): string {
  const inputs = ['dist/src', 'dist/scripts', 'build/Release/doorstep.node', 'bpf/build/engine.bpf.o', 'packaging', 'scripts/package.sh'].flatMap((f) => filesUnder(join(packageRoot, f)));
  const stale = !existsSync(debPath) || inputs.some((f) => statSync(f).mtimeMs > statSync(debPath).mtimeMs);
  if (stale) execFileSync('bash', [join(packageRoot, 'scripts/package.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  return debPath;
}

function filesUnder(path: string): string[] {
  return statSync(path).isDirectory() ? readdirSync(path).flatMap((f) => filesUnder(join(path, f))) : [path];
}

/** The unit's settings as systemd reads them: `Key=value` lines, a key given twice keeps both. */
export function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

/** CAP_NET_ADMIN → net_admin (setpriv's spelling). */
const setprivCap = (cap: string) => cap.replace(/^CAP_/, '').toLowerCase();

export class InstalledPackage {
  readonly root = mkdtempSync(join(tmpdir(), 'doorstep-h20-root-'));
  readonly launcher: string;
  readonly unit: Map<string, string[]>;
  /** The unprivileged user the agent runs as: a uid no account has. */
  readonly uid: number;

  constructor(deb = ensurePackage()) {
    chmodSync(this.root, 0o755); // the unprivileged agent reads its program from here
    execFileSync('dpkg', ['-x', deb, this.root]);
    this.launcher = join(this.root, 'usr/bin/doorstep');
    this.unit = unitSettings(readFileSync(this.path('/lib/systemd/system/doorstep.service'), 'utf8'));
    this.uid = freeUid();
  }

  /** A path of the package, inside the unpacked root. */
  path(p: string): string {
    return join(this.root, p);
  }

  setting(key: string): string {
    const v = this.unit.get(key);
    if (!v || v.length !== 1) throw new Error(`doorstep.service: expected one ${key}=, found ${v?.length ?? 0}`);
    return v[0]!;
  }

  /** The unit's capabilities, checked to be the same in both sets. */
  capabilities(): string[] {
    const ambient = this.setting('AmbientCapabilities').split(/\s+/);
    const bounding = this.setting('CapabilityBoundingSet').split(/\s+/);
    if (ambient.join() !== bounding.join()) throw new Error(`doorstep.service: ambient ${ambient} and bounding ${bounding} differ`);
    return ambient;
  }

  /** A unit command line (ExecStart=, ExecStartPre=…) with /usr paths pointing into the root; `+` stripped. */
  command(key: string): { privileged: boolean; argv: string[] } {
    const raw = this.setting(key);
    const privileged = raw.startsWith('+');
    const argv = raw.replace(/^[+]/, '').split(/\s+/).map((w) => (w.startsWith('/usr/') ? this.path(w) : w));
    return { privileged, argv };
  }

  /** `setpriv` arguments that make a process what the unit makes the agent: the user, only `caps`. */
  asService(caps: string[] = this.capabilities()): string[] {
    const set = caps.length ? `-all,${caps.map((c) => `+${setprivCap(c)}`).join(',')}` : '-all';
    return [
      'setpriv', `--reuid=${this.uid}`, `--regid=${this.uid}`, '--clear-groups',
      `--inh-caps=${set}`, `--bounding-set=${set}`, ...(caps.length ? [`--ambient-caps=${caps.map((c) => `+${setprivCap(c)}`).join(',')}`] : []),
      '--no-new-privs', 'env', '-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, 'HOME=/nonexistent',
    ];
  }

  /** The unit's ExecStart plus `extra` (flags override the config file), in `ns`, as the service. */
  spawnAgent(ns: string, extra: string[], caps?: string[]): ChildProcess {
    const { argv } = this.command('ExecStart');
    const withConfig = argv.map((w) => (w.startsWith('/etc/') ? this.path(w) : w));
    const [cmd, args] = inNetns(ns, this.asService(caps)[0]!, [...this.asService(caps).slice(1), ...withConfig, ...extra]);
    return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** ExecStartPre (with full privileges, as its `+` says), with the test's pin root and our uid. */
  prepare(pinRoot: string): void {
    const { privileged, argv } = this.command('ExecStartPre');
    if (!privileged) throw new Error('doorstep.service: ExecStartPre is expected to run privileged (+)');
    execFileSync(argv[0]!, [pinRoot, String(this.uid)], { stdio: 'pipe' });
  }

  /** ExecStartPost (the readiness wait), as the service, in `ns`, against `socket`. */
  waitReady(ns: string, socket: string): void {
    const { argv } = this.command('ExecStartPost');
    const [cmd, args] = inNetns(ns, this.asService()[0]!, [...this.asService().slice(1), argv[0]!, socket, argv[2] ?? '60']);
    execFileSync(cmd, args, { stdio: 'pipe', timeout: 90_000 });
  }

  /** The installed CLI, as root (the socket is the service user's, 0600; root passes). */
  cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
    try {
      const stdout = execFileSync(this.launcher, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
      return { code: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status: number | null; stdout: string; stderr: string };
      return { code: e.status, stdout: e.stdout, stderr: e.stderr };
    }
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A uid in the system range that no account holds (the test's stand-in for `doorstep`). */
function freeUid(): number {
  const taken = new Set(readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => Number(l.split(':')[2])));
  for (let i = 0; i < 1000; i++) {
    const uid = 61_000 + Math.floor(Math.random() * 3000);
    if (!taken.has(uid)) return uid;
  }
  throw new Error('no free uid');
}
