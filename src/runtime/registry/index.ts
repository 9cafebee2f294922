/**
 * The registry backend a system uses, by `registry.backend`: each is a folder beside this file
 * implementing RegistryBackend, and a case here.
 */
import type { Model } from "../../model/types.js";
import type { RegistryBackend } from "./backend.js";
import { embeddedRegistry } from "./embedded/index.js";
import { kubernetesRegistry } from "./kubernetes/index.js";

export type { Registrar, Registration, RegistryBackend, RegistryContext } from "./backend.js";

export function registryBackend(model: Model): RegistryBackend {
  switch (model.registry.backend) {
    case "embedded":
      return embeddedRegistry;
    case "kubernetes":
      return kubernetesRegistry;
  }
}
