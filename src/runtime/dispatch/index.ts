/**
 * The dispatcher: sends a batch to the next stages over HTTP (`POST {instance}/batch`), with
 * the same balancing algorithms as the simulator (src/balance), a per-attempt timeout, quick
 * retries with backoff, jitter and a retry budget, a circuit breaker per instance, a deadline,
 * and the delivery class of a failure (core/failure.ts).
 *
 * Per target service (its own ServiceModel gives `timeout`, `retry` and `loadBalancing`):
 * - The live instances come from discovery's cache. One balancer per service is kept while
 *   the live set stays the same and rebuilt when it changes (in-flight counts carry over, so
 *   least-connections and power-of-two-choices keep seeing the attempts still open).
 * - Deadline: a send may be given the time its caller has left (a service instance passes on
 *   what it was given). An attempt is bounded by min(the target's `timeout`, time left) and tells
 *   the stage that much in `mbc-time-left`; with no time left, no attempt is made and the send
 *   fails as `timeout`. A source's sends have no deadline of their own.
 * - An attempt ends as (core/contracts.ts, AttemptKind): `timeout`, `poison`, `unavailable` (the
 *   stage's `mbc-failure` header, or a 503), `5xx` (unmarked), `4xx`, `connect` (anything below
 *   HTTP), `no-instance` (none listed; it first waits for discovery to list one, up to the
 *   attempt's limit: at a cold start the cached view may only be behind).
 * - Quick retries: a failure whose kind `retry.on` names is retried — `timeout` as `timeout`;
 *   `poison`, `unavailable` and `5xx` as `5xx`; `connect` and `no-instance` as `connect` — up to
 *   `maxRetries` times, after `retryDelay`, on a different instance whenever another live one
 *   exists, while the retry budget allows and time is left. A `4xx` is never retried.
 * - The class of a failed send: `poison` when a `4xx` came back (the stage refuses this batch as
 *   it is), or when the poison test holds: the batch failed as `poison` or `timeout` on two
 *   different instances (twice, when the service has one instance) while other batches got
 *   through the same service (a success since its first such failure, or in the
 *   SUCCESS_WINDOW_MS before). The test counts failures across sends of the same batch id (a
 *   source sends it again after a back-off). `timeout` when the deadline ran out. Otherwise
 *   `unavailable`: back-pressure, never a reason to give up on the batch.
 * - Circuit breaker per instance: after `failureThreshold` consecutive connect failures an
 *   instance is skipped while another one is available; after `halfOpenAfterMs` one probe
 *   may go through, and the breaker closes when an answer arrives (any HTTP status proves the
 *   instance reachable). When every live instance's breaker is open, the balancer picks among
 *   all of them: the attempt is then a probe, rather than failing without trying.
 * - Fan-out: a copy goes to every target concurrently; the send resolves when all succeeded
 *   and rejects, once all have settled, naming every target that failed, as `poison` when one
 *   of them is (the source splits the batch; a branch that stored it skips the pieces), else as
 *   `timeout` when one ran out of time, else `unavailable`.
 *
 * Connections are kept alive (http.ts's client: one keep-alive Agent, closed by `close()`).
 */
import { type Balancer, createBalancer } from "../../balance/index.js";
import type { ServiceModel } from "../../model/types.js";
import { type Random, RetryBudget, retryDelay } from "../../retry/index.js";
import type { AttemptKind, Discovery, Dispatcher, DispatchFailure, InstanceEndpoint, Logger, SendOptions, TextBatch, WireBatch } from "../core/contracts.js";
import { FAILURE_HEADER, type FailureClass, parseFailureClass, TIME_LEFT_HEADER } from "../core/failure.js";
import { type ClientResponse, createHttpClient, type HttpClient, HttpClientError } from "../core/http.js";
import { encodeTextBatch } from "../core/json-text.js";
import { limitRepeats } from "../core/log.js";
import type { RuntimeMetrics } from "../core/metrics.js";

export type { AttemptKind };
export type AttemptRecord = DispatchFailure["attempts"][number];

/** How long a success of a service counts, before a batch's first failure there, for the poison test. */
export const SUCCESS_WINDOW_MS = 10_000;
/** Batches whose failures the poison test remembers across sends (the oldest are forgotten first). */
const SUSPECT_MEMORY = 10_000;
/** …and for how long after their last failure. */
const SUSPECT_TTL_MS = 10 * 60_000;

/**
 * What the dispatcher reports (the process's RuntimeMetrics): every HTTP attempt, every retry
 * granted, every retry the budget refused. An attempt that found no live instance sent nothing
 * and is not an HTTP attempt: it shows in the batch's failure, not in `attempt`.
 */
export type DispatchMetrics = Pick<RuntimeMetrics, "attempt" | "retry" | "budgetRefusal">;

export interface BreakerOptions {
  /** Consecutive connect failures that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker skips its instance before one probe may go through. */
  halfOpenAfterMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 3, halfOpenAfterMs: 1000 };

export interface DispatcherOptions {
  /** Every service of the model: targets are looked up by name (timeout, retry, balancing). */
  services: readonly ServiceModel[];
  discovery: Discovery;
  log: Logger;
  metrics?: DispatchMetrics;
  /** Uniform [0, 1) for the random balancers and the jitter; Math.random unless given. */
  random?: Random;
  /** Monotonic ms for the retry budget and the breakers; performance.now unless given. */
  now?: () => number;
  breaker?: Partial<BreakerOptions>;
  /** The HTTP client (keep-alive); by default the dispatcher makes its own and closes it in `close()`. */
  client?: HttpClient;
}

/** A send that failed after its retries: what DispatchFailure promises, as a real Error. */
export class DispatchError extends Error implements DispatchFailure {
  override readonly name = "DispatchFailure";

  constructor(
    message: string,
    readonly service: string,
    readonly failure: FailureClass,
    readonly attempts: AttemptRecord[],
    /** For a fan-out with several failed targets: each target's own failure. */
    readonly failures: readonly DispatchError[] = [],
  ) {
    super(message);
  }
}

export function isDispatchFailure(error: unknown): error is DispatchFailure {
  return (
    error instanceof Error && typeof (error as Partial<DispatchFailure>).service === "string" && Array.isArray((error as Partial<DispatchFailure>).attempts)
  );
}

/** Whether a failure of `kind` is retried under `on`. */
export function isRetryable(kind: AttemptKind, on: readonly string[]): boolean {
  switch (kind) {
    case "timeout":
      return on.includes("timeout");
    case "poison":
    case "unavailable":
    case "5xx":
      return on.includes("5xx");
    case "connect":
    case "no-instance":
      return on.includes("connect");
    case "4xx":
    case "budget":
    case "deadline":
      return false;
  }
}

/** The failures of one batch at one service that count for the poison test. */
export interface Suspicion {
  /** Instances where it failed as poison or timed out, one entry a failure. */
  instances: number[];
  /** When it first failed so (the dispatcher's clock). */
  firstAt: number;
  lastAt: number;
}

/**
 * The poison test: the batch failed as `poison` or `timeout` on two different instances (twice,
 * when the service has one instance), and some other batch got through the service since its
 * first such failure or within SUCCESS_WINDOW_MS before it.
 */
export function poisonProven(suspicion: Suspicion | undefined, instanceCount: number, lastSuccessAt: number): boolean {
  if (suspicion === undefined) return false;
  const distinct = new Set(suspicion.instances).size;
  const repeated = instanceCount <= 1 ? suspicion.instances.length >= 2 : distinct >= 2;
  return repeated && lastSuccessAt >= suspicion.firstAt - SUCCESS_WINDOW_MS;
}

/** The class of a fan-out: poison wins (split, and the branches that stored it skip the pieces), then timeout, then unavailable. */
export function mergeFailureClasses(classes: readonly FailureClass[]): FailureClass {
  if (classes.includes("poison")) return "poison";
  if (classes.includes("timeout")) return "timeout";
  return "unavailable";
}

type BreakerState = "closed" | "open" | "half-open";

/**
 * A small consecutive-failure circuit breaker. It counts connect failures only: a timeout or
 * an HTTP error status says nothing about whether the instance is reachable (a 5xx proves it
 * is), and those are what retries, not the breaker, are for.
 */
export class CircuitBreaker {
  private current: BreakerState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(private readonly options: BreakerOptions) {}

  get state(): BreakerState {
    return this.current;
  }

  /** Whether an attempt may go to the instance now; moves an open breaker to half-open when its time is up. */
  allows(now: number): boolean {
    if (this.current === "closed") return true;
    if (this.current === "open") {
      if (now - this.openedAt < this.options.halfOpenAfterMs) return false;
      this.current = "half-open";
      this.probing = false;
    }
    return !this.probing;
  }

  /** An attempt was sent; in half-open state it is the one probe. */
  onStart(): void {
    if (this.current === "half-open") this.probing = true;
  }

  /** The instance answered (any status): it is reachable. */
  onAnswer(): void {
    this.current = "closed";
    this.failures = 0;
    this.probing = false;
  }

  onConnectFailure(now: number): void {
    this.failures++;
    if (this.current !== "closed" || this.failures >= this.options.failureThreshold) this.open(now);
  }

  /** A timeout: in half-open state the probe failed; otherwise it does not count either way. */
  onTimeout(now: number): void {
    if (this.current === "half-open") this.open(now);
  }

  private open(now: number): void {
    this.current = "open";
    this.openedAt = now;
    this.probing = false;
  }
}

type Outcome = { ok: true } | { ok: false; kind: Exclude<AttemptKind, "budget" | "no-instance" | "deadline">; error: string };

interface TargetState {
  model: ServiceModel;
  budget: RetryBudget;
  balancer: Balancer | null;
  /** The live set the balancer was built for. */
  signature: string;
  inFlight: Map<number, number>;
  /** When a batch last got through this service (the dispatcher's clock). */
  lastSuccessAt: number;
}

/**
 * The largest answer read from an instance. Answers are `{"ok":true}` or `{"error":…}`; the
 * limit only stops a misbehaving peer from making the caller buffer without bound (the client
 * reports a longer answer as a connect failure).
 */
const MAX_ANSWER_BYTES = 1024 * 1024;

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new HttpDispatcher(options);
}

class HttpDispatcher implements Dispatcher {
  private readonly services = new Map<string, ServiceModel>();
  private readonly targets = new Map<string, TargetState>();
  private readonly breakers = new Map<string, { url: string; breaker: CircuitBreaker }>();
  private readonly client: HttpClient;
  private readonly ownsClient: boolean;
  private readonly closing = new AbortController();
  private readonly random: Random;
  private readonly now: () => number;
  private readonly breakerOptions: BreakerOptions;
  /** Poison-test failures by `service#batch id`, oldest first (a Map keeps insertion order). */
  private readonly suspects = new Map<string, Suspicion>();
  /** "attempt failed" is written per attempt: an outage would repeat it thousands of times. */
  private readonly attemptLog: Logger;

  constructor(private readonly options: DispatcherOptions) {
    for (const s of options.services) this.services.set(s.name, s);
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.attemptLog = limitRepeats(options.log, { now: this.now });
    this.breakerOptions = { ...DEFAULT_BREAKER, ...options.breaker };
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? createHttpClient();
  }

  async send(to: readonly string[], batch: WireBatch | TextBatch, options: SendOptions = {}): Promise<void> {
    if (to.length === 0) return;
    const deadline = options.timeLeftMs === undefined ? null : this.now() + Math.max(0, options.timeLeftMs);
    // One body for every target and attempt: the batch is the same copy everywhere.
    const body = "texts" in batch ? encodeTextBatch(batch.id, batch.via, batch.texts) : Buffer.from(JSON.stringify(batch));
    if (to.length === 1) return this.sendTo(to[0] as string, body, batch.id, deadline);
    const results = await Promise.allSettled(to.map((service) => this.sendTo(service, body, batch.id, deadline)));
    const failed: DispatchError[] = [];
    results.forEach((r, k) => {
      if (r.status === "rejected") failed.push(asDispatchError(r.reason, to[k] as string));
    });
    const first = failed[0];
    if (first === undefined) return;
    if (failed.length === 1) throw first;
    const names = failed.map((f) => f.service).join(", ");
    throw new DispatchError(
      `fan-out of ${batch.id}: ${failed.length} of ${to.length} targets failed (${names}): ${failed.map((f) => f.message).join("; ")}`,
      first.service,
      mergeFailureClasses(failed.map((f) => f.failure)),
      first.attempts,
      failed,
    );
  }

  close(): void {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    if (this.ownsClient) this.client.close();
  }

  /** Sends to one service with its retry policy, until `deadline` (null: none); rejects with a DispatchError. */
  private async sendTo(service: string, body: Buffer, batchId: string, deadline: number | null): Promise<void> {
    const state = this.target(service);
    const attempts: AttemptRecord[] = [];
    if (state === null) {
      attempts.push({ instance: null, kind: "no-instance", error: `no service named "${service}" in the model` });
      throw new DispatchError(`${service}: unknown service`, service, "unavailable", attempts);
    }
    const { retry } = state.model;
    const suspectKey = `${service}#${batchId}`;
    const conclude = (kind: AttemptKind): DispatchError => {
      const poison = kind === "4xx" || poisonProven(this.suspects.get(suspectKey), this.instanceCount(state), state.lastSuccessAt);
      const failure: FailureClass = poison ? "poison" : kind === "deadline" ? "timeout" : "unavailable";
      if (poison) this.suspects.delete(suspectKey);
      return new DispatchError(describeAttempts(service, attempts, failure), service, failure, attempts);
    };
    let exclude: number | undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.closing.signal.aborted) throw this.closedError(service, attempts);
      const left = deadline === null ? Number.POSITIVE_INFINITY : deadline - this.now();
      if (left <= 0) {
        attempts.push({ instance: null, kind: "deadline", error: "no time left before the deadline" });
        throw conclude("deadline");
      }
      if (attempt === 0) state.budget.deposit();
      const failure = await this.attempt(state, body, batchId, exclude, Math.min(state.model.timeoutMs, left));
      if (failure === null) {
        state.lastSuccessAt = this.now();
        this.suspects.delete(suspectKey);
        return;
      }
      attempts.push(failure);
      if (failure.kind === "poison" || failure.kind === "timeout") this.suspect(suspectKey, failure.instance ?? -1);
      // `to` and `toInstance`, as the metrics' labels: in a service instance the log's own
      // `instance` field names that instance, and must not be overwritten by the target's.
      this.attemptLog.warn("attempt failed", {
        to: service,
        toInstance: failure.instance,
        batch: batchId,
        attempt: attempt + 1,
        kind: failure.kind,
        error: failure.error,
      });
      if (this.closing.signal.aborted) throw this.closedError(service, attempts);
      if (failure.kind === "4xx") throw conclude("4xx");
      if (poisonProven(this.suspects.get(suspectKey), this.instanceCount(state), state.lastSuccessAt)) throw conclude(failure.kind);
      if (!isRetryable(failure.kind, retry.on) || attempt >= retry.maxRetries) throw conclude(failure.kind);
      if (!state.budget.tryWithdraw()) {
        this.options.metrics?.budgetRefusal(service);
        attempts.push({ instance: null, kind: "budget", error: "the retry budget refused a retry" });
        throw conclude("budget");
      }
      this.options.metrics?.retry(service);
      const leftNow = deadline === null ? Number.POSITIVE_INFINITY : deadline - this.now();
      const waited = await sleep(Math.min(retryDelay(retry, attempt + 1, this.random), Math.max(0, leftNow)), this.closing.signal);
      if (!waited) throw this.closedError(service, attempts);
      if (failure.instance !== null) exclude = failure.instance;
    }
  }

  /** Instances of a service as the poison test counts them: the live ones, at least the model's. */
  private instanceCount(state: TargetState): number {
    return Math.max(state.model.instances.length, this.options.discovery.instances(state.model.name).length);
  }

  /** Remembers a poison-test failure of a batch at an instance. */
  private suspect(key: string, instance: number): void {
    const now = this.now();
    const known = this.suspects.get(key);
    const entry: Suspicion = known !== undefined && now - known.lastAt <= SUSPECT_TTL_MS ? known : { instances: [], firstAt: now, lastAt: now };
    entry.instances.push(instance);
    entry.lastAt = now;
    // Most recently failed last: the oldest go first when the memory is full.
    this.suspects.delete(key);
    this.suspects.set(key, entry);
    for (const oldest of this.suspects.keys()) {
      if (this.suspects.size <= SUSPECT_MEMORY) break;
      this.suspects.delete(oldest);
    }
  }

  /** One attempt, bounded by `limitMs`: null on success, else what went wrong. */
  private async attempt(state: TargetState, body: Buffer, batchId: string, exclude: number | undefined, limitMs: number): Promise<AttemptRecord | null> {
    const service = state.model.name;
    let endpoint = this.pick(state, exclude);
    let limit = limitMs;
    if (endpoint === null) {
      // The cached view may only be behind (a cold start: this process polled the registry
      // before the instances registered, and polls again a heartbeat later): like a connect,
      // the attempt waits for an instance up to its limit before it fails.
      const waitStarted = this.now();
      if (await this.waitForInstance(service, limit)) endpoint = this.pick(state, exclude);
      if (endpoint === null) return { instance: null, kind: "no-instance", error: `no live instance of ${service}` };
      limit -= this.now() - waitStarted;
      if (limit <= 0)
        return { instance: endpoint.instance, kind: "timeout", error: `an instance of ${service} came only at the end of the attempt's ${limitMs} ms` };
    }
    const i = endpoint.instance;
    const breaker = this.breaker(endpoint);
    breaker.onStart();
    state.balancer?.onStart(i);
    state.inFlight.set(i, (state.inFlight.get(i) ?? 0) + 1);
    const started = this.now();
    let outcome: Outcome;
    try {
      outcome = await postBatch(this.client, endpoint.url, body, batchId, Math.max(1, Math.floor(limit)), this.closing.signal);
    } finally {
      const n = (state.inFlight.get(i) ?? 1) - 1;
      if (n > 0) state.inFlight.set(i, n);
      else state.inFlight.delete(i);
      state.balancer?.onFinish(i);
    }
    const now = this.now();
    this.options.metrics?.attempt(service, i, outcome.ok ? "ok" : outcome.kind, Math.max(0, now - started) / 1000);
    if (outcome.ok) {
      breaker.onAnswer();
      return null;
    }
    if (outcome.kind === "connect") breaker.onConnectFailure(now);
    else if (outcome.kind === "timeout") breaker.onTimeout(now);
    else breaker.onAnswer();
    return { instance: i, kind: outcome.kind, error: outcome.error };
  }

  /** Waits until discovery lists an instance of `service`, up to `timeoutMs` or the dispatcher's close; whether one came. */
  private async waitForInstance(service: string, timeoutMs: number): Promise<boolean> {
    const signal = this.closing.signal;
    if (signal.aborted) return false;
    let onAbort = (): void => {};
    const closed = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const found = this.options.discovery.waitFor([service], timeoutMs).then(
        () => true,
        () => false,
      );
      return await Promise.race([found, closed.then(() => false)]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** The instance for the next attempt, or null when the service has no live instance. */
  private pick(state: TargetState, exclude: number | undefined): InstanceEndpoint | null {
    const live = liveInstances(this.options.discovery.instances(state.model.name));
    if (live.length === 0) return null;
    const balancer = this.balancerFor(state, live);
    const now = this.now();
    const allowed = live.filter((e) => this.breaker(e).allows(now));
    const pool = allowed.length > 0 ? allowed : live;
    const chosen = balancer.pick(
      pool.map((e) => e.instance),
      exclude,
    );
    return pool.find((e) => e.instance === chosen) ?? null;
  }

  private balancerFor(state: TargetState, live: readonly InstanceEndpoint[]): Balancer {
    const signature = live.map((e) => `${e.instance}:${e.weight}:${e.capacityPerSec}`).join(",");
    if (state.balancer !== null && state.signature === signature) return state.balancer;
    const size = Math.max(state.model.instances.length, ...live.map((e) => e.instance + 1));
    const instances = Array.from({ length: size }, (_, k) => {
      const m = state.model.instances[k];
      return { weight: m?.weight ?? 1, capacityPerSec: m?.capacityPerSec ?? null };
    });
    for (const e of live) {
      const slot = instances[e.instance];
      if (slot === undefined) continue;
      if (Number.isFinite(e.weight) && e.weight > 0) slot.weight = e.weight;
      if (e.capacityPerSec !== null && Number.isFinite(e.capacityPerSec) && e.capacityPerSec > 0) slot.capacityPerSec = e.capacityPerSec;
    }
    const balancer = createBalancer(state.model.loadBalancing, instances, this.random);
    // Attempts still open on the old balancer count on the new one.
    for (const [i, n] of state.inFlight) if (i < size) for (let k = 0; k < n; k++) balancer.onStart(i);
    state.balancer = balancer;
    state.signature = signature;
    return balancer;
  }

  private breaker(endpoint: InstanceEndpoint): CircuitBreaker {
    const key = `${endpoint.service}/${endpoint.instance}`;
    const entry = this.breakers.get(key);
    // An instance that came back at another address is a new process: its old record does not apply.
    if (entry !== undefined && entry.url === endpoint.url) return entry.breaker;
    const breaker = new CircuitBreaker(this.breakerOptions);
    this.breakers.set(key, { url: endpoint.url, breaker });
    return breaker;
  }

  private target(service: string): TargetState | null {
    const existing = this.targets.get(service);
    if (existing !== undefined) return existing;
    const model = this.services.get(service);
    if (model === undefined) return null;
    const state: TargetState = {
      model,
      budget: new RetryBudget(model.retry.budget, this.now),
      balancer: null,
      signature: "",
      inFlight: new Map(),
      lastSuccessAt: Number.NEGATIVE_INFINITY,
    };
    this.targets.set(service, state);
    return state;
  }

  private closedError(service: string, attempts: AttemptRecord[]): DispatchError {
    return new DispatchError(`${service}: the dispatcher was closed before the batch was delivered`, service, "unavailable", attempts);
  }
}

/** Live instances in instance order, one per index (discovery should never repeat one). */
function liveInstances(list: readonly InstanceEndpoint[]): InstanceEndpoint[] {
  const seen = new Set<number>();
  const out: InstanceEndpoint[] = [];
  for (const e of [...list].sort((a, b) => a.instance - b.instance)) {
    if (!Number.isInteger(e.instance) || e.instance < 0 || seen.has(e.instance)) continue;
    seen.add(e.instance);
    out.push(e);
  }
  return out;
}

function describeAttempts(service: string, attempts: readonly AttemptRecord[], failure: FailureClass): string {
  const tried = attempts.filter((a) => a.kind !== "budget" && a.kind !== "deadline").length;
  const last = [...attempts].reverse().find((a) => a.kind !== "budget" && a.kind !== "deadline");
  const refused = attempts.some((a) => a.kind === "budget") ? ", then the retry budget refused a retry" : "";
  const expired = attempts.some((a) => a.kind === "deadline") ? ", then the deadline passed" : "";
  const where = last?.instance === null || last === undefined ? "" : ` on instance ${last.instance}`;
  return `${service}: ${failure} after ${tried} attempt${tried === 1 ? "" : "s"}${refused}${expired}; last: ${last?.kind ?? "none"}${where}: ${last?.error ?? ""}`;
}

function asDispatchError(reason: unknown, service: string): DispatchError {
  if (reason instanceof DispatchError) return reason;
  const message = reason instanceof Error ? reason.message : String(reason);
  return new DispatchError(`${service}: ${message}`, service, "unavailable", []);
}

/** Waits `ms`; false when `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `POST {base}/batch`, the whole attempt (connect, send, answer) bounded by `timeoutMs`, which
 * the stage is told as its time left. Never rejects.
 */
async function postBatch(client: HttpClient, base: string, body: Buffer, batchId: string, timeoutMs: number, closing: AbortSignal): Promise<Outcome> {
  const url = `${base.replace(/\/+$/, "")}/batch`;
  let answer: ClientResponse;
  try {
    answer = await client.request("POST", url, {
      body,
      headers: { "content-type": "application/json", "x-mbc-batch": encodeURIComponent(batchId), [TIME_LEFT_HEADER]: String(timeoutMs) },
      timeoutMs,
      signal: closing,
      maxResponseBytes: MAX_ANSWER_BYTES,
    });
  } catch (err) {
    if (err instanceof HttpClientError) {
      if (err.kind === "timeout") return { ok: false, kind: "timeout", error: `no answer within ${timeoutMs} ms` };
      if (err.kind === "aborted") return { ok: false, kind: "connect", error: "the dispatcher was closed" };
      return { ok: false, kind: "connect", error: err.message };
    }
    return { ok: false, kind: "connect", error: err instanceof Error ? err.message : String(err) };
  }
  const status = answer.status;
  if (status >= 200 && status < 300) return { ok: true };
  const detail = answerError(answer.body.toString("utf8"));
  const error = `HTTP ${status}${detail === "" ? "" : `: ${detail}`}`;
  const marked = parseFailureClass(answer.headers[FAILURE_HEADER]);
  if (marked !== null) return { ok: false, kind: marked, error };
  if (status === 503) return { ok: false, kind: "unavailable", error };
  return { ok: false, kind: status >= 500 ? "5xx" : "4xx", error };
}

/** The `error` of a JSON answer, else the answer's text, shortened. */
function answerError(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && typeof (parsed as { error?: unknown }).error === "string") return (parsed as { error: string }).error;
  } catch {
    // Not JSON: the text itself says what happened.
  }
  const trimmed = text.trim();
  return trimmed.length > 300 ? `${trimmed.slice(0, 300)}…` : trimmed;
}
