/**
 * The metrics of one runtime process: one prom-client Registry, served at `GET /metrics` in the
 * Prometheus text format, plus Node's default process metrics (CPU, memory, event-loop lag, GC).
 *
 * Every series carries the process's identity as labels: `service` and `instance` in a service
 * instance, `source` in a source (the registry has none). Labels of what a process talks to are
 * `to` (the downstream service) and `to_instance`.
 *
 * The API other roles call (all cheap, synchronous, never throwing):
 *
 * | call | metric | who calls it |
 * |---|---|---|
 * | `recordsIn(n)` | `mbc_records_in_total` | a source, for records it acknowledged; an instance, for records of a batch it took |
 * | `recordsOut(n)` | `mbc_records_out_total` | records sent on and answered 2xx (a sink: records stored) |
 * | `batch(outcome, seconds)` | `mbc_batches_total{outcome}`, `mbc_batch_duration_seconds{outcome}` | once per batch, when its fate is known |
 * | `attempt(to, instance, outcome, seconds)` | `mbc_attempts_total{to,to_instance,outcome}`, `mbc_attempt_duration_seconds{to,to_instance}` | the dispatcher, once per HTTP attempt |
 * | `retry(to)` | `mbc_retries_total{to}` | the dispatcher, per retry it sends |
 * | `budgetRefusal(to)` | `mbc_retry_budget_refusals_total{to}` | the dispatcher, per retry the budget refused |
 * | `deadLetter()` | `mbc_dead_letters_total` | whoever writes a batch to the dead-letter folder |
 * | `queueDepth(n)` | `mbc_queue_depth` | a source (records accepted, not yet committed); an instance (batches in flight) |
 *
 * Batch outcomes: `ok` (every stage downstream stored it), `error` (failed after its retries;
 * at an instance: answered 500), `dead-letter` (a source gave up and wrote it to the
 * dead-letter folder), `rejected` (refused without trying, e.g. 503 while draining).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export type BatchOutcome = "ok" | "error" | "dead-letter" | "rejected" | "unavailable" | "split";
export type AttemptOutcome = "ok" | "timeout" | "poison" | "unavailable" | "5xx" | "4xx" | "connect";

/** Who is measured: the labels every series of the process carries. */
export type MetricsIdentity = { role: "registry" } | { role: "source"; source: string } | { role: "service"; service: string; instance: number };

export interface RuntimeMetrics {
  /** The underlying registry, for a role that adds metrics of its own. */
  readonly registry: Registry;
  /** The Content-Type of `render()`'s text. */
  readonly contentType: string;
  recordsIn(n: number): void;
  recordsOut(n: number): void;
  batch(outcome: BatchOutcome, seconds: number): void;
  attempt(to: string, instance: number, outcome: AttemptOutcome, seconds: number): void;
  retry(to: string): void;
  budgetRefusal(to: string): void;
  deadLetter(): void;
  queueDepth(n: number): void;
  /** A source: batches (or pieces) waiting to be sent again because a stage was unavailable. */
  waiting(n: number): void;
  /** A source: pieces of poison batches being isolated (split and sent again). */
  bisecting(n: number): void;
  /** A source: a replayed dead letter was stored, or failed again (dead-letter). */
  replayed(outcome: "stored" | "dead-letter"): void;
  /** The exposition text of every metric. */
  render(): Promise<string>;
}

/**
 * Batch latencies run from a few milliseconds (a passthrough on loopback) to the worst case of
 * a chain of timeouts and retries (tens of seconds).
 */
export const BATCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The labels of the process's identity. */
export function identityLabels(identity: MetricsIdentity): Record<string, string> {
  switch (identity.role) {
    case "registry":
      return {};
    case "source":
      return { source: identity.source };
    case "service":
      return { service: identity.service, instance: String(identity.instance) };
  }
}

export interface MetricsOptions {
  /** Node's process metrics (default true; tests that create many registries turn them off). */
  defaultMetrics?: boolean;
}

export function createMetrics(identity: MetricsIdentity, options: MetricsOptions = {}): RuntimeMetrics {
  const registry = new Registry();
  registry.setDefaultLabels(identityLabels(identity));
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const recordsIn = new Counter({
    name: "mbc_records_in_total",
    help: "Records taken in (a source: acknowledged; an instance: received in batches).",
    registers,
  });
  const recordsOut = new Counter({ name: "mbc_records_out_total", help: "Records passed on and answered 2xx downstream (a sink: stored).", registers });
  const batches = new Counter({
    name: "mbc_batches_total",
    help: "Batches (and pieces) by outcome: ok, error, dead-letter, rejected; a source also counts sends that found a stage unavailable, and splits.",
    labelNames: ["outcome"],
    registers,
  });
  const batchDuration = new Histogram({
    name: "mbc_batch_duration_seconds",
    help: "Time from taking a batch to knowing its outcome, including every stage downstream.",
    labelNames: ["outcome"],
    buckets: BATCH_BUCKETS,
    registers,
  });
  const attempts = new Counter({
    name: "mbc_attempts_total",
    help: "HTTP attempts to downstream instances by outcome: ok, timeout, poison, unavailable, 5xx, 4xx, connect.",
    labelNames: ["to", "to_instance", "outcome"],
    registers,
  });
  const attemptDuration = new Histogram({
    name: "mbc_attempt_duration_seconds",
    help: "Latency of one attempt to a downstream instance.",
    labelNames: ["to", "to_instance"],
    buckets: BATCH_BUCKETS,
    registers,
  });
  const retries = new Counter({ name: "mbc_retries_total", help: "Retries sent to a downstream service.", labelNames: ["to"], registers });
  const refusals = new Counter({
    name: "mbc_retry_budget_refusals_total",
    help: "Retries the downstream service's retry budget refused.",
    labelNames: ["to"],
    registers,
  });
  const deadLetters = new Counter({ name: "mbc_dead_letters_total", help: "Batches written to the dead-letter folder.", registers });
  const queueDepth = new Gauge({
    name: "mbc_queue_depth",
    help: "Work waiting: a source's records not yet committed; an instance's batches in flight.",
    registers,
  });

  const waiting = new Gauge({
    name: "mbc_batches_waiting",
    help: "A source's batches (or pieces) waiting to be sent again because a stage on their path was unavailable.",
    registers,
  });
  const bisecting = new Gauge({ name: "mbc_pieces_bisecting", help: "A source's pieces of poison batches still being isolated.", registers });
  const replays = new Counter({
    name: "mbc_dead_letters_replayed_total",
    help: "Dead letters a source sent again after a replay: stored, or back among the dead letters (dead-letter).",
    labelNames: ["outcome"],
    registers,
  });

  // prom-client throws on a negative increment or a non-finite value: a caller's arithmetic
  // slip must cost a sample, not the batch that was being counted.
  const count = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);
  const secs = (s: number) => (Number.isFinite(s) && s >= 0 ? s : 0);

  return {
    registry,
    contentType: registry.contentType,
    recordsIn: (n) => recordsIn.inc(count(n)),
    recordsOut: (n) => recordsOut.inc(count(n)),
    batch(outcome, seconds) {
      batches.inc({ outcome });
      batchDuration.observe({ outcome }, secs(seconds));
    },
    attempt(to, instance, outcome, seconds) {
      const toInstance = String(instance);
      attempts.inc({ to, to_instance: toInstance, outcome });
      attemptDuration.observe({ to, to_instance: toInstance }, secs(seconds));
    },
    retry: (to) => retries.inc({ to }),
    budgetRefusal: (to) => refusals.inc({ to }),
    deadLetter: () => deadLetters.inc(),
    queueDepth: (n) => queueDepth.set(Number.isFinite(n) ? n : 0),
    waiting: (n) => waiting.set(Number.isFinite(n) ? n : 0),
    bisecting: (n) => bisecting.set(Number.isFinite(n) ? n : 0),
    replayed: (outcome) => replays.inc({ outcome }),
    render: () => registry.metrics(),
  };
}
