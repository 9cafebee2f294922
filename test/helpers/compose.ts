/**
 * Builds the compose target in-process for tests: `build(spec, files)` validates a spec (errors
 * fail the test) and runs the compose generator on it; `writeOut` writes the artefacts to a folder.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "yaml";
import { composeGenerator } from "../../generators/compose/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { validateText } from "../../src/validate/index.js";
import { repoRoot, tempDir } from "./runtime.js";

const templatesDir = join(repoRoot, "generators", "compose", "templates");
const templates = Object.fromEntries(readdirSync(templatesDir).map((n) => [n, readFileSync(join(templatesDir, n), "utf8")]));
const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8"));

export interface Built {
  model: Model;
  artefacts: Artefact[];
  file(path: string): string;
  compose: ComposeFile;
}

export interface ComposeFile {
  services: Record<string, Record<string, unknown>>;
  networks: Record<string, unknown>;
  volumes: Record<string, unknown>;
}

/** Validates a spec (errors fail the test) and runs the compose generator on it. */
export function build(spec: string | object, files: Record<string, string> = {}, options: { specName?: string; runtime?: Uint8Array } = {}): Built {
  const source = typeof spec === "string" ? spec : JSON.stringify(spec, null, 2);
  const { model, diagnostics } = validateText("microbatch.yaml", source, { fileExists: (p) => p in files });
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (!model || errors.length > 0) throw new Error(`the test spec has errors: ${errors.map((d) => `${d.code} ${d.path}: ${d.message}`).join("; ")}`);
  const inputs: BuildInputs = {
    specName: options.specName ?? "microbatch.yaml",
    specSha256: createHash("sha256").update(source).digest("hex"),
    handlerSources: Object.fromEntries(Object.entries(files).map(([p, t]) => [p, new TextEncoder().encode(t)])),
    runtime: options.runtime ?? new TextEncoder().encode("// the bundled runtime stands here\n"),
    templates,
    version: "0.0.0-test",
  };
  const artefacts = composeGenerator.generate(model, inputs);
  const file = (path: string) => {
    const a = artefacts.find((x) => x.path === path);
    if (!a) throw new Error(`no ${path} among ${artefacts.map((x) => x.path).join(", ")}`);
    return text(a.content);
  };
  return { model, artefacts, file, compose: parse(file("compose.yaml")) as ComposeFile };
}

/** Writes the artefacts of a build into a folder (a new temporary one by default). */
export function writeOut(built: Built, dir = tempDir("mbc-compose-")): string {
  for (const a of built.artefacts) {
    mkdirSync(dirname(join(dir, a.path)), { recursive: true });
    writeFileSync(join(dir, a.path), a.content);
  }
  return dir;
}
