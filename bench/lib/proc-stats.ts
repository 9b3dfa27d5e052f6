// SPDX-License-Identifier: Apache-2.0
// A process's CPU time and resident memory, from /proc, for the benchmarks that watch an agent.
import { readFileSync } from 'node:fs';

/** /proc/PID/stat counts CPU time in these. */
export const USER_HZ = 100;

/** CPU time of a process (all its threads) so far: utime + stime, in ns. */
export function processCpuNs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e9) / USER_HZ;
}

/** Resident memory of a process now (VmRSS), in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}
