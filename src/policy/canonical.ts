// SPDX-License-Identifier: Apache-2.0
// The IR's serializations: the canonical JSON (fixed key order, CIDRs as text, no version and no
// source positions, so renaming or moving a file keeps the version), the version hash over it,
// and a full JSON view of the IR for tools and tests.

import { createHash } from 'node:crypto';
import type { Action, Cidr, IrRule, PolicyIr } from './ir.js';

/** Tags the canonical form; bump it when the IR's meaning changes so old hashes cannot collide. */
const IR_FORMAT = 'doorstep/ir/v1';

export type UnversionedIr = Omit<PolicyIr, 'version'>;

export interface IrRuleJson {
  index: number;
  id: string;
  policy: string;
  name: string;
  action: Action;
  log: boolean;
  priority: number;
  src: string[];
  dst: string[];
  protocol: number | 'any';
  ports: [number, number][] | null;
}

export interface IrJson {
  version: string;
  defaultAction: Action;
  defaultLog: boolean;
  policies: string[];
  rules: (IrRuleJson & { source: IrRule['source'] })[];
}

/** Deterministic JSON of everything that decides what the policy does. */
export function canonicalJson(ir: UnversionedIr): string {
  const chunks: string[] = [];
  writeCanonical(ir, (chunk) => chunks.push(chunk));
  return chunks.join('');
}

/** "sha256:<64 hex>" of the canonical JSON: the policy version. */
export function policyVersion(ir: UnversionedIr): string {
  const hash = createHash('sha256');
  writeCanonical(ir, (chunk) => hash.update(chunk));
  return `sha256:${hash.digest('hex')}`;
}

/** Emits the canonical JSON in pieces (one per rule), so hashing a large IR never builds one huge string. */
function writeCanonical(ir: UnversionedIr, write: (chunk: string) => void): void {
  const head = { format: IR_FORMAT, defaultAction: ir.defaultAction, defaultLog: ir.defaultLog, policies: ir.policies };
  write(`${JSON.stringify(head).slice(0, -1)},"rules":[`);
  ir.rules.forEach((rule, i) => write((i === 0 ? '' : ',') + canonicalRule(rule)));
  write(']}');
}

/** The whole IR as plain JSON (version and source positions included), e.g. for `explain` and tests. */
export function irToJson(ir: PolicyIr): IrJson {
  return {
    version: ir.version,
    defaultAction: ir.defaultAction,
    defaultLog: ir.defaultLog,
    policies: [...ir.policies],
    rules: ir.rules.map((rule) => ({ ...ruleJson(rule), source: { ...rule.source } })),
  };
}

/** JSON.stringify(ruleJson(rule)), written out: the IR's texts need no escaping but names go through JSON. */
function canonicalRule(rule: IrRule): string {
  const cidrs = (list: Cidr[]) => {
    let out = '';
    for (const c of list) out += out === '' ? `"${c.text}"` : `,"${c.text}"`;
    return `[${out}]`;
  };
  const ports = rule.ports ? `[${rule.ports.map((r) => `[${r.lo},${r.hi}]`).join(',')}]` : 'null';
  const protocol = rule.protocol === 'any' ? '"any"' : String(rule.protocol);
  return (
    `{"index":${rule.index},"id":${JSON.stringify(rule.id)},"policy":${JSON.stringify(rule.policy)},` +
    `"name":${JSON.stringify(rule.name)},"action":"${rule.action}","log":${rule.log},"priority":${rule.priority},` +
    `"src":${cidrs(rule.src)},"dst":${cidrs(rule.dst)},"protocol":${protocol},"ports":${ports}}`
  );
}

function ruleJson(rule: IrRule): IrRuleJson {
  return {
    index: rule.index,
    id: rule.id,
    policy: rule.policy,
    name: rule.name,
    action: rule.action,
    log: rule.log,
    priority: rule.priority,
    src: rule.src.map((c) => c.text),
    dst: rule.dst.map((c) => c.text),
    protocol: rule.protocol,
    ports: rule.ports ? rule.ports.map((r): [number, number] => [r.lo, r.hi]) : null,
  };
}
