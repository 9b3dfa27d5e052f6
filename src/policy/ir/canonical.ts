// SPDX-License-Identifier: Apache-2.0
// The IR's serializations: the canonical JSON (fixed key order, CIDRs as text, no version and no
// source positions, so renaming or moving a file keeps the version), the version hash over it,
// and a full JSON view of the IR for tools and tests. A rule scoped to tenants carries their names
// last; a rule for every tenant has no such key, so policies without tenants hash as they always did.

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
  /** Tenant names, sorted; absent = every tenant. */
  tenants?: string[];
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

/** Emits the canonical JSON in chunks, so hashing a large IR never builds one huge string. */
function writeCanonical(ir: UnversionedIr, write: (chunk: string) => void): void {
  const head = { format: IR_FORMAT, defaultAction: ir.defaultAction, defaultLog: ir.defaultLog, policies: ir.policies };
  const out = new ChunkWriter(write);
  out.add(`${JSON.stringify(head).slice(0, -1)},"rules":[`);
  ir.rules.forEach((rule, i) => {
    if (i > 0) out.add(',');
    writeRule(rule, out);
  });
  out.add(']}');
  out.flush();
}

/**
 * Collects text pieces and joins them a chunk at a time (about 64 KiB of the IR's pieces): one
 * flat string per chunk and one call into the hash, where adding the pieces to a string one by
 * one would leave a string node per piece, millions for a large IR.
 */
class ChunkWriter {
  private static readonly PIECES = 4096;
  private readonly pieces = new Array<string>(ChunkWriter.PIECES);
  private count = 0;

  constructor(private readonly write: (chunk: string) => void) {}

  add(piece: string): void {
    this.pieces[this.count++] = piece;
    if (this.count === ChunkWriter.PIECES) {
      this.write(this.pieces.join(''));
      this.count = 0;
    }
  }

  flush(): void {
    this.write(this.pieces.slice(0, this.count).join(''));
    this.count = 0;
  }
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
function writeRule(rule: IrRule, out: ChunkWriter): void {
  out.add(`{"index":${rule.index},"id":${JSON.stringify(rule.id)},"policy":${JSON.stringify(rule.policy)},`);
  out.add(`"name":${JSON.stringify(rule.name)},"action":"${rule.action}","log":${rule.log},"priority":${rule.priority},"src":`);
  writeCidrs(rule.src, out);
  out.add(',"dst":');
  writeCidrs(rule.dst, out);
  const ports = rule.ports ? `[${rule.ports.map((r) => `[${r.lo},${r.hi}]`).join(',')}]` : 'null';
  const protocol = rule.protocol === 'any' ? '"any"' : String(rule.protocol);
  out.add(`,"protocol":${protocol},"ports":${ports}`);
  if (rule.tenants !== null) out.add(`,"tenants":${JSON.stringify(rule.tenants.map((t) => t.name))}`);
  out.add('}');
}

/** The prefixes' texts as a JSON list. */
function writeCidrs(list: Cidr[], out: ChunkWriter): void {
  for (let i = 0; i < list.length; i++) {
    out.add(i === 0 ? '["' : '","');
    out.add(list[i]!.text);
  }
  out.add(list.length === 0 ? '[]' : '"]');
}

function ruleJson(rule: IrRule): IrRuleJson {
  const json: IrRuleJson = {
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
  if (rule.tenants !== null) json.tenants = rule.tenants.map((t) => t.name);
  return json;
}
