// SPDX-License-Identifier: Apache-2.0
// `doorstep validate FILE…`: offline check; every problem with file:line:column and field, and
// `doorstep lint`'s findings as warnings.
import { compileIr } from '../policy/compile.js';
import { readPolicySources } from '../policy/parse/files.js';
import { buildClassTables } from '../policy/tables/tables.js';
import { lintPolicy, ruleEntries } from '../policy/tools/lint.js';
import { findingLine } from './lint.js';
import { ExitCode } from './output.js';

export async function validate(paths: string[], output: 'table' | 'json'): Promise<number> {
  const sources = await readPolicySources(paths);
  const { ir, warnings: compilerWarnings, model } = compileIr(sources);
  const analysis = buildClassTables(ir);
  const { tables } = analysis;
  // the analysis's findings (doorstep lint) are warnings: they never stop a policy
  const warnings = [...compilerWarnings, ...lintPolicy(ir, analysis, ruleEntries(model)).findings.map(findingLine)];
  if (output === 'json') {
    console.log(JSON.stringify({ valid: true, version: ir.version, rules: ir.rules.length, tables: tables.stats, warnings }));
  } else {
    for (const w of warnings) console.log(`warning: ${w}`);
    console.log(`valid: ${ir.rules.length} rules, version ${ir.version}`);
    console.log(`tables: ${tables.stats.srcClasses} source classes, ${tables.stats.dstClasses} destination classes, ${tables.stats.svcClasses} service classes, ${tables.target.length} targets, ${tables.verdict.length} verdicts`);
  }
  return ExitCode.OK;
}
