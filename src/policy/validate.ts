// SPDX-License-Identifier: Apache-2.0
// Policy sources → validated model, or the full list of problems. Parses every file, checks each
// document against its schema, then checks the set as a whole: unique names per kind (across
// files), unique rule names per policy, AddressGroup references, at least one NetworkPolicy.
// Every problem carries file, line, column and field; all of them are collected, none thrown here.

import type { ErrorCode, PolicyProblem } from '../errors.js';
import type { Action, Cidr } from './ir.js';
import { formatField, parseSource, type FieldPath, type PolicySource, type SourceDocument } from './documents.js';
import { addressGroupSchema, networkPolicySchema, parseAddressRef, showValue, NAME_PATTERN, type RuleDocument } from './schema.js';

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
  if (!checked.some((c) => c.kind === 'NetworkPolicy') && !problems.some((p) => p.code === 'DS_E_POLICY_PARSE')) {
    problems.push(emptyProblem(sources));
  }
  const policies = checked.flatMap((c) => (c.policy ? [c.policy] : []));
  const groups = new Map(checked.flatMap((c) => (c.group ? [[c.group.name, c.group] as const] : [])));
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
  const result = kind === 'NetworkPolicy' ? networkPolicySchema.safeParse(value) : addressGroupSchema.safeParse(value);
  if (!result.success) {
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
    return { doc, kind, name };
  }
  if (result.data.kind === 'AddressGroup') {
    return { doc, kind, name, group: { name: result.data.metadata.name, cidrs: result.data.spec.cidrs } };
  }
  const spec = result.data.spec;
  const rules = (spec.rules ?? []).map((rule, i) => ({ ...rule, source: sourceLine(doc, ['spec', 'rules', i]) }));
  return {
    doc,
    kind,
    name,
    policy: { name: result.data.metadata.name, defaultAction: spec.defaultAction, log: spec.log, rules },
  };
}

/** Documents of one kind must have distinct names across all files; rules distinct names within a policy. */
function checkDuplicateNames(checked: Checked[], problems: PolicyProblem[]): void {
  const seen = new Map<string, Checked>();
  for (const c of checked) {
    if (!c.kind || !c.name) continue;
    const key = `${c.kind}/${c.name}`;
    const first = seen.get(key);
    if (!first) {
      seen.set(key, c);
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
      const name = isRecord(rule) && typeof rule.name === 'string' && NAME_PATTERN.test(rule.name) ? rule.name : undefined;
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
  const defined = new Set(checked.flatMap((c) => (c.kind === 'AddressGroup' && c.name ? [c.name] : [])));
  const knownGroups = () => {
    const known = [...defined].sort();
    if (known.length === 0) return 'no AddressGroup is defined';
    return `defined groups: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''}`;
  };
  for (const c of checked) {
    if (c.kind !== 'NetworkPolicy') continue;
    rawRules(c.doc.value).forEach((rule, i) => {
      for (const side of ['from', 'to'] as const) {
        const entries = isRecord(rule) ? rule[side] : undefined;
        if (!Array.isArray(entries)) continue;
        entries.forEach((entry: unknown, j) => {
          if (typeof entry !== 'string') return;
          const ref = parseAddressRef(entry);
          if ('problem' in ref || ref.kind !== 'group' || defined.has(ref.name)) return;
          problems.push(
            problem(
              c.doc,
              'DS_E_POLICY_REFERENCE',
              ['spec', 'rules', i, side, j],
              `AddressGroup "${ref.name}" is not defined (${knownGroups()}); add a document with kind: AddressGroup and metadata.name: ${ref.name}, or write a CIDR`,
            ),
          );
        });
      }
    });
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
  return typeof name === 'string' && NAME_PATTERN.test(name) ? name : undefined;
}

function rawRules(value: unknown): unknown[] {
  const spec = isRecord(value) ? value.spec : undefined;
  const rules = isRecord(spec) ? spec.rules : undefined;
  return Array.isArray(rules) ? rules : [];
}
