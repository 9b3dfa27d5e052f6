// SPDX-License-Identifier: Apache-2.0
// The observe/sessions filters: every flag's parsing (DS_E_USAGE with a hint on bad input) and
// what it matches, on session and summary records, session views, and the records that do not
// describe a flow (lost records always pass flow criteria; policy and agent records do not).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter, type FilterableRecord, type FilterFlagValues, parseFilterOptions } from '../../src/audit/record-filter.js';
import { parseDuration } from '../../src/units.js';
import type { AuditRecord } from '../../src/audit/records.js';
import { DoorstepError } from '../../src/errors.js';
import { sampleSession } from '../lib/audit-fixtures.js';

const NOW = new Date('2025-06-01T12:00:00.000Z');

const session = (extra: Record<string, unknown> = {}): AuditRecord =>
  sampleSession(1, { time: '2025-06-01T11:58:00.000Z', rule: 'web-tier/corp-https', policy: 'web-tier', policyVersion: undefined, cpu: 0, ...extra }) as AuditRecord;

const lost: AuditRecord = { time: '2025-06-01T11:59:00.000Z', type: 'lost', enforcer: 'edge-1', interface: '*', cause: 'ring-buffer', count: 3 };
const agent: AuditRecord = { time: '2025-06-01T11:59:00.000Z', type: 'agent', enforcer: 'edge-1', interface: '*', event: 'started' };
const policy: AuditRecord = { time: '2025-06-01T11:59:00.000Z', type: 'policy', enforcer: 'edge-1', interface: '*', status: 'installed', source: 'api' };

const filter = (values: FilterFlagValues) => compileFilter(parseFilterOptions(values, NOW)) as (r: FilterableRecord) => boolean;

function usageError(values: FilterFlagValues, pattern: RegExp): void {
  assert.throws(
    () => parseFilterOptions(values, NOW),
    (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_USAGE' && pattern.test(err.message) && typeof err.hint === 'string' && err.hint.length > 0,
  );
}

describe('record filter: parsing', () => {
  it('accepts every flag in its documented forms', () => {
    const f = parseFilterOptions({ verdict: 'Deny', from: '10.0.0.0/8, 2001:db8::/32', to: ['192.0.2.7'], port: '8000-8080', protocol: 'UDP', rule: ' corp ', since: '5m' }, NOW);
    assert.equal(f.verdict, 'deny');
    assert.deepEqual(
      f.from?.map((c) => c.text),
      ['10.0.0.0/8', '2001:db8::/32'],
    );
    assert.deepEqual(
      f.to?.map((c) => c.text),
      ['192.0.2.7/32'],
    );
    assert.deepEqual(f.ports, { lo: 8000, hi: 8080 });
    assert.equal(f.protocol, 17);
    assert.equal(f.rule, 'corp');
    assert.equal(f.since?.toISOString(), '2025-06-01T11:55:00.000Z');
    assert.equal(parseFilterOptions({ protocol: '47' }).protocol, 47);
    assert.deepEqual(parseFilterOptions({ port: '443' }).ports, { lo: 443, hi: 443 });
    assert.equal(parseFilterOptions({ since: '2025-05-31T23:00:00+02:00' }).since?.toISOString(), '2025-05-31T21:00:00.000Z');
    assert.deepEqual(parseFilterOptions({}), {});
  });

  it('reads durations in ms, s, m, h, d and combinations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('0'), 0, '0 needs no unit (--summary-interval 0)');
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('5'), undefined);
    assert.equal(parseDuration('m5'), undefined);
  });

  it('refuses bad values with DS_E_USAGE, naming the flag, with a hint', () => {
    usageError({ verdict: 'maybe' }, /--verdict/);
    usageError({ from: '10.0.0.1/33' }, /--from/);
    usageError({ from: '10.0.0.1/8' }, /host bits/);
    usageError({ to: 'example.com' }, /--to/);
    usageError({ from: ' , ' }, /--from needs/);
    usageError({ port: '65536' }, /--port/);
    usageError({ port: '90-80' }, /--port/);
    usageError({ port: 'http' }, /--port/);
    usageError({ port: '1-2-3' }, /--port/);
    usageError({ protocol: 'tcpp' }, /--protocol/);
    usageError({ protocol: '256' }, /--protocol/);
    usageError({ rule: '  ' }, /--rule/);
    usageError({ since: 'yesterday' }, /--since/);
    usageError({ since: '2025-13-45T99:00:00Z' }, /--since/);
  });
});

describe('record filter: matching', () => {
  it('matches the verdict', () => {
    assert.ok(filter({ verdict: 'deny' })(session()));
    assert.ok(!filter({ verdict: 'allow' })(session()));
  });

  it('matches source and destination addresses inside any of the prefixes, per family', () => {
    assert.ok(filter({ from: '192.0.2.0/24' })(session()));
    assert.ok(filter({ from: '198.51.100.0/24,192.0.0.0/8' })(session()));
    assert.ok(!filter({ from: '10.0.0.0/8' })(session()));
    assert.ok(filter({ to: '10.1.2.3' })(session()));
    assert.ok(!filter({ to: '10.1.2.4' })(session()));
    const v6 = session({ src: '2001:db8:1::7', dst: 'fd00::1' });
    assert.ok(filter({ from: '2001:db8::/32' })(v6));
    assert.ok(!filter({ from: '0.0.0.0/0' })(v6), 'an IPv4 prefix never matches an IPv6 address');
    assert.ok(filter({ to: '::/0' })(v6));
    assert.ok(!filter({ from: '10.0.0.0/8' })(session({ src: 'not an address' })));
  });

  it('matches --port on the destination port, single or range; records without ports do not match', () => {
    assert.ok(filter({ port: '443' })(session()));
    assert.ok(!filter({ port: '40000' })(session()), 'the source port does not count');
    assert.ok(filter({ port: '400-500' })(session()));
    assert.ok(!filter({ port: '443' })(session({ protocol: 'icmp', sport: undefined, dport: undefined, icmpType: 8, icmpCode: 0 })));
  });

  it('matches the protocol by name or number, as records label it', () => {
    assert.ok(filter({ protocol: 'tcp' })(session()));
    assert.ok(filter({ protocol: '6' })(session()));
    assert.ok(!filter({ protocol: 'udp' })(session()));
    assert.ok(filter({ protocol: '250' })(session({ protocol: 'protocol 250' })));
    assert.ok(filter({ protocol: 'gre' })(session({ protocol: 'gre' })));
  });

  it('matches the rule id or a part of it', () => {
    assert.ok(filter({ rule: 'web-tier/corp-https' })(session()));
    assert.ok(filter({ rule: 'corp' })(session()));
    assert.ok(!filter({ rule: 'ssh' })(session()));
    assert.ok(filter({ rule: 'no-policy' })(session({ rule: 'no-policy', reason: 'no-policy' })));
  });

  it('matches --since on lastSeen when a record has it, else on time', () => {
    const recent = filter({ since: '5m' });
    assert.ok(recent(session()));
    assert.ok(!recent(session({ time: '2025-06-01T11:50:00.000Z' })));
    assert.ok(recent(session({ time: '2025-06-01T11:57:00+00:00' })), 'other RFC 3339 spellings are parsed');
    const summary = { ...session(), type: 'summary', time: '2025-06-01T12:00:00.000Z', lastSeen: '2025-06-01T11:40:00.000Z', firstSeen: '2025-06-01T11:30:00.000Z' } as unknown as FilterableRecord;
    assert.ok(!recent(summary), 'a summary of a session idle since before --since');
    assert.ok(recent(agent));
  });

  it('combines criteria with AND', () => {
    const f = filter({ verdict: 'deny', from: '192.0.2.0/24', port: '443', protocol: 'tcp', rule: 'https', since: '1h' });
    assert.ok(f(session()));
    assert.ok(!f(session({ verdict: 'allow' })));
    assert.ok(!f(session({ dport: 80 })));
  });

  it('lets lost records through flow criteria, keeps policy and agent records out of them', () => {
    const flow = filter({ verdict: 'deny' });
    assert.ok(flow(lost));
    assert.ok(!flow(agent));
    assert.ok(!flow(policy));
    const none = filter({});
    assert.ok(none(lost) && none(agent) && none(policy) && none(session()));
    assert.ok(!filter({ since: '30s' })(lost), 'time still applies to them');
  });

  it('filters session views (no type, lastSeen) like session records', () => {
    const view: FilterableRecord = { verdict: 'allow', protocol: 'udp', src: '10.9.0.1', dst: '10.1.0.53', dport: 53, rule: 'web/dns', lastSeen: '2025-06-01T11:59:59.000Z' };
    assert.ok(filter({ verdict: 'allow', port: '53', from: '10.0.0.0/8', since: '10s' })(view));
    assert.ok(!filter({ since: '500ms' })(view));
  });
});
