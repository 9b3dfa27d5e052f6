// SPDX-License-Identifier: Apache-2.0
// records-fast.ts against its specification, records.ts: readSessionKey and readSessionValue
// give what decodeSessionKey and decodeSessionValue give, and decodeEventBatch what decodeEvent
// gives, event by event, on random bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Layouts } from '../../src/abi/generated.js';
import { decodeEvent, decodeSessionKey, decodeSessionValue, EVENT_SIZE, SESSION_VALUE_SIZE } from '../../src/abi/records.js';
import { decodeEventBatch, readSessionKey, readSessionValue } from '../../src/abi/records-fast.js';

describe('ABI: fast session decoders', () => {
  it('readSessionKey and readSessionValue equal decodeSessionKey and decodeSessionValue on random bytes', () => {
    const buf = randomBytes(SESSION_VALUE_SIZE * 64 + 7);
    for (let at = 0; at + SESSION_VALUE_SIZE <= buf.length; at += 13) {
      assert.deepEqual({ ...readSessionKey(buf, at), src: [...readSessionKey(buf, at).src], dst: [...readSessionKey(buf, at).dst] }, { ...decodeSessionKey(buf, at), src: [...decodeSessionKey(buf, at).src], dst: [...decodeSessionKey(buf, at).dst] });
      // u64 counters beyond 2^53 read differently by construction (both lossy): keep them small
      const v = Buffer.from(buf.subarray(at, at + SESSION_VALUE_SIZE));
      for (const f of ['packets', 'bytes', 'base_packets', 'base_bytes', 'prev_packets', 'prev_bytes'] as const) v.fill(0, Layouts.ds_session_value.fields[f].offset + 6, Layouts.ds_session_value.fields[f].offset + 8);
      assert.deepEqual(readSessionValue(v), decodeSessionValue(v));
    }
  });

  it('decodeEventBatch gives the events decodeEvent gives, on random bytes', () => {
    const count = 500;
    const batch = Buffer.alloc(count * (4 + EVENT_SIZE));
    for (let i = 0; i < count; i++) {
      const at = i * (4 + EVENT_SIZE);
      batch.writeUInt32LE(EVENT_SIZE, at);
      randomBytes(EVENT_SIZE).copy(batch, at + 4);
      // a sequence number beyond 2^53 is read differently by construction (both lossy): keep it below
      batch.fill(0, at + 4 + Layouts.ds_event.fields.seq.offset + 6, at + 4 + Layouts.ds_event.fields.seq.offset + 8);
    }
    const fast = decodeEventBatch(batch, count);
    assert.equal(fast.length, count);
    const plain = (e: ReturnType<typeof decodeEvent>) => ({ family: e.family, src: [...e.src], dst: [...e.dst], ifindex: e.ifindex, vlanOuter: e.vlanOuter, vlanInner: e.vlanInner, proto: e.proto, sport: e.sport, dport: e.dport, timeNs: e.timeNs, seq: e.seq, rule: e.rule, generation: e.generation, cpu: e.cpu, len: e.len, action: e.action, reason: e.reason, kind: e.kind });
    for (let i = 0; i < count; i++) assert.deepEqual(plain(fast[i]!), plain(decodeEvent(batch, i * (4 + EVENT_SIZE) + 4)), `event ${i}`);
  });
});
