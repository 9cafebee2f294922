/**
 * How many events a simulation will take, before it starts: its cost is proportional to them,
 * and a rate of 10⁷ records/s for 24 hours, or a diamond of fan-outs that multiplies every batch,
 * would otherwise run for days. `simulate` refuses a run whose estimate is above a bound
 * (DEFAULT_MAX_EVENTS unless the caller raises it); the estimate is an upper bound of what the
 * engine (engine.ts) processes, with room for the randomness of the arrivals:
 *
 * - arrivals: rate × duration at each source, plus room for the spread of Poisson arrivals
 *   (10 √n + 10) and of bursty ones (their ON time varies: six times its spread, at most all);
 * - batches: at most one a record, and at most records / limit + duration / maxWait + 1 (a batch
 *   closes at its record limit or maxWait after its first record); each has one maxWait event;
 * - each batch's send visits its source's first stage once; a stage passes the batch on to
 *   every service in its `to` after each attempt whose handler succeeded, so a service gets at
 *   most one visit per attempt at each stage above it (a fan-out copies the batch, diamonds add
 *   up, and a quick retry above sends again); each visit makes one attempt, and each service's
 *   retries are at most maxRetries a visit and at most what its budget allows, ratio × first
 *   attempts plus minPerSecond × 10 s every 10 s of the run; an attempt is one event (done or
 *   timed out) and a retry one more (its backoff);
 * - each fault, two (down and up).
 *
 * Not counted: batches sent again after a stage was unavailable to them (back-pressure). How
 * many there are depends on how long the stage stays unavailable, which only the run shows; each
 * takes at most `eventsPerResend` events, and a run they take past the bound stops there
 * (engine.ts).
 *
 * Numbers are floats: an estimate past 2⁵³, or Infinity, only means "far too many".
 */
import { stageGraph } from "../model/graph.js";
import type { Model } from "../model/types.js";
import { countText } from "../report/numbers.js";
import { RETRY_BUDGET_WINDOW_MS } from "../retry/index.js";

/** The most events a simulation may take unless the caller allows more (about a minute's work). */
export const DEFAULT_MAX_EVENTS = 200_000_000;

export interface EstimateOptions {
  durationMs?: number;
  /** Records/s at every source, overriding theirs. */
  rate?: number;
  /** Bytes assumed per record for maxBytes. */
  recordBytes?: number;
  /** The arrival process (default: the model's). */
  arrival?: "constant" | "poisson" | "bursty";
}

/** The `bursty` arrival process: on/off phases (exponential lengths) with the same mean rate. */
export const BURSTY = { peakFactor: 4, meanOnMs: 250, meanOffMs: 750 } as const;
const BURSTY_PEAK = BURSTY.peakFactor;
const BURSTY_ON_VARIANCE_PER_MS = (2 * BURSTY.meanOnMs ** 2 * BURSTY.meanOffMs ** 2) / (BURSTY.meanOnMs + BURSTY.meanOffMs) ** 3;

export interface EventEstimate {
  events: number;
  durationMs: number;
  /** Records arriving at all sources together. */
  arrivals: number;
  batches: number;
  /** Attempts at all services together, retries included. */
  attempts: number;
  /** The most events one send of a batch again (after a stage was unavailable) may take, at any source: not in `events`. */
  eventsPerResend: number;
  /** The source with the most arrivals (where a refusal points), or null without any. */
  busiest: string | null;
}

/**
 * A simulation refused because its estimate is above the bound (`simulate` throws it before
 * running), or stopped because it took more events than the bound anyway (`stoppedAtMs`: the
 * simulated time it had reached; batches sent again while a stage was unavailable).
 */
export class SimulationTooLarge extends Error {
  constructor(
    readonly estimate: EventEstimate,
    readonly maxEvents: number,
    readonly stoppedAtMs: number | null = null,
  ) {
    super(
      stoppedAtMs === null
        ? `the simulation would take about ${countText(estimate.events)} events, more than the ${countText(maxEvents)} allowed`
        : `the simulation took more than the ${countText(maxEvents)} events allowed, and was stopped after ${countText(Math.floor(stoppedAtMs))} ms of ${countText(estimate.durationMs)}`,
    );
    this.name = "SimulationTooLarge";
  }
}

export function estimateEvents(model: Model, options: EstimateOptions = {}, recordBytesDefault = 256): EventEstimate {
  const durationMs = options.durationMs ?? model.simulation.durationMs;
  const seconds = durationMs / 1000;
  const recordBytes = options.recordBytes ?? recordBytesDefault;
  const arrival = options.arrival ?? model.simulation.arrival;
  const graph = stageGraph(model);
  const visits = new Map<string, number>(model.services.map((s) => [s.name, 0]));
  let arrivals = 0;
  let batches = 0;
  let busiest: { name: string; arrivals: number } | null = null;
  let eventsPerResend = 0;
  for (const src of model.sources) {
    const rate = options.rate ?? src.ratePerSec ?? 0;
    const mean = rate * seconds;
    // Bursty arrivals come at 4 × the rate while ON (a quarter of the time on average): over a
    // short run the ON time may be all of it. Its spread is that of an alternating renewal
    // process with exponential phases (variance 2a²b²/(a+b)³ per ms of run); six of it bound it.
    const peak = arrival === "bursty" ? BURSTY_PEAK : 1;
    const spread = arrival === "bursty" ? 6 * peak * rate * (Math.sqrt(BURSTY_ON_VARIANCE_PER_MS * durationMs) / 1000) : 0;
    const n = mean > 0 ? Math.min(peak * mean, mean + spread) + 10 * Math.sqrt(peak * mean) + 10 : 0;
    if (n > 0 && (busiest === null || n > busiest.arrivals)) busiest = { name: src.name, arrivals: n };
    const limit = Math.max(1, Math.min(src.batch.maxRecords, Math.floor(src.batch.maxBytes / recordBytes)));
    const byWait = src.batch.maxWaitMs > 0 ? durationMs / src.batch.maxWaitMs : Number.POSITIVE_INFINITY;
    const b = Math.min(n, n / limit + byWait + 1);
    arrivals += n;
    batches += b;
    if (!graph.services.has(src.to)) continue;
    visits.set(src.to, (visits.get(src.to) ?? 0) + b);
    eventsPerResend = Math.max(eventsPerResend, 1 + sendEvents(graph, src.to));
  }
  const windows = Math.ceil(durationMs / RETRY_BUDGET_WINDOW_MS);
  let attempts = 0;
  let retries = 0;
  // In topological order, so that each service's visits are known before it passes them on.
  for (const name of graph.order) {
    const s = graph.services.get(name) as Model["services"][number];
    const first = visits.get(name) ?? 0;
    const { maxRetries, budget } = s.retry;
    const allowed = maxRetries === 0 ? 0 : Math.min(first * maxRetries, first * budget.ratio + budget.minPerSecond * (RETRY_BUDGET_WINDOW_MS / 1000) * windows);
    attempts += first + allowed;
    retries += allowed;
    for (const next of graph.next.get(name) ?? []) visits.set(next, (visits.get(next) ?? 0) + first + allowed);
  }
  const faults = 2 * model.simulation.faults.length;
  const events = arrivals + batches + attempts + retries + faults;
  return { events, durationMs, arrivals, batches, attempts, eventsPerResend, busiest: busiest?.name ?? null };
}

/** The most events one send of a batch to `first` may take: every attempt and retry, below it too, with each service's maxRetries. */
function sendEvents(graph: ReturnType<typeof stageGraph>, first: string): number {
  const visits = new Map<string, number>([[first, 1]]);
  let events = 0;
  for (const name of graph.order) {
    const v = visits.get(name) ?? 0;
    if (v === 0) continue;
    const m = (graph.services.get(name) as Model["services"][number]).retry.maxRetries;
    const attempts = v * (1 + m);
    events += attempts + v * m;
    for (const next of graph.next.get(name) ?? []) visits.set(next, (visits.get(next) ?? 0) + attempts);
  }
  return events;
}
