/**
 * What tests that build in memory share: every target's templates as the CLI reads them, and the
 * build inputs for a spec's text (its hash, the handler sources, a stand-in for the runtime).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TARGET_IDS } from "../../src/build/targets.js";
import type { BuildInputs } from "../../src/build/types.js";

const repo = resolve(import.meta.dirname, "..", "..");

let cached: Record<string, string> | undefined;

/** Every target's templates, by file name. */
export function allTemplates(): Record<string, string> {
  if (cached === undefined) {
    cached = {};
    for (const id of TARGET_IDS) {
      const dir = join(repo, "generators", id, "templates");
      for (const name of readdirSync(dir)) cached[name] = readFileSync(join(dir, name), "utf8");
    }
  }
  return { ...cached };
}

export interface InputOptions {
  specName?: string;
  handlerSources?: Record<string, Uint8Array>;
  runtime?: Uint8Array;
}

/** Build inputs for a spec's text, as `mbc build` would read them. */
export function buildInputs(text: string, options: InputOptions = {}): BuildInputs {
  return {
    specName: options.specName ?? "microbatch.yaml",
    specSha256: createHash("sha256").update(text).digest("hex"),
    handlerSources: options.handlerSources ?? {},
    runtime: options.runtime ?? new TextEncoder().encode("// the bundled runtime stands here\n"),
    templates: allTemplates(),
    version: "0.0.0-test",
  };
}
