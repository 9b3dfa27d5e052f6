// SPDX-License-Identifier: Apache-2.0
// The record filters `doorstep observe` and `doorstep sessions` share: --verdict, --from, --to,
// --port, --protocol, --rule, --since. parseFilterOptions turns the flags' text into a checked
// RecordFilter (DS_E_USAGE with a hint on bad input); compileFilter turns that into a predicate
// over audit records and session views. Pure: no I/O, the clock only through `now`.
//
// What matches what (docs/audit.md):
// - flow criteria (verdict, from, to, port, protocol, rule) apply to records that describe a
//   flow: `session` and `summary` records and session views. `lost` records always pass them
//   (a reader must know it may have missed matching records); `policy` and `agent` records
//   do not.
// - --port is the destination port (what rules match on), a number or a range "lo-hi".
// - --from / --to: the source / destination address lies inside one of the prefixes.
// - --rule: the rule id (`policy/rule`, `policy/default`, or a reason such as `no-policy`)
//   contains the text.
// - --since: the record's `lastSeen` (summaries, session views) or else its `time` is at or
//   after the given instant.
import { DoorstepError } from '../errors.js';
import { parseDuration } from '../units.js';
import { cidrContains, parseCidr } from '../policy/ir/cidr.js';
import type { Cidr } from '../policy/ir/ir.js';
import { PROTOCOL_NUMBERS, protocolLabel, protocolNumber } from '../policy/ir/protocols.js';

/** The flags' values as the command line (or the agent's query string) gives them. */
export interface FilterFlagValues {
  verdict?: string;
  /** One CIDR or address, several separated by commas, or a list. */
  from?: string | readonly string[];
  to?: string | readonly string[];
  port?: string;
  protocol?: string;
  rule?: string;
  since?: string;
}

/** A checked filter. Absent fields match everything. */
export interface RecordFilter {
  verdict?: 'allow' | 'deny';
  from?: Cidr[];
  to?: Cidr[];
  /** Destination ports, inclusive. */
  ports?: { lo: number; hi: number };
  /** IP protocol number. */
  protocol?: number;
  /** Text the rule id must contain. */
  rule?: string;
  since?: Date;
}

/** The fields a filter reads; audit records and session views both fit. */
export interface FilterableRecord {
  type?: string;
  time?: string;
  lastSeen?: string;
  verdict?: string;
  protocol?: string;
  src?: string;
  dst?: string;
  dport?: number;
  rule?: string;
}

function usage(message: string, hint: string): DoorstepError {
  return new DoorstepError('DS_E_USAGE', message, { hint });
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function parseSince(text: string, now: Date): Date {
  const t = text.trim();
  if (RFC3339.test(t)) {
    const ms = Date.parse(t.replace(' ', 'T'));
    if (Number.isFinite(ms)) return new Date(ms);
  }
  const back = parseDuration(t);
  if (back !== undefined) return new Date(now.getTime() - back);
  throw usage(`--since "${text}" is neither an RFC 3339 time nor a duration`, 'write e.g. --since 2025-06-01T12:00:00Z or --since 15m (units ms, s, m, h, d; 1h30m)');
}

function parseCidrs(flag: string, value: string | readonly string[]): Cidr[] {
  const texts = (typeof value === 'string' ? [value] : value).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (texts.length === 0) throw usage(`--${flag} needs a CIDR or an address`, `write e.g. --${flag} 10.0.0.0/8 or --${flag} 2001:db8::/32`);
  return texts.map((text) => {
    const c = parseCidr(text);
    if ('problem' in c) throw usage(`--${flag}: ${c.problem}`, `write e.g. --${flag} 10.0.0.0/8, --${flag} 192.0.2.7 or --${flag} 2001:db8::/32`);
    return c;
  });
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function parsePorts(text: string): { lo: number; hi: number } {
  const parts = text.trim().split('-');
  const nums = parts.map((p) => (PORT.test(p.trim()) ? Number(p.trim()) : NaN));
  const [lo, hi = lo] = nums;
  if (parts.length > 2 || lo === undefined || hi === undefined || !(lo <= 65535 && hi <= 65535 && lo <= hi)) {
    throw usage(`--port "${text}" is not a port or a port range`, 'write a destination port 0-65535, e.g. --port 443, or a range, e.g. --port 8000-8080');
  }
  return { lo, hi };
}

function parseProtocol(text: string): number {
  const p = protocolNumber(text);
  if (p !== undefined) return p;
  throw usage(`--protocol "${text}" is not a protocol`, `write a name (${Object.keys(PROTOCOL_NUMBERS).join(', ')}) or a number 0-255`);
}

/** Check the flags' values; throws DoorstepError DS_E_USAGE, with a hint, on the first bad one. */
export function parseFilterOptions(values: FilterFlagValues, now: Date = new Date()): RecordFilter {
  const f: RecordFilter = {};
  if (values.verdict !== undefined) {
    const v = values.verdict.trim().toLowerCase();
    if (v !== 'allow' && v !== 'deny') throw usage(`--verdict "${values.verdict}" is not a verdict`, 'write --verdict allow or --verdict deny');
    f.verdict = v;
  }
  if (values.from !== undefined) f.from = parseCidrs('from', values.from);
  if (values.to !== undefined) f.to = parseCidrs('to', values.to);
  if (values.port !== undefined) f.ports = parsePorts(values.port);
  if (values.protocol !== undefined) f.protocol = parseProtocol(values.protocol);
  if (values.rule !== undefined) {
    if (values.rule.trim() === '') throw usage('--rule needs a rule id or a part of one', 'write e.g. --rule web-tier/corp-https or --rule corp');
    f.rule = values.rule.trim();
  }
  if (values.since !== undefined) f.since = parseSince(values.since, now);
  return f;
}

/** Address text → (family, bytes), for matching; null when the text is not an address. */
class AddressCache {
  private readonly map = new Map<string, { family: 4 | 6; addr: Uint8Array } | null>();

  get(text: string): { family: 4 | 6; addr: Uint8Array } | null {
    let hit = this.map.get(text);
    if (hit !== undefined) return hit;
    const c = parseCidr(text);
    hit = 'problem' in c || c.len !== (c.family === 4 ? 32 : 128) ? null : { family: c.family, addr: c.addr };
    if (this.map.size >= 65_536) this.map.clear();
    this.map.set(text, hit);
    return hit;
  }
}

/** A predicate for `filter` (see the header of this module for what matches what). */
export function compileFilter(filter: RecordFilter): (record: FilterableRecord) => boolean {
  const checks: ((r: FilterableRecord) => boolean)[] = [];
  const addresses = new AddressCache();
  const inside = (cidrs: Cidr[], text: string | undefined): boolean => {
    if (text === undefined) return false;
    const a = addresses.get(text);
    return a !== null && cidrs.some((c) => cidrContains(c, a.family, a.addr));
  };
  const { verdict, from, to, ports, protocol, rule, since } = filter;
  if (verdict !== undefined) checks.push((r) => r.verdict === verdict);
  if (from !== undefined) checks.push((r) => inside(from, r.src));
  if (to !== undefined) checks.push((r) => inside(to, r.dst));
  if (ports !== undefined) checks.push((r) => r.dport !== undefined && r.dport >= ports.lo && r.dport <= ports.hi);
  if (protocol !== undefined) {
    const label = protocolLabel(protocol);
    checks.push((r) => r.protocol === label);
  }
  if (rule !== undefined) checks.push((r) => r.rule !== undefined && r.rule.includes(rule));
  const flowChecks = checks.length;

  let sinceCheck: ((r: FilterableRecord) => boolean) | undefined;
  if (since !== undefined) {
    const iso = since.toISOString();
    const ms = since.getTime();
    sinceCheck = (r) => {
      const t = r.lastSeen ?? r.time;
      if (t === undefined) return true;
      // our own times are all toISOString() text, which sorts as it reads
      if (t.length === 24 && t.charCodeAt(23) === 0x5a /* Z */ && iso.length === 24) return t >= iso;
      const parsed = Date.parse(t);
      return !Number.isFinite(parsed) || parsed >= ms;
    };
  }

  return (r) => {
    if (sinceCheck && !sinceCheck(r)) return false;
    if (flowChecks === 0) return true;
    const isFlow = r.type === undefined || r.type === 'session' || r.type === 'summary';
    if (!isFlow) return r.type === 'lost' || r.type === 'flood';
    for (let i = 0; i < flowChecks; i++) if (!checks[i]!(r)) return false;
    return true;
  };
}
