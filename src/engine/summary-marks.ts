// SPDX-License-Identifier: Apache-2.0
// The engine as the audit pipeline's SummarySource: the summary epoch in ds_settings, the keys
// of marked sessions from the ds_dirty ring, one native call to look many of them up, and a
// sliced walk of the caches for the fallback after the ring overflowed.
import { encodeSessionKey, SESSION_KEY_SIZE, SESSION_VALUE_SIZE, type SessionValue } from '../abi/records.js';
import { readSessionKey, readSessionValue } from '../abi/records-fast.js';
import { offsetOf } from '../abi/codec.js';
import type { DirtyRecord, SessionEntry, SummarySource } from '../audit/summary-source.js';
import { flowDigest } from './deny-buckets.js';
import { DIGEST_SIZE, DIRTY_SIZE, type Engine } from './engine-interface.js';

const EPOCH_AT = offsetOf('ds_dirty', 'epoch');
const DIGEST_AT = offsetOf('ds_dirty', 'digest');

export class EngineSummaryMarks implements SummarySource {
  constructor(private readonly engine: Engine) {}

  advance(): { finished: number; current: number } {
    const finished = this.engine.summaryEpoch();
    const current = (finished + 1) >>> 0 || 1;
    this.engine.setSummaryEpoch(current);
    return { finished, current };
  }

  lost(): number {
    return this.engine.stats().counters.DIRTY_LOST;
  }

  drain(max: number): DirtyRecord[] {
    const { records, count } = this.engine.drainDirty(max);
    const out: DirtyRecord[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = i * DIRTY_SIZE;
      out[i] = {
        key: readSessionKey(records, at),
        epoch: records.readUInt32LE(at + EPOCH_AT),
        id: records.toString('latin1', at, at + SESSION_KEY_SIZE),
        raw: records.subarray(at, at + SESSION_KEY_SIZE),
        digest: records.subarray(at + DIGEST_AT, at + DIGEST_AT + DIGEST_SIZE),
      };
    }
    return out;
  }

  lookup(records: readonly Pick<DirtyRecord, 'key' | 'raw' | 'digest'>[]): (SessionValue | null)[] {
    const n = records.length;
    const buf = Buffer.allocUnsafe(n * SESSION_KEY_SIZE);
    const digests = Buffer.alloc(n * DIGEST_SIZE);
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      const flow = r.raw ?? encodeSessionKey(r.key);
      buf.set(flow, i * SESSION_KEY_SIZE);
      // a record not from drain() comes without the datapath's digest: computed here
      digests.set(r.digest ?? flowDigest(Buffer.from(flow)), i * DIGEST_SIZE);
    }
    const { values, found } = this.engine.lookupSessions(buf, digests, n);
    const out: (SessionValue | null)[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = found[i] ? readSessionValue(values, i * SESSION_VALUE_SIZE) : null;
    return out;
  }

  scan(): AsyncIterable<readonly SessionEntry[]> {
    return this.engine.sessionSlices();
  }
}
