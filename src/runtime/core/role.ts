/**
 * What a process role (registry, source, service instance) gets from the process scaffolding
 * (src/runtime/process/) and gives back. Types only: a role depends on these, never on the
 * scaffolding itself.
 */
import type { Model } from "../../model/types.js";
import type { ProcessRole } from "../../policy/index.js";
import type { Clock } from "./clock.js";
import type { DiscoveryClient, Logger, RoleHandle, RuntimeEnv, SystemFile } from "./contracts.js";
import type { HttpClient, ReadyState, Route } from "./http.js";
import type { RuntimeMetrics } from "./metrics.js";

export type { ProcessRole };

export interface RoleContext {
  readonly env: RuntimeEnv;
  readonly system: SystemFile;
  readonly model: Model;
  /** Which process this is (and its SourceModel / ServiceModel). */
  readonly spec: ProcessRole;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  /** A keep-alive HTTP client shared by the process (closed on exit). */
  readonly client: HttpClient;
  /** The registry's view of the live instances (its backend's); created on first use, closed on exit. */
  readonly discovery: DiscoveryClient;
  /** True from the moment shutdown begins. */
  isDraining(): boolean;
  /** The clock of timers, heartbeats, TTLs and polls (a manual one in unit tests). */
  readonly clock: Clock;
}

export interface Role extends RoleHandle {
  routes?: readonly Route[];
  /** Starts the work, before the server listens: the process is reachable only once it can serve. */
  start?(): void | Promise<void>;
  ready?(): ReadyState;
}

export type RoleFactory = (ctx: RoleContext) => Role | Promise<Role>;
