// SPDX-License-Identifier: Apache-2.0
// Policy sources → validated model, or the full list of problems. Parses every file, checks each
// document against its schema (documents of the common shape through schema-fast.ts), then
// checks the set as a whole: unique names per kind (across files), unique rule names per policy,
// AddressGroup references, tenant names the datapath can tell apart, at least one NetworkPolicy.
// Every problem carries file, line, column and field; all of them are collected, none thrown here.

import type { ErrorCode, PolicyProblem } from '../../errors.js';
import type { Action, Cidr } from '../ir/ir.js';
import { formatField, parseSource, type FieldPath, type PolicySource, type SourceDocument } from './documents.js';
import type * as z from 'zod';
import { ANY_TENANT, addressGroupSchema, groupReference, isName, networkPolicySchema, showValue, type RuleDocument } from './schema.js';
import { formatTenantId, tenantId } from '../ir/tenants.js';
import { fastAddressGroup, fastNetworkPolicy } from './schema-fast.js';

export interface SourceLine {
  file: string;
  line: number;
}

export type ValidRule = RuleDocument & { source: SourceLine };

export interface ValidPolicy {
  name: string;
  defaultAction: Action;
  /** The policy's default for its rules' `log`; undefined = not set. */
  log: boolean | undefined;
  /** spec.tenants as written (names, or "any"): the default for its rules' `tenants`; undefined = not set. */
  tenants: string[] | undefined;
  rules: ValidRule[];
}

export interface ValidGroup {
  name: string;
  cidrs: Cidr[];
}

/** Everything the normalizer needs: policies in the order given, groups by name. */
export interface PolicyModel {
  policies: ValidPolicy[];
  groups: Map<string, ValidGroup>;
}

export interface Validation {
  model: PolicyModel;
  problems: PolicyProblem[];
}

type Kind = 'NetworkPolicy' | 'AddressGroup';

/** A document as the set-wide checks see it: raw name (if usable) and, when valid, the parsed form. */
interface Checked {
  doc: SourceDocument;
  kind: Kind | undefined;
  name: string | undefined;
  policy?: ValidPolicy;
  group?: ValidGroup;
}

export function validatePolicySources(sources: readonly PolicySource[]): Validation {
  const problems: PolicyProblem[] = [];
  const checked: Checked[] = [];
  for (const source of sources) {
    const parsed = parseSource(source);
    problems.push(...parsed.problems);
    for (const doc of parsed.documents) checked.push(checkDocument(doc, problems));
  }
  checkDuplicateNames(checked, problems);
  checkReferences(checked, problems);
  checkTenantIds(checked, problems);
  if (!checked.some((c) => c.kind === 'NetworkPolicy') && !problems.some((p) => p.code === 'DS_E_POLICY_PARSE')) {
    problems.push(emptyProblem(sources));
  }
  const policies: ValidPolicy[] = [];
  const groups = new Map<string, ValidGroup>();
  for (const c of checked) {
    if (c.policy) policies.push(c.policy);
    if (c.group) groups.set(c.group.name, c.group);
  }
  return { model: { policies, groups }, problems: sortProblems(problems, sources) };
}

function checkDocument(doc: SourceDocument, problems: PolicyProblem[]): Checked {
  const value = doc.value;
  if (!isRecord(value)) {
    problems.push(
      problem(doc, 'DS_E_POLICY_INVALID', [], `got ${showValue(value)}; a document must be a mapping with apiVersion, kind, metadata and spec`),
    );
    return { doc, kind: undefined, name: undefined };
  }
  const kind = value.kind === 'NetworkPolicy' || value.kind === 'AddressGroup' ? value.kind : undefined;
  const name = rawName(value);
  if (!kind) {
    const got = value.kind === undefined ? 'is missing' : `got ${showValue(value.kind)}`;
    problems.push(problem(doc, 'DS_E_POLICY_INVALID', ['kind'], `${got}; it must be NetworkPolicy or AddressGroup`));
    return { doc, kind, name };
  }
  if (kind === 'AddressGroup' && name === 'any') {
    problems.push(problem(doc, 'DS_E_POLICY_INVALID', ['metadata', 'name'], '"any" is reserved for the whole address space; choose another name'));
  }
  if (kind === 'AddressGroup') {
    const group = fastAddressGroup(value) ?? parseWithSchema(doc, addressGroupSchema, problems, (data) => ({ name: data.metadata.name, cidrs: data.spec.cidrs }));
    return group ? { doc, kind, name, group } : { doc, kind, name };
  }
  const parsed =
    fastNetworkPolicy(value) ??
    parseWithSchema(doc, networkPolicySchema, problems, ({ metadata, spec }) => ({
      name: metadata.name,
      defaultAction: spec.defaultAction,
      log: spec.log,
      tenants: spec.tenants,
      rules: spec.rules ?? [],
    }));
  if (!parsed) return { doc, kind, name };
  // The parsed rules are fresh objects (from the fast path or zod), so they can take their source in place.
  const rules = parsed.rules as ValidRule[];
  for (let i = 0; i < rules.length; i++) rules[i]!.source = sourceLine(doc, ['spec', 'rules', i]);
  return { doc, kind, name, policy: { name: parsed.name, defaultAction: parsed.defaultAction, log: parsed.log, tenants: parsed.tenants, rules } };
}

/** The schema's output made into `T`, or undefined after reporting the schema's issues as problems. */
function parseWithSchema<S extends z.ZodType, T>(doc: SourceDocument, schema: S, problems: PolicyProblem[], make: (data: z.output<S>) => T): T | undefined {
  const result = schema.safeParse(doc.value);
  if (result.success) return make(result.data);
  for (const issue of result.error.issues) {
    const path = issue.path as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        problems.push(problem(doc, 'DS_E_POLICY_INVALID', [...path, key], `unknown field "${key}"; ${issue.message}`, 'key'));
      }
    } else {
      problems.push(problem(doc, 'DS_E_POLICY_INVALID', path, issue.message));
    }
  }
  return undefined;
}

/** Documents of one kind must have distinct names across all files; rules distinct names within a policy. */
function checkDuplicateNames(checked: Checked[], problems: PolicyProblem[]): void {
  const seen = { NetworkPolicy: new Map<string, Checked>(), AddressGroup: new Map<string, Checked>() };
  for (const c of checked) {
    if (!c.kind || !c.name) continue;
    const first = seen[c.kind].get(c.name);
    if (!first) {
      seen[c.kind].set(c.name, c);
      continue;
    }
    problems.push(
      problem(
        c.doc,
        'DS_E_POLICY_DUPLICATE',
        ['metadata', 'name'],
        `${c.kind} "${c.name}" is already defined at ${where(first.doc, ['metadata', 'name'])}; names must be unique per kind across all policy files`,
      ),
    );
  }
  for (const c of checked) {
    if (c.kind !== 'NetworkPolicy') continue;
    const rules = rawRules(c.doc.value);
    const firstAt = new Map<string, number>();
    rules.forEach((rule, i) => {
      const name = isRecord(rule) && typeof rule.name === 'string' && isName(rule.name) ? rule.name : undefined;
      if (!name) return;
      const first = firstAt.get(name);
      if (first === undefined) {
        firstAt.set(name, i);
        return;
      }
      problems.push(
        problem(
          c.doc,
          'DS_E_POLICY_DUPLICATE',
          ['spec', 'rules', i, 'name'],
          `rule "${name}" is already defined at ${where(c.doc, ['spec', 'rules', first, 'name'])} (spec.rules[${first}]); rule names must be unique within a policy`,
        ),
      );
    });
  }
}

/**
 * Every group a policy names must exist (as a document of kind AddressGroup, valid or not).
 * Checked on the raw documents, so a policy with other problems still gets its references checked.
 */
function checkReferences(checked: Checked[], problems: PolicyProblem[]): void {
  const defined = new Set<string>();
  for (const c of checked) if (c.kind === 'AddressGroup' && c.name) defined.add(c.name);
  const knownGroups = () => {
    const known = [...defined].sort();
    if (known.length === 0) return 'no AddressGroup is defined';
    return `defined groups: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''}`;
  };
  const checkList = (doc: SourceDocument, rule: number, side: 'from' | 'to', entries: unknown) => {
    if (!Array.isArray(entries)) return;
    for (let j = 0; j < entries.length; j++) {
      const entry: unknown = entries[j];
      const group = typeof entry === 'string' ? groupReference(entry) : undefined;
      if (group === undefined || defined.has(group)) continue;
      problems.push(
        problem(
          doc,
          'DS_E_POLICY_REFERENCE',
          ['spec', 'rules', rule, side, j],
          `AddressGroup "${group}" is not defined (${knownGroups()}); add a document with kind: AddressGroup and metadata.name: ${group}, or write a CIDR`,
        ),
      );
    }
  };
  for (const c of checked) {
    if (c.kind !== 'NetworkPolicy') continue;
    const rules = rawRules(c.doc.value);
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (!isRecord(rule)) continue;
      checkList(c.doc, i, 'from', rule.from);
      checkList(c.doc, i, 'to', rule.to);
    }
  }
}

/**
 * Tenants reach the datapath as 32-bit ids (tenantId): two names of the set with one id would
 * share their rules there, so the second is refused. Checked on the raw documents, like references.
 */
function checkTenantIds(checked: Checked[], problems: PolicyProblem[]): void {
  const byId = new Map<number, { name: string; doc: SourceDocument; path: FieldPath }>();
  const checkList = (doc: SourceDocument, path: FieldPath, entries: unknown) => {
    if (!Array.isArray(entries)) return;
    for (let j = 0; j < entries.length; j++) {
      const name: unknown = entries[j];
      if (typeof name !== 'string' || name === ANY_TENANT || !isName(name)) continue;
      const id = tenantId(name);
      const first = byId.get(id);
      if (!first) byId.set(id, { name, doc, path: [...path, j] });
      else if (first.name !== name) {
        problems.push(
          problem(
            doc,
            'DS_E_POLICY_INVALID',
            [...path, j],
            `tenant "${name}" has the same id (${formatTenantId(id)}) as tenant "${first.name}" at ${where(first.doc, first.path)}; the datapath could not tell their traffic apart, so rename one of them`,
          ),
        );
      }
    }
  };
  for (const c of checked) {
    if (c.kind !== 'NetworkPolicy') continue;
    const spec = isRecord(c.doc.value) ? c.doc.value.spec : undefined;
    if (isRecord(spec)) checkList(c.doc, ['spec', 'tenants'], spec.tenants);
    const rules = rawRules(c.doc.value);
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (isRecord(rule)) checkList(c.doc, ['spec', 'rules', i, 'tenants'], rule.tenants);
    }
  }
}

function emptyProblem(sources: readonly PolicySource[]): PolicyProblem {
  const files = sources.map((s) => s.file);
  return {
    code: 'DS_E_POLICY_EMPTY',
    file: files[0] ?? '(no files)',
    line: 1,
    column: 1,
    field: 'kind',
    message:
      files.length === 0
        ? 'no policy files were given; give at least one file with a document of kind: NetworkPolicy'
        : `no document of kind NetworkPolicy in ${files.join(', ')}; give at least one (AddressGroups alone enforce nothing)`,
  };
}

function problem(doc: SourceDocument, code: ErrorCode, path: FieldPath, message: string, at?: 'key'): PolicyProblem {
  const pos = doc.locate(path, at);
  return { code, file: doc.file, line: pos.line, column: pos.column, field: path.length === 0 ? '(document)' : formatField(path), message };
}

function where(doc: SourceDocument, path: FieldPath): string {
  const pos = doc.locate(path);
  return `${doc.file}:${pos.line}:${pos.column}`;
}

function sourceLine(doc: SourceDocument, path: FieldPath): SourceLine {
  return { file: doc.file, line: doc.locate(path).line };
}

/** Problems in the order of the files given, then by position. */
function sortProblems(problems: PolicyProblem[], sources: readonly PolicySource[]): PolicyProblem[] {
  const fileOrder = new Map(sources.map((s, i) => [s.file, i]));
  const rank = (p: PolicyProblem) => fileOrder.get(p.file) ?? sources.length;
  return problems.sort((a, b) => rank(a) - rank(b) || a.line - b.line || a.column - b.column);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** metadata.name if it is a valid name, whatever else is wrong with the document. */
function rawName(value: Record<string, unknown>): string | undefined {
  const name = isRecord(value.metadata) ? value.metadata.name : undefined;
  return typeof name === 'string' && isName(name) ? name : undefined;
}

function rawRules(value: unknown): unknown[] {
  const spec = isRecord(value) ? value.spec : undefined;
  const rules = isRecord(spec) ? spec.rules : undefined;
  return Array.isArray(rules) ? rules : [];
}
