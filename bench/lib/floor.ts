// SPDX-License-Identifier: Apache-2.0
// The benchmark floors (bpf/floor.bpf.c): ds_xdp_floor, the engine's parser plus one hash lookup,
// loaded but never attached, so `npm run bench:datapath` can print the engine's cost as a ratio of
// it; ds_xdp_drop, every frame dropped at once (bench:flood attaches it with iproute2).
import { floorObjectPath } from '../../src/paths.js';
import { addon, type BpfObjectHandle } from '../../src/engine/native.js';
import { checkKernel, checkPrivileges } from '../../src/engine/bpffs.js';

export interface RunTiming {
  /** Kernel-measured nanoseconds per run (BPF_PROG_TEST_RUN's duration). */
  nsPerRun: number;
  runs: number;
}

/** Run `count` equal-sized frames once each through `progFd`. */
export function runEach(progFd: number, frames: Buffer, frameSize: number, count: number): RunTiming {
  const r = addon().testRunEach(progFd, frames, frameSize, count);
  return { nsPerRun: r.duration / count, runs: count };
}

/** Run one frame `repeat` times in the kernel's own loop. */
export function runRepeat(progFd: number, frame: Buffer, repeat: number): RunTiming {
  const r = addon().testRun(progFd, frame, repeat);
  return { nsPerRun: r.duration, runs: repeat };
}

export class FloorProgram {
  private constructor(private readonly obj: BpfObjectHandle) {}

  static open(): FloorProgram {
    checkPrivileges();
    checkKernel();
    const obj = new (addon().BpfObject)(floorObjectPath);
    obj.load();
    return new FloorProgram(obj);
  }

  get programFd(): number {
    return this.obj.programFd('ds_xdp_floor');
  }

  /** ds_xdp_drop: XDP_DROP at once. */
  get dropProgramFd(): number {
    return this.obj.programFd('ds_xdp_drop');
  }

  /** Store session keys (ds_session_key records, back to back) so the floor's lookup hits, as a cached engine lookup does. */
  prime(keys: Buffer, keySize: number, valueSize: number): void {
    const count = keys.length / keySize;
    addon().mapUpdateBatch(this.obj.mapFd('ds_floor'), keys, Buffer.alloc(count * valueSize), count, keySize, valueSize);
  }

  close(): void {
    this.obj.close();
  }
}
