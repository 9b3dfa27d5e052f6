// SPDX-License-Identifier: Apache-2.0
// The policy's version history as this agent saw it: an audit sink keeping the `policy` records
// (installed, adopted, restored, rejected), newest first, bounded. Kept apart from the recent
// records so a flood of sessions never pushes them out.
import { formatProblem } from '../errors.js';
import type { AuditRecord, AuditSink } from '../audit/records.js';
import type { PolicyEntry } from './views.js';

export class PolicyHistory implements AuditSink {
  private readonly entries: PolicyEntry[] = [];

  constructor(readonly capacity = 200) {}

  write(records: readonly AuditRecord[]): void {
    for (const r of records) {
      if (r.type !== 'policy') continue;
      this.entries.unshift({
        time: r.time,
        status: r.status,
        source: r.source,
        ...(r.policyVersion !== undefined && { version: r.policyVersion }),
        ...(r.generation !== undefined && { generation: r.generation }),
        ...(r.rules !== undefined && { rules: r.rules }),
        ...(r.problems && { problems: r.problems.map((p) => formatProblem(p as Parameters<typeof formatProblem>[0])) }),
      });
      if (this.entries.length > this.capacity) this.entries.pop();
    }
  }

  read(): PolicyEntry[] {
    return [...this.entries];
  }

  async close(): Promise<void> {}
}
