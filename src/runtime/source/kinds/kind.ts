/**
 * A kind of source: how records come in (an http route, a file read from its checkpoint, a
 * generator). The source role (../index.ts) opens the durable pipeline and hands it to the
 * kind; the kind feeds it. A new kind is one file beside this one, its entry in index.ts, its
 * variant of SourceModel in schema/system.schema.json, and its `type` in the spec's schema.
 */
import type { SourceModel } from "../../../model/types.js";
import type { Logger, RuntimeEnv } from "../../core/contracts.js";
import type { Route } from "../../core/http.js";
import type { RuntimeMetrics } from "../../core/metrics.js";
import type { SourcePipeline } from "../pipeline.js";

/** What a kind opens with; `source` is the model's variant of the kind's `type`. */
export interface SourceKindContext<S extends SourceModel = SourceModel> {
  source: S;
  pipeline: SourcePipeline;
  env: RuntimeEnv;
  log: Logger;
  metrics: RuntimeMetrics;
  /** A file source's poll interval (tests shorten it). */
  pollMs?: number;
}

/** What a kind feeds the pipeline through, for the role's lifetime. */
export interface SourceIntake {
  /** Routes of the source's server (an http source's `POST {path}`). */
  routes?: Route[];
  /** Starts taking records, once the server listens. */
  start?(): void;
  /** Stops taking records (the drain then closes and sends what is queued). */
  stop?(): Promise<void>;
}

export interface SourceKind<S extends SourceModel = SourceModel> {
  /**
   * Whether the kind reads again, from its own checkpoint, the records it had handed over but
   * that were not in a batch at a restart (a file); the others' are batched again from the log.
   */
  readonly rereads: boolean;
  open(ctx: SourceKindContext<S>): SourceIntake;
}
