// SPDX-License-Identifier: Apache-2.0
// Processes by network namespace, from /proc: which live processes run in a namespace (ours by
// default, or one at /run/netns/NAME), optionally only those whose command line matches; and
// ending them, SIGTERM first, SIGKILL after a bounded wait. Reads /proc, signals only the pids
// it is given.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a process gets to exit after SIGTERM before SIGKILL. */
const EXIT_WAIT_MS = 5000;
const POLL_MS = 20;

const inode = (path: string): number | undefined => {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
};

/** Running (not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Live processes in the network namespace at `netns` (default ours) whose argv `match` accepts; never this process. */
export function processesInNetns(netns = '/proc/self/ns/net', match: (argv: string[]) => boolean = () => true): number[] {
  const want = inode(netns);
  if (want === undefined) return [];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (inode(`/proc/${entry}/ns/net`) !== want) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.length === 0 || !match(argv) || !processAlive(Number(entry))) continue;
      out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

/** SIGTERM, up to EXIT_WAIT_MS for them to exit, then SIGKILL. */
export async function endProcesses(pids: readonly number[]): Promise<void> {
  signal(pids, 'SIGTERM');
  const deadline = Date.now() + EXIT_WAIT_MS;
  while (pids.some(processAlive) && Date.now() < deadline) await sleep(POLL_MS);
  signal(pids.filter(processAlive), 'SIGKILL');
}

/** endProcesses for synchronous callers (teardown on exit): blocks the thread while it waits. */
export function endProcessesSync(pids: readonly number[]): void {
  signal(pids, 'SIGTERM');
  const deadline = Date.now() + EXIT_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(processAlive) && Date.now() < deadline) Atomics.wait(pause, 0, 0, POLL_MS);
  signal(pids.filter(processAlive), 'SIGKILL');
}
