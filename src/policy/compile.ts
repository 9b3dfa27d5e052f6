// SPDX-License-Identifier: Apache-2.0
// The compiler's entry points: policy sources → validated model → IR → class tables. Pure: the
// caller reads the files (parse/files.ts) and installs the result; errors are thrown, never printed.

import { PolicyError, type PolicyProblem } from '../errors.js';
import type { ClassTables, PolicyIr } from './ir/ir.js';
import type { PolicySource } from './parse/documents.js';
import { normalize } from './normalize.js';
import { buildTables, type TableBudget } from './tables/tables.js';
import { type PolicyModel, validatePolicySources } from './parse/validate.js';

export interface CompileOptions {
  /** Table size limits; see DEFAULT_TABLE_BUDGET. */
  budget?: Partial<TableBudget>;
}

export interface Compiled {
  ir: PolicyIr;
  tables: ClassTables;
  /** `file:line: …` notes that do not stop the policy (e.g. a rule dropped as a duplicate). */
  warnings: string[];
}

/**
 * Compiles a policy set (all files given together, in order). Throws PolicyError with every
 * problem found, or DoorstepError DS_E_TABLE_BUDGET when the tables would be too large.
 */
export function compileSources(sources: readonly PolicySource[], options: CompileOptions = {}): Compiled {
  const { ir, warnings } = compileIr(sources);
  return { ir, tables: buildTables(ir, options.budget), warnings };
}

/** Validation, normalization and hashing without building the tables (and the validated model, for lint). Throws PolicyError. */
export function compileIr(sources: readonly PolicySource[]): { ir: PolicyIr; warnings: string[]; model: PolicyModel } {
  const { model, problems } = validatePolicySources(sources);
  if (problems.length > 0) throw new PolicyError(problems);
  return { ...normalize(model), model };
}

/** Every problem in the sources, in file order; empty when the policy set is valid. */
export function validateSources(sources: readonly PolicySource[]): PolicyProblem[] {
  return validatePolicySources(sources).problems;
}
