/**
 * The registry backend a system uses. One backend today, the embedded registry; a new one
 * (etcd, Kubernetes) is a folder beside embedded/ implementing RegistryBackend, and a case here.
 */
import type { Model } from "../../model/types.js";
import type { RegistryBackend } from "./backend.js";
import { embeddedRegistry } from "./embedded/index.js";

export type { Registrar, Registration, RegistryBackend, RegistryContext } from "./backend.js";

export function registryBackend(_model: Model): RegistryBackend {
  return embeddedRegistry;
}
