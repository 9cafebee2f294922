/**
 * The runtime's internal contracts: what the registry, sources, service instances and the
 * supervisor share. Each process role is a module under src/runtime/; they talk over HTTP
 * on loopback (or the Compose network) using the protocol in docs/runtime.md.
 *
 * This file holds types only: implementations live beside it.
 */
import type { SystemFile } from "../../model/system-file.js";
import type { Model, ServiceModel } from "../../model/types.js";
import type { FailureClass } from "./failure.js";

/** Where a process runs: resolved once at start from argv, the environment and system.json. */
export interface RuntimeEnv {
  /** Folder of system.json: handler paths resolve against it. */
  systemDir: string;
  /** Folder that relative spec paths (file sources, sink paths) resolve against. Default: systemDir. */
  dataDir: string;
  /** MBC_STATE_DIR, default `checkpoint.dir` resolved against dataDir. */
  stateDir: string;
  /** MBC_REGISTRY_URL, default http://127.0.0.1:{registry.port}. */
  registryUrl: string;
  /** MBC_BIND, default targets.node.bind. */
  bind: string;
  /** MBC_ADVERTISE_HOST, default bind (or 127.0.0.1 when bind is 0.0.0.0 / ::). */
  advertiseHost: string;
  /** MBC_TOKEN: when set, the registry refuses registrations and look-ups without it. */
  token: string | null;
  /** MBC_PORT: the port of a process the spec gives none (a file or generator source); null: ephemeral. */
  port: number | null;
  /** MBC_NAMESPACE (the pod's, from the downward API), default targets.kubernetes.namespace: where the kubernetes backend looks. */
  namespace: string;
}

/** A live instance as the registry reports it. */
export interface InstanceEndpoint {
  service: string;
  instance: number;
  /** Base URL, e.g. http://127.0.0.1:9100 */
  url: string;
  weight: number;
  capacityPerSec: number | null;
}

/** Discovery client: a cached view of the registry that follows changes. */
export interface Discovery {
  /** The live instances of a service, from the cache (never blocks). */
  instances(service: string): readonly InstanceEndpoint[];
  /** Resolves once every named service has at least one live instance (or rejects after timeoutMs). */
  waitFor(services: readonly string[], timeoutMs: number): Promise<void>;
  close(): void;
}

export type DiscoveryView = ReadonlyMap<string, readonly InstanceEndpoint[]>;

/** A registry backend's discovery: the cached view, and how it follows the registry. */
export interface DiscoveryClient extends Discovery {
  /** The registry's version of the cached view; null before the first answer. */
  readonly version: number | null;
  /** Whether the last look at the registry got an answer. */
  readonly connected: boolean;
  /** Looks now (joining a look in progress); true when the registry answered. */
  refresh(): Promise<boolean>;
  /** Calls `listener` after every change of the view; returns the unsubscribe function. */
  onChange(listener: (view: DiscoveryView) => void): () => void;
}

/** One batch on the wire: `POST /batch` to a service instance. */
export interface WireBatch {
  /** Stable across restarts: `{source}-{firstSeq}` at the source, unchanged down the pipeline. */
  id: string;
  /** Services the batch has passed, in order (source name first); fan-out sinks use it to keep copies apart. */
  via: string[];
  records: unknown[];
}

/**
 * A batch whose records are JSON texts (one line each), as a source logged them: it goes on the
 * wire as the same `{id, via, records}` without its records being parsed and serialised again.
 */
export interface TextBatch {
  id: string;
  via: string[];
  texts: readonly string[];
}

/** What a send may say about the batch beyond its content. */
export interface SendOptions {
  /**
   * The time the caller has left for this batch (its deadline, as time left): every attempt and
   * retry ends by then, and each attempt tells its stage the time left. Without it, each attempt
   * is bounded by its stage's own timeout alone (a source's sends).
   */
  timeLeftMs?: number;
}

/** Sends batches to the next stages; shared by sources and service instances. */
export interface Dispatcher {
  /**
   * Sends the batch to every service in `to` (a fan-out sends each a copy). Resolves once every
   * one answered 2xx — which, as every stage answers only after its own `to` did, means every
   * sink downstream has stored it. Rejects with a DispatchFailure, whose `failure` says the
   * delivery class, once the quick retries, the budget or the deadline ran out.
   */
  send(to: readonly string[], batch: WireBatch | TextBatch, options?: SendOptions): Promise<void>;
  close(): void;
}

/**
 * How one attempt ended: `timeout` (no answer in time, or the stage said it ran out of time),
 * `poison` (the stage failed this batch with an error that is not a system error), `unavailable`
 * (the stage said so: 503, or a system error), `5xx` (another server error, unmarked), `4xx` (the
 * stage refuses the batch as it is), `connect` (refused, reset, unreachable), `no-instance`,
 * `budget` (the retry budget refused a retry), `deadline` (no time left to try).
 */
export type AttemptKind = "timeout" | "poison" | "unavailable" | "5xx" | "4xx" | "connect" | "no-instance" | "budget" | "deadline";

export interface DispatchFailure extends Error {
  service: string;
  /** The delivery class of the whole send (core/failure.ts). */
  failure: FailureClass;
  attempts: { instance: number | null; error: string; kind: AttemptKind }[];
}

/** What a handler module's default export receives. */
export interface HandlerContext {
  batchId: string;
  service: string;
  instance: number;
  config: Record<string, unknown>;
  log: Logger;
}

export type Handler = (records: unknown[], ctx: HandlerContext) => Promise<unknown[] | undefined> | unknown[] | undefined;

/** Structured logs: one JSON object a line on stderr. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * How a process stops. `drain`: on SIGTERM/SIGINT, while the rest of the system is up — finish
 * in-flight work. `halt`: its supervisor died, and every other process of the system is going
 * away too — stop intake, make durable what was acknowledged, send nothing more (a restart
 * re-sends what is not committed).
 */
export type StopMode = "drain" | "halt";

/** A process role's lifecycle, run by the process scaffolding (src/runtime/process/). */
export interface RoleHandle {
  /**
   * Stop intake, finish in-flight work up to the deadline (`halt`: only make durable what was
   * acknowledged), checkpoint. `deadlineMs` is an absolute time on the Date.now() clock; work
   * still running then is abandoned (it is not committed, so a restart re-sends it).
   */
  drain(deadlineMs: number, mode?: StopMode): Promise<void>;
}

/** What a role process tells its supervisor over IPC once it listens. */
export interface StartedMessage {
  type: "mbc:started";
  port: number;
  /** The URL others reach it at. */
  url: string;
}

export type { Model, ServiceModel, SystemFile };
