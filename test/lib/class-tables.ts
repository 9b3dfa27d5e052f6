// SPDX-License-Identifier: Apache-2.0
// Invariants every ClassTables must keep, whatever the policy: shared by the class-table tests
// and their equivalence test. Owns nothing.
import assert from 'node:assert/strict';
import { SVC_ENTRIES, type ClassTables } from '../../src/policy/ir/ir.js';

/** Invariants every ClassTables must keep, whatever the policy. */
export function assertWellFormed(tables: ClassTables): void {
  let next = 0;
  tables.svc.forEach((run, i) => {
    assert.equal(run.lo, next, 'svc runs are contiguous');
    assert.ok(run.hi >= run.lo);
    if (i > 0) assert.notEqual(run.cls, tables.svc[i - 1]!.cls, 'adjacent runs of one class are merged');
    next = run.hi + 1;
  });
  assert.equal(next, SVC_ENTRIES, 'svc runs cover the whole index space');
  for (const table of [tables.src4, tables.src6, tables.dst4, tables.dst6]) {
    assert.equal(new Set(table.map((e) => e.cidr.text)).size, table.length, 'one entry per distinct prefix');
    assert.ok(table.every((e) => e.cls > 0));
  }
  assert.equal(new Set(tables.target.map((e) => `${e.dst},${e.svc}`)).size, tables.target.length);
  assert.equal(new Set(tables.verdict.map((e) => `${e.src},${e.target}`)).size, tables.verdict.length);
  assert.ok(tables.target.every((e) => e.target > 0 || e.scoped > 0), 'an entry leads somewhere');
  const scoped = new Set(tables.target.map((e) => e.scoped).filter((x) => x !== 0));
  assert.equal(new Set(tables.tenantTarget.map((e) => `${e.scoped},${e.tenant}`)).size, tables.tenantTarget.length);
  assert.ok(tables.tenantTarget.every((e) => scoped.has(e.scoped) && e.tenant > 0 && e.target > 0), 'tenant targets refine scoped targets');
  assert.equal(new Set(tables.tenants.map((e) => e.id)).size, tables.tenants.length, 'one entry per tenant');
  if (tables.tenants.length === 0) assert.deepEqual([scoped.size, tables.tenantTarget.length, tables.stats.tenantClasses], [0, 0, 0], 'no tenants, no tenant lookups');
}
