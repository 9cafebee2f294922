/**
 * The discrete-event simulation of a normalised model.
 *
 * What is simulated, and how (the project's docs repeat this for users):
 *
 * - Time is in milliseconds, from 0 to the duration; events at or after the end are not
 *   processed, and what is still open or in flight then is reported as such.
 * - Arrivals, record by record, at each source's `rate`:
 *   `constant` — one record every 1/rate, the first at time 0;
 *   `poisson`  — exponential gaps with mean 1/rate;
 *   `bursty`   — an on/off (interrupted Poisson) process with the same mean rate: ON and OFF
 *                phases alternate with exponential lengths of mean 250 ms and 750 ms, and
 *                during ON records arrive as a Poisson process at 4 × rate (so the long-run
 *                mean is the rate, in bursts of four times it).
 * - The source's queue is bounded as the runtime bounds it (QUEUE_BATCHES below): records
 *   accepted and not committed yet, the open batch's included. A record that arrives while it is
 *   full is refused and counted (an http client gets 503); an empty queue takes anything.
 * - The microbatch window of each source opens at its first record and closes at maxRecords
 *   records, at maxBytes (each record is assumed to be `recordBytes` long, 256 bytes unless
 *   the options say otherwise; the record that would go over maxBytes starts the next batch),
 *   or maxWait after its first record, whichever comes first. A closed batch is sent to the
 *   source's `to` at once — unless that service has no healthy instance: then it is held, and
 *   sent (in order) when an instance comes up, as the runtime's source holds its batches.
 * - Calls nest as in the runtime: an attempt at a stage ends when its handler has run AND every
 *   stage in its `to` has taken the batch (or failed to). A source's send has no deadline of its
 *   own; each attempt's limit is min(the stage's `timeout`, the time left before the deadline it
 *   was given), and the stages below get that limit's end as their deadline (the batch carries
 *   it down). A send or retry that finds no time left is answered `timeout` at once.
 * - Each attempt goes to an instance picked by the service's balancer (src/balance) among the
 *   healthy ones; a retry goes to a different instance whenever another healthy one exists.
 * - Each instance serves one batch at a time from a FIFO queue; a batch of n records takes
 *   n / capacity seconds (or an exponential time with that mean, option `serviceTime`). An
 *   instance without a known capacity is infinitely fast: no queue, zero service time. While an
 *   attempt waits for the stages below, its instance serves the next batch.
 * - Timeout: an attempt whose queue wait plus service time, or with the stages below, exceeds its
 *   limit fails as `timeout` when the limit expires. The instance still does the work (it does
 *   not know the client gave up), so timed-out attempts load it as they would in production.
 * - Transient failures: an attempt that is served fails as `5xx` with probability
 *   `failureRate` when its service ends (the work is done and counts as busy time, as the
 *   static model's "offered attempts" assume).
 * - Faults: an instance is down from `at` for `duration`. While down it is not a candidate;
 *   the attempts queued on it, being served, or waiting for the stages below when it goes down
 *   fail as `connect` at that moment and its unfinished work is dropped (what it had passed on
 *   goes on, but is retried by no one). With no healthy instance left, an attempt fails as
 *   `connect` at once.
 * - Quick retries follow the service's retry policy: failures in `retry.on` (`timeout`, `5xx`,
 *   `connect`; a stage below that could not take the batch counts as `5xx`) are retried up to
 *   `maxRetries` times after a backoff — `interval` (constant) or interval × multiplierᵏ⁻¹
 *   (exponential) for the k-th retry, capped at maxInterval, then jittered AWS-style: `none`
 *   the wait itself, `full` uniform in [0, wait), `equal` wait/2 + uniform in [0, wait/2) — cut
 *   short by the deadline. A retry at a stage runs its handler again and sends to its `to` again.
 * - Retry budget (Finagle's RetryBudget, Linkerd's retryBudget): over a sliding window of
 *   10 s, a retry is allowed only if retries + 1 ≤ ratio × first attempts + minPerSecond × 10.
 * - Delivery classes: every failure here is transient (failureRate, faults, timeouts), so none
 *   is poison: a send that fails after its quick retries, or whose retry the budget refused, is
 *   *unavailable* (past the deadline, *timeout*). At the first stage that is back-pressure: the
 *   batch goes back to its source, stays uncommitted, and is sent again after a capped
 *   exponential back-off with jitter (the first stage's retry settings, at least MIN_RESEND_MS),
 *   for as long as it takes — unless `retry.deadLetterAfter` (the smallest on the batch's
 *   paths) has passed since its first send: then it is dead-lettered.
 * - Batches are committed in the order they closed, as the runtime's commit log is: a batch done
 *   early holds its place in the queue until the ones before it are done.
 * - A successful handler passes the batch on as one copy to every service in `to` (fan-out); at a
 *   sink it is stored, and its end-to-end latency counted from its first record's arrival. A
 *   copy that reaches a sink along a path that stored it already (sent again after another
 *   stage failed) is skipped: no work, no second latency.
 * - Measurements: utilisation is an instance's busy time within the run over the duration;
 *   an attempt's queue wait is known when it joins the FIFO queue (the work ahead of it), so
 *   in an overloaded run it can exceed the duration; the queue length counts attempts waiting,
 *   not the one being served. Percentiles come from log-linear histograms (within 0.4 %, no
 *   memory growth however long the run); counts, means and maxima are exact.
 * - Series (option `series`, off by default; for charts): the run is cut into equal time
 *   buckets and each instance's busy time is booked into them as its work is booked (work
 *   dropped by a fault is taken out again), with the mean queue wait of the attempts that
 *   joined it in each bucket; and latency quantiles are read from the histograms. Observing
 *   draws nothing and schedules nothing, so every other figure is the same with it on or off.
 *
 * Every random draw comes from a stream named after its purpose and owner (rng.ts):
 * `arrivals/SOURCE`, `backoff/SOURCE`, `balancer/SERVICE`, `failures/SERVICE`,
 * `jitter/SERVICE`, `service-time/SERVICE`, so the same model, options and seed give the same
 * result. A run without failures draws nothing from `backoff/…`.
 */
import { type Balancer, createBalancer } from "../balance/index.js";
import { stageGraph } from "../model/graph.js";
import { type ServiceLoad, staticModel } from "../model/static-load.js";
import type { Model, RetryModel, ServiceModel } from "../model/types.js";
import { RetryBudget, retryDelay } from "../retry/index.js";
import { TimeRing } from "../shared/time-ring.js";
import { Histogram } from "./buffers.js";
import { BURSTY, DEFAULT_MAX_EVENTS, estimateEvents, SimulationTooLarge } from "./estimate.js";
import { EventHeap } from "./heap.js";
import type {
  ArrivalProcess,
  InstanceResult,
  Percentiles,
  ServiceResult,
  ServiceTimeDistribution,
  SimulationResult,
  SimulationSeries,
  SourceResult,
} from "./result.js";
import { createStream, exponential, type Random } from "./rng.js";

/** The record size each window's maxBytes limit assumes, unless the options give one. */
export const ESTIMATED_RECORD_BYTES = 256;
export { RETRY_BUDGET_WINDOW_MS } from "../retry/index.js";
export { BURSTY } from "./estimate.js";

export interface SimulateOptions {
  /** Simulated time in ms (default: the model's `simulation.duration`). */
  durationMs?: number;
  /** Records/s at every source, overriding the sources' own rates. */
  rate?: number;
  /** Default: the model's `simulation.seed`. */
  seed?: number;
  /** Default: the model's `simulation.arrival`. */
  arrival?: ArrivalProcess;
  /** `deterministic` (records / capacity, the default) or `exponential` with that mean. */
  serviceTime?: ServiceTimeDistribution;
  /** Bytes assumed per record for maxBytes (default ESTIMATED_RECORD_BYTES). */
  recordBytes?: number;
  /** Called now and then with the fraction of simulated time done, and with 1 at the end. */
  onProgress?: (fraction: number) => void;
  /**
   * Also return `series` (time series and latency distributions, for charts), with the run cut
   * into this many equal time buckets (1–10 000). Off by default: the result is then without it.
   */
  series?: { buckets: number };
  /**
   * The most events the run may take. Above it by the estimate made before it starts
   * (estimate.ts), `simulate` throws SimulationTooLarge instead of running; a run that passes it
   * anyway (batches sent again while a stage stays unavailable, which no estimate bounds) stops
   * there and throws it too. Default DEFAULT_MAX_EVENTS.
   */
  maxEvents?: number;
}

/** The quantiles at which `series` reads each latency distribution: 0, 0.01, …, 0.99, 1. */
export const SERIES_QUANTILES: readonly number[] = Array.from({ length: 101 }, (_, k) => k / 100);

/**
 * The source's bounded queue, as the runtime's source pipeline bounds it (its `queueLimits`):
 * 64 batches' worth of records (at least 1024) and of bytes (between 16 MiB and 256 MiB).
 */
export const QUEUE_BATCHES = 64;
export const MIN_QUEUE_RECORDS = 1024;
export const MIN_QUEUE_BYTES = 16 * 1024 * 1024;
export const MAX_QUEUE_BYTES = 256 * 1024 * 1024;

/** The records a source's queue holds at most with records of `recordBytes` bytes (at least 1: an empty queue takes anything). */
export function queueLimitRecords(batch: { maxRecords: number; maxBytes: number }, recordBytes: number): number {
  const records = Math.max(QUEUE_BATCHES * batch.maxRecords, MIN_QUEUE_RECORDS);
  const bytes = Math.min(Math.max(QUEUE_BATCHES * batch.maxBytes, MIN_QUEUE_BYTES), MAX_QUEUE_BYTES);
  return Math.max(1, Math.min(records, Math.floor(bytes / recordBytes)));
}

/**
 * The shortest wait before a batch is sent again. The runtime's back-off may be 0 (`interval:
 * 0ms`, or full jitter drawing near 0), but a real send takes some time; a simulated one that
 * fails at once (no instance, no time left) would otherwise send again at the same instant for
 * ever.
 */
export const MIN_RESEND_MS = 1;

const EV_ARRIVAL = 0;
const EV_WINDOW = 1;
const EV_DONE = 2;
const EV_TIMEOUT = 3;
const EV_RETRY = 4;
const EV_DOWN = 5;
const EV_UP = 6;
const EV_RESEND = 7;

/** How an attempt failed (the index into `failures`). */
const F_TIMEOUT = 0;
const F_5XX = 1;
const F_CONNECT = 2;
const F_UNAVAILABLE = 3;

/** How a send to a service ended, as its caller sees it (its delivery class). */
const C_OK = 0;
const C_UNAVAILABLE = 1;
const C_TIMEOUT = 2;

const JOB_FREE = 0;
const JOB_IN_FLIGHT = 1;
const JOB_BACKOFF = 2;
/** Its handler succeeded: it waits for the stages in `to`. */
const JOB_WAITING = 3;

const BATCH_FREE = 0;
const BATCH_SENDING = 1;
/** Backing off after a stage was unavailable. */
const BATCH_WAITING = 2;
/** Ready to be sent, but the first stage has no healthy instance. */
const BATCH_HELD = 3;
/** Taken by every stage (or dead-lettered), waiting for the batches before it to be committed. */
const BATCH_DONE = 4;

const ARRIVE_CONSTANT = 0;
const ARRIVE_POISSON = 1;
const ARRIVE_BURSTY = 2;

const PROGRESS_EVERY = 0x10000;

class SourceState {
  /** Records in the open batch, and when its first one arrived. */
  count = 0;
  firstMs = 0;
  /** Bumped when a batch closes, so that a stale maxWait event is ignored. */
  generation = 0;
  arrivals = 0;
  refused = 0;
  /** Records accepted and not committed yet (the open batch's included), and the most at once. */
  depth = 0;
  maxDepth = 0;
  /** Bursty: the end of the current ON phase. */
  onUntil = 0;
  batches = 0;
  byRecords = 0;
  byBytes = 0;
  byWait = 0;
  committed = 0;
  committedRecords = 0;
  deadLettered = 0;
  resends = 0;
  /** Ids of the batches closed and not committed yet, in the order they closed. */
  readonly order = new TimeRing();
  /** Ids of the batches held while the first stage has no healthy instance. */
  held: number[] = [];
  readonly waited = new Histogram();

  constructor(
    readonly index: number,
    readonly name: string,
    readonly ratePerSec: number | null,
    readonly target: number,
    /** Records that close a batch: min(maxRecords, ⌊maxBytes / recordBytes⌋, at least 1). */
    readonly limit: number,
    readonly limitIsBytes: boolean,
    readonly maxWaitMs: number,
    readonly process: number,
    /** Mean gap between arrivals (at the peak rate for bursty). */
    readonly gapMs: number,
    readonly random: Random,
    readonly queueLimit: number,
    /** The back-off between sends of a batch a stage was unavailable to: the first stage's retry settings. */
    readonly backoff: RetryModel | null,
    readonly backoffRandom: Random,
    /** The smallest `retry.deadLetterAfter` on the paths from the first stage; null: never. */
    readonly deadLetterAfterMs: number | null,
    /** The route of a batch at the first stage. */
    readonly route: number,
  ) {}
}

class InstanceState {
  /** When the instance will have finished all the work booked on it. */
  freeAt = 0;
  busyMs = 0;
  /** Overlapping faults nest: the instance is down while this is above 0. */
  down = 0;
  downSince = 0;
  downMs = 0;
  attempts = 0;
  records = 0;
  maxQueue = 0;
  /** Start times of the attempts waiting in the queue, ascending. */
  readonly queue = new TimeRing();
  readonly waits = new Histogram();
  /** Series only: busy ms, and the sum and count of queue waits, per time bucket. */
  busyIn: Float64Array | null = null;
  waitSumIn: Float64Array | null = null;
  waitCountIn: Float64Array | null = null;

  constructor(
    readonly index: number,
    readonly weight: number,
    readonly capacityPerSec: number | null,
    /** 0 for an instance without capacity: infinitely fast. */
    readonly msPerRecord: number,
  ) {}
}

class ServiceState {
  readonly healthy: number[];
  readonly retryOn: boolean[];
  readonly budget: RetryBudget;
  /** Sources whose first stage this is: their held batches go once an instance is healthy again. */
  readonly feeds: number[] = [];
  requests = 0;
  attempts = 0;
  retries = 0;
  refused = 0;
  succeeded = 0;
  unavailable = 0;
  noTimeLeft = 0;
  skipped = 0;
  firstRecords = 0;
  attemptRecords = 0;
  readonly failures = [0, 0, 0, 0];
  readonly latency = new Histogram();

  constructor(
    readonly index: number,
    readonly model: ServiceModel,
    readonly instances: InstanceState[],
    readonly balancer: Balancer,
    readonly next: number[],
    readonly retry: RetryModel,
    readonly failureRandom: Random,
    readonly jitterRandom: Random,
    readonly timeRandom: Random,
  ) {
    this.healthy = instances.map((i) => i.index);
    // A stage below that could not take the batch answers 503: its caller retries that as a 5xx.
    const on5xx = retry.on.includes("5xx");
    this.retryOn = [retry.on.includes("timeout"), on5xx, retry.on.includes("connect"), on5xx];
    this.budget = new RetryBudget(retry.budget);
  }
}

/** One batch of a source, from its close until it is committed. Pooled. */
class Batch {
  source = 0;
  records = 0;
  originMs = 0;
  /** When it was first sent; -1 before. */
  firstSentMs = -1;
  /** Sends in a row a stage was unavailable to: the back-off's exponent. */
  unavailable = 0;
  /** Bumped on every send and back-off: the root job and the resend event carry it. */
  token = 0;
  state = BATCH_FREE;
  /** Its place among its source's batches (they are sent and committed in this order). */
  seq = 0;
  /** Some attempt for it failed: a sink then checks `stored` before storing it again. */
  troubled = false;
  /** The routes of the sinks that stored it. */
  readonly stored: number[] = [];
  /** Bumped when it is released: a job of an earlier batch in this slot (an orphan) leaves it alone. */
  life = 0;

  constructor(readonly id: number) {}
}

/** One send of a batch to one service; its attempts reuse it. Pooled. */
class Job {
  service = 0;
  records = 0;
  originMs = 0;
  batch = 0;
  /** The batch's `life` when the job was sent. */
  batchLife = 0;
  /** The job of the stage that sent it and waits for it; -1: its source sent it. */
  parent = -1;
  /** The parent's token (or the batch's) when it was sent: a mismatch means no one waits for it. */
  parentToken = 0;
  /** The path it took from its source's first stage (routes are numbered as they are met). */
  route = 0;
  /** When its time runs out; Infinity for a source's send, which has no deadline of its own. */
  deadline = Number.POSITIVE_INFINITY;
  /** The end of the current attempt's limit: the deadline the stages below get. */
  attemptEnd = 0;
  /** 0 for the first attempt, k for the k-th retry. */
  attempt = 0;
  instance = -1;
  /** Bumped on every dispatch, retry and cancellation: events carry it to detect staleness. */
  token = 0;
  state = JOB_FREE;
  /** This attempt is a copy a sink stored already: it skips it. */
  duplicate = false;
  /** Waiting: sends to the stages below not answered yet, and whether one of them failed. */
  pending = 0;
  failedBelow = false;

  constructor(readonly id: number) {}
}

function checkOptions(options: SimulateOptions): void {
  const { durationMs, rate, seed, recordBytes, arrival, serviceTime } = options;
  if (arrival !== undefined && !["constant", "poisson", "bursty"].includes(arrival))
    throw new RangeError(`arrival must be constant, poisson or bursty, got ${arrival}`);
  if (serviceTime !== undefined && !["deterministic", "exponential"].includes(serviceTime))
    throw new RangeError(`serviceTime must be deterministic or exponential, got ${serviceTime}`);
  if (durationMs !== undefined && !(Number.isFinite(durationMs) && durationMs > 0))
    throw new RangeError(`durationMs must be a positive number, got ${durationMs}`);
  if (rate !== undefined && !(Number.isFinite(rate) && rate >= 0)) throw new RangeError(`rate must be a number ≥ 0, got ${rate}`);
  if (seed !== undefined && !Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (recordBytes !== undefined && !(Number.isFinite(recordBytes) && recordBytes > 0))
    throw new RangeError(`recordBytes must be a positive number, got ${recordBytes}`);
  if (options.maxEvents !== undefined && !(options.maxEvents > 0)) throw new RangeError(`maxEvents must be a positive number, got ${options.maxEvents}`);
  const buckets = options.series?.buckets;
  if (options.series !== undefined && !(Number.isSafeInteger(buckets) && (buckets as number) >= 1 && (buckets as number) <= 10_000))
    throw new RangeError(`series.buckets must be an integer from 1 to 10000, got ${buckets}`);
}

/** Nearest-rank percentiles from a histogram (each within 0.4 %); mean and max are exact. */
function percentiles(h: Histogram): Percentiles {
  if (h.count === 0) return { count: 0, mean: null, p50: null, p95: null, p99: null, max: null };
  return { count: h.count, mean: h.sum / h.count, p50: h.quantile(0.5), p95: h.quantile(0.95), p99: h.quantile(0.99), max: h.max };
}

function merged(parts: readonly Histogram[]): Histogram {
  const all = new Histogram();
  for (const p of parts) all.addAll(p);
  return all;
}

class Simulation {
  private readonly heap = new EventHeap();
  private readonly sources: SourceState[] = [];
  private readonly services: ServiceState[] = [];
  private readonly jobs: Job[] = [];
  private readonly freeJobs: number[] = [];
  private readonly batches: Batch[] = [];
  private readonly freeBatches: number[] = [];
  /** Per route, the route of each copy its service passes on (-1 until met). */
  private readonly routeKids: Int32Array[] = [];
  private readonly endToEnd = new Histogram();
  private readonly faults: { service: number; instance: number }[] = [];
  readonly warnings: string[] = [];
  private now = 0;
  events = 0;
  /** Where a run that went past its events bound stopped; null when it ran to the end. */
  stoppedAtMs: number | null = null;
  /** Series only: the length of one time bucket (0: no series). */
  private bucketMs = 0;

  constructor(
    private readonly model: Model,
    private readonly durationMs: number,
    private readonly seed: number,
    private readonly arrival: ArrivalProcess,
    private readonly serviceTime: ServiceTimeDistribution,
    private readonly recordBytes: number,
    rate: number | undefined,
    private readonly failureRate: number,
  ) {
    const graph = stageGraph(model);
    if (graph.order.length < model.services.length) throw new Error("cannot simulate a model whose services form a cycle");
    const serviceIndex = new Map(model.services.map((s, k) => [s.name, k]));

    model.services.forEach((s, k) => {
      const instances = s.instances.map((i) => {
        const capacity = i.capacityPerSec !== null && i.capacityPerSec > 0 ? i.capacityPerSec : null;
        return new InstanceState(i.index, i.weight, capacity, capacity === null ? 0 : 1000 / capacity);
      });
      const unknown = instances.filter((i) => i.capacityPerSec === null).length;
      if (unknown === instances.length)
        this.warnings.push(`service ${s.name} has no capacity: simulated as infinitely fast (no queue, zero service time), its utilisation is not measured`);
      else if (unknown > 0) this.warnings.push(`service ${s.name}: ${unknown} of its instances have no capacity: simulated as infinitely fast`);
      const next = (graph.next.get(s.name) ?? []).map((n) => serviceIndex.get(n) as number);
      const balancer = createBalancer(
        s.loadBalancing,
        s.instances.map((i) => ({ weight: i.weight, capacityPerSec: i.capacityPerSec })),
        createStream(seed, `balancer/${s.name}`),
      );
      this.services.push(
        new ServiceState(
          k,
          s,
          instances,
          balancer,
          next,
          s.retry,
          createStream(seed, `failures/${s.name}`),
          createStream(seed, `jitter/${s.name}`),
          createStream(seed, `service-time/${s.name}`),
        ),
      );
    });

    const process = arrival === "constant" ? ARRIVE_CONSTANT : arrival === "poisson" ? ARRIVE_POISSON : ARRIVE_BURSTY;
    model.sources.forEach((src, k) => {
      const ratePerSec = rate ?? src.ratePerSec;
      const target = serviceIndex.get(src.to) ?? -1;
      if (ratePerSec === null) this.warnings.push(`source ${src.name} has no rate: no records arrive from it`);
      if (target < 0) this.warnings.push(`source ${src.name} leads to no service (${src.to}): its batches are dropped`);
      const byBytes = Math.max(1, Math.floor(src.batch.maxBytes / recordBytes));
      const limit = Math.max(1, Math.min(src.batch.maxRecords, byBytes));
      const peak = process === ARRIVE_BURSTY ? BURSTY.peakFactor : 1;
      const gapMs = ratePerSec !== null && ratePerSec > 0 ? 1000 / (ratePerSec * peak) : 0;
      const first = target < 0 ? null : (this.services[target] as ServiceState);
      first?.feeds.push(k);
      this.sources.push(
        new SourceState(
          k,
          src.name,
          ratePerSec,
          target,
          limit,
          byBytes < src.batch.maxRecords,
          src.batch.maxWaitMs,
          process,
          gapMs,
          createStream(seed, `arrivals/${src.name}`),
          queueLimitRecords(src.batch, recordBytes),
          first?.retry ?? null,
          createStream(seed, `backoff/${src.name}`),
          target < 0 ? null : this.deadLetterAfter(target),
          target < 0 ? -1 : this.newRoute(target),
        ),
      );
    });

    for (const f of model.simulation.faults) {
      const service = serviceIndex.get(f.service);
      const instance = service === undefined ? undefined : this.services[service]?.instances[f.instance];
      if (service === undefined || instance === undefined) {
        this.warnings.push(`fault on ${f.service} instance ${f.instance} ignored: no such instance`);
        continue;
      }
      const id = this.faults.length;
      this.faults.push({ service, instance: f.instance });
      if (f.durationMs <= 0) continue;
      this.heap.push(f.atMs, EV_DOWN, id, 0);
      this.heap.push(f.atMs + f.durationMs, EV_UP, id, 0);
    }
  }

  /** The smallest `retry.deadLetterAfter` among the services reachable from `first`; null when none sets one. */
  private deadLetterAfter(first: number): number | null {
    const seen = new Set<number>();
    const todo = [first];
    let smallest: number | null = null;
    while (todo.length > 0) {
      const k = todo.pop() as number;
      if (seen.has(k)) continue;
      seen.add(k);
      const svc = this.services[k] as ServiceState;
      const after = svc.retry.deadLetterAfterMs;
      if (after !== null) smallest = smallest === null ? after : Math.min(smallest, after);
      todo.push(...svc.next);
    }
    return smallest;
  }

  private newRoute(service: number): number {
    this.routeKids.push(new Int32Array((this.services[service] as ServiceState).next.length).fill(-1));
    return this.routeKids.length - 1;
  }

  /** The route of the copy that `route`'s service passes on to its k-th `to`. */
  private kidRoute(route: number, k: number, service: number): number {
    const kids = this.routeKids[route] as Int32Array;
    let r = kids[k] as number;
    if (r < 0) {
      r = this.newRoute(service);
      kids[k] = r;
    }
    return r;
  }

  /** Turns on the series: `buckets` equal time buckets over the run. */
  observe(buckets: number): void {
    this.bucketMs = this.durationMs / buckets;
    for (const svc of this.services) {
      for (const inst of svc.instances) {
        inst.busyIn = new Float64Array(buckets);
        inst.waitSumIn = new Float64Array(buckets);
        inst.waitCountIn = new Float64Array(buckets);
      }
    }
  }

  /** Books `sign` × the part of [from, to) inside the run into the instance's busy buckets. */
  private book(inst: InstanceState, from: number, to: number, sign: number): void {
    const busy = inst.busyIn as Float64Array;
    const size = this.bucketMs;
    const end = Math.min(to, this.durationMs);
    let b = Math.floor(from / size);
    while (b < busy.length && b * size < end) {
      const overlap = Math.min(end, (b + 1) * size) - Math.max(from, b * size);
      if (overlap > 0) busy[b] = (busy[b] as number) + sign * overlap;
      b++;
    }
  }

  /** Runs to the end, or stops once it has taken more than `maxEvents` events (`stoppedAtMs` says where). */
  run(maxEvents: number, onProgress?: (fraction: number) => void): void {
    const end = this.durationMs;
    this.sources.forEach((s, k) => {
      if (s.gapMs <= 0) return;
      const first = this.firstArrival(s);
      if (first < end) this.heap.push(first, EV_ARRIVAL, k, 0);
    });
    const heap = this.heap;
    while (heap.size > 0 && heap.peekTime() < end) {
      heap.pop();
      this.now = heap.topTime;
      if (++this.events > maxEvents) {
        this.stoppedAtMs = this.now;
        return;
      }
      const a = heap.topA;
      switch (heap.topKind) {
        case EV_ARRIVAL:
          this.arrive(this.sources[a] as SourceState, a);
          break;
        case EV_WINDOW: {
          const s = this.sources[a] as SourceState;
          if (s.generation === heap.topB && s.count > 0) {
            s.byWait++;
            this.close(s);
          }
          break;
        }
        case EV_DONE:
          this.done(this.jobs[a] as Job, heap.topB);
          break;
        case EV_TIMEOUT:
          this.timedOut(this.jobs[a] as Job, heap.topB);
          break;
        case EV_RETRY: {
          const job = this.jobs[a] as Job;
          if (job.state !== JOB_BACKOFF || job.token !== heap.topB) break;
          // The instance that was to retry it went down meanwhile: no one retries it.
          if (this.orphaned(job)) this.release(job);
          else this.dispatch(job, job.instance);
          break;
        }
        case EV_RESEND: {
          const batch = this.batches[a] as Batch;
          if (batch.state === BATCH_WAITING && batch.token === heap.topB) this.send(this.sources[batch.source] as SourceState, batch);
          break;
        }
        case EV_DOWN:
          this.goDown(this.faults[a] as { service: number; instance: number });
          break;
        case EV_UP:
          this.comeUp(this.faults[a] as { service: number; instance: number });
          break;
      }
      if (onProgress !== undefined && this.events % PROGRESS_EVERY === 0) onProgress(this.now / end);
    }
    this.now = end;
    onProgress?.(1);
  }

  private firstArrival(s: SourceState): number {
    if (s.process === ARRIVE_CONSTANT) return 0;
    if (s.process === ARRIVE_POISSON) return exponential(s.random, s.gapMs);
    // Bursty: start in the stationary mix of phases, ON with probability on / (on + off).
    const pOn = BURSTY.meanOnMs / (BURSTY.meanOnMs + BURSTY.meanOffMs);
    if (s.random() < pOn) s.onUntil = exponential(s.random, BURSTY.meanOnMs);
    else {
      const start = exponential(s.random, BURSTY.meanOffMs);
      s.onUntil = start + exponential(s.random, BURSTY.meanOnMs);
      return this.burstyNext(s, start);
    }
    return this.burstyNext(s, 0);
  }

  private nextArrival(s: SourceState, now: number): number {
    if (s.process === ARRIVE_CONSTANT) return s.arrivals * s.gapMs;
    if (s.process === ARRIVE_POISSON) return now + exponential(s.random, s.gapMs);
    return this.burstyNext(s, now);
  }

  /** The next arrival of an on/off source at or after `from`, which is inside an ON phase or before the next one. */
  private burstyNext(s: SourceState, from: number): number {
    let t = from;
    for (;;) {
      // Memorylessness: a gap that runs past the end of the ON phase is redrawn from the next ON phase.
      const gap = exponential(s.random, s.gapMs);
      if (t + gap <= s.onUntil) return t + gap;
      t = s.onUntil + exponential(s.random, BURSTY.meanOffMs);
      s.onUntil = t + exponential(s.random, BURSTY.meanOnMs);
    }
  }

  private arrive(s: SourceState, k: number): void {
    s.arrivals++;
    // The bounded queue: a full one refuses the record (an empty one takes anything).
    if (s.depth > 0 && s.depth >= s.queueLimit) s.refused++;
    else {
      s.depth++;
      if (s.depth > s.maxDepth) s.maxDepth = s.depth;
      if (s.count === 0) s.firstMs = this.now;
      s.count++;
      if (s.count >= s.limit) {
        if (s.limitIsBytes) s.byBytes++;
        else s.byRecords++;
        this.close(s);
      } else if (s.count === 1) this.heap.push(this.now + s.maxWaitMs, EV_WINDOW, k, s.generation);
    }
    const next = this.nextArrival(s, this.now);
    if (next < this.durationMs) this.heap.push(next, EV_ARRIVAL, k, 0);
  }

  private close(s: SourceState): void {
    s.generation++;
    s.batches++;
    const records = s.count;
    s.count = 0;
    if (s.target < 0) {
      // Dropped: nothing holds its records.
      s.depth -= records;
      return;
    }
    const batch = this.allocateBatch();
    batch.source = s.index;
    batch.records = records;
    batch.originMs = s.firstMs;
    batch.seq = s.batches;
    s.order.push(batch.id);
    this.send(s, batch);
  }

  private allocateBatch(): Batch {
    const id = this.freeBatches.pop();
    if (id !== undefined) return this.batches[id] as Batch;
    const batch = new Batch(this.batches.length);
    this.batches.push(batch);
    return batch;
  }

  private releaseBatch(batch: Batch): void {
    batch.state = BATCH_FREE;
    batch.token++;
    batch.firstSentMs = -1;
    batch.unavailable = 0;
    batch.troubled = false;
    batch.stored.length = 0;
    batch.life++;
    this.freeBatches.push(batch.id);
  }

  /** Sends a batch to its source's first stage, or holds it while that stage has no healthy instance. */
  private send(s: SourceState, batch: Batch): void {
    const first = this.services[s.target] as ServiceState;
    if (first.healthy.length === 0) {
      batch.state = BATCH_HELD;
      s.held.push(batch.id);
      return;
    }
    if (batch.firstSentMs < 0) batch.firstSentMs = this.now;
    else s.resends++;
    batch.state = BATCH_SENDING;
    batch.token++;
    const job = this.allocate();
    job.service = s.target;
    job.records = batch.records;
    job.originMs = batch.originMs;
    job.batch = batch.id;
    job.batchLife = batch.life;
    job.parent = -1;
    job.parentToken = batch.token;
    job.route = s.route;
    job.deadline = Number.POSITIVE_INFINITY;
    this.dispatch(job, -1);
  }

  /** A send from the source ended: commit the batch, or back off and send it again (or dead-letter it). */
  private sendEnded(batch: Batch, token: number, outcome: number): void {
    if (batch.state !== BATCH_SENDING || batch.token !== token) return;
    const s = this.sources[batch.source] as SourceState;
    if (outcome === C_OK) {
      this.batchDone(s, batch);
      return;
    }
    // Unavailable (or out of time): back-pressure. It stays uncommitted and is sent again.
    const now = this.now;
    if (s.deadLetterAfterMs !== null && now - batch.firstSentMs >= s.deadLetterAfterMs) {
      s.deadLettered++;
      batch.unavailable++;
      this.batchDone(s, batch);
      return;
    }
    batch.unavailable++;
    batch.state = BATCH_WAITING;
    batch.token++;
    const wait = retryDelay(s.backoff as RetryModel, batch.unavailable, s.backoffRandom);
    this.heap.push(now + Math.max(MIN_RESEND_MS, wait), EV_RESEND, batch.id, batch.token);
  }

  /** The batch has its outcome: commit the finished batches at the head of the source's queue, in order. */
  private batchDone(s: SourceState, batch: Batch): void {
    if (batch.unavailable > 0) s.waited.add(this.now - batch.firstSentMs);
    batch.state = BATCH_DONE;
    const order = s.order;
    while (order.size > 0) {
      const head = this.batches[order.peek()] as Batch;
      if (head.state !== BATCH_DONE) break;
      order.shift();
      s.depth -= head.records;
      s.committed++;
      s.committedRecords += head.records;
      this.releaseBatch(head);
    }
  }

  /** The first stage of these sources has a healthy instance again: send what they held, in order. */
  private sendHeld(svc: ServiceState): void {
    for (const k of svc.feeds) {
      const s = this.sources[k] as SourceState;
      if (s.held.length === 0) continue;
      const held = s.held;
      s.held = [];
      held.sort((a, b) => (this.batches[a] as Batch).seq - (this.batches[b] as Batch).seq);
      for (const id of held) {
        const batch = this.batches[id] as Batch;
        if (batch.state === BATCH_HELD) this.send(s, batch);
      }
    }
  }

  private allocate(): Job {
    const id = this.freeJobs.pop();
    if (id !== undefined) return this.jobs[id] as Job;
    const job = new Job(this.jobs.length);
    this.jobs.push(job);
    return job;
  }

  private release(job: Job): void {
    job.state = JOB_FREE;
    job.token++;
    job.attempt = 0;
    job.instance = -1;
    this.freeJobs.push(job.id);
  }

  /** Sends the job's next attempt; `exclude` is the instance the previous attempt went to. */
  private dispatch(job: Job, exclude: number): void {
    const svc = this.services[job.service] as ServiceState;
    const now = this.now;
    if (now >= job.deadline) {
      // No time left: answered as timeout at once, without an attempt.
      svc.noTimeLeft++;
      this.conclude(job, C_TIMEOUT);
      return;
    }
    svc.attempts++;
    svc.attemptRecords += job.records;
    if (job.attempt === 0) {
      svc.requests++;
      svc.firstRecords += job.records;
      if (svc.retry.maxRetries > 0) svc.budget.deposit(now);
    }
    job.token++;
    job.state = JOB_IN_FLIGHT;
    const i = svc.healthy.length === 0 ? -1 : svc.balancer.pick(svc.healthy, exclude);
    job.instance = i;
    if (i < 0) {
      this.attemptFailed(svc, job, F_CONNECT);
      return;
    }
    const inst = svc.instances[i] as InstanceState;
    // A sink skips a copy it stored already along the same path.
    let duplicate = false;
    if (svc.next.length === 0) {
      const batch = this.batches[job.batch] as Batch;
      duplicate = batch.troubled && batch.stored.includes(job.route);
    }
    job.duplicate = duplicate;
    inst.attempts++;
    if (!duplicate) inst.records += job.records;
    svc.balancer.onStart(i);
    let finish = now;
    if (inst.msPerRecord > 0) {
      const start = Math.max(inst.freeAt, now);
      const mean = duplicate ? 0 : job.records * inst.msPerRecord;
      const work = this.serviceTime === "exponential" && !duplicate ? exponential(svc.timeRandom, mean) : mean;
      finish = start + work;
      inst.freeAt = finish;
      inst.busyMs += work;
      const queue = inst.queue;
      queue.dropUpTo(now);
      if (start > now) {
        queue.push(start);
        if (queue.size > inst.maxQueue) inst.maxQueue = queue.size;
      }
      inst.waits.add(start - now);
      if (this.bucketMs > 0) {
        this.book(inst, start, finish, 1);
        this.bookWait(inst, start - now);
      }
    } else {
      inst.waits.add(0);
      if (this.bucketMs > 0) this.bookWait(inst, 0);
    }
    // The attempt's limit: min(the service's timeout, the time left before the deadline).
    const timeout = svc.model.timeoutMs;
    if (job.deadline < now + timeout) {
      const end = job.deadline;
      job.attemptEnd = end;
      if (finish > end) this.heap.push(end, EV_TIMEOUT, job.id, job.token);
      else this.heap.push(finish, EV_DONE, job.id, job.token);
    } else {
      job.attemptEnd = now + timeout;
      if (finish - now > timeout) this.heap.push(now + timeout, EV_TIMEOUT, job.id, job.token);
      else this.heap.push(finish, EV_DONE, job.id, job.token);
    }
  }

  private bookWait(inst: InstanceState, wait: number): void {
    const sums = inst.waitSumIn as Float64Array;
    const counts = inst.waitCountIn as Float64Array;
    const b = Math.min(Math.floor(this.now / this.bucketMs), sums.length - 1);
    sums[b] = (sums[b] as number) + wait;
    counts[b] = (counts[b] as number) + 1;
  }

  private done(job: Job, token: number): void {
    if (job.state !== JOB_IN_FLIGHT || job.token !== token) return;
    const svc = this.services[job.service] as ServiceState;
    svc.balancer.onFinish(job.instance);
    if (this.failureRate > 0 && svc.failureRandom() < this.failureRate) this.attemptFailed(svc, job, F_5XX);
    else this.handled(svc, job);
  }

  private timedOut(job: Job, token: number): void {
    if (job.state !== JOB_IN_FLIGHT || job.token !== token) return;
    const svc = this.services[job.service] as ServiceState;
    svc.balancer.onFinish(job.instance);
    this.attemptFailed(svc, job, F_TIMEOUT);
  }

  /** The handler succeeded: a sink has stored the batch; any other stage passes it on and waits for the answers. */
  private handled(svc: ServiceState, job: Job): void {
    if (job.duplicate) {
      svc.skipped++;
      this.conclude(job, C_OK);
      return;
    }
    svc.succeeded++;
    const latency = this.now - job.originMs;
    svc.latency.add(latency);
    const next = svc.next;
    if (next.length === 0) {
      this.endToEnd.add(latency);
      const batch = this.batches[job.batch] as Batch;
      if (batch.life === job.batchLife) batch.stored.push(job.route);
      this.conclude(job, C_OK);
      return;
    }
    job.state = JOB_WAITING;
    job.pending = next.length;
    job.failedBelow = false;
    // The stages below get what is left of this attempt's time: its end is their deadline.
    for (let k = 0; k < next.length; k++) {
      const service = next[k] as number;
      const copy = this.allocate();
      copy.service = service;
      copy.records = job.records;
      copy.originMs = job.originMs;
      copy.batch = job.batch;
      copy.batchLife = job.batchLife;
      copy.parent = job.id;
      copy.parentToken = job.token;
      copy.route = this.kidRoute(job.route, k, service);
      copy.deadline = job.attemptEnd;
      this.dispatch(copy, -1);
    }
  }

  /**
   * A send to a service ended with `outcome`: its caller learns it. A source commits or backs
   * off; a stage waiting for its `to` concludes its attempt once all of them have answered.
   */
  private conclude(job: Job, outcome: number): void {
    if (outcome !== C_OK) (this.services[job.service] as ServiceState).unavailable++;
    const parentId = job.parent;
    const parentToken = job.parentToken;
    const batchId = job.batch;
    this.release(job);
    if (parentId < 0) {
      this.sendEnded(this.batches[batchId] as Batch, parentToken, outcome);
      return;
    }
    const parent = this.jobs[parentId] as Job;
    // Its caller is gone (its instance went down meanwhile): no one hears the answer.
    if (parent.state !== JOB_WAITING || parent.token !== parentToken) return;
    if (outcome !== C_OK) parent.failedBelow = true;
    if (--parent.pending > 0) return;
    if (!parent.failedBelow) {
      this.conclude(parent, C_OK);
      return;
    }
    // At the end of its limit its caller has given up (timeout); before it, the stage answers 503.
    this.attemptFailed(this.services[parent.service] as ServiceState, parent, this.now >= parent.attemptEnd ? F_TIMEOUT : F_UNAVAILABLE);
  }

  /** Whether no one waits for the job any more (the instance that sent it went down). */
  private orphaned(job: Job): boolean {
    if (job.parent < 0) return false;
    const parent = this.jobs[job.parent] as Job;
    return parent.state !== JOB_WAITING || parent.token !== job.parentToken;
  }

  /** The attempt failed: retry it after a backoff if the policy, the budget and the deadline allow; else the service is unavailable to this send. */
  private attemptFailed(svc: ServiceState, job: Job, kind: number): void {
    svc.failures[kind] = (svc.failures[kind] as number) + 1;
    const batch = this.batches[job.batch] as Batch;
    if (batch.life === job.batchLife) batch.troubled = true;
    const retry = svc.retry;
    if (!svc.retryOn[kind] || job.attempt >= retry.maxRetries || this.orphaned(job)) {
      this.conclude(job, C_UNAVAILABLE);
      return;
    }
    const now = this.now;
    if (!svc.budget.tryWithdraw(now)) {
      svc.refused++;
      this.conclude(job, C_UNAVAILABLE);
      return;
    }
    svc.retries++;
    job.attempt++;
    job.state = JOB_BACKOFF;
    job.token++;
    // The backoff is cut short by the deadline: the retry then finds no time left.
    const at = now + retryDelay(retry, job.attempt, svc.jitterRandom);
    this.heap.push(at < job.deadline ? at : job.deadline, EV_RETRY, job.id, job.token);
  }

  private goDown(fault: { service: number; instance: number }): void {
    const svc = this.services[fault.service] as ServiceState;
    const inst = svc.instances[fault.instance] as InstanceState;
    inst.down++;
    if (inst.down > 1) return;
    const now = this.now;
    inst.downSince = now;
    const at = svc.healthy.indexOf(fault.instance);
    if (at >= 0) svc.healthy.splice(at, 1);
    // The work booked after now is contiguous (FIFO, work-conserving): drop it.
    if (inst.freeAt > now) {
      inst.busyMs -= inst.freeAt - now;
      if (this.bucketMs > 0) this.book(inst, now, inst.freeAt, -1);
      inst.freeAt = now;
    }
    inst.queue.clear();
    // Attempts on it fail as connect: those queued or in service, and those waiting for the stages below.
    const jobs = this.jobs;
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j] as Job;
      if (job.service !== fault.service || job.instance !== fault.instance) continue;
      if (job.state === JOB_IN_FLIGHT) {
        svc.balancer.onFinish(fault.instance);
        this.attemptFailed(svc, job, F_CONNECT);
      } else if (job.state === JOB_WAITING) this.attemptFailed(svc, job, F_CONNECT);
    }
  }

  private comeUp(fault: { service: number; instance: number }): void {
    const svc = this.services[fault.service] as ServiceState;
    const inst = svc.instances[fault.instance] as InstanceState;
    inst.down--;
    if (inst.down > 0) return;
    inst.downMs += this.now - inst.downSince;
    let at = 0;
    while (at < svc.healthy.length && (svc.healthy[at] as number) < fault.instance) at++;
    svc.healthy.splice(at, 0, fault.instance);
    if (svc.healthy.length === 1) this.sendHeld(svc);
  }

  result(predicted: ServiceLoad[]): SimulationResult {
    const end = this.durationMs;
    const seconds = end / 1000;
    const inFlight = this.services.map(() => 0);
    // A job waiting for the stages below is in flight there, not here.
    for (const job of this.jobs) if (job.state === JOB_IN_FLIGHT || job.state === JOB_BACKOFF) inFlight[job.service] = (inFlight[job.service] as number) + 1;

    const waiting = this.sources.map(() => 0);
    for (const batch of this.batches)
      if (batch.state === BATCH_WAITING || batch.state === BATCH_HELD) waiting[batch.source] = (waiting[batch.source] as number) + 1;

    const sources: SourceResult[] = this.sources.map((s, k) => {
      const closed = s.arrivals - s.refused - s.count;
      return {
        name: s.name,
        ratePerSec: s.ratePerSec,
        records: s.arrivals,
        recordsRefused: s.refused,
        batches: s.batches,
        closedBy: { maxRecords: s.byRecords, maxBytes: s.byBytes, maxWait: s.byWait },
        meanBatchRecords: s.batches === 0 ? null : closed / s.batches,
        openRecordsAtEnd: s.count,
        queueLimitRecords: s.queueLimit,
        maxQueueRecords: s.maxDepth,
        queueRecordsAtEnd: s.depth,
        batchesCommitted: s.committed,
        recordsCommitted: s.committedRecords,
        deadLetterAfterMs: s.deadLetterAfterMs,
        batchesDeadLettered: s.deadLettered,
        resends: s.resends,
        batchesWaitingAtEnd: waiting[k] as number,
        waitedMs: percentiles(s.waited),
      };
    });

    const services: ServiceResult[] = this.services.map((svc, k) => {
      const prediction = predicted[k] as ServiceLoad;
      const reached = svc.instances.reduce((n, i) => n + i.attempts, 0);
      const instances: InstanceResult[] = svc.instances.map((inst, j) => {
        const stillDown = inst.down > 0 ? end - inst.downSince : 0;
        const busy = Math.max(0, inst.busyMs - Math.max(0, inst.freeAt - end));
        const p = prediction.instances?.[j];
        return {
          index: inst.index,
          weight: inst.weight,
          capacityPerSec: inst.capacityPerSec,
          attempts: inst.attempts,
          share: reached === 0 ? null : inst.attempts / reached,
          utilisation: inst.capacityPerSec === null ? null : busy / end,
          records: inst.records,
          maxQueueLength: inst.maxQueue,
          queueWaitMs: percentiles(inst.waits),
          downMs: inst.downMs + stillDown,
          predicted: p === undefined ? null : { share: p.share, utilisation: p.utilisation },
        };
      });
      const measured = instances.every((i) => i.utilisation !== null);
      let num = 0;
      let den = 0;
      for (const i of instances) {
        num += i.weight * (i.utilisation ?? 0);
        den += i.weight;
      }
      const m = svc.retry.maxRetries;
      const r = svc.requests === 0 ? null : svc.retries / svc.requests;
      return {
        name: svc.model.name,
        loadBalancing: svc.model.loadBalancing,
        infiniteCapacity: svc.instances.every((i) => i.capacityPerSec === null),
        requests: svc.requests,
        attempts: svc.attempts,
        retries: svc.retries,
        retriesRefused: svc.refused,
        batchesSucceeded: svc.succeeded,
        batchesUnavailable: svc.unavailable,
        noTimeLeft: svc.noTimeLeft,
        duplicatesSkipped: svc.skipped,
        batchesInFlightAtEnd: inFlight[k] as number,
        failures: {
          timeout: svc.failures[F_TIMEOUT] as number,
          "5xx": svc.failures[F_5XX] as number,
          connect: svc.failures[F_CONNECT] as number,
          unavailable: svc.failures[F_UNAVAILABLE] as number,
        },
        ratePerSec: svc.firstRecords / seconds,
        attemptsPerSec: svc.attemptRecords / seconds,
        retriesPerRequest: r,
        retryFigure: r === null ? null : m === 0 ? 0 : (r * (svc.retry.intervalMs / 1000)) / m,
        weightedLoad: measured && den > 0 ? num / den : null,
        maxQueueLength: svc.instances.reduce((n, i) => Math.max(n, i.maxQueue), 0),
        queueWaitMs: percentiles(merged(svc.instances.map((i) => i.waits))),
        latencyMs: percentiles(svc.latency),
        predicted: {
          ratePerSec: prediction.ratePerSec,
          attemptsPerSec: prediction.attemptsPerSec,
          retriesPerRequest: prediction.expectedRetries,
          weightedLoad: prediction.weightedLoad,
          retryFigure: prediction.retryFigure,
        },
        instances,
      };
    });

    const result: SimulationResult = {
      system: this.model.name,
      environment: this.model.environment,
      seed: this.seed,
      durationMs: end,
      arrival: this.arrival,
      serviceTime: this.serviceTime,
      failureRate: this.failureRate,
      recordBytes: this.recordBytes,
      events: this.events,
      warnings: [...this.warnings],
      sources,
      services,
      endToEndMs: percentiles(this.endToEnd),
    };
    if (this.bucketMs > 0) result.series = this.series();
    return result;
  }

  private series(): SimulationSeries {
    const size = this.bucketMs;
    // The ends are exact: the smallest and the largest value, not their buckets' middles.
    const quantiles = (h: Histogram) => (h.count === 0 ? null : SERIES_QUANTILES.map((q) => (q === 0 ? h.min : q === 1 ? h.max : h.quantile(q))));
    return {
      bucketMs: size,
      quantiles: [...SERIES_QUANTILES],
      endToEndMs: quantiles(this.endToEnd),
      services: this.services.map((svc) => ({
        name: svc.model.name,
        latencyMs: quantiles(svc.latency),
        instances: svc.instances.map((inst) => {
          const busy = inst.busyIn as Float64Array;
          const sums = inst.waitSumIn as Float64Array;
          const counts = inst.waitCountIn as Float64Array;
          return {
            index: inst.index,
            // Clamped: booking and unbooking the same interval may leave a rounding residue.
            utilisation: inst.capacityPerSec === null ? null : Array.from(busy, (ms) => Math.min(1, Math.max(0, ms / size))),
            queueWaitMs: Array.from(sums, (sum, b) => ((counts[b] as number) === 0 ? null : sum / (counts[b] as number))),
          };
        }),
      })),
    };
  }
}

/** Simulates `model` (which should have passed validation) and returns plain, deterministic JSON data. */
export function simulate(model: Model, options: SimulateOptions = {}): SimulationResult {
  checkOptions(options);
  const durationMs = options.durationMs ?? model.simulation.durationMs;
  const seed = options.seed ?? model.simulation.seed;
  const arrival = options.arrival ?? model.simulation.arrival;
  const serviceTime = options.serviceTime ?? "deterministic";
  const recordBytes = options.recordBytes ?? ESTIMATED_RECORD_BYTES;
  const failureRate = model.simulation.failureRate;
  const estimate = estimateEvents(model, { durationMs, ...(options.rate !== undefined ? { rate: options.rate } : {}), recordBytes, arrival });
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  if (!(estimate.events <= maxEvents)) throw new SimulationTooLarge(estimate, maxEvents);
  const sim = new Simulation(model, durationMs, seed, arrival, serviceTime, recordBytes, options.rate, failureRate);
  if (options.series !== undefined) sim.observe(options.series.buckets);
  sim.run(maxEvents, options.onProgress);
  // Batches sent again after a stage was unavailable are not in the estimate (how many depends
  // on how long it stays so): a run they take past the bound stops there.
  if (sim.stoppedAtMs !== null) throw new SimulationTooLarge(estimate, maxEvents, sim.stoppedAtMs);
  // The static model at the rates simulated, so each prediction sits beside its measurement.
  const rate = options.rate;
  const effective = rate === undefined ? model : { ...model, sources: model.sources.map((s) => ({ ...s, ratePerSec: rate })) };
  return sim.result(staticModel(effective));
}
