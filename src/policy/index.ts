/**
 * Operating policy that the build and the runtime must agree on, as pure functions of the
 * model: how long a process may drain, how a crashed one is restarted, how large its heap may
 * grow, where it listens. The generators write these figures into Compose files and systemd units;
 * the runtime's supervisor and processes act on the same ones. Neither side imports the other.
 */
import type { Model, ServiceModel, SourceModel } from "../model/types.js";

/** A process of a system, as far as policy is concerned (the supervisor is none of these). */
export type ProcessRole =
  | { kind: "registry" }
  | { kind: "source"; name: string; source: SourceModel }
  | { kind: "service"; name: string; instance: number; service: ServiceModel };

// ---------------------------------------------------------------------------------------------
// Deadlines and draining

/** Longest a process waits for in-flight work on shutdown: past this, a restart re-sends it. */
export const MAX_DRAIN_MS = 30_000;
/** Shortest drain budget, however fast the stages below. */
export const MIN_DRAIN_MS = 1_000;

/**
 * The longest a caller can spend on one send to `service`: every attempt's timeout plus the
 * largest wait before each retry.
 */
export function worstCaseMs(service: ServiceModel): number {
  const { maxRetries, intervalMs, multiplier, maxIntervalMs, backoff } = service.retry;
  let waits = 0;
  for (let k = 0; k < maxRetries; k++) waits += Math.min(maxIntervalMs, backoff === "exponential" ? intervalMs * multiplier ** k : intervalMs);
  return service.timeoutMs * (maxRetries + 1) + waits;
}

/**
 * How long a process may drain on shutdown: the worst case of a send to its downstream
 * services (an instance: plus its own timeout, as its handler runs first), between 1 s and 30 s.
 * Compose's `stop_grace_period` and systemd's `TimeoutStopSec=` are this plus a margin.
 */
export function drainBudgetMs(model: Model, role: ProcessRole): number {
  const byName = new Map(model.services.map((s) => [s.name, s]));
  const downstream = (names: readonly string[]) => Math.max(0, ...names.map((n) => (byName.has(n) ? worstCaseMs(byName.get(n) as ServiceModel) : 0)));
  let budget = 0;
  if (role.kind === "source") budget = downstream([role.source.to]);
  else if (role.kind === "service") budget = role.service.timeoutMs + downstream(role.service.to);
  return Math.min(MAX_DRAIN_MS, Math.max(MIN_DRAIN_MS, budget));
}

/** The services a process sends to: it is ready only when each has a live instance. */
export function downstreamOf(role: ProcessRole): string[] {
  if (role.kind === "source") return [role.source.to];
  if (role.kind === "service") return [...role.service.to];
  return [];
}

// ---------------------------------------------------------------------------------------------
// Restarts

export interface RestartPolicy {
  intervalMs: number;
  multiplier: number;
  maxIntervalMs: number;
}

/** The spec's default retry, for the processes that are not service instances (the registry, sources). */
export const DEFAULT_RESTART: RestartPolicy = { intervalMs: 100, multiplier: 2, maxIntervalMs: 5000 };
/** However the spec's retry reads, a crash loop waits at least this long between restarts. */
export const MIN_RESTART_MS = 50;

/** Delay before the (k+1)-th restart in a row (k from 0). */
export function restartDelayMs(policy: RestartPolicy, k: number): number {
  const raw = policy.intervalMs * policy.multiplier ** Math.min(k, 60);
  return Math.max(MIN_RESTART_MS, Math.min(policy.maxIntervalMs, Number.isFinite(raw) ? raw : policy.maxIntervalMs));
}

/** A service instance restarts with its service's retry backoff. */
export function restartPolicyOf(service: ServiceModel): RestartPolicy {
  const { intervalMs, multiplier, maxIntervalMs, backoff } = service.retry;
  return { intervalMs, multiplier: backoff === "exponential" ? multiplier : 1, maxIntervalMs };
}

// ---------------------------------------------------------------------------------------------
// Memory

/**
 * V8's old-space limit for a memory limit: three quarters of it, leaving the rest for the new
 * space, code, buffers and the process itself (V8 counts only the old space against the flag).
 */
export function heapLimitMiB(memoryBytes: number): number {
  return Math.max(16, Math.floor((memoryBytes * 0.75) / (1024 * 1024)));
}

// ---------------------------------------------------------------------------------------------
// The registry

/**
 * Whether the system runs a registry process of its own: only the embedded registry is one. With
 * `etcd` the registry is a cluster outside the system, with `kubernetes` the cluster itself; the
 * supervisor (through the runtime's backend, whose `role` is then null) and every generator then
 * start no registry process, and its `port` does not apply.
 */
export function registryRunsProcess(model: Model): boolean {
  return model.registry.backend === "embedded";
}

// ---------------------------------------------------------------------------------------------
// Ports

/**
 * The port the spec gives a process: the registry's, an http source's, an instance's (`port + K`
 * unless the instance has its own); null for a process it gives none (a file or generator
 * source). 0 means any free port: a system.json may say so (tests of the runtime run that way).
 */
export function configuredPort(model: Model, role: ProcessRole): number | null {
  switch (role.kind) {
    case "registry":
      return model.registry.port;
    case "source":
      return role.source.type === "http" ? role.source.port : null;
    case "service":
      return role.service.instances[role.instance]?.port ?? role.service.port + role.instance;
  }
}
