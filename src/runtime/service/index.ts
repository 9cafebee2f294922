/**
 * The service-instance role: `POST /batch` runs the service's handler on the batch, sends the
 * result to the service's `to` stages, and answers 200 only once they all answered 200 — so,
 * down the pipeline, a 200 means every sink has stored the batch (a sink answers once its
 * handler resolved). A failure is answered with its delivery class in `mbc-failure`
 * (core/failure.ts), and the caller decides what to do (an instance never dead-letters):
 * - the handler threw an error with a system code (ENOSPC, ECONNREFUSED, …) or marked
 *   `retryable: true`: 503, `unavailable`;
 * - the handler threw anything else, or returned something other than records: 500, `poison`;
 * - a downstream stage failed: its class (503 `unavailable`, 500 `poison`, 504 `timeout`);
 * - the batch came with no time left (`mbc-time-left: 0`), or the time ran out before the
 *   batch could be passed on: 504, `timeout`.
 * The time left the caller gave (`mbc-time-left`) bounds what this instance passes on: the
 * downstream sends get what remains of it.
 *
 * The batch passed on keeps its id and gets this service appended to `via`. A handler that
 * returns no records sends nothing downstream (there is nothing to store).
 *
 * Admission: at most `concurrency` batches run at once and `queue` more wait (FIFO); beyond
 * that, and before `start()` finished or once draining began, the answer is 503 with
 * Retry-After and `mbc-failure: unavailable`, so the caller's retry goes to another instance.
 *
 * Drain: new batches get 503, waiting ones too (they have not started: the caller sends them
 * elsewhere), running ones finish up to the deadline; then the handler is closed (a sink's
 * files). The process scaffolding deregisters the instance and stops the server.
 */

import type { Discovery, Dispatcher, Logger, RoleHandle, ServiceModel, SystemFile } from "../core/contracts.js";
import { classifyError, FAILURE_HEADER, type FailureClass, parseTimeLeft, TIME_LEFT_HEADER } from "../core/failure.js";
import { DEFAULT_BODY_LIMIT, HttpError, parseJsonBody, type ReadyState, type Reply, type Route, type RouteRequest } from "../core/http.js";
import { splitWireBatch } from "../core/json-text.js";
import { limitRepeats } from "../core/log.js";
import type { RuntimeMetrics } from "../core/metrics.js";
import type { RoleFactory } from "../core/role.js";
import { createDispatcher, isDispatchFailure } from "../dispatch/index.js";
import { loadHandler, type StageHandler } from "./handlers.js";

export type ServiceMetrics = Pick<RuntimeMetrics, "recordsIn" | "recordsOut" | "batch" | "queueDepth">;

/** Batches one instance runs at once unless told otherwise. */
export const DEFAULT_CONCURRENCY = 8;
/** Batches that may wait for a slot before the instance answers 503. */
export const DEFAULT_QUEUE = 16;

export interface ServiceRoleOptions {
  system: SystemFile;
  /** Where system.json is (handler modules load from it only) and what config paths resolve against. */
  env: { systemDir: string; dataDir: string };
  service: ServiceModel;
  instance: number;
  dispatcher: Dispatcher;
  log: Logger;
  metrics?: ServiceMetrics;
  concurrency?: number;
  queue?: number;
  /** Largest batch body accepted (413 beyond); default: 4 × the largest source batch, at least http.ts's default. */
  bodyLimit?: number;
  /** A handler to use instead of loading the service's own (tests). */
  handler?: StageHandler;
}

export interface ServiceRole extends RoleHandle {
  readonly routes: Route[];
  /** Loads the handler (a builtin opens its files); batches are refused with 503 until it resolves. */
  start(): Promise<void>;
  /** Started and not draining. */
  isReady(): boolean;
  /** isReady with the reason, as process.ts's /readyz wants it. */
  ready(): ReadyState;
  isDraining(): boolean;
  /** Batches running or waiting. */
  inFlight(): number;
  /**
   * The whole of `POST /batch` on a parsed body (the route reads and parses it); `timeLeftMs`
   * is the time the caller gave (null: none), counted from `receivedAt` (performance.now()).
   */
  handleBatch(body: unknown, timeLeftMs?: number | null, receivedAt?: number): Promise<Reply>;
}

interface Waiter {
  admit: () => void;
  refuse: () => void;
}

/** A checked batch body: the reason it is not one, or the batch. */
export function parseWireBatch(body: unknown): { id: string; via: string[]; records: unknown[] } | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body must be a JSON object {id, via, records}";
  const { id, via, records } = body as Record<string, unknown>;
  if (typeof id !== "string" || id === "") return "`id` must be a non-empty string";
  if (id.length > 1024) return "`id` is longer than 1024 characters";
  if (!Array.isArray(via) || !via.every((v) => typeof v === "string")) return "`via` must be an array of service names";
  if (!Array.isArray(records)) return "`records` must be an array";
  return { id, via: via as string[], records };
}

export function createServiceRole(options: ServiceRoleOptions): ServiceRole {
  const { service, instance, dispatcher, metrics } = options;
  const log = options.log;
  // Written per batch: an outage downstream would repeat them for every batch it fails.
  const perBatch = limitRepeats(log);
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const queueLimit = Math.max(0, options.queue ?? DEFAULT_QUEUE);
  const largestBatch = Math.max(0, ...options.system.model.sources.map((s) => s.batch.maxBytes));
  const bodyLimit = options.bodyLimit ?? Math.max(DEFAULT_BODY_LIMIT, 4 * largestBatch);

  let handler: StageHandler | null = options.handler ?? null;
  let started = false;
  let draining = false;
  let running = 0;
  const waiting: Waiter[] = [];
  let idle: (() => void) | null = null;

  const depth = () => metrics?.queueDepth(running + waiting.length);

  const unavailable = (why: string): HttpError => new HttpError(503, why, { "retry-after": "1", [FAILURE_HEADER]: "unavailable" });

  /** The answer to a batch that failed with `failure`. */
  const failed = (failure: FailureClass, message: string): Reply => {
    const status = failure === "poison" ? 500 : failure === "timeout" ? 504 : 503;
    const headers: Record<string, string> = { [FAILURE_HEADER]: failure };
    if (failure === "unavailable") headers["retry-after"] = "1";
    return { status, json: { error: message, failure }, headers };
  };

  /** Takes a slot, waiting in line if needed; rejects with 503 when the line is full or the instance drains. */
  const acquire = (): Promise<void> => {
    if (!started) return Promise.reject(unavailable("starting"));
    if (draining) return Promise.reject(unavailable("draining: shutting down"));
    if (running < concurrency) {
      running++;
      depth();
      return Promise.resolve();
    }
    if (waiting.length >= queueLimit) return Promise.reject(unavailable(`busy: ${running} batches running and ${waiting.length} waiting`));
    return new Promise((resolve, reject) => {
      waiting.push({
        admit: () => {
          running++;
          resolve();
        },
        refuse: () => reject(unavailable("draining: shutting down")),
      });
      depth();
    });
  };

  const release = (): void => {
    running--;
    const next = waiting.shift();
    if (next !== undefined) next.admit();
    depth();
    if (running === 0 && waiting.length === 0 && idle !== null) idle();
  };

  /**
   * Runs a checked batch of `count` records through `run` (the stage, then `to`), within the
   * admission limits and the time the caller gave (`timeLeftMs` from `receivedAt`, null: none).
   */
  const runBatch = async (
    batch: { id: string; via: string[] },
    count: number,
    timeLeftMs: number | null,
    receivedAt: number,
    run: (stage: StageHandler) => Promise<unknown[]>,
  ): Promise<Reply> => {
    const left = () => (timeLeftMs === null ? null : timeLeftMs - (performance.now() - receivedAt));
    const outOfTime = (what: string): Reply => {
      metrics?.batch("error", 0);
      perBatch.warn("batch out of time", { batch: batch.id, timeLeftMs, what });
      return failed("timeout", `no time left for batch ${batch.id} ${what} (the caller gave ${timeLeftMs} ms)`);
    };
    if ((left() ?? 1) <= 0) return outOfTime("on arrival");
    try {
      await acquire();
    } catch (err) {
      metrics?.batch("rejected", 0);
      throw err;
    }
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    try {
      metrics?.recordsIn(count);
      const stage = handler;
      if (stage === null) throw Object.assign(new Error("the handler is not loaded"), { retryable: true });
      const out = await run(stage);
      if (service.to.length > 0 && out.length > 0) {
        const remaining = left();
        if (remaining !== null && remaining <= 0) return outOfTime("after the handler");
        await dispatcher.send(
          service.to,
          { id: batch.id, via: [...batch.via, service.name], records: out },
          remaining === null ? {} : { timeLeftMs: remaining },
        );
      }
      metrics?.recordsOut(service.to.length > 0 ? out.length : count);
      metrics?.batch("ok", seconds());
      return { status: 200, json: { ok: true } };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const failure: FailureClass = isDispatchFailure(err) ? err.failure : classifyError(err);
      perBatch.error("batch failed", { batch: batch.id, via: batch.via, records: count, failure, error: err });
      metrics?.batch("error", seconds());
      return failed(failure, message);
    } finally {
      release();
    }
  };

  const handleBatch = async (body: unknown, timeLeftMs: number | null = null, receivedAt = performance.now()): Promise<Reply> => {
    const parsed = parseWireBatch(body);
    if (typeof parsed === "string") throw new HttpError(400, parsed);
    return runBatch(parsed, parsed.records.length, timeLeftMs, receivedAt, (stage) => stage.run(parsed));
  };

  /**
   * A sink that stores records as they are (StageHandler.runTexts) gets them as the texts cut
   * from the body: checked as JSON, not parsed into values. A body the cut does not take (not
   * JSON, or not a batch) is parsed as usual, for the reason it is refused.
   */
  const handleBody = (text: string, runTexts: NonNullable<StageHandler["runTexts"]>, timeLeftMs: number | null, receivedAt: number): Promise<Reply> => {
    const cut = splitWireBatch(text);
    if (cut === null) return handleBatch(parseJsonBody(text), timeLeftMs, receivedAt);
    const checked = parseWireBatch({ id: cut.id, via: cut.via, records: cut.texts });
    if (typeof checked === "string") throw new HttpError(400, checked);
    const batch = { id: checked.id, via: checked.via, texts: cut.texts };
    return runBatch(batch, batch.texts.length, timeLeftMs, receivedAt, async () => {
      await runTexts(batch);
      return [];
    });
  };

  const routes: Route[] = [
    {
      method: "POST",
      path: "/batch",
      bodyLimit,
      async handle(req: RouteRequest) {
        const receivedAt = performance.now();
        const timeLeftMs = parseTimeLeft(req.headers[TIME_LEFT_HEADER]);
        // Refuse before reading the body when the answer is 503 anyway: the caller moves on sooner.
        if (!started || draining) {
          metrics?.batch("rejected", 0);
          throw unavailable(draining ? "draining: shutting down" : "starting");
        }
        const runTexts = handler?.runTexts;
        if (runTexts !== undefined) return handleBody((await req.body()).toString("utf8"), runTexts, timeLeftMs, receivedAt);
        return handleBatch(await req.json(), timeLeftMs, receivedAt);
      },
    },
  ];

  return {
    routes,
    handleBatch,
    isReady: () => started && !draining,
    ready: () => (started && !draining ? { ready: true } : { ready: false, reasons: [draining ? "draining" : "loading the handler"] }),
    isDraining: () => draining,
    inFlight: () => running + waiting.length,

    async start() {
      if (started) return;
      if (handler === null) {
        handler = await loadHandler({
          service,
          instance,
          systemDir: options.env.systemDir,
          dataDir: options.env.dataDir,
          handlers: options.system.handlers,
          fsync: options.system.model.checkpoint.fsync,
          log,
        });
      }
      started = true;
      log.info("handler ready", { handler: handler.description, concurrency, queue: queueLimit });
    },

    async drain(deadlineMs: number) {
      if (!draining) {
        draining = true;
        // Counted as rejected by handleBatch, where each refusal lands.
        for (const w of waiting.splice(0)) w.refuse();
        depth();
      }
      if (running > 0) {
        log.info("draining", { running });
        const finished = await waitUntil(
          new Promise<void>((resolve) => {
            idle = resolve;
            if (running === 0) resolve();
          }),
          deadlineMs,
        );
        idle = null;
        if (!finished) log.warn("drain deadline passed with batches still running; their callers will retry", { running });
      }
      const stage = handler;
      if (stage !== null) {
        const closed = await waitUntil(
          stage.close().catch((err: unknown) => log.error("closing the handler failed", { error: err })),
          deadlineMs,
        );
        if (!closed) log.warn("drain deadline passed while closing the handler");
      }
    },
  };
}

/** Waits for `work` until the Date.now() deadline; true if it settled in time. */
async function waitUntil(work: Promise<unknown>, deadlineMs: number): Promise<boolean> {
  const left = deadlineMs - Date.now();
  if (left <= 0) {
    // Past the deadline already: take what is done, nothing more.
    return Promise.race([work.then(() => true), Promise.resolve(false)]);
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), left);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The service role as process.ts runs it (`runMain`'s `roles.service`): the dispatcher uses the
 * process's discovery, keep-alive client, metrics and log, and is closed once the drain is
 * over. A sink never touches discovery, so it does not poll the registry for nothing.
 */
export const serviceRole: RoleFactory = (ctx) => {
  const spec = ctx.spec;
  if (spec.kind !== "service") throw new Error(`the service role cannot run as a ${spec.kind}`);
  const discovery: Discovery = {
    instances: (service) => ctx.discovery.instances(service),
    waitFor: (services, timeoutMs) => ctx.discovery.waitFor(services, timeoutMs),
    close() {
      // The process owns discovery and closes it on exit.
    },
  };
  const dispatcher = createDispatcher({ services: ctx.model.services, discovery, log: ctx.log, metrics: ctx.metrics, client: ctx.client });
  const role = createServiceRole({
    system: ctx.system,
    env: ctx.env,
    service: spec.service,
    instance: spec.instance,
    dispatcher,
    log: ctx.log,
    metrics: ctx.metrics,
  });
  return {
    routes: role.routes,
    start: () => role.start(),
    ready: () => role.ready(),
    async drain(deadlineMs, mode) {
      // Halting (the supervisor died): the stages below are going away too, and the caller
      // stops waiting for answers. Cut the sends downstream rather than retry into them.
      if (mode === "halt") dispatcher.close();
      try {
        await role.drain(deadlineMs);
      } finally {
        dispatcher.close();
      }
    },
  };
};
