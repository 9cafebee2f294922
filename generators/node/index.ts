/**
 * The node target: a folder that runs with nothing but Node ≥ 20 (see docs/runtime.md):
 * mbc-runtime.mjs, system.json, handlers/, package.json and a README.
 *
 * Relative paths of the spec (checkpoint.dir, file sources, sink paths) resolve against the
 * folder the runtime runs from (MBC_DATA_DIR, default this folder): `mbc build` keeps what the
 * runtime writes there when it rebuilds.
 */
import { renderFidelity } from "../../src/build/fidelity.js";
import { headerText } from "../../src/build/header.js";
import { render } from "../../src/build/templates.js";
import type { Artefact, BuildInputs, Generator } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import type { SystemFile } from "../../src/runtime/contracts.js";
import { checkNode } from "./check.js";
import { nodeFidelity } from "./fidelity.js";

/** Where a handler module is copied: under handlers/, keeping its path below the spec's folder. */
export function handlerTarget(path: string): string {
  return `handlers/${path.replace(/^handlers\//, "")}`;
}

/**
 * The runtime folder every target ships: mbc-runtime.mjs, system.json and the handler copies.
 * The compose and systemd targets put it under runtime/ with `runtimePackage`.
 */
export function runtimeFolder(model: Model, inputs: BuildInputs): Artefact[] {
  const handlers: Record<string, string> = {};
  const copies = new Map<string, Uint8Array>();
  for (const s of model.services) {
    if (s.handler?.kind !== "module") continue;
    const source = inputs.handlerSources[s.handler.path];
    if (!source) throw new Error(`handler ${s.handler.path} of service "${s.name}" was not read`);
    const target = handlerTarget(s.handler.path);
    handlers[s.name] = target;
    copies.set(target, source);
  }
  const system: SystemFile = { mbc: 1, model, handlers };
  return [
    { path: "mbc-runtime.mjs", content: inputs.runtime },
    { path: "system.json", content: `${JSON.stringify(system, null, 2)}\n` },
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

export const nodeGenerator: Generator = {
  id: "node",
  describe: "a folder that runs the whole system with `node mbc-runtime.mjs`",
  templates: ["README.md.hbs", "package.json.hbs"],
  fidelity: nodeFidelity,
  check: checkNode,
  generate(model: Model, inputs: BuildInputs): Artefact[] {
    const data = {
      header: headerText(inputs),
      name: model.name,
      description: model.description,
      version: inputs.version,
      specName: inputs.specName,
      sources: model.sources.map((s) => ({ name: s.name, type: s.type, port: s.port, location: s.location })),
      services: model.services.map((s) => ({ name: s.name, instances: s.instances.length, firstPort: s.port, lastPort: s.port + s.instances.length - 1 })),
      registryPort: model.registry.port,
      bind: model.targets.node.bind,
      stateDir: model.checkpoint.dir,
    };
    const [runtime, system, ...handlerCopies] = runtimeFolder(model, inputs) as [Artefact, Artefact, ...Artefact[]];
    const artefacts: Artefact[] = [
      runtime,
      system,
      { path: "package.json", content: render("package.json.hbs", inputs.templates["package.json.hbs"], data) },
      { path: "README.md", content: render("README.md.hbs", inputs.templates["README.md.hbs"], data) },
      { path: "FIDELITY.md", content: renderFidelity({ node: nodeFidelity }, headerText(inputs)) },
    ];
    return [...artefacts, ...handlerCopies];
  },
};
