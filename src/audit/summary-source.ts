// SPDX-License-Identifier: Apache-2.0
// What the audit pipeline's summaries read: the sessions the datapath marked as having traffic in
// a summary epoch (docs/audit.md, "summary"), behind one interface with two implementations: the
// engine's (src/engine/summary-marks.ts: ds_settings.summary_epoch, the ds_dirty ring, the
// session caches) and MemorySessionCache below, an in-memory cache that marks sessions exactly
// as bpf/include/session.h does (the tests' kernel, and the marks' specification in TypeScript).
// epochTraffic() is the one reading of a session's marks that both sides rely on.
import { MarkFlag } from '../abi/generated.js';
import type { SessionKey, SessionValue } from '../abi/records.js';

/** A session-cache entry. */
export interface SessionEntry {
  key: SessionKey;
  value: SessionValue;
}

/** A session marked in a summary epoch (struct ds_dirty). */
export interface DirtyRecord {
  epoch: number;
  key: SessionKey;
  /** The key's bytes as a string: equal keys, equal ids. */
  id: string;
  /** The key as the datapath wrote it (the engine looks it up as is). */
  raw?: Uint8Array;
  /** The flow's digest as the datapath wrote it (its key in the denied-session cache). */
  digest?: Uint8Array;
}

export interface SummarySource {
  /** Start the next summary epoch: the one that ends now (finished) and the new one (current). */
  advance(): { finished: number; current: number };
  /** Marked sessions whose record could not be queued, ever (monotonic; the ring was full). */
  lost(): number;
  /** Up to `max` records of marked sessions, oldest first, consumed. */
  drain(max: number): DirtyRecord[];
  /** The cached values of these sessions' keys, in one call (null: no longer cached). */
  lookup(records: readonly Pick<DirtyRecord, 'key' | 'raw'>[]): (SessionValue | null)[];
  /** Every cached session, a slice at a time (the fallback after lost records). */
  scan(): AsyncIterable<readonly SessionEntry[]>;
}

/** A session's traffic in one summary epoch, from its marks. */
export interface EpochTraffic {
  packets: number;
  bytes: number;
  /** Since the session's first packet, at the end of that epoch. */
  totalPackets: number;
  totalBytes: number;
  /** True when the epoch counts from the session's first packet (its first mark). */
  fromFirstPacket: boolean;
}

/**
 * The traffic session value `v` had in summary epoch `epoch`, or null when its marks no longer
 * tell (it was not marked in that epoch, or has been marked again since, in a later epoch than the
 * next). While the epoch is its last mark: the counters minus the base; once marked again in the
 * next epoch: that base minus the previous one.
 */
export function epochTraffic(v: SessionValue, epoch: number): EpochTraffic | null {
  const mark = v.mark ?? 0;
  let end: [number, number];
  let start: [number, number];
  if (mark === epoch) {
    end = [v.packets, v.bytes];
    start = [v.basePackets ?? 0, v.baseBytes ?? 0];
  } else if (mark === (epoch + 1) >>> 0 && ((v.markFlags ?? 0) & MarkFlag.ADJACENT) !== 0) {
    end = [v.basePackets ?? 0, v.baseBytes ?? 0];
    start = [v.prevPackets ?? 0, v.prevBytes ?? 0];
  } else {
    return null;
  }
  if (epoch === 0) return null;
  return { packets: end[0] - start[0], bytes: end[1] - start[1], totalPackets: end[0], totalBytes: end[1], fromFirstPacket: start[0] === 0 };
}

const hex = (k: SessionKey): string =>
  `${k.family}|${k.ifindex}|${k.vlanOuter}|${k.vlanInner}|${k.proto}|${k.sport}|${k.dport}|${Buffer.from(k.src).toString('hex')}|${Buffer.from(k.dst).toString('hex')}`;

/**
 * A session cache in memory that marks sessions as the datapath does (bpf/include/session.h:
 * ds_session_touch, ds_session_mark, ds_session_carry): create() is a new session's first packet
 * (unmarked), touch() any later packet. `ringCapacity` bounds the records not yet drained, like
 * ds_dirty; past it they are counted lost.
 */
export class MemorySessionCache implements SummarySource {
  epoch = 0;
  private readonly entries = new Map<string, SessionEntry>();
  private ring: DirtyRecord[] = [];
  private lostCount = 0;
  /** lookup() calls and keys looked up (tests: an idle session costs no lookup). */
  lookups = { calls: 0, keys: 0 };

  constructor(private readonly ringCapacity = Infinity) {}

  /** A new session (its first packet): cached unmarked. */
  create(key: SessionKey, value: Partial<SessionValue> & { firstSeenNs: bigint }, len = 100): SessionValue {
    const v: SessionValue = {
      lastSeenNs: value.firstSeenNs,
      packets: 1,
      bytes: len,
      rule: 1,
      generation: 1,
      action: 1,
      reason: 1,
      flags: 1,
      ...value,
      mark: 0,
      markFlags: 0,
      basePackets: 0,
      baseBytes: 0,
      prevPackets: 0,
      prevBytes: 0,
    };
    this.entries.set(hex(key), { key, value: v });
    return v;
  }

  /** `packets` more packets of `len` bytes on a cached session. */
  touch(key: SessionKey, packets = 1, len = 100, nowNs?: bigint): void {
    const e = this.entries.get(hex(key));
    if (!e) throw new Error('no such session');
    const s = e.value;
    for (let i = 0; i < packets; i++) {
      if (s.mark !== this.epoch) this.mark(key, s);
      s.packets++;
      s.bytes += len;
      if (nowNs !== undefined) s.lastSeenNs = nowNs;
    }
  }

  private mark(key: SessionKey, s: SessionValue): void {
    s.markFlags = s.mark && ((s.mark + 1) >>> 0) === this.epoch ? MarkFlag.ADJACENT : 0;
    s.prevPackets = s.basePackets;
    s.prevBytes = s.baseBytes;
    if (s.mark) {
      s.basePackets = s.packets;
      s.baseBytes = s.bytes;
    }
    s.mark = this.epoch;
    if (!this.epoch) return;
    if (this.ring.length >= this.ringCapacity) this.lostCount++;
    else this.ring.push({ epoch: this.epoch, key, id: hex(key) });
  }

  /** Evict a session. */
  remove(key: SessionKey): void {
    this.entries.delete(hex(key));
  }

  get size(): number {
    return this.entries.size;
  }

  advance(): { finished: number; current: number } {
    const finished = this.epoch;
    this.epoch = (finished + 1) >>> 0 || 1;
    return { finished, current: this.epoch };
  }

  lost(): number {
    return this.lostCount;
  }

  drain(max: number): DirtyRecord[] {
    return this.ring.splice(0, max);
  }

  lookup(records: readonly Pick<DirtyRecord, 'key'>[]): (SessionValue | null)[] {
    this.lookups.calls++;
    this.lookups.keys += records.length;
    return records.map(({ key }) => {
      const e = this.entries.get(hex(key));
      return e ? { ...e.value } : null;
    });
  }

  /** The cached value of one session (tests). */
  get(key: SessionKey): SessionValue | undefined {
    const e = this.entries.get(hex(key));
    return e && { ...e.value };
  }

  async *scan(): AsyncIterable<readonly SessionEntry[]> {
    const all = [...this.entries.values()].map((e) => ({ key: e.key, value: { ...e.value } }));
    for (let i = 0; i < all.length; i += 1000) {
      yield all.slice(i, i + 1000);
      await new Promise((r) => setImmediate(r));
    }
  }
}
