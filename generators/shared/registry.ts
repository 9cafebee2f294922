/**
 * What the targets that run the bundled runtime on hosts (node, Compose, systemd) share about the
 * registry backend: `kubernetes` discovers instances from a cluster's Services and pod readiness,
 * which none of them has, so it is a constraint of each (only the kubernetes target carries it).
 */
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";

export function registryBackendFindings(model: Model, target: string): TargetFinding[] {
  if (model.registry.backend !== "kubernetes") return [];
  return [
    {
      path: "/registry/backend",
      message: `registry backend "kubernetes" discovers instances from a Kubernetes cluster, which the ${target} target does not run in`,
      hint: "use backend embedded (a registry process of the system; on the kubernetes target it means kubernetes) or etcd (with registry.endpoints), or build only --target kubernetes",
    },
  ];
}
