/**
 * Which registry backends a target can run. `kubernetes` discovers instances through the
 * cluster's DNS, which only the kubernetes target provides: elsewhere no instance would ever be found.
 */
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";

/** A finding at `registry.backend` when the spec asks for the cluster's discovery outside a cluster. */
export function clusterBackendFindings(model: Model, target: string): TargetFinding[] {
  if (model.registry.backend !== "kubernetes") return [];
  return [
    {
      path: "/registry/backend",
      message: `registry.backend "kubernetes" finds instances through a cluster's DNS, which the ${target} target has none of`,
      hint: "use `embedded` (the default; on the kubernetes target it means `kubernetes`), or build only --target kubernetes",
    },
  ];
}
