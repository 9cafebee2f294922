/**
 * The registry seam: how an instance makes itself known and how a process finds the live
 * instances of a service. The process scaffolding and the supervisor speak only to this
 * interface; each backend (the embedded HTTP registry, etcd) is a folder beside this file.
 */
import type { Model } from "../../model/types.js";
import type { Clock } from "../core/clock.js";
import type { DiscoveryClient, Logger, RuntimeEnv } from "../core/contracts.js";
import type { HttpClient } from "../core/http.js";
import type { RoleFactory } from "../core/role.js";

/** What a backend gets from the process it serves. */
export interface RegistryContext {
  readonly env: RuntimeEnv;
  readonly model: Model;
  readonly log: Logger;
  readonly clock: Clock;
  /** The process's keep-alive HTTP client (a backend that speaks HTTP may share it). */
  readonly client: HttpClient;
}

/** An instance as it registers: where it is reached and what the balancers weigh it by. */
export interface Registration {
  service: string;
  instance: number;
  url: string;
  weight: number;
  capacityPerSec: number | null;
}

/** Keeps one instance registered while it runs. */
export interface Registrar {
  /** Whether the registry holds this instance now (as far as the registrar knows): part of /readyz. */
  registered(): boolean;
  /** Stops keeping it registered and deregisters it; never throws. */
  stop(): Promise<void>;
  /**
   * Settles when the registrar gives up for good, with the reason (another process holds this
   * instance): the process must stop, and exits 2. Absent, or never settling, for a registrar that
   * never gives up.
   */
  readonly failed?: Promise<Error>;
}

export interface RegistryBackend {
  readonly name: string;
  /**
   * The role of the system's own registry process, which the supervisor starts before every
   * other and each target runs as a process of its own; null for a registry outside the system.
   */
  readonly role: RoleFactory | null;
  /** Registers an instance and keeps it registered until `stop()`. */
  register(ctx: RegistryContext, registration: Registration): Registrar;
  /** A discovery client for the process: a cached view that follows the registry. */
  discover(ctx: RegistryContext): DiscoveryClient;
}
