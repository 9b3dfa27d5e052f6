// SPDX-License-Identifier: Apache-2.0
// Traffic generation and foreign programs for benchmarks and tests: `packetFlood` (AF_PACKET,
// sendmmsg, qdisc bypass, on its own thread; native/src/flood.cc) and a test run of a program
// some other tool loaded (by id). Nothing in the agent uses this module.
import { addon, type PacketFloodOptions, type PacketFloodResult } from '../../src/engine/native.js';
import { runEach, runRepeat, type RunTiming } from './floor.js';

export type { PacketFloodOptions, PacketFloodResult };

/** Send `count` frames (bounded by `maxSeconds`) from `ifname`, off the event loop. */
export function packetFlood(options: PacketFloodOptions): Promise<PacketFloodResult> {
  return addon().packetFlood(options);
}

/** A loaded program, found by id (e.g. one `xdp-filter load` attached), for BPF_PROG_TEST_RUN. */
export class ForeignProgram {
  private constructor(readonly fd: number) {}

  static byId(id: number): ForeignProgram {
    return new ForeignProgram(addon().progFdById(id));
  }

  get name(): string {
    return addon().progInfo(this.fd).name;
  }

  runEach(frames: Buffer, frameSize: number, count: number): RunTiming {
    return runEach(this.fd, frames, frameSize, count);
  }

  runRepeat(frame: Buffer, repeat: number): RunTiming {
    return runRepeat(this.fd, frame, repeat);
  }

  close(): void {
    addon().closeFd(this.fd);
  }
}

/** A map another process pinned (an agent's ds_sessions, xdp-filter's filter_ipv4), opened by path. */
export class PinnedMap {
  private constructor(
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
  ) {}

  /** `perCpuValues`: the map is per-CPU, so a value is this many slots of valueSize rounded up to 8. */
  static open(path: string, perCpuValues = false): PinnedMap {
    const native = addon();
    const fd = native.objGet(path);
    const info = native.mapInfo(fd);
    const valueSize = perCpuValues ? Math.ceil(info.valueSize / 8) * 8 * native.numPossibleCpus() : info.valueSize;
    return new PinnedMap(fd, info.keySize, valueSize);
  }

  has(key: Buffer): boolean {
    return addon().mapLookup(this.fd, key, Buffer.alloc(this.valueSize));
  }

  update(key: Buffer, value: Buffer): void {
    addon().mapUpdate(this.fd, key, value);
  }

  delete(key: Buffer): boolean {
    return addon().mapDelete(this.fd, key);
  }

  /** `count` entries, keys and values back to back, in kernel batches. */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    addon().mapUpdateBatch(this.fd, keys, values, count, this.keySize, this.valueSize);
  }

  maxEntries(): number {
    return addon().mapInfo(this.fd).maxEntries;
  }

  close(): void {
    addon().closeFd(this.fd);
  }
}
