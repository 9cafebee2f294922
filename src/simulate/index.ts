/** The simulator: the static Load model and the discrete-event simulation over the normalised model. */
export { BURSTY, ESTIMATED_RECORD_BYTES, RETRY_BUDGET_WINDOW_MS, SERIES_QUANTILES, type SimulateOptions, simulate } from "./engine.js";
export { DEFAULT_MAX_EVENTS, type EstimateOptions, type EventEstimate, estimateEvents, SimulationTooLarge } from "./estimate.js";
export type {
  ArrivalProcess,
  FailureKind,
  InstancePrediction,
  InstanceResult,
  Percentiles,
  ServicePrediction,
  ServiceResult,
  ServiceTimeDistribution,
  SimulationResult,
  SimulationSeries,
  SourceResult,
} from "./result.js";
export { createStream, type Random } from "./rng.js";
