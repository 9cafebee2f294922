/** What generators produce and what they are given. Generators are pure: all file contents come in. */
import type { Model } from "../model/types.js";
import type { FidelityTable } from "./fidelity.js";

export interface Artefact {
  /** POSIX path relative to the target's folder. */
  path: string;
  content: string | Uint8Array;
  /** File mode (default 0o644). */
  mode?: number;
}

export interface BuildInputs {
  /** The spec file's name as the user gave it (shown in headers). */
  specName: string;
  /** sha256 of the spec file's bytes, hex. */
  specSha256: string;
  /** Every module handler's bytes, by its path relative to the spec's folder (as in the model). */
  handlerSources: Readonly<Record<string, Uint8Array>>;
  /** The bundled runtime (mbc-runtime.mjs). */
  runtime: Uint8Array;
  /** Template text by file name: the built-in ones, with `--templates DIR` overrides applied. */
  templates: Readonly<Record<string, string>>;
  /** mbc's version. */
  version: string;
  /**
   * The model of each environment of the spec (`environments:`, each merged as `--env NAME`
   * would), by name: the kubernetes target writes an overlay for each. Absent: none.
   */
  environments?: Readonly<Record<string, Model>>;
}

/**
 * A constraint of a target that the spec breaks, at the field that breaks it (a JSON Pointer into
 * the effective spec). `mbc validate` reports it as `target-constraint`: an error for the targets
 * the spec or `--target` names, a warning for the others.
 */
export interface TargetFinding {
  path: string;
  /** Point at the key rather than the value. */
  at?: "key" | "value";
  message: string;
  hint?: string;
}

/** A target's constraints on a model: pure, and light enough for `mbc validate` to load. */
export type TargetCheck = (model: Model) => TargetFinding[];

export interface Generator {
  id: string;
  /** One line for `--help` and docs. */
  describe: string;
  /** Template file names this generator renders (looked up in generators/ID/templates/). */
  templates: readonly string[];
  /** How this target carries every field of the spec. */
  fidelity: FidelityTable;
  /** What this target cannot carry, as findings at the fields (generators/ID/check.ts); `generate` may assume there are none. */
  check: TargetCheck;
  generate(model: Model, inputs: BuildInputs): Artefact[];
  /** Warnings `mbc build` prints about what the target needs of the place it runs (not findings of the spec). */
  notes?: (model: Model) => string[];
}
