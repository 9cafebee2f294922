/** Every target of `mbc build`, by id: adding a target is one folder under generators/ and one line here. */
import { composeGenerator } from "../../generators/compose/index.js";
import { nodeGenerator } from "../../generators/node/index.js";
import { systemdGenerator } from "../../generators/systemd/index.js";
import type { Generator } from "./types.js";

export const generators = {
  compose: composeGenerator,
  node: nodeGenerator,
  systemd: systemdGenerator,
} satisfies Record<string, Generator>;

export type TargetId = keyof typeof generators;
export const TARGET_IDS = Object.keys(generators) as TargetId[];
