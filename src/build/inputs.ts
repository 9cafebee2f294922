/**
 * Gathers what the pure generators need from the file system: the spec's bytes, every handler
 * module, the bundled runtime and the templates (with `--templates DIR` overrides).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { crypto } from "../builtins-lazy.js";
import type { Model } from "../model/types.js";
import { PACKAGE_FILES, readPackageFile, readPackageText } from "../package-files.js";
import { isWithin, realPathOf } from "../real-path.js";
import { UsageError } from "../usage-error.js";
import { generators, type TargetId } from "./generators.js";
import type { BuildInputs } from "./types.js";

export interface GatherOptions {
  specPath: string;
  /** The spec's name in headers: as the user gave it. */
  specName: string;
  model: Model;
  targets: readonly TargetId[];
  /** mbc's package folder (holds dist/runtime and generators/); by default the one this code is in. */
  packageRoot?: string;
  templatesDir?: string;
  version: string;
  /** Each environment's model (the kubernetes target's overlays). */
  environments?: Readonly<Record<string, Model>>;
}

export function gatherBuildInputs(o: GatherOptions): BuildInputs {
  const specBytes = readFileSync(o.specPath);
  const specDir = dirname(resolve(o.specPath));
  const handlerSources: Record<string, Uint8Array> = {};
  const realSpecDir = realPathOf(specDir);
  for (const s of o.model.services) {
    if (s.handler?.kind !== "module") continue;
    // Validation said so already; the file system may have changed since, and what is read here is copied into every target.
    const real = realPathOf(join(specDir, s.handler.path));
    if (s.handler.outside || !isWithin(realSpecDir, real)) {
      throw new UsageError(
        `handler ${s.handler.path} of service "${s.name}" leads out of the spec's folder; nothing is copied from there`,
        "copy the module into the spec's folder instead of linking to it",
      );
    }
    try {
      // Only a regular file: reading a FIFO or a device would block or never end.
      if (!statSync(real).isFile()) throw Object.assign(new Error("not a file"), { code: "not a regular file" });
      handlerSources[s.handler.path] = readFileSync(real);
    } catch (err) {
      throw new UsageError(`cannot read handler ${s.handler.path} of service "${s.name}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const runtime: Uint8Array = readPackageFile(PACKAGE_FILES.runtime, o.packageRoot);
  const templates: Record<string, string> = {};
  const known = new Set<string>();
  for (const id of o.targets) {
    for (const name of generators[id].templates) {
      known.add(name);
      templates[name] = readPackageText(PACKAGE_FILES.template(id, name), o.packageRoot);
    }
  }
  if (o.templatesDir !== undefined) {
    if (!existsSync(o.templatesDir) || !statSync(o.templatesDir).isDirectory()) throw new UsageError(`--templates: ${o.templatesDir} is not a folder`);
    for (const name of readdirSync(o.templatesDir)) {
      if (!name.endsWith(".hbs")) continue;
      if (!known.has(name)) {
        throw new UsageError(`--templates: no target of this build uses a template named ${basename(name)}`, `templates: ${[...known].sort().join(", ")}`);
      }
      templates[name] = readFileSync(join(o.templatesDir, name), "utf8");
    }
  }
  return {
    specName: o.specName,
    specSha256: crypto().createHash("sha256").update(specBytes).digest("hex"),
    handlerSources,
    runtime,
    templates,
    version: o.version,
    ...(o.environments === undefined ? {} : { environments: o.environments }),
  };
}
