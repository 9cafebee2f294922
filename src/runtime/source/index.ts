/**
 * The source role: `--role source --name NAME`. It takes ownership of the source's state folder
 * (core/ownership.ts: a second process on it waits, then exits 2 naming this one), opens the
 * source's durable pipeline (pipeline.ts) and feeds it through the source's kind (kinds/: http,
 * file, generator). It lets go of the folder once the log is closed.
 */
import type { ServiceModel } from "../../model/types.js";
import { RuntimeConfigError } from "../config/index.js";
import type { Dispatcher } from "../core/contracts.js";
import type { Route } from "../core/http.js";
import { OwnershipError, sourceOwnerLock, takeOwnership } from "../core/ownership.js";
import type { Role, RoleContext, RoleFactory } from "../core/role.js";
import { createDispatcher } from "../dispatch/index.js";
import { openSourceKind, sourceKinds } from "./kinds/index.js";
import { DEFAULT_BACKOFF, type QueueLimits, SourcePipeline, sourceLogDir } from "./pipeline.js";
import { Redriver } from "./redrive.js";

export interface SourceRoleOptions {
  /** Replaces the HTTP dispatcher (tests). */
  dispatcher?: Dispatcher;
  /** What to do when the durable log fails, or another process took the state folder over; default: crash (exit 1) so that a restart recovers. */
  onFatal?: (error: Error) => void;
  /** File source poll interval. */
  pollMs?: number;
  maxInFlight?: number;
  queue?: QueueLimits;
  /** How often the replay folder is looked at besides its change events (default 1 s). */
  replayPollMs?: number;
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

  const onFatal = options.onFatal ?? crash;
  const stateDir = sourceLogDir(ctx.env.stateDir, source.name);
  // Before the log is read: two writers would repair and append to it under each other.
  const owner = await takeOwnership({
    path: sourceOwnerLock(ctx.env.stateDir, source.name),
    what: `the state folder of source ${source.name} (${stateDir})`,
    hint: "stop that process first, or give this one another MBC_STATE_DIR",
    log,
    onLost: () => onFatal(new Error(`another process took over the state folder ${stateDir}: this one stops writing to it`)),
  }).catch((err: unknown) => {
    // Exit 2, as for any other problem of the process's setup.
    throw err instanceof OwnershipError ? new RuntimeConfigError(err.message) : err;
  });

  const dispatcher = options.dispatcher ?? createDispatcher({ services: model.services, discovery: ctx.discovery, log, metrics, client: ctx.client });
  const discovery = options.dispatcher === undefined ? ctx.discovery : null;
  let pipeline: SourcePipeline;
  try {
    pipeline = await SourcePipeline.open({
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
      onFatal,
      backoff: model.services.find((s) => s.name === source.to)?.retry,
      deadLetterAfterMs: deadLetterAfter(model.services, source.to),
      clock: ctx.clock,
    });
  } catch (err) {
    dispatcher.close();
    await owner.release();
    throw err;
  }
  const unsubscribe = discovery?.onChange(() => pipeline.poke()) ?? (() => {});
  const intake = openSourceKind(source.type, { source, pipeline, env: ctx.env, log, metrics, pollMs: options.pollMs });
  const routes: Route[] = intake.routes ?? [];
  // Dead letters a user asked to replay (`dead-letter replay`): this source sends its own again.
  const redriver = new Redriver({
    stateDir: ctx.env.stateDir,
    source: source.name,
    to: source.to,
    dispatcher,
    log,
    backoff: model.services.find((s) => s.name === source.to)?.retry ?? DEFAULT_BACKOFF,
    clock: ctx.clock,
    pollMs: options.replayPollMs,
    onOutcome: (outcome, records) => {
      metrics.replayed(outcome);
      if (outcome === "dead-letter") metrics.deadLetter();
      // Passed on and answered 2xx, as any batch's records.
      else metrics.recordsOut(records);
    },
  });

  return {
    routes,
    start() {
      intake.start?.();
      pipeline.poke();
      redriver.start();
    },
    ready() {
      const failure = pipeline.failure;
      return failure === null ? { ready: true } : { ready: false, reasons: [`the durable log failed: ${failure.message}`] };
    },
    async drain(deadlineMs, mode = "drain") {
      try {
        // What is being replayed stays in the replay folder until stored: the next start sends it.
        const redriveStopped = redriver.stop();
        if (mode === "halt") {
          // Nothing more goes to services that are going away: sends in flight are cut, their
          // batches stay uncommitted and the next start re-sends them.
          // Intake first (its flags are set at once), so a file or generator does not try an
          // append the halted pipeline would refuse.
          const intakeStopped = intake.stop?.();
          const halted = pipeline.halt(deadlineMs);
          dispatcher.close();
          await intakeStopped;
          await halted;
        } else {
          await intake.stop?.();
          await pipeline.drain(deadlineMs);
        }
        await redriveStopped;
        const { committed, deadLetters } = pipeline.stats;
        log.info(mode === "halt" ? "source halted" : "source drained", { committed, deadLetters, uncommitted: pipeline.depth, nextSeq: pipeline.nextSeq });
      } finally {
        unsubscribe();
        dispatcher.close();
        // The log is closed: the next owner may have the folder.
        await owner.release();
      }
    },
  };
}
