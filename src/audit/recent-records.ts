// SPDX-License-Identifier: Apache-2.0
// A sink that keeps the last N records in memory, so `doorstep observe --last N` and `--since`
// can answer without reading the audit file back. Bounded: the oldest records fall out.
import type { AuditRecord, AuditSink } from './records.js';

export class RecentRecords implements AuditSink {
  private readonly ring: (AuditRecord | undefined)[];
  private next = 0;
  private size = 0;

  constructor(readonly capacity = 10_000) {
    this.ring = new Array(capacity);
  }

  write(records: readonly AuditRecord[]): void {
    // only the newest `capacity` of a large batch can survive anyway
    for (let i = Math.max(0, records.length - this.capacity); i < records.length; i++) {
      this.ring[this.next] = records[i];
      this.next = (this.next + 1) % this.capacity;
      if (this.size < this.capacity) this.size++;
    }
  }

  /** The kept records, oldest first, that pass `keep`; at most the newest `last` of them. */
  select(keep: (r: AuditRecord) => boolean, last = Infinity): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let i = 0; i < this.size && out.length < last; i++) {
      const r = this.ring[(this.next - 1 - i + this.capacity) % this.capacity];
      if (r && keep(r)) out.push(r);
    }
    return out.reverse();
  }

  async close(): Promise<void> {}
}
