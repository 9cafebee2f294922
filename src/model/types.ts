/** The normalised model: defaults applied, overlay merged, units parsed, ports assigned. */
import {
  BUILTIN_HANDLERS,
  REGISTRY_BACKEND,
  type RETRY_BACKOFF,
  type RETRY_JITTER,
  type RETRY_ON,
  SERVICE_LOAD_BALANCING,
  type SIMULATION_ARRIVAL,
  SOURCE_TYPE,
} from "../generated/spec-defaults.js";
import type { MbcSpecV1 } from "../generated/spec-types.js";
import type { SourceModel } from "../generated/system-types.js";

/** The raw spec as written, typed from the JSON Schema. */
export type RawSpec = MbcSpecV1;

// The enums are the schema's (src/generated/spec-defaults.ts): never written out again here.
export { BUILTIN_HANDLERS, REGISTRY_BACKEND as REGISTRY_BACKENDS, SERVICE_LOAD_BALANCING as LOAD_BALANCING, SOURCE_TYPE as SOURCE_TYPES };
export type RegistryBackendName = (typeof REGISTRY_BACKEND)[number];
export type BuiltinHandler = (typeof BUILTIN_HANDLERS)[number];
export type LoadBalancing = (typeof SERVICE_LOAD_BALANCING)[number];
export type SourceType = (typeof SOURCE_TYPE)[number];
export type Backoff = (typeof RETRY_BACKOFF)[number];
export type Jitter = (typeof RETRY_JITTER)[number];
export type RetryOn = (typeof RETRY_ON)[number];
export type Arrival = (typeof SIMULATION_ARRIVAL)[number];

/**
 * The normalised model's types are generated from system.json's schema (schema/system.schema.json,
 * src/generated/system-types.ts): the model is what system.json carries, so the two cannot
 * drift. A source is a union on `type`, a service a union on whether it runs a handler (`handler`
 * null: only an image), each variant with only its own fields: narrow, do not assert.
 */
export type {
  BatchModel,
  BuiltinHandlerRef,
  FaultModel,
  FileSourceModel,
  GeneratorSourceModel,
  HandlerRef,
  HandlerServiceModel,
  HttpSourceModel,
  ImageServiceModel,
  InstanceModel,
  Model,
  ModuleHandlerRef,
  RetryModel,
  ServiceModel,
  SourceModel,
} from "../generated/system-types.js";

/** The variant of SourceModel of one `type`. */
export type SourceModelOf<T extends SourceType> = Extract<SourceModel, { type: T }>;
