/**
 * The validation pipeline of one file: parse → schema → overlay → model → semantic rules.
 * Pure: file reads and existence checks come in through the arguments.
 */
import { targetChecks } from "../build/checks.js";
import { TARGET_IDS, type TargetId } from "../build/targets.js";
import type { Diagnostic, Finding } from "../diagnostic.js";
import { hasErrors, sortDiagnostics } from "../diagnostic.js";
import { stageGraph } from "../model/graph.js";
import { identityProvenance, type Json, mergeOverlay, type Provenance } from "../model/merge.js";
import { normalise } from "../model/normalise.js";
import { staticModel } from "../model/static-load.js";
import type { Model, RawSpec } from "../model/types.js";
import { type ParsedSpec, parseSpec } from "../parse/index.js";
import { joinPointer } from "../pointer.js";
import { didYouMean } from "../suggest.js";
import { UsageError } from "../usage-error.js";
import { checkListenerCount } from "./listeners.js";
import type { RuleContext } from "./rule.js";
import { rules } from "./rules/index.js";
import { checkSchema } from "./schema.js";

export interface ValidateOptions {
  /** Environment overlay to merge (`--env NAME`). */
  env?: string | null;
  /** Whether a handler module exists, by its path relative to the spec's folder. */
  fileExists?: (relativePath: string) => boolean;
  /** Whether a handler path, with symbolic links followed, leads out of the spec's folder. */
  leavesFolder?: (relativePath: string) => boolean;
  /**
   * The targets whose constraints are errors (`--target`, or what `mbc build` builds); the other
   * targets' are warnings. Absent: the targets the spec names under `targets:`.
   */
  targets?: readonly TargetId[] | null;
  /** What the other targets' constraints are: warnings (validate), or not checked (build and run, which build only `targets`). */
  otherTargets?: "warning" | "ignore";
}

export interface ValidationResult {
  file: string;
  diagnostics: Diagnostic[];
  /** The normalised model; null when errors before the semantic rules prevent building it. */
  model: Model | null;
  /** The spec as plain data after the overlay (what the model was made from); null with the model. */
  effective: Json | null;
  parsed: ParsedSpec;
}

function toDiagnostic(parsed: ParsedSpec, f: Finding, provenance: Provenance, blame = false): Diagnostic {
  const path = blame ? provenance.blame(f.path) : provenance.origin(f.path);
  const { line, column } = parsed.locate(path, f.at);
  return {
    code: f.code,
    severity: f.severity,
    message: f.message,
    path,
    file: parsed.file,
    line,
    column,
    ...(f.hint ? { hint: f.hint } : {}),
  };
}

export function environmentNames(value: unknown): string[] {
  const envs = (value as { environments?: unknown } | null)?.environments;
  return envs && typeof envs === "object" ? Object.keys(envs) : [];
}

/** The targets a spec names under `targets:`. */
export function targetsNamedIn(spec: Json): TargetId[] {
  const targets = (spec as { targets?: unknown } | null)?.targets;
  if (typeof targets !== "object" || targets === null) return [];
  return TARGET_IDS.filter((id) => Object.hasOwn(targets, id));
}

/** Validates a parsed spec. Throws UsageError only for an `env` that the spec does not define. */
export function validateParsed(parsed: ParsedSpec, options: ValidateOptions = {}): ValidationResult {
  const diagnostics = [...parsed.diagnostics];
  const done = (model: Model | null, effective: Json | null = null): ValidationResult => ({
    file: parsed.file,
    diagnostics: sortDiagnostics(diagnostics),
    model,
    effective,
    parsed,
  });
  if (hasErrors(diagnostics)) return done(null);

  for (const f of checkSchema(parsed.value)) diagnostics.push(toDiagnostic(parsed, f, identityProvenance));
  if (hasErrors(diagnostics)) return done(null);

  const file = parsed.value as Json & { [key: string]: Json };
  const env = options.env ?? null;
  let spec = file;
  let provenance = identityProvenance;
  if (env !== null) {
    const names = environmentNames(file);
    if (!names.includes(env)) {
      const hint = didYouMean(env, names) ?? (names.length ? `environments in this spec: ${names.join(", ")}` : "this spec defines no `environments`");
      throw new UsageError(`${parsed.file}: no environment "${env}"`, hint);
    }
    const overlay = (file.environments as { [key: string]: { [key: string]: Json } })[env] ?? {};
    ({ merged: spec, provenance } = mergeOverlay(file, overlay, joinPointer("/environments", env)));
    // The overlay may make the spec invalid (say, a source turned into a generator without a rate).
    for (const f of checkSchema(spec)) diagnostics.push(toDiagnostic(parsed, f, provenance, true));
    if (hasErrors(diagnostics)) return done(null);
  }

  // More listeners than ports: the model (an object and a port an instance) is not built.
  for (const f of checkListenerCount(spec)) diagnostics.push(toDiagnostic(parsed, f, provenance, true));
  if (hasErrors(diagnostics)) return done(null);

  const { model, findings } = normalise(spec as unknown as RawSpec, env);
  for (const f of findings) diagnostics.push(toDiagnostic(parsed, f, provenance));
  const graph = stageGraph(model);
  const ctx: RuleContext = {
    model,
    graph,
    loads: staticModel(model, graph),
    spec,
    file,
    ...(options.fileExists ? { fileExists: options.fileExists } : {}),
    ...(options.leavesFolder ? { leavesFolder: options.leavesFolder } : {}),
  };
  for (const rule of Object.values(rules)) {
    for (const f of rule.check(ctx)) diagnostics.push(toDiagnostic(parsed, { ...f, code: rule.code, severity: f.severity ?? rule.severity }, provenance));
  }
  const named = options.targets ?? targetsNamedIn(spec);
  for (const id of TARGET_IDS) {
    const severity = named.includes(id) ? "error" : "warning";
    if (severity === "warning" && options.otherTargets === "ignore") continue;
    for (const f of targetChecks[id](model)) {
      diagnostics.push(toDiagnostic(parsed, { ...f, code: "target-constraint", severity, message: `the ${id} target: ${f.message}` }, provenance));
    }
  }
  return done(model, spec);
}

/** Parses and validates the text (or bytes) of one spec file. */
export function validateText(file: string, input: Uint8Array | string, options: ValidateOptions = {}): ValidationResult {
  return validateParsed(parseSpec(file, input), options);
}
