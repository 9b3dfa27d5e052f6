// SPDX-License-Identifier: Apache-2.0
// Preconditions of the kernel side: capabilities, BTF, a mounted bpffs, a named interface.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { DoorstepError } from '../errors.js';
import { checkCapabilities } from './capabilities.js';

export const BPFFS = '/sys/fs/bpf';

/** The engine's capabilities (./capabilities.ts), not root: a service runs it unprivileged. */
export function checkPrivileges(): void {
  checkCapabilities();
}

export function checkKernel(): void {
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new DoorstepError('DS_E_NO_BTF', 'this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)', {
      hint: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.10 or later)',
    });
  }
}

/** Mount bpffs at /sys/fs/bpf when nothing is mounted there (some hosts leave it unmounted). */
export function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => {
      const [, mountpoint, type] = line.split(' ');
      return mountpoint === BPFFS && type === 'bpf';
    });
  if (mounted) return;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS], { stdio: 'pipe' });
  } catch (cause) {
    throw new DoorstepError('DS_E_BPF_MAP', `bpffs is not mounted at ${BPFFS} and mounting it failed`, {
      hint: `mount it: mount -t bpf bpf ${BPFFS}`,
      cause,
    });
  }
}

const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** The interface's index in this process's network namespace. */
export function interfaceIndex(ifname: string, lookup: (name: string) => number): number {
  const ifindex = IFNAME.test(ifname) ? lookup(ifname) : 0;
  if (!ifindex) {
    throw new DoorstepError('DS_E_NO_INTERFACE', `no network interface named "${ifname}" in this network namespace`, {
      hint: 'list interfaces with `ip link`',
    });
  }
  return ifindex;
}
