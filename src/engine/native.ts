// SPDX-License-Identifier: Apache-2.0
// The typed face of the native addon (native/). Only src/engine/ (and the bench loaders of
// bench/lib/) import this module.
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { DoorstepError } from '../errors.js';
import { addonPath } from '../paths.js';

/** Kernel map types doorstep needs to tell apart (uapi enum bpf_map_type). */
export const BPF_MAP_TYPE_ARRAY = 2;

export interface MapSpec {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/** The BTF names of a map's key and value types (a typedef keeps its own: __u32); null where there are none. */
export interface MapBtfTypes {
  key: string | null;
  value: string | null;
}

export interface BpfObjectHandle {
  load(): void;
  mapNames(): string[];
  mapFd(name: string): number;
  mapSpec(name: string): MapSpec & { keyType: string | null; valueType: string | null };
  innerSpec(name: string): MapSpec;
  setMaxEntries(name: string, maxEntries: number): void;
  reuseMapFd(name: string, fd: number): void;
  programFd(name: string): number;
  close(): void;
}

export interface RingBufferReaderHandle {
  close(): void;
  ref(): void;
  unref(): void;
}

/** An on-demand consumer of a BPF ring buffer (native/src/drain.cc). */
export interface RingDrainHandle {
  /** Up to maxRecords records, each cut or zero-padded to recordSize bytes, consumed. */
  drain(maxRecords: number, recordSize: number): { records: Buffer; count: number };
  /** Bytes written and not yet consumed. */
  pending(): number;
  close(): void;
}

/** packetFlood's options: see native/src/flood.cc. */
export interface PacketFloodOptions {
  /** /run/netns/NAME to send from (the sending thread alone enters it); absent: this namespace. */
  netns?: string;
  ifname: string;
  /** Template frames, back to back, each `frameSize` bytes; sent round robin. */
  frames: Buffer;
  frameSize: number;
  count: number;
  maxSeconds?: number;
  /** Pin the sending thread to this CPU. */
  cpu?: number;
  /** The sending thread's nice value (19: it yields to anything else on its CPU). */
  nice?: number;
  /** Randomize the low bits of the IPv4 source (and the source port) per frame. */
  spoofBits?: number;
  /** Byte offset of the IPv4 source in the frame (26 for untagged Ethernet). */
  spoofOffset?: number;
}

export interface PacketFloodResult {
  sent: number;
  /** CPU time of the sending thread, user and system, in ns. */
  userNs: number;
  systemNs: number;
  wallNs: number;
  /** sendmmsg calls that answered ENOBUFS/EAGAIN and were repeated. */
  retries: number;
}

export interface Addon {
  BpfObject: new (path: string) => BpfObjectHandle;
  RingBufferReader: new (mapFd: number, onBatch: (batch: Buffer, count: number) => void) => RingBufferReaderHandle;
  mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, flags: number, innerFd?: number, name?: string): number;
  mapLookup(fd: number, key: Buffer, value: Buffer): boolean;
  RingDrain: new (mapFd: number) => RingDrainHandle;
  /** Many keys looked up in the maps `fds` (in order): found[i] = 1 + index of the map holding key i, 0 = none. */
  mapLookupMany(fds: number[], keys: Buffer, count: number, keySize: number, valueSize: number): { values: Buffer; found: Buffer };
  /** One slice of a map (BPF_MAP_LOOKUP_BATCH) from an opaque cursor; cursor null = the end; presentAt ≥ 0: only entries with a non-zero value byte there. */
  mapReadBatch(fd: number, keySize: number, valueSize: number, maxCount: number, cursor: Buffer | null, countOnly?: boolean, presentAt?: number): { keys: Buffer; values: Buffer; count: number; cursor: Buffer | null };
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapUpdateFd(fd: number, key: Buffer, innerFd: number): void;
  /** Map-in-map writes in parallel ([outerFd, key, innerFd or -1 to delete]). */
  mapUpdateFdMany(writes: [number, Buffer, number][]): void;
  /** mapUpdateFdMany on a libuv pool thread: the event loop does not wait for the grace periods. Keep the inner fds open until it settles. */
  mapUpdateFdManyAsync(writes: [number, Buffer, number][]): Promise<void>;
  mapDelete(fd: number, key: Buffer): boolean;
  /** skipZeroValues: leave out all-zero values (only for a fresh array map, where every slot already reads as zero). */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, keySize: number, valueSize: number, skipZeroValues?: boolean): void;
  /**
   * Zero bytes [offset, offset + width) of every value of an ARRAY map with u32 keys (a batch read,
   * then a batch write); with `summaryFd` (an ARRAY of u64 words), then write its summary: bit k
   * of word k / 64 set where entry k is not all zero.
   */
  mapClearBytes(fd: number, valueSize: number, entries: number, offset: number, width: number, summaryFd?: number): void;
  /** mapClearBytes on a thread of the addon's; the caller keeps the fds open until it settles. */
  mapClearBytesAsync(fd: number, valueSize: number, entries: number, offset: number, width: number, summaryFd?: number): Promise<void>;
  /** mapUpdateBatch on a thread of the addon's; the caller keeps `fd` open until it settles. */
  mapUpdateBatchAsync(fd: number, keys: Buffer, values: Buffer, count: number, keySize: number, valueSize: number, skipZeroValues?: boolean): Promise<void>;
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): boolean;
  mapDump(fd: number, keySize: number, valueSize: number, maxCount: number, after?: Buffer | null): { keys: Buffer; values: Buffer; count: number };
  /** mapDump on a pool thread (with its own descriptor of the map); with `skipZero`, only the entries whose value is not all zero bytes (`count` of the `walked`). */
  mapDumpAsync(fd: number, keySize: number, valueSize: number, maxCount: number, after?: Buffer | null, skipZero?: boolean): Promise<{ keys: Buffer; values: Buffer; count: number; walked: number }>;
  /** The entries (those whose value's byte `presentAt` is not zero, when given), counted on a pool thread (with its own descriptor of the map). */
  mapCountAsync(fd: number, keySize: number, valueSize: number, maxCount: number, presentAt?: number): Promise<number>;
  mapFreeze(fd: number): void;
  mapInfo(fd: number): MapSpec & { id: number; name: string };
  /** The key and value type names in a live map's kernel BTF (null where it has none). */
  mapBtfTypes(fd: number): MapBtfTypes;
  mapFdById(id: number): number;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  closeFd(fd: number): void;
  xdpAttach(progFd: number, ifindex: number, mode: 'native' | 'generic'): number;
  linkDetach(linkFd: number): void;
  xdpQuery(ifindex: number): { mode: string; progId: number };
  progFdById(id: number): number;
  progInfo(fd: number): { id: number; name: string; verifiedInsns: number; runTimeNs: number; runCount: number };
  /** BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): programs' run time is counted until the returned fd is closed. */
  enableRunTimeStats(): number;
  linkInfo(fd: number): { id: number; progId: number; ifindex: number };
  testRun(progFd: number, frame: Buffer, repeat?: number, ingressIfindex?: number): { retval: number; duration: number; data: Buffer };
  testRunEach(progFd: number, frames: Buffer, frameSize: number, count: number): { retvals: Buffer; duration: number };
  numPossibleCpus(): number;
  packetFlood(options: PacketFloodOptions): Promise<PacketFloodResult>;
  ifNameToIndex(name: string): number;
}

let cached: Addon | undefined;

export function addon(): Addon {
  if (cached) return cached;
  try {
    cached = createRequire(import.meta.url)(addonPath) as Addon;
  } catch (cause) {
    throw new DoorstepError('DS_E_NATIVE', `cannot load the native addon at ${addonPath}`, {
      hint: 'run scripts/bootstrap.sh (or npm run build:native) to build it',
      cause,
    });
  }
  return cached;
}

/** errno name (EPERM, ENOENT, …) of an error thrown by the addon, if it carries one. */
export function errnoName(err: unknown): string | undefined {
  const n = (err as { errno?: unknown }).errno;
  if (typeof n !== 'number') return undefined;
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0];
}
