/** `mbc build`: model → artefacts per target (pure), then one place writes or checks them. */
import type { Model } from "../model/types.js";
import { generators, type TargetId } from "./generators.js";
import type { Artefact, BuildInputs } from "./types.js";

export { generators, TARGET_IDS, type TargetId } from "./generators.js";
export type { Artefact, BuildInputs, Generator } from "./types.js";

export function buildArtefacts(model: Model, inputs: BuildInputs, targets: readonly TargetId[]): Map<TargetId, Artefact[]> {
  const out = new Map<TargetId, Artefact[]>();
  for (const id of targets) {
    const artefacts = generators[id].generate(model, inputs);
    const seen = new Set<string>();
    for (const a of artefacts) {
      // A generated path must stay inside its folder, whatever names the spec holds.
      if (a.path.startsWith("/") || a.path.split("/").includes("..") || a.path === "") throw new Error(`generator ${id} produced an unsafe path: ${a.path}`);
      if (seen.has(a.path)) throw new Error(`generator ${id} produced ${a.path} twice`);
      seen.add(a.path);
    }
    out.set(id, artefacts);
  }
  return out;
}
