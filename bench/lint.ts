// SPDX-License-Identifier: Apache-2.0
// `npm run bench:lint` (issue 16): how long `doorstep lint` takes on large policies. Prints, per
// policy, the rule count, the compile (validate + IR) time, the lint time (class tables and the
// analysis) and the findings by kind. The policies: a threat feed of /32 denies in front of
// service allows (bench:flood's shape), and microsegmentation allows with shadowed and redundant
// rules planted. LINT_RULES overrides the size (default 100,000).
import { compileIr } from '../src/policy/compile.js';
import { lintPolicy, ruleEntries } from '../src/policy/tools/lint.js';
import { buildClassTables } from '../src/policy/tables/tables.js';

const RULES = Number(process.env.LINT_RULES ?? 100_000);

interface Rule {
  name: string;
  action: 'allow' | 'deny';
  from?: string[];
  to?: string[];
  protocol?: string;
  ports?: (number | string)[];
}

const ip = (n: number) => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** A feed of `count - 40` /32 denies of UDP to one port (bench:flood's), after 20 service allows and before 20 more. */
function feedPolicy(count: number): Rule[] {
  const services = (from: number, n: number): Rule[] =>
    Array.from({ length: n }, (_, i) => ({ name: `svc-${from + i}`, action: 'allow', from: ['any'], to: [`10.${from + i}.0.0/16`], protocol: 'udp', ports: [9999, 8000 + i] }));
  const feed = Array.from({ length: count - 40 }, (_, i): Rule => ({ name: `feed-${i}`, action: 'deny', from: [`${ip(0xac100000 + i * 7)}/32`], protocol: 'udp', ports: [9999] }));
  return [...services(0, 20), ...feed, ...services(20, 20)];
}

/**
 * Microsegmentation: per-source allows to 200 services (a /24–/32 inside 10.0.0.0/8 to one
 * service's /32 and two ports), in front of every 50th a deny of its /16 to its service's first
 * port (which then never decides for it: dead ports), and a repeat of every 40th with one of its
 * ports (shadowed). Seeded.
 */
function segmentPolicy(count: number): Rule[] {
  let seed = 0x5eed;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const rules: Rule[] = [];
  while (rules.length < count) {
    const i = rules.length;
    const len = [24, 28, 32][rnd(3)]!;
    const src = (0x0a000000 | (rnd(1 << 24) & ~((1 << (32 - len)) - 1))) >>> 0;
    const svc = rnd(200);
    if (i % 50 === 0) rules.push({ name: `deny-${i}`, action: 'deny', from: [`${ip(src & 0xffff0000)}/16`], to: [`${ip(0x0ac80000 + svc)}/32`], protocol: 'tcp', ports: [8000 + svc] });
    const rule: Rule = { name: `allow-${i}`, action: 'allow', from: [`${ip(src)}/${len}`], to: [`${ip(0x0ac80000 + svc)}/32`], protocol: 'tcp', ports: [8000 + svc, 9000 + (svc % 7)] };
    rules.push(rule);
    if (i % 40 === 0) rules.push({ ...rule, name: `again-${i}`, ports: [8000 + svc] });
  }
  return rules.slice(0, count);
}

function measure(name: string, rules: Rule[]): void {
  const text = JSON.stringify({ apiVersion: 'doorstep/v1', kind: 'NetworkPolicy', metadata: { name: 'bench' }, spec: { defaultAction: 'deny', rules } });
  let t = performance.now();
  const { ir, model } = compileIr([{ file: `${name}.json`, text }]);
  const compileMs = performance.now() - t;
  t = performance.now();
  const analysis = buildClassTables(ir);
  const tablesMs = performance.now() - t;
  t = performance.now();
  const report = lintPolicy(ir, analysis, ruleEntries(model));
  const lintMs = performance.now() - t;
  const counts = new Map<string, number>();
  for (const f of report.findings) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  const found = [...counts].map(([k, n]) => `${n.toLocaleString('en-US')} ${k}`).join(', ') || 'none';
  console.log(
    `${name.padEnd(8)} ${ir.rules.length.toLocaleString('en-US').padStart(8)} rules  compile ${compileMs.toFixed(0).padStart(6)} ms  tables ${tablesMs.toFixed(0).padStart(6)} ms  ` +
      `analysis ${lintMs.toFixed(0).padStart(6)} ms  lint total ${(tablesMs + lintMs).toFixed(0).padStart(6)} ms  ${report.stats.cells.toLocaleString('en-US')} cells  findings: ${found}`,
  );
}

console.log(`bench:lint — \`doorstep lint\` on ${RULES.toLocaleString('en-US')}-rule policies (lint total = class tables + analysis; compile = validation and IR, which validate and apply pay anyway)\n`);
measure('feed', feedPolicy(RULES));
measure('segment', segmentPolicy(RULES));
