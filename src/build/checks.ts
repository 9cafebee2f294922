/**
 * Every target's constraints, by id, without the generators: `mbc validate` runs them (as
 * `target-constraint`) and loads only these small modules, not the templates and the runtime
 * that building needs. Each generator carries the same function as its `check`.
 */
import { checkCompose } from "../../generators/compose/check.js";
import { checkKubernetes } from "../../generators/kubernetes/check.js";
import { checkNode } from "../../generators/node/check.js";
import { checkSystemd } from "../../generators/systemd/check.js";
import type { TargetId } from "./targets.js";
import type { TargetCheck } from "./types.js";

export const targetChecks = {
  compose: checkCompose,
  kubernetes: checkKubernetes,
  node: checkNode,
  systemd: checkSystemd,
} satisfies Record<TargetId, TargetCheck>;
