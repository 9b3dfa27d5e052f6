// SPDX-License-Identifier: Apache-2.0
// Flood records: from each reading of the engine's per-rule counters and held-back denied
// sessions (the flood budgets' counts, flood-accounting.ts), one `flood` record per rule that held
// sessions back since the previous reading, named like the rule's session records, with the
// sources estimated from the datapath's sketch and sample (flood-sources.ts). Keeps the previous
// reading as its baseline; pure otherwise. docs/audit.md ("flood").
import { FloodAccounting, type FloodReading } from './flood-accounting.js';
import { estimateDistinct, topSources } from './flood-sources.js';
import type { FloodRecord } from './records.js';
import type { Enricher } from './session-record-fast.js';

export class FloodRecords {
  private readonly accounting = new FloodAccounting();
  private readAt = '';

  constructor(
    private readonly enrich: Enricher,
    private readonly enforcer: string,
    private readonly now: () => Date,
  ) {}

  /**
   * One `flood` record per rule whose denied sessions the datapath's event budget held back since
   * the previous reading (and one for denies no counted rule decided), with the rule's packets and
   * bytes over the interval: with the rule's session records, an exact count of its denied sessions.
   */
  records(reading: FloodReading): FloodRecord[] {
    const to = this.now().toISOString();
    const from = this.readAt || to;
    this.readAt = to;
    const out: FloodRecord[] = [];
    for (const d of this.accounting.update(reading)) {
      const names = this.enrich.names(d.generation);
      const r: FloodRecord = {
        time: to,
        type: 'flood',
        enforcer: this.enforcer,
        interface: '*',
        rule: d.rule === null ? 'no-rule' : names.rule(d.rule),
        generation: d.generation,
        from,
        to,
        heldBack: d.held,
        packets: d.packets,
        bytes: d.bytes,
      };
      if (d.sketch) r.distinctSources = Math.min(d.held, Math.round(estimateDistinct(d.sketch)));
      const sources = topSources(reading.samples ?? [], d.generation, d.rule, d.held);
      if (sources.sampled > 0) {
        r.sampled = sources.sampled;
        r.topSources = sources.topSources;
        r.topPrefixes = sources.topPrefixes.map((p) => ({ prefix: p.source, sessions: p.sessions }));
      }
      const policy = d.rule === null ? undefined : names.policy(d.rule);
      if (policy !== undefined) r.policy = policy;
      if (names.version !== undefined) r.policyVersion = names.version;
      out.push(r);
    }
    this.enrich.newBatch();
    return out;
  }

}
