// SPDX-License-Identifier: Apache-2.0
// `doorstep lint FILE…`: offline policy analysis (src/policy/tools/lint.ts): unmatchable, shadowed and
// redundant rules, allow/deny overlaps only order decides, port ranges that never decide. Each
// finding names its rules with file:line and an example flow. Exit 0, or 3 with --strict when
// there is any finding.
import { compileIr } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import { flowText, lintIr, type LintFinding } from '../policy/tools/lint.js';
import { formatAddress } from '../policy/ir/cidr.js';
import { ExitCode } from './output.js';

/** A finding as one line, for `lint` and `validate`'s warnings. */
export function findingLine(f: LintFinding): string {
  return `${f.rules[0]!.file}:${f.rules[0]!.line}: ${f.kind}: ${f.message}`;
}

export async function lint(paths: string[], output: 'table' | 'json', strict: boolean): Promise<number> {
  const { ir, warnings, model } = compileIr(await readPolicySources(paths));
  const { report, ms } = lintIr(ir, model);
  if (output === 'json') {
    const findings = report.findings.map((f) => ({
      ...f,
      ...(f.example && { example: { ...f.example, src: formatAddress(f.example.family, f.example.src), dst: formatAddress(f.example.family, f.example.dst), text: flowText(f.example) } }),
    }));
    console.log(JSON.stringify({ version: ir.version, rules: ir.rules.length, cells: report.stats.cells, ms: Math.round(ms * 10) / 10, findings, warnings }));
  } else {
    for (const w of warnings) console.log(`warning: ${w}`);
    for (const f of report.findings) console.log(findingLine(f));
    const counts = new Map<string, number>();
    for (const f of report.findings) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
    const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no findings';
    console.log(`lint: ${ir.rules.length} rules, ${report.stats.cells} cells: ${summary} (${ms.toFixed(0)} ms)`);
  }
  return strict && report.findings.length > 0 ? ExitCode.POLICY : ExitCode.OK;
}
