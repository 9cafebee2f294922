/**
 * The runtime folder every target ships: mbc-runtime.mjs, system.json (the build's contract with
 * the runtime) and copies of the handler modules. The node target writes it as it is; the
 * compose and systemd targets put it under runtime/ with a package.json (`runtimePackage`).
 */
import { headerText } from "../../src/build/header.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import { systemFileText } from "../../src/model/system-file.js";
import type { Model } from "../../src/model/types.js";

/** Where a handler module is copied: under handlers/, keeping its path below the spec's folder. */
export function handlerTarget(path: string): string {
  return `handlers/${path.replace(/^handlers\//, "")}`;
}

/** Where each service's handler module is copied, by service name. */
function handlerTargets(model: Model): Record<string, string> {
  const handlers: Record<string, string> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlers[s.name] = handlerTarget(s.handler.path);
  return handlers;
}

/** system.json's text for a model: what the runtime reads (a target's check may measure it). */
export function systemJsonText(model: Model): string {
  return systemFileText(model, handlerTargets(model));
}

/** The runtime folder: mbc-runtime.mjs, system.json and the handler copies. */
export function runtimeFolder(model: Model, inputs: BuildInputs): Artefact[] {
  const copies = new Map<string, Uint8Array>();
  for (const s of model.services) {
    if (s.handler?.kind !== "module") continue;
    const source = inputs.handlerSources[s.handler.path];
    if (!source) throw new Error(`handler ${s.handler.path} of service "${s.name}" was not read`);
    copies.set(handlerTarget(s.handler.path), source);
  }
  return [
    { path: "mbc-runtime.mjs", content: inputs.runtime },
    { path: "system.json", content: systemJsonText(model) },
    ...[...copies].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, content]) => ({ path, content })),
  ];
}

/** The runtime folder under `runtime/`, with a package.json that makes handler `.js` files ES modules. */
export function runtimePackage(model: Model, inputs: BuildInputs): Artefact[] {
  const pkg = {
    name: model.name,
    version: "0.0.0",
    private: true,
    description: headerText(inputs),
    // Handler modules ending in .js are ES modules too.
    type: "module",
    engines: { node: ">=20" },
  };
  return [...runtimeFolder(model, inputs), { path: "package.json", content: `${JSON.stringify(pkg, null, 2)}\n` }]
    .map((a) => ({ ...a, path: `runtime/${a.path}` }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
