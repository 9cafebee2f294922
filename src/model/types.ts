/** The normalised model: defaults applied, overlay merged, units parsed, ports assigned. */
import {
  BUILTIN_HANDLERS,
  type RETRY_BACKOFF,
  type RETRY_JITTER,
  type RETRY_ON,
  SERVICE_LOAD_BALANCING,
  type SIMULATION_ARRIVAL,
  SOURCE_TYPE,
} from "../generated/spec-defaults.js";
import type { MbcSpecV1 } from "../generated/spec-types.js";

/** The raw spec as written, typed from the JSON Schema. */
export type RawSpec = MbcSpecV1;

// The enums are the schema's (src/generated/spec-defaults.ts): never written out again here.
export { BUILTIN_HANDLERS, SERVICE_LOAD_BALANCING as LOAD_BALANCING, SOURCE_TYPE as SOURCE_TYPES };
export type BuiltinHandler = (typeof BUILTIN_HANDLERS)[number];
export type LoadBalancing = (typeof SERVICE_LOAD_BALANCING)[number];
export type SourceType = (typeof SOURCE_TYPE)[number];
export type Backoff = (typeof RETRY_BACKOFF)[number];
export type Jitter = (typeof RETRY_JITTER)[number];
export type RetryOn = (typeof RETRY_ON)[number];
export type Arrival = (typeof SIMULATION_ARRIVAL)[number];

export type HandlerRef =
  | { kind: "builtin"; name: string }
  /** `path` is relative to the spec's folder, POSIX, normalised; `outside` when it leaves that folder. */
  | { kind: "module"; path: string; outside: boolean };

export interface BatchModel {
  maxRecords: number;
  maxWaitMs: number;
  maxBytes: number;
}

export interface RetryModel {
  maxRetries: number;
  intervalMs: number;
  backoff: Backoff;
  multiplier: number;
  maxIntervalMs: number;
  jitter: Jitter;
  on: RetryOn[];
  /** How long a batch may wait on an unavailable stage of this service before its source dead-letters it; null: never. */
  deadLetterAfterMs: number | null;
  budget: { ratio: number; minPerSecond: number };
}

export interface SourceModel {
  name: string;
  /** JSON Pointer of this source in the effective spec. */
  path: string;
  type: SourceType;
  /** http: the listening port. */
  port: number | null;
  /** http: the URL path (default `/records`); file: the JSONL file, relative to the spec's folder. */
  location: string | null;
  ratePerSec: number | null;
  count: number | null;
  record: Record<string, unknown>;
  batch: BatchModel;
  to: string;
}

export interface InstanceModel {
  index: number;
  weight: number;
  capacityPerSec: number | null;
  port: number;
}

export interface ServiceModel {
  name: string;
  path: string;
  handler: HandlerRef | null;
  image: string | null;
  config: Record<string, unknown>;
  instances: InstanceModel[];
  loadBalancing: LoadBalancing;
  capacityPerSec: number | null;
  /** Port of instance 0; instance k listens on `port + k`. */
  port: number;
  portAssigned: boolean;
  timeoutMs: number;
  retry: RetryModel;
  resources: { cpus: number | null; memoryBytes: number | null };
  env: Record<string, string>;
  to: string[];
}

export interface FaultModel {
  service: string;
  instance: number;
  atMs: number;
  durationMs: number;
}

export interface Model {
  mbc: 1;
  name: string;
  description: string | null;
  environment: string | null;
  registry: { port: number; heartbeatMs: number; ttlMs: number };
  sources: SourceModel[];
  services: ServiceModel[];
  checkpoint: { dir: string; fsync: boolean };
  simulation: {
    durationMs: number;
    arrival: Arrival;
    failureRate: number;
    faults: FaultModel[];
    seed: number;
  };
  targets: {
    compose: { project: string; image: string; network: string };
    systemd: { prefix: string; user: string; installDir: string; node: string };
    node: { bind: string };
  };
}
