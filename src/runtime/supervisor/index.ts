/**
 * The supervisor: `node mbc-runtime.mjs` with no role runs the whole system on one machine, one
 * child process per role, each running the same bundle with `--role …`.
 *
 * - Ownership: it takes `STATE_DIR/supervisor.lock` first (core/ownership.ts), so a second
 *   runtime on the same state folder waits for the first to let go, up to the lock's stale
 *   time, then exits 2 naming it, rather than starting a second copy of the system.
 * - Start order, in stages (what Compose's `depends_on: service_healthy` and systemd's ordering
 *   do): the registry, when the system's registry backend runs one; then the service instances,
 *   sinks first — a service's stage is one above the highest of its `to` — then the sources.
 *   The children of a stage start together, and the next stage starts once each of them is
 *   ready (`/readyz?scope=self`: listening, started, registered) or given up on
 *   (readiness.ts: a crash loop, or the start timeout, default 30 s), with an error that names
 *   the child and what its /readyz said. A child given up on keeps being restarted. So no
 *   process is started before what it sends to can take its batches.
 * - Each child gets the supervisor's environment plus MBC_SYSTEM (so it reads the same
 *   system.json), its service's `env`, and `--max-old-space-size` from its `resources.memory`.
 * - Children's output is forwarded line by line to the supervisor's stderr: JSON lines as they
 *   are (they already carry role, name and instance), any other line (a handler's
 *   console.log) wrapped in a JSON line naming the child.
 * - A child that exits while the supervisor is not stopping — crashed, killed, or even exited
 *   0, as every role is meant to run until stopped — is restarted after its service's retry
 *   backoff: `interval × multiplier^k` (`interval` for constant backoff), capped at
 *   `maxInterval`, at least 50 ms so a crash loop cannot spin; k counts the restarts since the
 *   child last stayed up for `stableMs` (default 10 s). The registry and sources use the
 *   spec's default retry (100 ms × 2^k, capped at 5 s).
 * - Children run in their own process group (`detached`), so a Ctrl-C in a terminal reaches
 *   only the supervisor, which stops them in order: sources first (they stop intake and finish
 *   their batches while every service is still up), then services from upstream to downstream,
 *   then the registry. Each stage gets its drain budget plus a grace; a child still running
 *   then is killed (SIGKILL, with its process group). A child whose supervisor dies sees its
 *   IPC channel close and halts by itself (process/: it stops intake, makes durable what it
 *   acknowledged, sends nothing more and exits); the supervisor, when a parent started it with
 *   an IPC channel (`mbc run`), stops the system the same way once that parent is gone.
 * - `stop()` resolves `{clean}`: clean when every child exited 0 in time (or died of the
 *   SIGTERM itself, which happens only before it has installed its handlers, i.e. while it is
 *   still loading, with nothing in flight).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { stageGraph } from "../../model/graph.js";
import type { Model, ServiceModel } from "../../model/types.js";
import {
  configuredPort,
  DEFAULT_RESTART,
  drainBudgetMs,
  heapLimitMiB,
  type ProcessRole,
  type RestartPolicy,
  restartDelayMs,
  restartPolicyOf,
} from "../../policy/index.js";
import type { EnvVars, RuntimeSetup } from "../config/index.js";
import { type Clock, systemClock } from "../core/clock.js";
import type { Logger, RuntimeEnv, StartedMessage } from "../core/contracts.js";
import type { FileLock } from "../core/file-lock.js";
import { createHttpClient } from "../core/http.js";
import { createLogger, formatLine, installCrashHandlers } from "../core/log.js";
import { OwnershipError, supervisorLock, takeOwnership } from "../core/ownership.js";
import { registryBackend } from "../registry/index.js";
import { type Readiness, waitForStage } from "./readiness.js";

/** A child's "mbc:started" message (process.ts), checked. */
export function isStartedMessage(value: unknown): value is StartedMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  return m.type === "mbc:started" && typeof m.port === "number" && Number.isInteger(m.port) && m.port > 0 && m.port < 65_536 && typeof m.url === "string";
}

export interface ChildPlan {
  /** `registry`, `source:NAME` or `service:NAME/K`. */
  id: string;
  spec: ProcessRole;
  args: string[];
  execArgv: string[];
  /** Added to the supervisor's environment. */
  env: Record<string, string>;
  restart: RestartPolicy;
  drainBudgetMs: number;
  /** Start stage: lower starts first, and is ready before the next starts (the registry 0, services from the sinks up, sources last). */
  startStage: number;
  /** Stop stage: lower stops first (sources 0, services by depth, the registry last). */
  stopStage: number;
}

/** The children of a system in start order. Pure. */
export function planChildren(model: Model): ChildPlan[] {
  const graph = stageGraph(model);
  // Services on a cycle are not in the topological order (validation refuses cycles anyway).
  const order = [...graph.order, ...model.services.map((s) => s.name).filter((n) => !graph.order.includes(n))];
  // Depth: a service stops after every service upstream of it has.
  const depth = new Map<string, number>();
  for (const name of order) depth.set(name, Math.max(0, ...(graph.prev.get(name) ?? []).map((p) => (depth.get(p) ?? 0) + 1)));
  const maxDepth = Math.max(0, ...depth.values());
  // Height: a service starts once every service below it is ready (sinks first).
  const height = new Map<string, number>();
  for (const name of [...order].reverse()) height.set(name, Math.max(0, ...(graph.next.get(name) ?? []).map((n) => (height.get(n) ?? 0) + 1)));
  const maxHeight = Math.max(0, ...height.values());

  const plans: ChildPlan[] = [];
  // The system's own registry process, when its registry backend has one (not when it is outside).
  if (registryBackend(model).role !== null) {
    const registry: ProcessRole = { kind: "registry" };
    plans.push({
      id: "registry",
      spec: registry,
      args: ["--role", "registry"],
      execArgv: [],
      env: {},
      restart: DEFAULT_RESTART,
      drainBudgetMs: drainBudgetMs(model, registry),
      startStage: 0,
      stopStage: maxDepth + 2,
    });
  }
  for (const name of [...order].reverse()) {
    const service = graph.services.get(name) as ServiceModel;
    // An image service runs in a container (Compose), not here.
    if (service.handler === null) continue;
    for (const inst of service.instances) {
      const spec: ProcessRole = { kind: "service", name, instance: inst.index, service };
      plans.push({
        id: `service:${name}/${inst.index}`,
        spec,
        args: ["--role", "service", "--name", name, "--instance", String(inst.index)],
        execArgv: service.resources.memoryBytes !== null ? [`--max-old-space-size=${heapLimitMiB(service.resources.memoryBytes)}`] : [],
        env: { ...service.env },
        restart: restartPolicyOf(service),
        drainBudgetMs: drainBudgetMs(model, spec),
        startStage: 1 + (height.get(name) ?? 0),
        stopStage: 1 + (depth.get(name) ?? 0),
      });
    }
  }
  for (const source of model.sources) {
    const spec: ProcessRole = { kind: "source", name: source.name, source };
    plans.push({
      id: `source:${source.name}`,
      spec,
      args: ["--role", "source", "--name", source.name],
      execArgv: [],
      env: {},
      restart: DEFAULT_RESTART,
      drainBudgetMs: drainBudgetMs(model, spec),
      startStage: maxHeight + 2,
      stopStage: 0,
    });
  }
  return plans;
}

export type ChildState = "starting" | "running" | "restarting" | "stopping" | "stopped";

export interface ChildStatus {
  id: string;
  pid: number | null;
  state: ChildState;
  restarts: number;
  lastExit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Where it listened last, once it said. */
  url: string | null;
}

export type SupervisorEvent =
  | { type: "spawn"; id: string; pid: number }
  | { type: "exit"; id: string; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }
  | { type: "restart"; id: string; delayMs: number; attempt: number }
  | { type: "ready"; id: string }
  | { type: "not-ready"; id: string; reason: string }
  | { type: "started"; ready: boolean }
  | { type: "stopped"; clean: boolean };

export interface SupervisorOptions {
  /** The bundle every child runs (process.argv[1] of the supervisor). */
  entry: string;
  /** The resolved environment (the registry URL to wait for). */
  env: RuntimeEnv;
  model: Model;
  /** Passed to children as MBC_SYSTEM; default system.json in env.systemDir. */
  systemPath?: string;
  /** The environment children inherit (default process.env). */
  vars?: EnvVars;
  /** Node flags for every child, before the entry. */
  execArgv?: string[];
  /** A child's uptime after which its restart backoff starts over (default 10 s). */
  stableMs?: number;
  /** Extra time a stop stage gets on top of its drain budget before SIGKILL (default 5 s). */
  killGraceMs?: number;
  /** Longest wait at start for a child to be ready before the stage above it starts anyway (default 30 s). */
  startTimeoutMs?: number;
  /** Take the state folder's supervisor lock (default true). */
  lock?: boolean;
  clock?: Clock;
  log?: Logger;
  onStatus?: (event: SupervisorEvent) => void;
  /** Each line a child writes (stdout or stderr), as forwarded; default: written to stderr. */
  onLog?: (line: string, id: string) => void;
}

/** How the start went: every child ready, or which were given up on and why. */
export interface StartOutcome {
  ready: boolean;
  notReady: { id: string; reason: string }[];
}

export interface SupervisorHandle {
  /** Resolves once every stage has started (each child ready or given up on), or the start was cut short by stop(). */
  readonly started: Promise<StartOutcome>;
  children(): ChildStatus[];
  /** Pids of the running children, by child id. */
  pids(): Record<string, number>;
  /** Stops every child in order (see above). Idempotent. */
  stop(): Promise<{ clean: boolean }>;
}

interface Child {
  plan: ChildPlan;
  proc: ChildProcess | null;
  state: ChildState;
  restarts: number;
  /** Restarts since the child last stayed up for stableMs. */
  streak: number;
  startedAt: number;
  lastExit: ChildStatus["lastExit"];
  restartTimer: NodeJS.Timeout | null;
  /** Resolves when the current process has exited. */
  exited: Promise<void>;
  /** Where it listened last (its "mbc:started" message); a restart takes the same port again. */
  listening: StartedMessage | null;
  /** The pid of the process that sent `listening`. */
  listeningPid: number | null;
}

export const DEFAULT_START_TIMEOUT_MS = 30_000;

function variableSet(vars: EnvVars, key: string): boolean {
  const value = vars[key];
  return value !== undefined && value.trim() !== "";
}

/**
 * Takes the state folder, then starts the children stage by stage (in the background: the handle
 * comes back at once, `started` tells when the start is over). Throws an OwnershipError when
 * another runtime keeps the state folder for the whole of the lock's stale time.
 */
export async function startSupervisor(options: SupervisorOptions): Promise<SupervisorHandle> {
  const { entry, env, model } = options;
  const systemPath = options.systemPath ?? join(env.systemDir, "system.json");
  const log = options.log ?? createLogger({ role: "supervisor" });
  const vars = options.vars ?? process.env;
  const stableMs = options.stableMs ?? 10_000;
  const killGraceMs = options.killGraceMs ?? 5_000;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const clock = options.clock ?? systemClock;
  const lock: FileLock | null =
    options.lock === false
      ? null
      : await takeOwnership({
          path: supervisorLock(env.stateDir),
          what: `the state folder ${env.stateDir}`,
          hint: "a runtime of this system already runs on it: stop that one first (SIGTERM drains it), or give this one another MBC_STATE_DIR",
          log,
          // Another host judged this supervisor dead (its lock went untouched): say so; the
          // sources' own locks keep their logs safe.
          onLost: () => log.error("another process took over the state folder's supervisor lock", { stateDir: env.stateDir }),
        });
  const emit = (event: SupervisorEvent) => {
    try {
      options.onStatus?.(event);
    } catch (err) {
      log.error("a status listener failed", { error: err });
    }
  };
  const forward =
    options.onLog ??
    ((line: string) => {
      try {
        process.stderr.write(`${line}\n`);
      } catch {
        // stderr is gone: the children's logs have nowhere to go either.
      }
    });

  const baseEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) baseEnv[k] = v;
  baseEnv.MBC_SYSTEM = systemPath;
  // One process's port: every child has its own (listenPort).
  delete baseEnv.MBC_PORT;

  const children = new Map<string, Child>();
  let stopping = false;

  const pipeLines = (child: Child, stream: NodeJS.ReadableStream | null, name: "stdout" | "stderr") => {
    if (!stream) return;
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (line) => {
      if (line === "") return;
      // A child's own log lines are JSON objects already; anything else gets wrapped.
      const out =
        line.startsWith("{") && line.endsWith("}")
          ? line
          : formatLine(Date.now(), "info", { role: "supervisor", child: child.plan.id, stream: name }, line).trimEnd();
      try {
        forward(out, child.plan.id);
      } catch (err) {
        log.error("a log listener failed", { error: err });
      }
    });
  };

  const spawnChild = (child: Child) => {
    const { plan } = child;
    child.state = "starting";
    child.restartTimer = null;
    let proc: ChildProcess;
    try {
      // A port the spec leaves to the system (0) is taken again on a restart, so that what
      // reached the child before reaches it after.
      const pinned = configuredPort(model, plan.spec) === 0 && child.listening !== null ? { MBC_PORT: String(child.listening.port) } : {};
      proc = spawn(process.execPath, [...(options.execArgv ?? []), ...plan.execArgv, entry, ...plan.args], {
        env: { ...baseEnv, ...plan.env, ...pinned },
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        detached: true,
      });
    } catch (err) {
      log.error("could not start a child", { child: plan.id, error: err });
      scheduleRestart(child);
      return;
    }
    child.proc = proc;
    child.startedAt = Date.now();
    let resolveExit!: () => void;
    child.exited = new Promise((resolve) => {
      resolveExit = resolve;
    });
    pipeLines(child, proc.stdout, "stdout");
    pipeLines(child, proc.stderr, "stderr");
    proc.on("message", (message) => {
      if (!isStartedMessage(message)) return;
      child.listening = message;
      child.listeningPid = proc.pid ?? null;
      log.info("child listening", { child: plan.id, port: message.port, url: message.url });
    });
    let done = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      if (done) return;
      done = true;
      const pid = proc.pid ?? 0;
      child.proc = null;
      child.lastExit = { code, signal };
      const expected = stopping;
      emit({ type: "exit", id: plan.id, pid, code, signal, expected });
      resolveExit();
      if (expected) {
        child.state = "stopped";
        return;
      }
      if (Date.now() - child.startedAt >= stableMs) child.streak = 0;
      log.warn("child exited: restarting", { child: plan.id, pid, code, signal, error: error?.message });
      scheduleRestart(child);
    };
    proc.once("error", (err) => onGone(null, null, err));
    proc.once("exit", (code, signal) => onGone(code, signal));
    if (proc.pid !== undefined) {
      child.state = "running";
      emit({ type: "spawn", id: plan.id, pid: proc.pid });
      log.info("child started", { child: plan.id, pid: proc.pid });
    }
  };

  const scheduleRestart = (child: Child) => {
    if (stopping) {
      child.state = "stopped";
      return;
    }
    const delayMs = restartDelayMs(child.plan.restart, child.streak);
    child.streak++;
    child.restarts++;
    child.state = "restarting";
    emit({ type: "restart", id: child.plan.id, delayMs, attempt: child.streak });
    child.restartTimer = setTimeout(() => {
      if (!stopping) spawnChild(child);
    }, delayMs);
  };

  // The registry on any free port (system.json's port 0) and no MBC_REGISTRY_URL: the children
  // learn its URL from the supervisor once it has started.
  const registryPortFree = model.registry.port === 0 && variableSet(vars, "MBC_REGISTRY_URL") === false;

  const plans = planChildren(model);
  for (const plan of plans) {
    children.set(plan.id, {
      plan,
      proc: null,
      state: "stopped",
      restarts: 0,
      streak: 0,
      startedAt: 0,
      lastExit: null,
      restartTimer: null,
      exited: Promise.resolve(),
      listening: null,
      listeningPid: null,
    });
  }
  log.info("starting the system", { system: model.name, children: plans.length });

  const startStages = async (): Promise<StartOutcome> => {
    const began = clock.now();
    const notReady: { id: string; reason: string }[] = [];
    const client = createHttpClient({ maxSockets: 4 });
    try {
      for (const stage of [...new Set(plans.map((p) => p.startStage))].sort((a, b) => a - b)) {
        if (stopping) break;
        const members = [...children.values()].filter((c) => c.plan.startStage === stage);
        const exitsBefore = new Map(members.map((c) => [c.plan.id, c.restarts]));
        for (const c of members) spawnChild(c);
        const outcomes: Readiness[] = await waitForStage(
          members.map((c) => ({
            id: c.plan.id,
            // Only the current process's word counts: a restarted child says again where it listens.
            url: () => (c.proc !== null && c.listeningPid === c.proc.pid ? (c.listening?.url ?? null) : null),
            exits: () => c.restarts - (exitsBefore.get(c.plan.id) ?? 0),
            lastExit: () => c.lastExit,
          })),
          { client, clock, timeoutMs: startTimeoutMs, stopping: () => stopping },
        );
        if (stopping) break;
        for (const outcome of outcomes) {
          if (outcome.ready) {
            emit({ type: "ready", id: outcome.id });
            continue;
          }
          notReady.push({ id: outcome.id, reason: outcome.reason });
          emit({ type: "not-ready", id: outcome.id, reason: outcome.reason });
          log.error("child not ready: starting the stages above it anyway", { child: outcome.id, reason: outcome.reason });
        }
        const registry = members.find((c) => c.plan.spec.kind === "registry");
        if (registry !== undefined && registryPortFree) {
          // The others reach the registry at the URL it reported (a restarted registry takes the same port).
          if (registry.listening !== null) {
            baseEnv.MBC_REGISTRY_URL = registry.listening.url;
          } else log.warn("the registry did not say where it listens: the other children cannot find it");
        }
      }
    } finally {
      client.close();
    }
    if (stopping) return { ready: false, notReady };
    const ready = notReady.length === 0;
    if (ready) log.info("system ready", { children: plans.length, ms: clock.now() - began });
    else log.warn("system started, but not every child is ready", { notReady: notReady.map((n) => n.id) });
    emit({ type: "started", ready });
    return { ready, notReady };
  };
  const started = startStages().catch((err: unknown) => {
    log.error("starting the system failed", { error: err });
    return { ready: false, notReady: [] };
  });

  const signalChild = (child: Child, signal: NodeJS.Signals) => {
    const pid = child.proc?.pid;
    if (pid === undefined) return;
    try {
      // SIGTERM goes to the child, which stops what it runs. SIGKILL goes to its process group
      // (detached: the child leads one), taking anything it started down with it.
      process.kill(signal === "SIGKILL" ? -pid : pid, signal);
    } catch {
      // Already gone.
    }
  };

  let stopPromise: Promise<{ clean: boolean }> | null = null;
  const stopAll = async (): Promise<{ clean: boolean }> => {
    stopping = true;
    log.info("stopping the system");
    let clean = true;
    for (const child of children.values()) {
      if (child.restartTimer) {
        clearTimeout(child.restartTimer);
        child.restartTimer = null;
        child.state = "stopped";
      }
    }
    const stages = [...new Set(plans.map((p) => p.stopStage))].sort((a, b) => a - b);
    for (const stage of stages) {
      const members = [...children.values()].filter((c) => c.plan.stopStage === stage && c.proc !== null);
      if (members.length === 0) continue;
      for (const c of members) {
        c.state = "stopping";
        signalChild(c, "SIGTERM");
      }
      const budget = Math.max(...members.map((c) => c.plan.drainBudgetMs)) + killGraceMs;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(members.map((c) => c.exited)).then(() => false),
        new Promise<true>((resolve) => {
          timer = setTimeout(() => resolve(true), budget);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        for (const c of members) {
          if (c.proc === null) continue;
          clean = false;
          log.error("child did not stop in time: killing it", { child: c.plan.id, pid: c.proc.pid, budgetMs: budget });
          signalChild(c, "SIGKILL");
        }
        await Promise.all(members.map((c) => c.exited));
      }
      for (const c of members) {
        // Killed by our SIGTERM itself: it had not yet set up its handlers, so it was still
        // loading and had nothing in flight.
        if (c.lastExit?.code === 0 || (c.lastExit?.signal === "SIGTERM" && !timedOut)) continue;
        clean = false;
        log.warn("child did not stop cleanly", { child: c.plan.id, code: c.lastExit?.code ?? null, signal: c.lastExit?.signal ?? null });
      }
    }
    await lock?.release();
    log.info("system stopped", { clean });
    emit({ type: "stopped", clean });
    return { clean };
  };

  return {
    started,
    children: () =>
      [...children.values()].map((c) => ({
        id: c.plan.id,
        pid: c.proc?.pid ?? null,
        state: c.state,
        restarts: c.restarts,
        lastExit: c.lastExit,
        url: c.listening?.url ?? null,
      })),
    pids() {
      const out: Record<string, number> = {};
      for (const c of children.values()) if (c.proc?.pid !== undefined) out[c.plan.id] = c.proc.pid;
      return out;
    },
    stop() {
      stopPromise ??= stopAll();
      return stopPromise;
    },
  };
}

/** The supervisor as the process: starts the system, stops it on SIGTERM/SIGINT, exits. */
export async function runSupervisor(options: { setup: RuntimeSetup; entry: string; vars: EnvVars }): Promise<void> {
  const { setup } = options;
  const log = createLogger({ role: "supervisor" });
  let handle: SupervisorHandle | null = null;
  let stops = 0;
  const stop = (reason: string, fields: Record<string, unknown> = {}) => {
    stops++;
    if (stops > 1) {
      // A second Ctrl-C: the user does not want to wait for the drain.
      log.warn("second signal: killing every child now", { reason, ...fields });
      if (handle) for (const pid of Object.values(handle.pids())) killQuietly(-pid);
      process.exit(1);
    }
    log.info(`${reason}: stopping`, fields);
    if (handle) handle.stop().then(({ clean }) => process.exit(clean ? 0 : 1));
  };
  const onSignal = (signal: NodeJS.Signals) => stop("signal", { signal });
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  if (process.send !== undefined) {
    // Started with an IPC channel (`mbc run`): when that parent dies, even by SIGKILL, the
    // channel closes and nobody is left to stop this system. Stop it as on SIGTERM.
    process.on("disconnect", () => stop("the process that started the runtime went away"));
    process.channel?.unref();
  }
  // On a crash the children notice the IPC channel closing and halt by themselves.
  installCrashHandlers(log);
  try {
    handle = await startSupervisor({ entry: options.entry, env: setup.env, model: setup.system.model, systemPath: setup.systemPath, vars: options.vars, log });
  } catch (err) {
    if (!(err instanceof OwnershipError)) throw err;
    log.error(err.message, { holder: err.holder });
    process.exit(err.exitCode);
  }
  if (stops > 0) handle.stop().then(({ clean }) => process.exit(clean ? 0 : 1));
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
