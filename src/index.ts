/**
 * The public API of mbc.
 *
 *   import { loadSpec, simulate, validate } from "mbc";
 *   const result = await loadSpec("microbatch.yaml", { env: "prod" });
 *   for (const d of result.diagnostics) console.log(`${d.file}:${d.line}:${d.column} ${d.code} ${d.message}`);
 *   if (result.model) console.log(simulate(result.model, { seed: 7 }).endToEndMs.p99);
 */

import type { TargetId } from "./build/targets.js";
import { handlerExistsIn, handlerLeavesFolder } from "./load.js";
import { parseSpec } from "./parse/index.js";
import { type ValidationResult, validateParsed } from "./validate/index.js";

export { targetChecks } from "./build/checks.js";
export { TARGET_IDS, type TargetId } from "./build/targets.js";
export type { TargetCheck, TargetFinding } from "./build/types.js";
export type { Diagnostic, DiagnosticCode, Finding, Severity } from "./diagnostic.js";
export { compareDiagnostics, hasErrors, sortDiagnostics } from "./diagnostic.js";
export { handlerExistsIn, handlerLeavesFolder, type LoadOptions, loadSpec } from "./load.js";
export { normalise } from "./model/normalise.js";
export { expectedRetries, expectedShares, type InstanceLoad, retryFigure, type ServiceLoad, staticModel, weightedLoad } from "./model/static-load.js";
export type {
  BatchModel,
  FileSourceModel,
  GeneratorSourceModel,
  HandlerRef,
  HandlerServiceModel,
  HttpSourceModel,
  ImageServiceModel,
  InstanceModel,
  LoadBalancing,
  Model,
  RawSpec,
  RetryModel,
  ServiceModel,
  SourceModel,
} from "./model/types.js";
export { BUILTIN_HANDLERS, LOAD_BALANCING } from "./model/types.js";
export { parseDuration, parseRate, parseSize } from "./model/units.js";
export { MAX_ALIAS_COUNT, MAX_DEPTH, MAX_SPEC_BYTES, type ParsedSpec, parseSpec } from "./parse/index.js";
export { escapeHtml, type ReportOptions, renderReport, renderTable, type TableOptions } from "./report/index.js";
export {
  type ArrivalProcess,
  DEFAULT_MAX_EVENTS,
  type EstimateOptions,
  type EventEstimate,
  estimateEvents,
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
  SimulationTooLarge,
  type SourceResult,
  simulate,
} from "./simulate/index.js";
export { UsageError } from "./usage-error.js";
export { type ValidateOptions, type ValidationResult, validateText } from "./validate/index.js";
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
  simulationTooLargeFinding,
  strictFailures,
} from "./validate/simulate-findings.js";

/**
 * Validates a spec given as text; handler files are checked against `specDir` when given. The
 * constraints of `targets` are errors, the other targets' warnings (default: the targets the spec
 * names under `targets:`).
 */
export function validate(
  text: string,
  options: { file?: string; env?: string | null; specDir?: string; targets?: readonly TargetId[] } = {},
): ValidationResult {
  return validateParsed(parseSpec(options.file ?? "<input>", text), {
    env: options.env ?? null,
    ...(options.specDir ? { fileExists: handlerExistsIn(options.specDir), leavesFolder: handlerLeavesFolder(options.specDir) } : {}),
    ...(options.targets ? { targets: options.targets } : {}),
  });
}
