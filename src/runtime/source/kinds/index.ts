/** Every kind of source, by the spec's `type`: adding a kind adds its entry here. */
import type { SourceModelOf, SourceType } from "../../../model/types.js";
import { fileKind } from "./file.js";
import { generatorKind } from "./generator.js";
import { httpKind } from "./http.js";
import type { SourceIntake, SourceKind, SourceKindContext } from "./kind.js";

export type { SourceIntake, SourceKind, SourceKindContext } from "./kind.js";

/** Each kind takes its own variant of the model: the compiler pairs them. */
export const sourceKinds: { [T in SourceType]: SourceKind<SourceModelOf<T>> } = {
  http: httpKind,
  file: fileKind,
  generator: generatorKind,
};

/**
 * Opens the kind of a source. The `type` comes apart from the source so that TypeScript pairs
 * the kind with its variant of the model (it cannot do so through `ctx.source.type`).
 */
export function openSourceKind<T extends SourceType>(type: T, ctx: SourceKindContext<SourceModelOf<T>>): SourceIntake {
  return sourceKinds[type].open(ctx);
}
