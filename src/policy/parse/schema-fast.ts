// SPDX-License-Identifier: Apache-2.0
// The schemas' fast path: a document of the common shape (every field it has is a known one, of
// the right type and in range) is parsed here without zod, whose per-value cost dominates a
// policy of 100,000 rules and a million CIDRs. Anything else returns undefined, and the caller
// runs the zod schema, which reports the problems with their messages. Whatever this accepts, the
// schema accepts with the same output (test/unit/schema-fast.equivalence.test.ts holds them together).
// Values are parsed by the same functions the schema's transforms call.

import type { Action, Cidr, Range } from '../ir/ir.js';
import { parseCidr } from '../ir/cidr.js';
import {
  API_VERSION,
  allowsIcmp,
  allowsPorts,
  icmpRange,
  isName,
  parseAddressRef,
  parsePortEntry,
  parseProtocol,
  type AddressRef,
  type Parsed,
  type RuleDocument,
} from './schema.js';

/** What networkPolicySchema yields, as the validator keeps it (no rules = an empty list). */
export interface ParsedPolicy {
  name: string;
  defaultAction: Action;
  log: boolean | undefined;
  /** spec.tenants as written (names, or "any"); undefined = not set. */
  tenants: string[] | undefined;
  rules: RuleDocument[];
}

/** What addressGroupSchema yields. */
export interface ParsedGroup {
  name: string;
  cidrs: Cidr[];
}

type Fields = Record<string, unknown>;

export function fastNetworkPolicy(doc: Fields): ParsedPolicy | undefined {
  if (keyCount(doc) !== 4 || doc.apiVersion !== API_VERSION || doc.kind !== 'NetworkPolicy') return undefined;
  const name = metadataName(doc.metadata);
  const spec = doc.spec;
  if (name === undefined || !isRecord(spec)) return undefined;
  const { defaultAction, log, rules } = spec;
  if (!isAction(defaultAction) || (log !== undefined && typeof log !== 'boolean')) return undefined;
  const tenants = spec.tenants === undefined ? undefined : nameList(spec.tenants);
  if (spec.tenants !== undefined && !tenants) return undefined;
  if (keyCount(spec) !== 1 + (log === undefined ? 0 : 1) + (tenants === undefined ? 0 : 1) + (rules === undefined ? 0 : 1)) return undefined;
  if (rules === undefined) return { name, defaultAction, log, tenants, rules: [] };
  if (!Array.isArray(rules)) return undefined;
  const addressRef = sharedCidrRefs();
  const parsed: RuleDocument[] = [];
  for (let i = 0; i < rules.length; i++) {
    const rule = fastRule(rules[i], addressRef);
    if (!rule) return undefined;
    parsed.push(rule);
  }
  return { name, defaultAction, log, tenants, rules: parsed };
}

export function fastAddressGroup(doc: Fields): ParsedGroup | undefined {
  if (keyCount(doc) !== 4 || doc.apiVersion !== API_VERSION || doc.kind !== 'AddressGroup') return undefined;
  const name = metadataName(doc.metadata);
  const spec = doc.spec;
  if (name === undefined || !isRecord(spec) || keyCount(spec) !== 1) return undefined;
  const cidrs = stringList(spec.cidrs, parseCidr);
  return cidrs && { name, cidrs };
}

/** A rule with the schema's output: the fields present, in the schema's order. */
function fastRule(value: unknown, addressRef: (text: string) => Parsed<AddressRef>): RuleDocument | undefined {
  if (!isRecord(value)) return undefined;
  const { name, action, priority, from, to, protocol, ports, icmp, log, tenants } = value;
  if (!isNameValue(name) || !isAction(action)) return undefined;
  const rule: RuleDocument = { name, action };
  let fields = 2;
  if (priority !== undefined) {
    if (!isIntegerIn(priority, 0, 65535)) return undefined;
    rule.priority = priority;
    fields++;
  }
  if (from !== undefined) {
    const refs = stringList<AddressRef>(from, addressRef);
    if (!refs) return undefined;
    rule.from = refs;
    fields++;
  }
  if (to !== undefined) {
    const refs = stringList<AddressRef>(to, addressRef);
    if (!refs) return undefined;
    rule.to = refs;
    fields++;
  }
  if (protocol !== undefined) {
    const number = typeof protocol === 'string' || typeof protocol === 'number' ? parseProtocol(protocol) : undefined;
    if (number === undefined) return undefined;
    rule.protocol = number;
    fields++;
  }
  if (ports !== undefined) {
    const ranges = allowsPorts(rule.protocol ?? 'any') ? portList(ports) : undefined;
    if (!ranges) return undefined;
    rule.ports = ranges;
    fields++;
  }
  if (icmp !== undefined) {
    const ranges = allowsIcmp(rule.protocol ?? 'any') ? icmpList(icmp) : undefined;
    if (!ranges) return undefined;
    rule.icmp = ranges;
    fields++;
  }
  if (log !== undefined) {
    if (typeof log !== 'boolean') return undefined;
    rule.log = log;
    fields++;
  }
  if (tenants !== undefined) {
    const names = nameList(tenants);
    if (!names) return undefined;
    rule.tenants = names;
    fields++;
  }
  // A field the schema does not know (or one set to undefined) makes the counts differ.
  return keyCount(value) === fields ? rule : undefined;
}

/** A non-empty list of strings, each accepted by `parse`. */
function stringList<T extends object>(value: unknown, parse: (text: string) => Parsed<T>): T[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const out: T[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const text: unknown = value[i];
    if (typeof text !== 'string') return undefined;
    const parsed = parse(text);
    if ('problem' in parsed) return undefined;
    out[i] = parsed;
  }
  return out;
}

/** A non-empty list of names (tenants: "any" is a name too). */
function nameList(value: unknown): string[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  for (let i = 0; i < value.length; i++) if (!isNameValue(value[i])) return undefined;
  return value.slice() as string[];
}

function portList(value: unknown): Range[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const out: Range[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i];
    if (typeof entry !== 'number' && typeof entry !== 'string') return undefined;
    const range = parsePortEntry(entry);
    if ('problem' in range) return undefined;
    out[i] = range;
  }
  return out;
}

function icmpList(value: unknown): Range[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const out: Range[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i];
    if (!isRecord(entry)) return undefined;
    const { type, code } = entry;
    if (!isIntegerIn(type, 0, 255) || (code !== undefined && !isIntegerIn(code, 0, 255))) return undefined;
    if (keyCount(entry) !== (code === undefined ? 1 : 2)) return undefined;
    out[i] = icmpRange(type, code);
  }
  return out;
}

/**
 * parseAddressRef, parsing each distinct CIDR once: rules repeat addresses (one destination for
 * many rules), and then share the parsed form, which nothing modifies. Names are cheaper to parse
 * than to remember.
 */
function sharedCidrRefs(): (text: string) => Parsed<AddressRef> {
  const cidrs = new Map<string, AddressRef>();
  return (text) => {
    const known = cidrs.get(text);
    if (known) return known;
    const ref = parseAddressRef(text);
    if ('kind' in ref && ref.kind === 'cidr') cidrs.set(text, ref);
    return ref;
  };
}

/** metadata with exactly one field, a valid name. */
function metadataName(value: unknown): string | undefined {
  if (!isRecord(value) || keyCount(value) !== 1) return undefined;
  const name = value.name;
  return isNameValue(name) ? name : undefined;
}

/** Enumerable keys, as zod's unknown-field check counts them (own and inherited). */
function keyCount(fields: Fields): number {
  let n = 0;
  for (const _ in fields) n++;
  return n;
}

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNameValue(value: unknown): value is string {
  return typeof value === 'string' && isName(value);
}

function isAction(value: unknown): value is Action {
  return value === 'allow' || value === 'deny';
}

function isIntegerIn(value: unknown, lo: number, hi: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= lo && value <= hi;
}
