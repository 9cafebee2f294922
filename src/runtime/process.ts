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
 * - `start({port, url})`: called once the server listens, before the process registers; start
 *   the work here (a source's reading, a service's handler loading). A throw fails the start:
 *   the process exits 1 and the supervisor restarts it.
 * - `ready()` (optional): extra readiness conditions, on top of the ones kept here.
 * - `drain(deadlineMs)`: stop intake, finish in-flight work by `deadlineMs` (Date.now() clock),
 *   write the checkpoint. Called once, on SIGTERM/SIGINT (or when the supervisor goes away).
 *
 * What the scaffolding does around a role:
 *
 * 1. Listens on the role's port (registry.port; an http source's port; a service instance's
 *    `port + K`; else MBC_PORT, or an ephemeral port) at MBC_BIND.
 * 2. Calls `start`, then, for a service instance, registers with the registry
 *    (`PUT /v1/instances/{service}/{K}` with url `http://{advertiseHost}:{port}`, weight and
 *    capacity) and heartbeats every `registry.heartbeat`. While the registry is down it retries
 *    with a backoff capped at one heartbeat, so a restarted registry is repopulated within one
 *    heartbeat; it never gives up and never crashes.
 * 3. `/readyz` answers 200 when started, not draining, registered (a service instance: a
 *    heartbeat succeeded within the ttl), every downstream service has a live instance (as
 *    discovery sees it) and the role's own `ready()` agrees; 503 with the reasons otherwise.
 * 4. On SIGTERM or SIGINT (or the supervisor's IPC channel closing): marks itself draining,
 *    stops the heartbeat, deregisters (DELETE), calls `drain(deadline)` with the budget of
 *    env.ts's drainBudgetMs (at most 30 s), closes the server and exits 0 — 1 when the drain
 *    failed or overran its deadline (what it did not commit is re-sent after a restart).
 * 5. An uncaught exception or unhandled rejection is logged and exits 1: the process's state
 *    is unknown, and the supervisor (or Compose, or systemd) restarts it.
 *
 * `startRole` does 1–4 without touching process-wide state (tests run it in-process);
 * `runRole` adds the signal and crash handlers; `runMain` is the entry of mbc-runtime.mjs.
 */
import type { Model } from "../model/types.js";
import { downstreamOf, drainBudgetMs, type ProcessRole } from "../policy/index.js";
import { type Clock, systemClock, type TimerHandle } from "./clock.js";
import type { Logger, RoleHandle, RuntimeEnv, StartedMessage, SystemFile } from "./contracts.js";
import { createDiscovery, type DiscoveryClient } from "./discovery.js";
import { type EnvVars, listenPort, loadRuntime, parseArgs, RuntimeConfigError, type RuntimeSetup, urlHost } from "./env.js";
import { bearer, commonRoutes, createHttpClient, createRouter, type HttpClient, type ReadyState, type Route, type RunningServer, startServer } from "./http.js";
import { createLogger, installCrashHandlers } from "./log.js";
import { createMetrics, type MetricsIdentity, type RuntimeMetrics } from "./metrics.js";
import { createRegistryRole } from "./registry.js";
import { runSupervisor } from "./supervisor.js";

export type { ProcessRole };

export interface RoleContext {
  readonly env: RuntimeEnv;
  readonly system: SystemFile;
  readonly model: Model;
  /** Which process this is (and its SourceModel / ServiceModel). */
  readonly spec: ProcessRole;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  /** A keep-alive HTTP client shared by the process (closed on exit). */
  readonly client: HttpClient;
  /** The registry's view, polled every heartbeat; created on first use (closed on exit). */
  readonly discovery: DiscoveryClient;
  /** True from the moment shutdown begins. */
  isDraining(): boolean;
  /** The clock of timers, heartbeats, TTLs and polls (a manual one in unit tests). */
  readonly clock: Clock;
}

export interface StartInfo {
  /** The port the server listens on. */
  port: number;
  /** The URL others reach this process at: http://{advertiseHost}:{port}. */
  url: string;
}

export interface Role extends RoleHandle {
  routes?: readonly Route[];
  start?(info: StartInfo): void | Promise<void>;
  ready?(): ReadyState;
}

export type RoleFactory = (ctx: RoleContext) => Role | Promise<Role>;

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
// Registration and heartbeat

export interface HeartbeatOptions {
  client: HttpClient;
  registryUrl: string;
  token: string | null;
  service: string;
  instance: number;
  body: { url: string; weight: number; capacityPerSec: number | null };
  heartbeatMs: number;
  ttlMs: number;
  log: Logger;
  clock?: Clock;
}

export interface Heartbeat {
  /** A heartbeat was accepted within the last ttl. */
  registered(): boolean;
  /** Stops heartbeating and deregisters (DELETE); never throws. */
  stop(): Promise<void>;
}

/** First retry after a failed heartbeat; doubled each time, capped at the heartbeat interval. */
const HEARTBEAT_RETRY_MS = 100;
/** While the registry stays unreachable, the warning is repeated this often, not every retry. */
const OUTAGE_LOG_EVERY_MS = 30_000;

/** Delay before the next heartbeat after `failures` consecutive failures (0: all is well). */
export function heartbeatDelayMs(heartbeatMs: number, failures: number): number {
  if (failures === 0) return heartbeatMs;
  return Math.min(heartbeatMs, HEARTBEAT_RETRY_MS * 2 ** Math.min(failures - 1, 20));
}

export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { client, registryUrl, token, service, instance, body, heartbeatMs, ttlMs, log } = options;
  const clock = options.clock ?? systemClock;
  const url = `${registryUrl}/v1/instances/${encodeURIComponent(service)}/${instance}`;
  // Long enough for a busy registry, short enough that the next beat is not delayed much.
  const timeoutMs = Math.max(heartbeatMs, 1000);
  let lastOk = Number.NEGATIVE_INFINITY;
  let failures = 0;
  let everRegistered = false;
  let lastOutageLog = Number.NEGATIVE_INFINITY;
  let stopped = false;
  let timer: TimerHandle | null = null;
  let current: Promise<void> | null = null;

  const beat = async () => {
    try {
      const res = await client.request("PUT", url, { json: body, headers: bearer(token), timeoutMs });
      if (res.status !== 200)
        throw new Error(res.status === 401 ? "the registry refused the token (MBC_TOKEN)" : `HTTP ${res.status} ${res.body.toString("utf8").slice(0, 200)}`);
      lastOk = clock.now();
      if (!everRegistered) log.info("registered", { registry: registryUrl, url: body.url });
      else if (failures > 0) log.info("registry reachable again: registered", { registry: registryUrl, failures });
      everRegistered = true;
      failures = 0;
    } catch (err) {
      failures++;
      const now = clock.now();
      if (failures === 1 || now - lastOutageLog >= OUTAGE_LOG_EVERY_MS) {
        lastOutageLog = now;
        log.warn("heartbeat failed: retrying", { registry: registryUrl, failures, error: err instanceof Error ? err.message : String(err) });
      }
    }
  };

  const loop = () => {
    if (stopped) return;
    current = beat().finally(() => {
      current = null;
      if (stopped) return;
      timer = clock.setTimer(loop, heartbeatDelayMs(heartbeatMs, failures));
    });
  };
  loop();

  return {
    registered: () => clock.now() - lastOk <= ttlMs,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== null) clock.clearTimer(timer);
      // A PUT still in flight could land after the DELETE and register us again.
      if (current) await current;
      try {
        const res = await client.request("DELETE", url, { headers: bearer(token), timeoutMs: Math.min(timeoutMs, 2000) });
        if (res.status !== 204 && res.status !== 200) log.warn("deregistration refused", { status: res.status });
        else log.info("deregistered", { registry: registryUrl });
      } catch (err) {
        // The ttl removes us anyway.
        log.warn("could not deregister: the registry will expire this instance", { error: err instanceof Error ? err.message : String(err) });
      }
    },
  };
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
}

export interface RunningRole {
  readonly port: number;
  readonly url: string;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  readiness(): ReadyState;
  /** Drains and closes (once; later calls join the first). Resolves with the exit status. */
  shutdown(reason: string): Promise<number>;
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
  let heartbeat: Heartbeat | null = null;
  let server: RunningServer | null = null;

  const getDiscovery = () => {
    discovery ??= createDiscovery({ registryUrl: env.registryUrl, token: env.token, intervalMs: model.registry.heartbeatMs, log, client, clock });
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
  const readiness = (): ReadyState => {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (!started) reasons.push("starting");
    if (heartbeat && !heartbeat.registered()) reasons.push("not registered with the registry");
    if (downstream.length > 0) {
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
    server = await startServer(router, env.bind, listenPort(model, spec, env.port));
  } catch (err) {
    releaseClients();
    throw err;
  }
  const port = server.port;
  const url = `http://${urlHost(env.advertiseHost)}:${port}`;
  try {
    await role.start?.({ port, url });
  } catch (err) {
    await server.close(0);
    releaseClients();
    throw err;
  }
  started = true;
  // Readiness depends on the downstream view: start polling now rather than at the first probe.
  if (downstream.length > 0) getDiscovery();
  if (spec.kind === "service") {
    const inst = spec.service.instances[spec.instance];
    heartbeat = startHeartbeat({
      client,
      registryUrl: env.registryUrl,
      token: env.token,
      service: spec.name,
      instance: spec.instance,
      body: { url, weight: inst?.weight ?? 1, capacityPerSec: inst?.capacityPerSec ?? spec.service.capacityPerSec },
      heartbeatMs: model.registry.heartbeatMs,
      ttlMs: model.registry.ttlMs,
      log,
      clock,
    });
  }
  log.info("started", { port, url, bind: env.bind });

  let shutdownPromise: Promise<number> | null = null;
  const shutdown = async (reason: string): Promise<number> => {
    draining = true;
    const budget = drainBudgetMs(model, spec);
    log.info("shutting down: draining", { reason, budgetMs: budget });
    await heartbeat?.stop();
    const deadline = Date.now() + budget;
    let code = 0;
    let overrun: NodeJS.Timeout | undefined;
    try {
      const finished = await Promise.race([
        Promise.resolve(role.drain(deadline)).then(() => true),
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
    shutdown(reason) {
      shutdownPromise ??= shutdown(reason);
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
  let stopReason: string | null = null;
  const stop = (reason: string) => {
    if (stopReason !== null) {
      // The terminal and the supervisor may both signal: one drain is enough.
      log.info("already shutting down", { reason });
      return;
    }
    stopReason = reason;
    if (running) running.shutdown(reason).then((code) => process.exit(code));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (process.send !== undefined) {
    // Started by the supervisor with an IPC channel: it closes when the supervisor dies, and
    // then nobody would stop this process. The channel itself must not keep it alive.
    process.on("disconnect", () => stop("the supervisor went away"));
    process.channel?.unref();
  }

  try {
    running = await startRole({ env: setup.env, system: setup.system, spec, factory, log });
  } catch (err) {
    log.error("could not start", { error: err });
    process.exit(1);
  }
  // The supervisor learns where the process listens: the registry's URL for the others when its
  // port is any free one, and the port a restarted child takes again.
  if (process.send !== undefined) {
    const message: StartedMessage = { type: "mbc:started", port: running.port, url: running.url };
    try {
      process.send(message);
    } catch {
      // The supervisor is gone: the disconnect handler stops this process.
    }
  }
  if (stopReason !== null) running.shutdown(stopReason).then((code) => process.exit(code));
}

export interface MainOptions {
  argv: readonly string[];
  vars: EnvVars;
  /** The bundle being run (process.argv[1]): the supervisor starts its children with it. */
  entry: string;
  roles: { source: RoleFactory; service: RoleFactory; registry?: RoleFactory };
}

/** The entry of mbc-runtime.mjs: the supervisor without --role, else the one role. */
export async function runMain(options: MainOptions): Promise<void> {
  let setup: RuntimeSetup;
  try {
    setup = loadRuntime(options.argv, options.vars, options.entry);
  } catch (err) {
    let fields: Record<string, unknown> = { role: "supervisor" };
    try {
      const args = parseArgs(options.argv);
      if (args.role !== null) fields = { role: args.role, name: args.name ?? undefined, instance: args.instance ?? undefined };
    } catch {
      // The arguments themselves are what is wrong.
    }
    createLogger(fields).error(err instanceof Error ? err.message : String(err));
    process.exit(err instanceof RuntimeConfigError ? err.exitCode : 1);
  }
  const { role } = setup;
  try {
    switch (role.kind) {
      case "supervisor":
        return await runSupervisor({ setup, entry: options.entry, vars: options.vars });
      case "registry":
        return await runRole(setup, role, options.roles.registry ?? createRegistryRole);
      case "source":
        return await runRole(setup, role, options.roles.source);
      case "service":
        return await runRole(setup, role, options.roles.service);
    }
  } catch (err) {
    // Both runners handle their own failures; this is the last line of defence.
    createLogger(role.kind === "supervisor" ? { role: "supervisor" } : identityOf(role).fields).error("failed", { error: err });
    process.exit(1);
  }
}
