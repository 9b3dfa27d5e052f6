// SPDX-License-Identifier: Apache-2.0
// The engine as the audit pipeline's SummarySource: the summary epoch in ds_settings, the keys
// of marked sessions from the ds_dirty ring, one native call to look many of them up, and a
// sliced walk of the caches for the fallback after the ring overflowed.
import { decodeSessionKey, decodeSessionValue, SESSION_KEY_SIZE, SESSION_VALUE_SIZE, type SessionKey, type SessionValue, encodeSessionKey } from '../abi/records.js';
import { readField } from '../abi/codec.js';
import type { DirtyRecord, SessionEntry, SummarySource } from '../audit/summary-source.js';
import { DIRTY_SIZE, type Engine } from './engine.js';

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
        key: decodeSessionKey(records, at),
        epoch: readField('ds_dirty', records, at, 'epoch'),
        id: records.toString('latin1', at, at + SESSION_KEY_SIZE),
      };
    }
    return out;
  }

  lookup(keys: readonly SessionKey[]): (SessionValue | null)[] {
    const buf = Buffer.allocUnsafe(keys.length * SESSION_KEY_SIZE);
    keys.forEach((k, i) => encodeSessionKey(k).copy(buf, i * SESSION_KEY_SIZE));
    const { values, found } = this.engine.lookupSessions(buf, keys.length);
    return keys.map((_, i) => (found[i] ? decodeSessionValue(values, i * SESSION_VALUE_SIZE) : null));
  }

  scan(): AsyncIterable<readonly SessionEntry[]> {
    return this.engine.sessionSlices();
  }
}
