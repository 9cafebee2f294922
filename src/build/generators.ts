/** Every target of `mbc build`, by id: adding a target is one folder under generators/, its id in targets.ts, and one line here. */
import { composeGenerator } from "../../generators/compose/index.js";
import { kubernetesGenerator } from "../../generators/kubernetes/index.js";
import { nodeGenerator } from "../../generators/node/index.js";
import { systemdGenerator } from "../../generators/systemd/index.js";
import type { TargetId } from "./targets.js";
import type { Generator } from "./types.js";

export { TARGET_IDS, type TargetId } from "./targets.js";

export const generators = {
  compose: composeGenerator,
  kubernetes: kubernetesGenerator,
  node: nodeGenerator,
  systemd: systemdGenerator,
} satisfies Record<TargetId, Generator>;
