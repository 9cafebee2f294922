/**
 * The public API of mbc.
 *
 *   import { loadSpec, simulate, validate } from "mbc";
 *   const result = await loadSpec("microbatch.yaml", { env: "prod" });
 *   for (const d of result.diagnostics) console.log(`${d.file}:${d.line}:${d.column} ${d.code} ${d.message}`);
 *   if (result.model) console.log(simulate(result.model, { seed: 7 }).endToEndMs.p99);
 */

import { statSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { MAX_SPEC_BYTES, parseSpec } from "./parse/index.js";
import { UsageError, type ValidateOptions, type ValidationResult, validateParsed } from "./validate/index.js";

export type { Diagnostic, DiagnosticCode, Finding, Severity } from "./diagnostic.js";
export { compareDiagnostics, hasErrors, sortDiagnostics } from "./diagnostic.js";
export { normalise } from "./model/normalise.js";
export type { BatchModel, HandlerRef, InstanceModel, LoadBalancing, Model, RawSpec, RetryModel, ServiceModel, SourceModel } from "./model/types.js";
export { BUILTIN_HANDLERS, LOAD_BALANCING } from "./model/types.js";
export { parseDuration, parseRate, parseSize } from "./model/units.js";
export { MAX_ALIAS_COUNT, MAX_SPEC_BYTES, type ParsedSpec, parseSpec } from "./parse/index.js";
export { escapeHtml, type ReportOptions, renderReport, renderTable, type TableOptions } from "./report/index.js";
export {
  type ArrivalProcess,
  type FailureKind,
  type InstancePrediction,
  type InstanceResult,
  type Percentiles,
  type ServicePrediction,
  type ServiceResult,
  type ServiceTimeDistribution,
  type SimulateOptions,
  type SimulationResult,
  type SimulationSeries,
  type SourceResult,
  simulate,
} from "./simulate/index.js";
export { expectedRetries, expectedShares, type InstanceLoad, retryFigure, type ServiceLoad, staticModel, weightedLoad } from "./simulate/static-model.js";
export { UsageError, type ValidateOptions, type ValidationResult, validateText } from "./validate/index.js";
export type { Rule, RuleContext } from "./validate/rule.js";
export { rules } from "./validate/rules/index.js";
export {
  assessService,
  blocksSimulation,
  type InstanceAssessment,
  type LoadLevel,
  offeredLoad,
  type ServiceAssessment,
  simulationDiagnostics,
  simulationFindings,
  strictFailures,
} from "./validate/simulate-findings.js";

/** A file-system check for handler modules, relative to a spec's folder. */
export function handlerExistsIn(specDir: string): (relativePath: string) => boolean {
  return (relativePath) => {
    try {
      return statSync(resolve(specDir, relativePath)).isFile();
    } catch {
      return false;
    }
  };
}

export interface LoadOptions {
  env?: string | null;
  /** The file name shown in diagnostics (default: the path as given). */
  displayName?: string;
}

/**
 * Reads, parses and validates a spec file. Problems with the spec are diagnostics in the
 * result; a file that cannot be read, or an unknown `env`, throws a UsageError.
 */
export async function loadSpec(path: string, options: LoadOptions = {}): Promise<ValidationResult> {
  let bytes: Uint8Array;
  let size: number;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw new UsageError(`${path}: is a folder, not a spec file`, "name the spec file, e.g. microbatch.yaml");
    // An oversized file is refused by its size, without reading it.
    bytes = info.size > MAX_SPEC_BYTES ? new Uint8Array(0) : await readFile(path);
    size = info.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : `cannot read (${code ?? String(err)})`}`);
  }
  const validateOptions: ValidateOptions = { env: options.env ?? null, fileExists: handlerExistsIn(dirname(resolve(path))) };
  return validateParsed(parseSpec(options.displayName ?? path, bytes, { size }), validateOptions);
}

/** Validates a spec given as text; handler files are checked against `specDir` when given. */
export function validate(text: string, options: { file?: string; env?: string | null; specDir?: string } = {}): ValidationResult {
  return validateParsed(parseSpec(options.file ?? "<input>", text), {
    env: options.env ?? null,
    ...(options.specDir ? { fileExists: handlerExistsIn(options.specDir) } : {}),
  });
}
