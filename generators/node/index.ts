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
import { registryRunsProcess } from "../../src/policy/index.js";
import { runtimeFolder } from "../shared/runtime-folder.js";
import { sourceIntake } from "../shared/sources.js";
import { checkNode } from "./check.js";
import { nodeFidelity } from "./fidelity.js";

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
      sources: model.sources.map((s) => ({ name: s.name, type: s.type, ...sourceIntake(s) })),
      services: model.services.map((s) => ({ name: s.name, instances: s.instances.length, firstPort: s.port, lastPort: s.port + s.instances.length - 1 })),
      ownRegistry: registryRunsProcess(model),
      registryPort: model.registry.port,
      etcd: model.registry.backend === "etcd" ? model.registry.endpoints.join(", ") : null,
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
