/**
 * The source role: `--role source --name NAME`. It opens the source's durable pipeline
 * (pipeline.ts) and feeds it through the source's kind (kinds/: http, file, generator).
 */
import type { ServiceModel } from "../../model/types.js";
import type { Dispatcher } from "../core/contracts.js";
import type { Route } from "../core/http.js";
import type { Role, RoleContext, RoleFactory } from "../core/role.js";
import { createDispatcher } from "../dispatch/index.js";
import { sourceKinds } from "./kinds/index.js";
import { type QueueLimits, SourcePipeline } from "./pipeline.js";

export interface SourceRoleOptions {
  /** Replaces the HTTP dispatcher (tests). */
  dispatcher?: Dispatcher;
  /** What to do when the durable log fails; default: crash (exit 1) so that a restart recovers. */
  onFatal?: (error: Error) => void;
  /** File source poll interval. */
  pollMs?: number;
  maxInFlight?: number;
  queue?: QueueLimits;
}

/**
 * The default reaction to a failed log: an uncaught exception, which the process scaffolding
 * logs before exiting 1. The records acknowledged so far are in the log; the supervisor (or
 * Compose, or systemd) restarts the process and recovery takes it from there.
 */
function crash(error: Error): void {
  setImmediate(() => {
    throw new Error(`the durable log failed: ${error.message}`, { cause: error });
  });
}

/**
 * The smallest `retry.deadLetterAfter` on the paths from `first` (the services a batch from this
 * source may pass); null when none sets one.
 */
export function deadLetterAfter(services: readonly ServiceModel[], first: string): number | null {
  const byName = new Map(services.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const queue = [first];
  let smallest: number | null = null;
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const service = byName.get(name);
    if (service === undefined) continue;
    const after = service.retry.deadLetterAfterMs;
    if (after !== null) smallest = smallest === null ? after : Math.min(smallest, after);
    queue.push(...service.to);
  }
  return smallest;
}

/** The source role for the process scaffolding: `--role source --name NAME`. */
export function sourceRoleFactory(options: SourceRoleOptions = {}): RoleFactory {
  return (ctx) => createSourceRole(ctx, options);
}

export async function createSourceRole(ctx: RoleContext, options: SourceRoleOptions = {}): Promise<Role> {
  const { spec, model, log, metrics } = ctx;
  if (spec.kind !== "source") throw new Error(`the source role cannot run as ${spec.kind}`);
  const source = spec.source;
  const kind = sourceKinds[source.type];
  kind.check(source);

  const dispatcher = options.dispatcher ?? createDispatcher({ services: model.services, discovery: ctx.discovery, log, metrics, client: ctx.client });
  const discovery = options.dispatcher === undefined ? ctx.discovery : null;
  const pipeline = await SourcePipeline.open({
    source,
    stateDir: ctx.env.stateDir,
    fsync: model.checkpoint.fsync,
    dispatcher,
    log,
    metrics,
    discardUnbatched: kind.rereads,
    maxInFlight: options.maxInFlight,
    queue: options.queue,
    canSend: discovery === null ? undefined : () => discovery.instances(source.to).length > 0,
    onFatal: options.onFatal ?? crash,
    backoff: model.services.find((s) => s.name === source.to)?.retry,
    deadLetterAfterMs: deadLetterAfter(model.services, source.to),
    clock: ctx.clock,
  });
  const unsubscribe = discovery?.onChange(() => pipeline.poke()) ?? (() => {});
  const intake = kind.open({ source, pipeline, env: ctx.env, log, metrics, pollMs: options.pollMs });
  const routes: Route[] = intake.routes ?? [];

  return {
    routes,
    start() {
      intake.start?.();
      pipeline.poke();
    },
    ready() {
      const failure = pipeline.failure;
      return failure === null ? { ready: true } : { ready: false, reasons: [`the durable log failed: ${failure.message}`] };
    },
    async drain(deadlineMs) {
      try {
        await intake.stop?.();
        await pipeline.drain(deadlineMs);
        const { committed, deadLetters } = pipeline.stats;
        log.info("source drained", { committed, deadLetters, uncommitted: pipeline.depth, nextSeq: pipeline.nextSeq });
      } finally {
        unsubscribe();
        dispatcher.close();
      }
    },
  };
}
