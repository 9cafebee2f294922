/**
 * The registry backend a system uses, chosen by `registry.backend`: each is a folder beside this
 * file implementing RegistryBackend, and a case here.
 */
import type { Model } from "../../model/types.js";
import type { RegistryBackend } from "./backend.js";
import { embeddedRegistry } from "./embedded/index.js";
import { etcdRegistry } from "./etcd/index.js";
import { kubernetesRegistry } from "./kubernetes/index.js";

export type { Registrar, Registration, RegistryBackend, RegistryContext } from "./backend.js";

/**
 * The backend of `model`'s system. `vars` is the environment a backend takes its settings from
 * (etcd: MBC_REGISTRY_*); a bad setting is a RuntimeConfigError, thrown here, at the start.
 */
export function registryBackend(model: Model, vars: Readonly<Record<string, string | undefined>> = process.env): RegistryBackend {
  switch (model.registry.backend) {
    case "embedded":
      return embeddedRegistry;
    case "etcd":
      return etcdRegistry(model, { vars });
    case "kubernetes":
      return kubernetesRegistry;
  }
}
