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
}

export interface Generator {
  id: string;
  /** One line for `--help` and docs. */
  describe: string;
  /** Template file names this generator renders (looked up in generators/ID/templates/). */
  templates: readonly string[];
  /** How this target carries every field of the spec. */
  fidelity: FidelityTable;
  generate(model: Model, inputs: BuildInputs): Artefact[];
}
