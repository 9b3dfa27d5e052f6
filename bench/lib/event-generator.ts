// SPDX-License-Identifier: Apache-2.0
// The audit benchmark's event source (bpf/bench_events.bpf.c), loaded beside an engine whose maps
// are pinned, reusing all of them: each run writes one session event into that engine's ring
// buffer and counters through the engine's own ds_emit. So `npm run bench:audit` measures the real
// reader (Engine.onEvents → AuditPipeline → sinks). Never attached; benchmark and tests only.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DoorstepError } from '../../src/errors.js';
import { packageRoot } from '../../src/paths.js';
import { checkKernel, checkPrivileges } from '../../src/engine/bpffs.js';
import { addon, type BpfObjectHandle } from '../../src/engine/native.js';

export const eventGeneratorObjectPath = join(packageRoot, 'bpf/build/bench_events.bpf.o');
const PROGRAM = 'ds_bench_events';
/** Events per run: the frame's first two bytes (u16) carry the count. */
const MAX_PER_RUN = 65_535;

export class EventGenerator {
  private readonly frame = Buffer.alloc(64);

  private constructor(private readonly obj: BpfObjectHandle) {}

  /** Load the generator onto the maps an engine pinned under `pinRoot` (Engine.open({ pinRoot })). */
  static open(pinRoot: string): EventGenerator {
    checkPrivileges();
    checkKernel();
    if (!existsSync(eventGeneratorObjectPath)) {
      throw new DoorstepError('DS_E_BPF_OBJECT', `the benchmark event source ${eventGeneratorObjectPath} does not exist`, { hint: 'build it with npm run build:bpf' });
    }
    const native = addon();
    const obj = new native.BpfObject(eventGeneratorObjectPath);
    try {
      const mapDir = join(pinRoot, 'maps');
      for (const name of obj.mapNames().filter((n) => n.startsWith('ds_'))) {
        const pin = join(mapDir, name);
        if (!existsSync(pin)) throw new DoorstepError('DS_E_BPF_MAP', `no engine map pinned at ${pin}`, { hint: 'open the engine with this pinRoot first' });
        const fd = native.objGet(pin);
        try {
          obj.reuseMapFd(name, fd); // libbpf keeps its own duplicate
        } finally {
          native.closeFd(fd);
        }
      }
      obj.load();
      return new EventGenerator(obj);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Emit `count` events from the calling CPU: BPF_PROG_TEST_RUN runs of up to 65,535 events each
   * (repeat 1; a run with repeat > 1 costs milliseconds of XDP dispatcher updates). Returns the
   * kernel-measured nanoseconds.
   */
  emit(count: number, ingressIfindex = 1): number {
    const native = addon();
    const fd = this.obj.programFd(PROGRAM);
    let ns = 0;
    for (let left = count; left > 0; ) {
      const n = Math.min(left, MAX_PER_RUN);
      this.frame.writeUInt16LE(n, 0);
      ns += native.testRun(fd, this.frame, 1, ingressIfindex).duration;
      left -= n;
    }
    return ns;
  }

  close(): void {
    this.obj.close();
  }
}
