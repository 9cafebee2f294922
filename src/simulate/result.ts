/**
 * What `simulate` returns: plain JSON data. Every object is built with its keys in the order
 * declared here and numbers are never NaN or infinite (null stands for "not measured" or "not
 * predicted"), so `JSON.stringify` of two runs with the same model and options gives the same
 * bytes.
 *
 * Times are in milliseconds, rates per second. "predicted" fields are the contract's static
 * Load model (src/model/static-load.ts) for the same rates, beside the simulated figure.
 */
import type { LoadBalancing } from "../model/types.js";

export type ArrivalProcess = "constant" | "poisson" | "bursty";
export type ServiceTimeDistribution = "deterministic" | "exponential";
/**
 * What an attempt failed with: out of time (`timeout`), a transient failure (`5xx`), no instance
 * or one that went down (`connect`), or a stage below that could not take the batch
 * (`unavailable`: the instance answered 503, and its caller retries it as a `5xx`).
 */
export type FailureKind = "timeout" | "5xx" | "connect" | "unavailable";

/** A distribution of times in ms; every figure is null when there are no samples. */
export interface Percentiles {
  count: number;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export interface SourceResult {
  name: string;
  /** The rate simulated (records/s); null when the source has none (no arrivals). */
  ratePerSec: number | null;
  /** Records that arrived, refused ones included. */
  records: number;
  /** Records refused because the source's queue was full (an http client gets 503 + Retry-After). */
  recordsRefused: number;
  batches: number;
  /** Batches closed by each limit of the window. */
  closedBy: { maxRecords: number; maxBytes: number; maxWait: number };
  meanBatchRecords: number | null;
  /** Records that had arrived but whose batch was still open at the end. */
  openRecordsAtEnd: number;
  /** The most records the queue holds (accepted and not committed yet), as the runtime bounds it. */
  queueLimitRecords: number;
  /** The most records it held at once. */
  maxQueueRecords: number;
  /** Records it held at the end (accepted, not committed: open, in flight, waiting). */
  queueRecordsAtEnd: number;
  /** Batches committed, in the order they closed: every stage on every path took them, or they were dead-lettered. */
  batchesCommitted: number;
  recordsCommitted: number;
  /** The smallest `retry.deadLetterAfter` on the source's paths; null: a batch waits as long as it takes. */
  deadLetterAfterMs: number | null;
  /** Of the batches committed: those that waited on unavailable stages longer than `retry.deadLetterAfter` (the smallest on their paths). */
  batchesDeadLettered: number;
  /** Sends of a batch again after a stage was unavailable to it (after the back-off). */
  resends: number;
  /** Batches waiting at the end to be sent again (backing off, or held while the first stage has no instance). */
  batchesWaitingAtEnd: number;
  /** Of the batches that went back to the source at least once and were then committed or dead-lettered: the time from their first send until then. */
  waitedMs: Percentiles;
}

export interface InstancePrediction {
  share: number;
  utilisation: number;
}

export interface InstanceResult {
  index: number;
  weight: number;
  /** null: no capacity known, simulated as infinitely fast. */
  capacityPerSec: number | null;
  attempts: number;
  /** This instance's share of the service's attempts that reached an instance. */
  share: number | null;
  /** sᵢ: busy time over the simulated duration; null when the capacity is unknown. */
  utilisation: number | null;
  records: number;
  maxQueueLength: number;
  queueWaitMs: Percentiles;
  /** Time this instance was down (faults) within the run. */
  downMs: number;
  predicted: InstancePrediction | null;
}

export interface ServicePrediction {
  /** Records/s offered to the service. */
  ratePerSec: number | null;
  /** Records/s of attempts, rate × (1 + E[r]). */
  attemptsPerSec: number | null;
  /** E[r] = p + p² + … + pᵐ. */
  retriesPerRequest: number;
  weightedLoad: number | null;
  retryFigure: number;
}

export interface ServiceResult {
  name: string;
  loadBalancing: LoadBalancing;
  /** True when no instance capacity is known: attempts take no time and utilisation is not measured. */
  infiniteCapacity: boolean;
  /** Batches that arrived at the service (first attempts). */
  requests: number;
  attempts: number;
  retries: number;
  /** Retries the retry budget refused (the service was then unavailable to that batch). */
  retriesRefused: number;
  /** Attempts whose handler succeeded: the batch then went on to the services in `to`. */
  batchesSucceeded: number;
  /**
   * Sends of a batch this service could not take: its quick retries were spent, a failure was not
   * in `retry.on`, the budget refused a retry, or the deadline passed. Its caller was answered
   * `unavailable` (or `timeout`), and at the first stage the batch went back to its source.
   */
  batchesUnavailable: number;
  /** Sends and retries that found no time left before their deadline: answered `timeout` at once, no attempt made. */
  noTimeLeft: number;
  /** Batches a sink had stored already along the same path (sent again after another stage failed): skipped, no work done. */
  duplicatesSkipped: number;
  /** Batches still being attempted here or waiting for a retry at the end (not those passed on, waiting for the stages below). */
  batchesInFlightAtEnd: number;
  /** Failed attempts by kind. */
  failures: Record<FailureKind, number>;
  /** Records/s that arrived at the service (first attempts). */
  ratePerSec: number;
  /** Records/s of all attempts. */
  attemptsPerSec: number;
  /** r: retries per request. */
  retriesPerRequest: number | null;
  /** R(r, t, m) = r·t/m with t = retry.interval in seconds (0 when m is 0). */
  retryFigure: number | null;
  /** L(S, W) = Σ wᵢ·sᵢ / Σ wᵢ over the simulated utilisations. */
  weightedLoad: number | null;
  maxQueueLength: number;
  queueWaitMs: Percentiles;
  /** From a batch's first record entering a source to its handler's success at this service. */
  latencyMs: Percentiles;
  predicted: ServicePrediction;
  instances: InstanceResult[];
}

export interface SimulationResult {
  system: string;
  environment: string | null;
  seed: number;
  durationMs: number;
  arrival: ArrivalProcess;
  serviceTime: ServiceTimeDistribution;
  failureRate: number;
  /** The record size assumed by each window's maxBytes limit. */
  recordBytes: number;
  /** Events taken from the event queue. */
  events: number;
  /** What the simulation assumed or left out, in words. */
  warnings: string[];
  sources: SourceResult[];
  services: ServiceResult[];
  /** From a batch's first record to its success at a sink (a service without `to`). */
  endToEndMs: Percentiles;
  /** Only when the `series` option asks for it (it is absent otherwise, not null). */
  series?: SimulationSeries;
}

/**
 * Time series and distributions for charts (option `series`). The run is cut into equal
 * buckets of `bucketMs`; bucket k covers [k·bucketMs, (k+1)·bucketMs).
 */
export interface SimulationSeries {
  bucketMs: number;
  /** The quantile levels of every `…Ms` list below: 0, 0.01, …, 1. */
  quantiles: number[];
  /** Latency at each level of `quantiles` (the first is the minimum, the last the maximum); null without samples. */
  endToEndMs: number[] | null;
  services: {
    name: string;
    latencyMs: number[] | null;
    instances: {
      index: number;
      /** Busy fraction of each bucket (0–1); null when the capacity is unknown. */
      utilisation: number[] | null;
      /** Mean queue wait of the attempts that joined the instance in each bucket; null where none did. */
      queueWaitMs: (number | null)[];
    }[];
  }[];
}
