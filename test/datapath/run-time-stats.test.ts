// SPDX-License-Identifier: Apache-2.0
// The kernel's run-time statistics as bench:flood reads them (addon enableRunTimeStats, progInfo's
// runTimeNs and runCount): counted for every run of a program while the fd is open, and no longer
// once it is closed. The program is bench:flood's XDP_DROP floor, run by BPF_PROG_TEST_RUN only.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FloorProgram } from '../../bench/lib/floor.js';
import { addon } from '../../src/engine/native.js';
import { frame } from '../../src/engine/frame.js';

const XDP_DROP = 1;

describe('datapath: run-time statistics of a program', () => {
  it('counts every run while enabled, and stops when the fd is closed', () => {
    const native = addon();
    const floor = FloorProgram.open();
    const udp = frame({ src: '10.9.0.1', dst: '10.9.0.2', proto: 17, sport: 4000, dport: 9999, payload: 18 });
    // another holder (the sysctl kernel.bpf_stats_enabled, another process's fd) keeps them on after ours closes
    const onBefore = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1';
    try {
      const fd = floor.dropProgramFd;
      const statsFd = native.enableRunTimeStats();
      let closed = false;
      try {
        const before = native.progInfo(fd);
        const r = native.testRun(fd, udp, 1_000);
        assert.equal(r.retval, XDP_DROP);
        const after = native.progInfo(fd);
        assert.equal(after.runCount - before.runCount, 1_000);
        assert.ok(after.runTimeNs > before.runTimeNs, `run time ${before.runTimeNs} → ${after.runTimeNs} ns`);
        native.closeFd(statsFd);
        closed = true;
        native.testRun(fd, udp, 1_000);
        const off = native.progInfo(fd);
        if (!onBefore) assert.equal(off.runCount, after.runCount, 'runs counted after the statistics fd was closed');
      } finally {
        if (!closed) native.closeFd(statsFd);
      }
    } finally {
      floor.close();
    }
  });
});
