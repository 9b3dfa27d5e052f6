// SPDX-License-Identifier: Apache-2.0
// The policy language's document schemas (zod): shapes, allowed values, and the messages that say
// what is wrong and what is allowed. Field values are parsed here into their model forms
// (addresses → AddressRef, ports and ICMP entries → Range, protocol names → numbers).
// Cross-document checks (names, references) live in validate.ts.

import * as z from 'zod';
import type { Cidr, Range } from '../ir/ir.js';
import { parseCidr } from '../ir/cidr.js';
import { ICMP_PROTOCOLS, PORT_PROTOCOLS, PROTOCOL_NUMBERS, protocolLabel } from '../ir/protocols.js';

export const API_VERSION = 'doorstep/v1';

/** DNS-label style names: lowercase letters, digits and "-", at most 63 characters. */
export const NAME_PATTERN = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * NAME_PATTERN.test(text), written out: a large policy tests hundreds of thousands of names, and
 * a regular expression's per-call cost is most of the time there.
 */
export function isName(text: string): boolean {
  const n = text.length;
  if (n < 1 || n > 63 || text.charCodeAt(0) === 0x2d || text.charCodeAt(n - 1) === 0x2d) return false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) return false; // a-z, 0-9, -
  }
  return true;
}
const NAME_RULE = 'a name of 1 to 63 lowercase letters, digits and "-", starting and ending with a letter or digit';

/** A `from`/`to` entry after parsing. */
export type AddressRef = { kind: 'any' } | { kind: 'group'; name: string } | { kind: 'cidr'; cidr: Cidr };

type Issue = { input?: unknown };

/** Shows a user value inside a message. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}

/** A message maker: "is missing; it must be X" or "got V; it must be X". */
function expected(what: string) {
  return (issue: Issue) => (issue.input === undefined ? `is missing; it must be ${what}` : `got ${showValue(issue.input)}; it must be ${what}`);
}

/** A mapping with exactly these fields; unknown fields are reported with the list of allowed ones. */
function mapping<Shape extends z.ZodRawShape>(what: string, shape: Shape) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `allowed fields here: ${allowed}` : expected(`${what} with fields ${allowed}`)(issue),
  });
}

function integer(lo: number, hi: number, what: string) {
  const rule = `${what}, an integer from ${lo} to ${hi}`;
  return z.int({ error: expected(rule) }).min(lo, { error: expected(rule) }).max(hi, { error: expected(rule) });
}

/** A list of at least one entry; an empty list would silently match nothing, so it is refused. */
function nonEmptyList<Item extends z.ZodType>(item: Item, what: string, example: string, ifEmpty = 'or leave the field out to match any') {
  return z
    .array(item, { error: expected(`a list of ${what}s, e.g. [${example}]`) })
    .min(1, { error: `must not be empty; list at least one ${what}, ${ifEmpty}` });
}

const name = z.string({ error: expected(NAME_RULE) }).regex(NAME_PATTERN, { error: expected(NAME_RULE) });
const action = z.enum(['allow', 'deny'], { error: expected('allow or deny') });
const log = z.boolean({ error: expected('true or false') });
const metadata = mapping('a mapping', { name });

const ADDRESS_RULE = 'an AddressGroup name, a CIDR (10.0.0.0/8, 2001:db8::/32), a bare IP address, or "any"';
const CIDR_RULE = 'a CIDR (10.0.0.0/8, 2001:db8::/32) or a bare IP address';

export type Parsed<T> = T | { problem: string };

/** A `from`/`to` entry: "any", a group name, or a CIDR / bare address. */
export function parseAddressRef(text: string): Parsed<AddressRef> {
  const group = groupReference(text);
  if (group !== undefined) return { kind: 'group', name: group };
  if (text === 'any') return { kind: 'any' };
  // Addresses have one of ".", "/" or ":"; names have none.
  if (!/[./:]/.test(text)) return { problem: `got ${showValue(text)}; it must be ${ADDRESS_RULE}` };
  const parsed = parseCidr(text);
  return 'problem' in parsed ? parsed : { kind: 'cidr', cidr: parsed };
}

/** The group a `from`/`to` entry names, if it names one (a name can never be read as an address). */
export function groupReference(text: string): string | undefined {
  return text !== 'any' && isName(text) ? text : undefined;
}

/**
 * A non-empty list of strings, each parsed by `parse`. One transform per list rather than per
 * entry: zod's per-value cost would otherwise dominate a million-CIDR feed.
 */
function parsedStrings<T extends object>(
  rule: string,
  parse: (text: string) => Parsed<T>,
  what: string,
  example: string,
  ifEmpty?: string,
) {
  return nonEmptyList(z.string({ error: expected(rule) }), what, example, ifEmpty).transform((texts, ctx): T[] => {
    const out: T[] = new Array(texts.length);
    for (let i = 0; i < texts.length; i++) {
      const parsed = parse(texts[i]!);
      if ('problem' in parsed) ctx.addIssue({ code: 'custom', path: [i], input: texts[i], message: parsed.problem });
      else out[i] = parsed;
    }
    return out;
  });
}

const addressList = parsedStrings(ADDRESS_RULE, parseAddressRef, 'address', 'corp, 10.0.0.0/8');

/** `tenants` entries: tenant names; "any" (not a tenant name) stands for every tenant. */
export const ANY_TENANT = 'any';
const TENANT_RULE = `a tenant name (${NAME_RULE.replace('a name of ', '')}) or "any" for every tenant`;
const tenantName = z.string({ error: expected(TENANT_RULE) }).regex(NAME_PATTERN, { error: expected(TENANT_RULE) });
/** The messages say what an empty list should have been instead. */
const SPEC_TENANTS_EMPTY = "or leave the field out to apply the policy's rules to every tenant";
const RULE_TENANTS_EMPTY = 'or leave the field out to use the policy\'s spec.tenants (every tenant when it has none), or write [any]';
const specTenants = nonEmptyList(tenantName, 'tenant', 'vpc-a, vpc-b', SPEC_TENANTS_EMPTY);
const ruleTenants = nonEmptyList(tenantName, 'tenant', 'vpc-a, vpc-b', RULE_TENANTS_EMPTY);

const PROTOCOL_RULE = `a protocol name (${Object.keys(PROTOCOL_NUMBERS).join(', ')}, any) or a number from 0 to 255`;

/** A `protocol` value: a name, a number from 0 to 255, or "any"; undefined when it is none of these. */
export function parseProtocol(value: string | number): number | 'any' | undefined {
  if (value === 'any') return 'any';
  const number = typeof value === 'number' ? value : Object.hasOwn(PROTOCOL_NUMBERS, value) ? PROTOCOL_NUMBERS[value] : undefined;
  if (number === undefined || !Number.isInteger(number) || number < 0 || number > 255) return undefined;
  return number;
}

const protocol = z
  .union([z.string(), z.number()], { error: expected(PROTOCOL_RULE) })
  .transform((value, ctx): number | 'any' => {
    const parsed = parseProtocol(value);
    if (parsed === undefined) {
      ctx.addIssue({ code: 'custom', input: value, message: expected(PROTOCOL_RULE)({ input: value }) });
      return z.NEVER;
    }
    return parsed;
  });

const PORT_RULE = 'a port from 1 to 65535 or a range "low-high" such as "8000-8080"';
const PORT_RANGE = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

/** A `ports` entry: a port number, or a string "port" or "low-high". */
export function parsePortEntry(value: number | string): Parsed<Range> {
  const match = typeof value === 'string' ? PORT_RANGE.exec(value.trim()) : null;
  const lo = typeof value === 'number' ? value : match ? Number(match[1]) : NaN;
  const hi = typeof value === 'number' ? value : match ? Number(match[2] ?? match[1]) : NaN;
  const valid = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
  if (!valid(lo) || !valid(hi) || lo > hi) {
    const why = valid(lo) && valid(hi) ? ' (the low end comes first)' : '';
    return { problem: `got ${showValue(value)}${why}; it must be ${PORT_RULE}` };
  }
  return { lo, hi };
}

const portEntry = z.union([z.number(), z.string()], { error: expected(PORT_RULE) }).transform((value, ctx): Range => {
  const parsed = parsePortEntry(value);
  if ('problem' in parsed) {
    ctx.addIssue({ code: 'custom', input: value, message: parsed.problem });
    return z.NEVER;
  }
  return parsed;
});

/** The (type << 8 | code) range of an `icmp` entry; without a code, every code of the type. */
export function icmpRange(type: number, code: number | undefined): Range {
  return code === undefined ? { lo: type << 8, hi: (type << 8) | 255 } : { lo: (type << 8) | code, hi: (type << 8) | code };
}

const icmpEntry = mapping('a mapping {type, code}', {
  type: integer(0, 255, 'an ICMP type'),
  code: integer(0, 255, 'an ICMP code').optional(),
}).transform(({ type, code }): Range => icmpRange(type, code));

/** Whether a rule of this protocol may list `ports` (tcp, udp, sctp). */
export function allowsPorts(protocol: number | 'any'): boolean {
  return protocol !== 'any' && PORT_PROTOCOLS.has(protocol);
}

/** Whether a rule of this protocol may list `icmp` (icmp, icmpv6). */
export function allowsIcmp(protocol: number | 'any'): boolean {
  return protocol !== 'any' && ICMP_PROTOCOLS.has(protocol);
}

const ruleSchema = mapping('a rule mapping', {
  name,
  action,
  priority: integer(0, 65535, 'a priority').optional(),
  from: addressList.optional(),
  to: addressList.optional(),
  protocol: protocol.optional(),
  ports: nonEmptyList(portEntry, 'port', '443, "8000-8080"').optional(),
  icmp: nonEmptyList(icmpEntry, 'ICMP type/code', '{type: 8}').optional(),
  log: log.optional(),
  tenants: ruleTenants.optional(),
}).superRefine((rule, ctx) => {
  const protocol = rule.protocol ?? 'any';
  const named = rule.protocol === undefined ? 'any (the default)' : protocolLabel(protocol);
  if (rule.ports && !allowsPorts(protocol)) {
    ctx.addIssue({
      code: 'custom',
      path: ['ports'],
      message: `ports need protocol tcp, udp or sctp, but this rule's protocol is ${named}; set protocol, or remove ports`,
    });
  }
  if (rule.icmp && !allowsIcmp(protocol)) {
    ctx.addIssue({
      code: 'custom',
      path: ['icmp'],
      message: `icmp needs protocol icmp or icmpv6, but this rule's protocol is ${named}; set protocol, or remove icmp`,
    });
  }
});

const apiVersion = z.literal(API_VERSION, { error: expected(API_VERSION) });

export const networkPolicySchema = mapping('a document', {
  apiVersion,
  kind: z.literal('NetworkPolicy'),
  metadata,
  spec: mapping('a mapping', {
    defaultAction: action,
    log: log.optional(),
    tenants: specTenants.optional(),
    rules: z.array(ruleSchema, { error: expected('a list of rules') }).optional(),
  }),
});

export const addressGroupSchema = mapping('a document', {
  apiVersion,
  kind: z.literal('AddressGroup'),
  metadata,
  spec: mapping('a mapping', {
    cidrs: parsedStrings(CIDR_RULE, parseCidr, 'CIDR', '10.0.0.0/8', 'since an empty group would match nothing'),
  }),
});

export type RuleDocument = z.output<typeof ruleSchema>;
