// SPDX-License-Identifier: Apache-2.0
// ControlRecordsSink: the records about the enforcer itself (policy versions and rejections, the
// agent's life, lost and flood counts) into a sink of their own, so that no volume of session
// records can rotate them away. The agent writes them beside each audit file, to FILE.control.
import type { AuditRecord, AuditSink } from './records.js';

/** The record types a flood of traffic must never push out of the audit trail. */
export function isControlRecord(r: AuditRecord): boolean {
  return r.type === 'policy' || r.type === 'agent' || r.type === 'lost' || r.type === 'flood';
}

/** Passes only control records to `inner` (which it owns: close() closes it). */
export class ControlRecordsSink implements AuditSink {
  readonly name: string;

  constructor(private readonly inner: AuditSink & { readonly dropped?: number }) {
    this.name = `${inner.name ?? 'file'}:control`;
  }

  /** What the inner sink dropped (reported as `lost` records, cause sink). */
  get dropped(): number {
    return this.inner.dropped ?? 0;
  }

  write(records: readonly AuditRecord[]): void {
    const control = records.filter(isControlRecord);
    if (control.length > 0) this.inner.write(control);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
