/**
 * The kubernetes registry backend (registry.backend `kubernetes`; on the kubernetes target
 * `embedded` means it too): the cluster is the registry. No registry process runs (`role: null`).
 * An instance is registered while its pod is ready: the readiness probe asks
 * `/readyz?scope=self`, which holds while the process serves and is not draining, and the
 * headless Service publishes the pod's DNS name only then. Discovery looks those names up
 * (discovery.ts). See docs/target-kubernetes.md.
 */
import type { Registrar, RegistryBackend } from "../backend.js";
import { createKubernetesDiscovery, type HostResolver } from "./discovery.js";

export { createKubernetesDiscovery, dnsResolver, endpointOf, type HostResolver } from "./discovery.js";

/** Readiness is the registration: registered from the moment the process serves (it registers only then) until it stops. */
export function readinessRegistrar(): Registrar {
  let stopped = false;
  return {
    registered: () => !stopped,
    async stop() {
      stopped = true;
    },
  };
}

/** The backend, with the resolver its discovery uses (tests give their own). */
export function kubernetesRegistryWith(resolver?: HostResolver): RegistryBackend {
  return {
    name: "kubernetes",
    role: null,
    register: () => readinessRegistrar(),
    discover(ctx) {
      return createKubernetesDiscovery({
        model: ctx.model,
        namespace: ctx.env.namespace,
        intervalMs: ctx.model.registry.heartbeatMs,
        log: ctx.log,
        clock: ctx.clock,
        ...(resolver === undefined ? {} : { resolver }),
      });
    },
  };
}

export const kubernetesRegistry: RegistryBackend = kubernetesRegistryWith();
