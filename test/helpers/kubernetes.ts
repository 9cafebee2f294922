/**
 * Builds the kubernetes target in-process for tests: `buildKubernetes(spec, files)` validates a
 * spec (errors fail the test), makes each environment's model as `--env NAME` would, and runs the
 * generator; `writeOut` (from compose.ts) writes the artefacts to a folder.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { kubernetesGenerator } from "../../generators/kubernetes/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { environmentNames, validateText } from "../../src/validate/index.js";
import { repoRoot, tempDir } from "./runtime.js";

export const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8"));

const README = "kubernetes-README.md.hbs";
const templates = { [README]: readFileSync(join(repoRoot, "generators", "kubernetes", "templates", README), "utf8") };

export interface BuiltK8s {
  model: Model;
  inputs: BuildInputs;
  artefacts: Artefact[];
  file(path: string): string;
  /** Every YAML document of a file, parsed. */
  docs(path: string): Record<string, unknown>[];
}

export function buildKubernetes(spec: string, files: Record<string, string> = {}, options: { runtime?: Uint8Array } = {}): BuiltK8s {
  const check = (env: string | null) => {
    const { model, diagnostics } = validateText("microbatch.yaml", spec, {
      env,
      fileExists: (p) => p in files,
      targets: ["kubernetes"],
      otherTargets: "ignore",
    });
    const errors = diagnostics.filter((d) => d.severity === "error");
    if (!model || errors.length > 0) throw new Error(`the test spec has errors: ${errors.map((d) => `${d.code} ${d.path}: ${d.message}`).join("; ")}`);
    return model;
  };
  const model = check(null);
  const environments = Object.fromEntries(environmentNames(parse(spec)).map((e) => [e, check(e)]));
  const inputs: BuildInputs = {
    specName: "microbatch.yaml",
    specSha256: createHash("sha256").update(spec).digest("hex"),
    handlerSources: Object.fromEntries(Object.entries(files).map(([p, t]) => [p, new TextEncoder().encode(t)])),
    runtime: options.runtime ?? new TextEncoder().encode("// the bundled runtime stands here\n"),
    templates,
    version: "0.0.0-test",
    environments,
  };
  const artefacts = kubernetesGenerator.generate(model, inputs);
  const file = (path: string) => {
    const a = artefacts.find((x) => x.path === path);
    if (!a) throw new Error(`no ${path} among ${artefacts.map((x) => x.path).join(", ")}`);
    return text(a.content);
  };
  const docs = (path: string) => parseAllDocuments(file(path)).map((d) => d.toJS() as Record<string, unknown>);
  return { model, inputs, artefacts, file, docs };
}

/** Writes the artefacts to a fresh folder (removed by cleanupAll) and returns it. */
export function writeK8s(built: BuiltK8s, dir = tempDir("mbc-kubernetes-")): string {
  for (const a of built.artefacts) {
    mkdirSync(dirname(join(dir, a.path)), { recursive: true });
    writeFileSync(join(dir, a.path), a.content);
  }
  return dir;
}
