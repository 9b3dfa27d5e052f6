// SPDX-License-Identifier: Apache-2.0
// The specification of an audit line: one record as one line of ASCII JSON, fields in the
// documented order (docs/audit.md), written plainly from strings. Every other writer of audit
// lines (record-json-fast.ts, the byte encoder) must produce exactly these bytes;
// test/unit/record-json-fast.equivalence.test.ts holds them together. Pure.
import type { AuditRecord, FlowFields, SummaryRecord } from './records.js';
import type { SessionRecord } from './session-record.js';

// Output is pure ASCII: every character outside it is written as a \uXXXX escape (valid JSON, the
// same string once parsed), so a line's length in characters is its length in bytes and
// Buffer#write(…, "latin1") copies it into the output slab as is.

export const NEEDS_ESCAPE = /[\u0000-\u001f"\\\u007f-\uffff]/;
const NON_ASCII = /[\u007f-\uffff]/g;
const hex4 = (c: string) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');

/** A JSON string literal in ASCII. */
export function str(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  return JSON.stringify(s).replace(NON_ASCII, hex4);
}

/** A JSON number as JSON.stringify writes it (null when not finite). */
export function num(n: number): string {
  return n - n === 0 ? '' + n : 'null';
}

function vlanJson(v: readonly number[]): string {
  return '[' + v.map(num).join(',') + ']';
}

/** Any record, via JSON.stringify, in ASCII. */
function genericJson(r: AuditRecord): string {
  return JSON.stringify(r).replace(NON_ASCII, hex4);
}

/** The flow fields session and summary records share, from `protocol` to `policyVersion`. */
function flowJson(r: FlowFields & { policy?: string; policyVersion?: string }): string {
  let s =
    ',"protocol":' + str(r.protocol) +
    ',"src":' + str(r.src) +
    ',"dst":' + str(r.dst);
  if (r.sport !== undefined) s += ',"sport":' + num(r.sport);
  if (r.dport !== undefined) s += ',"dport":' + num(r.dport);
  if (r.icmpType !== undefined) s += ',"icmpType":' + num(r.icmpType);
  if (r.icmpCode !== undefined) s += ',"icmpCode":' + num(r.icmpCode);
  if (r.vlan !== undefined) s += ',"vlan":' + vlanJson(r.vlan);
  s += ',"rule":' + str(r.rule);
  if (r.policy !== undefined) s += ',"policy":' + str(r.policy);
  if (r.policyVersion !== undefined) s += ',"policyVersion":' + str(r.policyVersion);
  return s;
}

/** One session record, fields in the documented order (the reference for record-json-fast.ts). */
export function sessionJson(r: SessionRecord): string {
  const s =
    '{"time":' + str(r.time) +
    ',"type":"session","event":' + str(r.event) +
    ',"enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
    ',"reason":' + str(r.reason) +
    flowJson(r) +
    (r.tenant !== undefined ? ',"tenant":' + str(r.tenant) : '') +
    (r.path !== undefined ? ',"path":' + str(r.path) : '');
  return s + ',"generation":' + num(r.generation) + ',"cpu":' + num(r.cpu) + ',"seq":' + num(r.seq) + '}';
}

/** One summary record, fields in the documented order. */
export function summaryJson(r: SummaryRecord): string {
  const s =
    '{"time":' + str(r.time) +
    ',"type":"summary","enforcer":' + str(r.enforcer) +
    ',"interface":' + str(r.interface) +
    ',"verdict":' + str(r.verdict) +
    flowJson(r);
  return (
    s +
    ',"generation":' + num(r.generation) +
    ',"packets":' + num(r.packets) +
    ',"bytes":' + num(r.bytes) +
    ',"totalPackets":' + num(r.totalPackets) +
    ',"totalBytes":' + num(r.totalBytes) +
    ',"firstSeen":' + str(r.firstSeen) +
    ',"lastSeen":' + str(r.lastSeen) +
    '}'
  );
}

/** One record as one line of ASCII JSON (without the newline). */
export function recordJson(r: AuditRecord): string {
  if (r.type === 'session') return sessionJson(r);
  if (r.type === 'summary') return summaryJson(r);
  return genericJson(r);
}

/** Records as JSON lines, each ending in a newline. */
export function serializeRecords(records: readonly AuditRecord[]): string {
  let out = '';
  for (let i = 0; i < records.length; i++) out += recordJson(records[i]!) + '\n';
  return out;
}

