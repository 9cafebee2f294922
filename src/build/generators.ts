/** Every target of `mbc build`, by id: adding a target is one folder under generators/ and one line here. */
import { nodeGenerator } from "../../generators/node/index.js";
import type { Generator } from "./types.js";

export const generators = {
  node: nodeGenerator,
} satisfies Record<string, Generator>;

export type TargetId = keyof typeof generators;
export const TARGET_IDS = Object.keys(generators) as TargetId[];
