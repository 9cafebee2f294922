/**
 * The process scaffolding: what every runtime process (registry, source, service instance)
 * shares, so a role only supplies its own routes and work.
 *
 * A role plugs in as a RoleFactory: `(ctx: RoleContext) => Role`. The context gives it the
 * resolved environment, the model, its identity (`ctx.spec`), a Logger, the process's
 * RuntimeMetrics, a keep-alive HTTP client and (created on first use) a Discovery client. The
 * Role it returns has:
 *
 * - `routes`: its HTTP routes (http.ts's Route). `/healthz`, `/readyz` and `/metrics` are added
 *   here and cannot be shadowed. While the process drains, a route answers 503 with
 *   `Retry-After` unless it sets `whileDraining`.
 * - `start()`: called before the server listens; start the work here (a source's reading, a
 *   service's handler loading). A throw fails the start: the process exits 1 and the supervisor
 *   restarts it.
 * - `ready()` (optional): extra readiness conditions, on top of the ones kept here.
 * - `drain(deadlineMs, mode)`: stop intake, finish in-flight work by `deadlineMs` (Date.now()
 *   clock), write the checkpoint. Called once: mode `drain` on SIGTERM/SIGINT, `halt` when the
 *   supervisor went away (its IPC channel closed), when the rest of the system is going away
 *   too and in-flight work would only fail: make durable what was acknowledged, send nothing.
 *
 * What the scaffolding does around a role:
 *
 * 1. Calls `start`, and only then listens on the role's port (registry.port; an http source's
 *    port; a service instance's `port + K`; else MBC_PORT, or an ephemeral port) at MBC_BIND:
 *    whoever reaches the process finds it able to serve, never "starting" (an instance
 *    restarted on the port it had is refused a connection meanwhile, which a caller retries
 *    elsewhere at once).
 * 2. Then, for a service instance, registers it through the system's registry backend
 *    (src/runtime/registry/: url `http://{advertiseHost}:{port}`, weight and capacity), which
 *    keeps it registered until the drain.
 * 3. `/readyz` answers 200 when started, not draining, registered (a service instance, as its
 *    registrar knows), every downstream service has a live instance (as discovery sees it) and
 *    the role's own `ready()` agrees; 503 with the reasons otherwise. `/readyz?scope=self`
 *    leaves out the downstream services: the process's own state only (what the supervisor
 *    waits for at start, and what a Kubernetes probe asks).
 * 4. On SIGTERM or SIGINT (or the supervisor's IPC channel closing): marks itself draining,
 *    deregisters, calls `drain(deadline, mode)` with the policy's drain budget (at most 30 s),
 *    closes the server and exits 0 — 1 when the drain failed or overran its deadline (what it
 *    did not commit is re-sent after a restart).
 * 5. An uncaught exception or unhandled rejection is logged and exits 1: the process's state
 *    is unknown, and the supervisor (or Compose, or systemd) restarts it. A problem of its
 *    setup (RuntimeConfigError: bad configuration, a state folder another process owns) exits 2,
 *    and so does an instance whose registrar gives up (another process holds it: `failed`).
 *
 * `startRole` does 1–4 without touching process-wide state (tests run it in-process);
 * `runRole` adds the signal and crash handlers (src/runtime/entry.ts picks the role).
 */
import { downstreamOf, drainBudgetMs, type ProcessRole } from "../../policy/index.js";
import { listenPort, RuntimeConfigError, type RuntimeSetup, urlHost } from "../config/index.js";
import { type Clock, systemClock } from "../core/clock.js";
import type { DiscoveryClient, Logger, RuntimeEnv, StartedMessage, StopMode, SystemFile } from "../core/contracts.js";
import { commonRoutes, createHttpClient, createRouter, type ReadyScope, type ReadyState, type RunningServer, startServer } from "../core/http.js";
import { createLogger, installCrashHandlers } from "../core/log.js";
import { createMetrics, type MetricsIdentity, type RuntimeMetrics } from "../core/metrics.js";
import type { Role, RoleContext, RoleFactory } from "../core/role.js";
import { type Registrar, type RegistryContext, registryBackend } from "../registry/index.js";

export type { Role, RoleContext, RoleFactory } from "../core/role.js";
export type { ProcessRole };

/** The log fields and metric labels of a process. */
export function identityOf(spec: ProcessRole): { fields: Record<string, unknown>; metrics: MetricsIdentity } {
  switch (spec.kind) {
    case "registry":
      return { fields: { role: "registry" }, metrics: { role: "registry" } };
    case "source":
      return { fields: { role: "source", name: spec.name }, metrics: { role: "source", source: spec.name } };
    case "service":
      return {
        fields: { role: "service", name: spec.name, instance: spec.instance },
        metrics: { role: "service", service: spec.name, instance: spec.instance },
      };
  }
}

// ---------------------------------------------------------------------------------------------
// One role, in-process

export interface StartRoleOptions {
  env: RuntimeEnv;
  system: SystemFile;
  spec: ProcessRole;
  factory: RoleFactory;
  log?: Logger;
  metrics?: RuntimeMetrics;
  clock?: Clock;
  /** Called when the server is about to listen: from then on the process may acknowledge work. */
  onListening?: () => void;
}

export interface RunningRole {
  readonly port: number;
  readonly url: string;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  /** What /readyz answers (`self`: /readyz?scope=self). */
  readiness(scope?: ReadyScope): ReadyState;
  /** Drains (or halts) and closes (once; later calls join the first). Resolves with the exit status. */
  shutdown(reason: string, mode?: StopMode): Promise<number>;
  /**
   * Settles when the process cannot go on as it is (its registrar gave up: another process holds
   * this instance); never otherwise. `runRole` then drains and exits 2.
   */
  readonly failed: Promise<Error>;
}

/** Grace after the drain deadline before giving up on a role's drain. */
const DRAIN_GRACE_MS = 1000;

export async function startRole(options: StartRoleOptions): Promise<RunningRole> {
  const { env, system, spec, factory } = options;
  const { model } = system;
  const identity = identityOf(spec);
  const log = options.log ?? createLogger(identity.fields);
  const metrics = options.metrics ?? createMetrics(identity.metrics);
  const clock = options.clock ?? systemClock;
  const client = createHttpClient();
  let discovery: DiscoveryClient | null = null;
  let draining = false;
  let started = false;
  let registrar: Registrar | null = null;
  let server: RunningServer | null = null;

  const backend = registryBackend(model);
  const registryContext: RegistryContext = { env, model, log, clock, client };
  const getDiscovery = () => {
    discovery ??= backend.discover(registryContext);
    return discovery;
  };
  const ctx: RoleContext = {
    env,
    system,
    model,
    spec,
    log,
    metrics,
    client,
    get discovery() {
      return getDiscovery();
    },
    isDraining: () => draining,
    clock,
  };

  const releaseClients = () => {
    discovery?.close();
    client.close();
  };

  let role: Role;
  try {
    role = await factory(ctx);
  } catch (err) {
    releaseClients();
    throw err;
  }

  const downstream = downstreamOf(spec);
  const readiness = (scope: ReadyScope = "all"): ReadyState => {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (!started) reasons.push("starting");
    if (registrar && !registrar.registered()) reasons.push("not registered with the registry");
    if (scope === "all" && downstream.length > 0) {
      const view = getDiscovery();
      for (const s of downstream) if (view.instances(s).length === 0) reasons.push(`no live instance of ${s}`);
    }
    if (role.ready) {
      const own = role.ready();
      if (!own.ready) reasons.push(...(own.reasons ?? ["not ready"]));
    }
    return reasons.length === 0 ? { ready: true } : { ready: false, reasons };
  };

  const routes = [...commonRoutes({ ready: readiness, metrics }), ...(role.routes ?? [])];
  const router = createRouter(routes, { log, isDraining: () => draining });
  try {
    await role.start?.();
  } catch (err) {
    releaseClients();
    throw err;
  }
  started = true;
  options.onListening?.();
  try {
    server = await startServer(router, env.bind, listenPort(model, spec, env.port));
  } catch (err) {
    // Started, but unreachable: stop what start began, sending nothing more.
    draining = true;
    await Promise.resolve(role.drain(Date.now() + drainBudgetMs(model, spec), "halt")).catch((drainErr: unknown) =>
      log.error("stopping after the failed listen failed", { error: drainErr }),
    );
    releaseClients();
    throw err;
  }
  const port = server.port;
  const url = `http://${urlHost(env.advertiseHost)}:${port}`;
  // Readiness depends on the downstream view: start polling now rather than at the first probe.
  if (downstream.length > 0) getDiscovery();
  if (spec.kind === "service") {
    const inst = spec.service.instances[spec.instance];
    registrar = backend.register(registryContext, {
      service: spec.name,
      instance: spec.instance,
      url,
      weight: inst?.weight ?? 1,
      capacityPerSec: inst?.capacityPerSec ?? spec.service.capacityPerSec,
    });
  }
  log.info("started", { port, url, bind: env.bind });

  let shutdownPromise: Promise<number> | null = null;
  const shutdown = async (reason: string, mode: StopMode): Promise<number> => {
    draining = true;
    const budget = drainBudgetMs(model, spec);
    log.info(mode === "halt" ? "shutting down: halting" : "shutting down: draining", { reason, budgetMs: budget });
    await registrar?.stop();
    const deadline = Date.now() + budget;
    let code = 0;
    let overrun: NodeJS.Timeout | undefined;
    try {
      const finished = await Promise.race([
        Promise.resolve(role.drain(deadline, mode)).then(() => true),
        new Promise<false>((resolve) => {
          overrun = setTimeout(() => resolve(false), budget + DRAIN_GRACE_MS);
        }),
      ]);
      if (!finished) {
        code = 1;
        log.error("drain overran its deadline: work not committed is re-sent after a restart", { budgetMs: budget });
      }
    } catch (err) {
      code = 1;
      log.error("drain failed", { error: err });
    } finally {
      clearTimeout(overrun);
    }
    await server?.close(DRAIN_GRACE_MS);
    releaseClients();
    log.info("stopped", { code });
    return code;
  };

  return {
    port,
    url,
    log,
    metrics,
    readiness,
    failed: registrar?.failed ?? new Promise<Error>(() => {}),
    shutdown(reason, mode = "drain") {
      shutdownPromise ??= shutdown(reason, mode);
      return shutdownPromise;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The process

/**
 * Runs one role as this process: starts it, drains and exits on SIGTERM/SIGINT or when the
 * supervisor's IPC channel closes (the supervisor died), exits 1 on a failed start or a crash.
 */
export async function runRole(setup: RuntimeSetup, spec: ProcessRole, factory: RoleFactory): Promise<void> {
  const identity = identityOf(spec);
  const log = createLogger(identity.fields);
  installCrashHandlers(log);

  let running: RunningRole | null = null;
  let listening = false;
  let stopping: { reason: string; mode: StopMode } | null = null;
  const stop = (reason: string, mode: StopMode) => {
    if (stopping !== null) {
      // The terminal and the supervisor may both signal: one drain is enough.
      log.info("already shutting down", { reason });
      return;
    }
    stopping = { reason, mode };
    if (running) running.shutdown(reason, mode).then((code) => process.exit(code));
    else if (!listening) {
      // Still starting (waiting for its state folder, recovering its log, loading its handler):
      // nothing was acknowledged to anyone yet, and what was written is recovered like after a
      // crash. Waiting for a start that may never end would only get it killed.
      log.info("stopped while starting", { reason });
      process.exit(0);
    }
  };
  process.on("SIGTERM", () => stop("SIGTERM", "drain"));
  process.on("SIGINT", () => stop("SIGINT", "drain"));
  if (process.send !== undefined) {
    // Started by the supervisor with an IPC channel: it closes when the supervisor dies, and
    // then nobody would stop this process. Every other process of the system sees the same
    // and goes away: halt rather than drain into them. The channel must not keep it alive.
    process.on("disconnect", () => stop("the supervisor went away", "halt"));
    process.channel?.unref();
  }

  try {
    running = await startRole({
      env: setup.env,
      system: setup.system,
      spec,
      factory,
      log,
      onListening: () => {
        listening = true;
      },
    });
  } catch (err) {
    // A problem of the setup is said as it is (what, where, how to fix); anything else with its stack.
    if (err instanceof RuntimeConfigError) log.error(`could not start: ${err.message}`);
    else log.error("could not start", { error: err });
    process.exit(err instanceof RuntimeConfigError ? err.exitCode : 1);
  }
  // The supervisor learns where the process listens: the registry's URL for the others when its
  // port is any free one, the port a restarted child takes again, and where to ask /readyz.
  if (process.send !== undefined && process.connected) {
    const message: StartedMessage = { type: "mbc:started", port: running.port, url: running.url };
    // With a callback, a channel that closed meanwhile is an error passed here rather than an
    // 'error' event on the process (which would crash it): the disconnect handler stops it.
    process.send(message, undefined, {}, () => {});
  }
  const pending = stopping as { reason: string; mode: StopMode } | null;
  if (pending !== null) running.shutdown(pending.reason, pending.mode).then((code) => process.exit(code));
  // A registration that cannot be had (another process holds the instance) is a problem of the
  // setup, like a state folder another process owns: said as it is, drained, exit 2.
  const started = running;
  void started.failed.then((err) => {
    if (stopping !== null) return;
    stopping = { reason: err.message, mode: "drain" };
    log.error(`cannot run: ${err.message}`);
    started.shutdown(err.message, "drain").then(() => process.exit(2));
  });
}
