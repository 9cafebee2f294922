/** Every kind of source, by the spec's `type`: adding a kind adds its entry here. */
import type { SourceModel } from "../../../model/types.js";
import { fileKind } from "./file.js";
import { generatorKind } from "./generator.js";
import { httpKind } from "./http.js";
import type { SourceKind } from "./kind.js";

export type { SourceIntake, SourceKind, SourceKindContext } from "./kind.js";

export const sourceKinds: Record<SourceModel["type"], SourceKind> = {
  http: httpKind,
  file: fileKind,
  generator: generatorKind,
};
