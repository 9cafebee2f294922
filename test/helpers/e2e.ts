/**
 * Helpers for the end-to-end tests of the built node target (test/runtime-e2e.test.ts): real
 * processes on loopback, built and started the way a user does.
 *
 * - `exampleSpec()` reads the design example as a plain object (and `exampleHandlers()` its
 *   handler files); `buildSystem(spec, handlers)` gives every fixed port of the spec a port
 *   probed free (the registry, each http source, each service's instances), writes it and its
 *   handlers into a temp folder, and builds it with the real CLI (`mbc build --target node`).
 *   The temp folder's path is the system's marker: every runtime process of the system has it
 *   on its command line.
 * - `startSystem(sys)` runs `node DIR/node/mbc-runtime.mjs` (the supervisor) with
 *   MBC_DATA_DIR and MBC_STATE_DIR in the temp folder; its `childPids()` come from the
 *   supervisor's "child started" logs. `waitReady` waits until every process answers /readyz.
 * - Ports come from below the ephemeral range (`freePortBlock`): a port probed free inside it
 *   can become an outgoing connection's local port before the process binds it.
 * - `runtimeProcesses(marker)` lists the live processes of a system (from /proc, else ps);
 *   `hardKill(marker)` stops them all at once (SIGSTOP, so that none reacts to the others
 *   dying, then SIGKILL, each process and its process group); `killSystems()` does it for
 *   every system made here (afterEach).
 * - `Loader` posts records with unique ids (`{prefix}-{n}`) from several concurrent clients,
 *   alternating NDJSON and JSON-array bodies, retrying a 503 after its Retry-After and, when
 *   asked, a connection failure; it remembers which chunks were acknowledged (202) and how many
 *   attempts of each ended without an answer (those may have been logged: a re-post may then
 *   store the records twice, which is the client's doing, not the system's). With
 *   `idempotencyKeys` every chunk goes under an Idempotency-Key that stays the same across its
 *   attempts: then a re-post must not store it twice, and any second copy is the system's doing.
 *   A `url` function may throw (`NoUrl`, or any error) while there is nowhere to post: with
 *   `retryOutages` that is an outage, not an attempt. `stopLoads()` (afterEach) stops the
 *   loads a failed test left running.
 * - `OpenLoad` offers a fixed rate whatever the answers (open loop): refused chunks (503) are
 *   dropped, not retried, so the offered load stays what it is.
 * - `readIds(file)` counts the ids of a JSONL file, `readSinkBatches` splits a jsonl sink's
 *   file into its stored batches; `readDeadLetters`, `metricValue`, `rssBytes`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { assertBuilt, examplePath, runMbc } from "./cli.js";
import { freePortBlock } from "./ports.js";
import { httpJson, killAll, type RuntimeChild, spawnRuntime, tempDir, waitUntil } from "./runtime.js";

/** A spec as a plain object (parsed YAML). */
export type Spec = Record<string, unknown>;

type Obj = Record<string, unknown>;

function obj(value: unknown, what: string): Obj {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Obj;
}

/** The design example's spec, parsed. */
export function exampleSpec(): Spec {
  return obj(parse(readFileSync(examplePath, "utf8")), "the example");
}

/** The example's handler files, by path relative to its folder. */
export function exampleHandlers(): Record<string, string> {
  const dir = join(dirname(examplePath), "handlers");
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) out[`handlers/${name}`] = readFileSync(join(dir, name), "utf8");
  return out;
}

/** `spec.a.b.c`, an object (created when missing). */
export function at(spec: Spec, ...path: string[]): Obj {
  let node: Obj = spec;
  for (const key of path) {
    if (node[key] === undefined) node[key] = {};
    node = obj(node[key], path.join("."));
  }
  return node;
}

function instanceCount(service: Obj): number {
  const instances = service.instances;
  if (typeof instances === "number") return instances;
  if (Array.isArray(instances)) return instances.length;
  return 1;
}

export interface Ports {
  registry: number;
  /** Sources: an http source takes records at its port (a spec gives the others none; under a supervisor they report the ephemeral port they serve health and metrics on). */
  sources: Record<string, number>;
  /** Each service's instance ports, instance 0 first. */
  services: Record<string, number[]>;
}

/** Gives every fixed port of the spec (in place) a consecutive port probed free on 127.0.0.1. */
export async function assignFreePorts(spec: Spec): Promise<Ports> {
  const sources = obj(spec.sources ?? {}, "sources");
  const services = obj(spec.services ?? {}, "services");
  const httpSources = Object.entries(sources).filter(([, s]) => obj(s, "source").type === "http");
  let count = 1 + httpSources.length;
  for (const s of Object.values(services)) count += instanceCount(obj(s, "service"));
  const base = await freePortBlock(count);
  let next = base;
  const ports: Ports = { registry: next++, sources: {}, services: {} };
  at(spec, "registry").port = ports.registry;
  for (const [name, s] of httpSources) {
    ports.sources[name] = next;
    obj(s, "source").port = next++;
  }
  for (const [name, s] of Object.entries(services)) {
    const service = obj(s, "service");
    const n = instanceCount(service);
    service.port = next;
    ports.services[name] = Array.from({ length: n }, (_, k) => next + k);
    next += n;
  }
  return ports;
}

export interface E2ESystem {
  /** The temp folder: everything of the system is in it, and every process has it on its command line. */
  root: string;
  specDir: string;
  specPath: string;
  spec: Spec;
  /** The built bundle, DIR/node/mbc-runtime.mjs. */
  bundle: string;
  dataDir: string;
  stateDir: string;
  /**
   * Where the processes of the running system listen, as its supervisor reported them (every
   * process binds a port of the system's choosing: see buildSystem). A restart of the whole
   * system gives new ports: read them after it.
   */
  readonly ports: Ports;
  /** How many processes listen: the registry, each source, each service instance. */
  readonly listeners: number;
  /** The URL an http source takes records at (now). */
  sourceUrl(name: string): string;
  /** The base URL of every process: the registry, each http source, each service instance. */
  endpoints(): { id: string; url: string }[];
  /** A jsonl sink's file (its config.path against MBC_DATA_DIR). */
  sinkFile(service: string): string;
}

const systems = new Set<string>();

/** The base URL of every process of a system with these ports: the registry, each http source, each service instance. */
export function endpointsOf(ports: Ports): { id: string; url: string }[] {
  const list = ports.registry > 0 ? [{ id: "registry", url: `http://127.0.0.1:${ports.registry}` }] : [];
  for (const [name, port] of Object.entries(ports.sources)) list.push({ id: `source:${name}`, url: `http://127.0.0.1:${port}` });
  for (const [name, instancePorts] of Object.entries(ports.services)) {
    instancePorts.forEach((port, k) => {
      if (port !== undefined) list.push({ id: `service:${name}/${k}`, url: `http://127.0.0.1:${port}` });
    });
  }
  return list;
}

/**
 * A temp folder holding `spec/microbatch.yaml` (the spec, its fixed ports made free ones) and
 * its handler files; `killSystems` kills every process whose command line names the folder.
 */
export async function writeSystem(
  spec: Spec,
  handlers: Record<string, string> = {},
  options: { freePorts?: boolean } = {},
): Promise<{ root: string; specDir: string; specPath: string; ports: Ports }> {
  const root = tempDir("mbc-e2e-");
  systems.add(root);
  const ports = options.freePorts === false ? { registry: 0, sources: {}, services: {} } : await assignFreePorts(spec);
  const specDir = join(root, "spec");
  for (const [path, text] of Object.entries(handlers)) {
    mkdirSync(dirname(join(specDir, path)), { recursive: true });
    writeFileSync(join(specDir, path), text);
  }
  mkdirSync(specDir, { recursive: true });
  const specPath = join(specDir, "microbatch.yaml");
  writeFileSync(specPath, stringify(spec));
  return { root, specDir, specPath, ports };
}

/**
 * Writes the spec and its handlers to a temp folder and builds the node target with the CLI.
 * The built system.json then gets port 0 for every process: each binds a free port of the
 * system's choosing and reports it, so no port is probed free and then lost to another process
 * before the bind. `startSystem` reads the ports back from the supervisor's logs.
 */
export async function buildSystem(spec: Spec, handlers: Record<string, string> = {}): Promise<E2ESystem> {
  assertBuilt();
  const { root, specDir, specPath } = await writeSystem(spec, handlers, { freePorts: false });
  const out = join(root, "out");
  const built = runMbc(["build", specPath, "--target", "node", "-o", out]);
  if (built.status !== 0) throw new Error(`mbc build failed (${built.status}):\n${built.stderr}`);
  const bundle = join(out, "node", "mbc-runtime.mjs");
  if (!existsSync(bundle)) throw new Error(`mbc build wrote no ${bundle}:\n${built.stdout}${built.stderr}`);
  anyFreePort(join(out, "node", "system.json"));
  const dataDir = join(root, "data");
  const stateDir = join(root, "state");
  const services = obj(spec.services, "services");
  const sources = obj(spec.sources, "sources");
  // Every process listens: the registry (the embedded one: etcd is outside the system), each
  // source (an http source takes records there, the others serve health and metrics), each
  // instance of a service the runtime runs.
  const backend = (spec.registry as { backend?: unknown } | undefined)?.backend ?? "embedded";
  let listeners = (backend === "embedded" ? 1 : 0) + Object.keys(sources).length;
  for (const s of Object.values(services)) {
    const service = obj(s, "service");
    if (service.handler !== undefined) listeners += instanceCount(service);
  }
  const sys: E2ESystem & { [RUN]: RuntimeChild | null } = {
    [RUN]: null,
    root,
    specDir,
    specPath,
    spec,
    bundle,
    dataDir,
    stateDir,
    listeners,
    get ports() {
      const run = sys[RUN];
      if (run === null) throw new Error("the system is not started: its processes take their ports when they start");
      const reported = portsFromLogs(run.logs());
      // In the spec's order, whatever order the processes started in.
      const ports: Ports = { registry: reported.registry, sources: {}, services: {} };
      for (const name of Object.keys(sources)) if (reported.sources[name] !== undefined) ports.sources[name] = reported.sources[name];
      for (const name of Object.keys(services)) if (reported.services[name] !== undefined) ports.services[name] = reported.services[name];
      return ports;
    },
    sourceUrl(name) {
      const port = sys.ports.sources[name];
      if (port === undefined) throw new Error(`http source ${name} has not reported its port (yet)`);
      const path = obj(sources[name], "source").path;
      return `http://127.0.0.1:${port}${typeof path === "string" ? path : "/records"}`;
    },
    endpoints: () => endpointsOf(sys.ports),
    sinkFile(service) {
      const path = obj(obj(services[service], "service").config, "config").path;
      if (typeof path !== "string") throw new Error(`service ${service} has no config.path`);
      return resolve(dataDir, path);
    },
  };
  return sys;
}

/** The running supervisor of a built system (set by startSystem). */
const RUN = Symbol("run");

/** Sets every port of a built system.json to 0: any free one. */
function anyFreePort(systemPath: string): void {
  const system = JSON.parse(readFileSync(systemPath, "utf8")) as {
    model: { registry: { port: number }; sources: { type: string; port: number | null }[]; services: { port: number; instances: { port: number | null }[] }[] };
  };
  const { model } = system;
  model.registry.port = 0;
  for (const source of model.sources) if (source.type === "http") source.port = 0;
  for (const service of model.services) {
    service.port = 0;
    for (const instance of service.instances) instance.port = 0;
  }
  writeFileSync(systemPath, `${JSON.stringify(system, null, 2)}\n`);
}

/** The ports in a supervisor's "child listening" logs (the last one of each child counts). */
export function portsFromLogs(logs: readonly Record<string, unknown>[]): Ports {
  const ports: Ports = { registry: 0, sources: {}, services: {} };
  for (const l of logs) {
    if (l.role !== "supervisor" || l.msg !== "child listening" || typeof l.child !== "string" || typeof l.port !== "number") continue;
    const id = l.child;
    if (id === "registry") ports.registry = l.port;
    else if (id.startsWith("source:")) ports.sources[id.slice("source:".length)] = l.port;
    else {
      const m = /^service:(.+)\/(\d+)$/.exec(id);
      if (m) {
        const name = m[1] as string;
        const list = ports.services[name] ?? [];
        list[Number(m[2])] = l.port;
        ports.services[name] = list;
      }
    }
  }
  return ports;
}

// ---------------------------------------------------------------------------------------------
// Running it

export interface RunningSystem {
  sys: E2ESystem;
  /** The supervisor process. */
  child: RuntimeChild;
  /** The current pid of each child (`registry`, `source:NAME`, `service:NAME/K`), from the supervisor's logs. */
  childPids(): Record<string, number>;
  /** The supervisor's "child exited: restarting" logs. */
  restarts(): Record<string, unknown>[];
  /** Logs of one process (role and name, and instance for a service). */
  logsOf(role: string, name?: string, instance?: number): Record<string, unknown>[];
}

/**
 * Starts the supervisor of a built system: `node DIR/node/mbc-runtime.mjs` with its data and
 * state in the temp folder. `detached`: in a process group of its own, which a test may SIGKILL
 * as a whole (faults.ts); the children lead groups of their own either way.
 */
export function startSystem(sys: E2ESystem, options: { detached?: boolean } = {}): RunningSystem {
  const child = spawnRuntime(sys.bundle, [], { env: { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir }, detached: options.detached });
  // From now on, sys.ports are this run's.
  (sys as E2ESystem & { [RUN]: RuntimeChild | null })[RUN] = child;
  const supervisorLogs = () => child.logs().filter((l) => l.role === "supervisor");
  return {
    sys,
    child,
    childPids() {
      const out: Record<string, number> = {};
      for (const l of supervisorLogs()) if (l.msg === "child started" && typeof l.child === "string" && typeof l.pid === "number") out[l.child] = l.pid;
      return out;
    },
    restarts: () => supervisorLogs().filter((l) => l.msg === "child exited: restarting"),
    logsOf: (role, name, instance) =>
      child.logs().filter((l) => l.role === role && (name === undefined || l.name === name) && (instance === undefined || l.instance === instance)),
  };
}

/** Waits until every process of the system answers 200 on /readyz; a timeout shows the last lines of `output` (the supervisor's). */
export async function waitReady(
  sys: { endpoints(): { id: string; url: string }[]; readonly listeners?: number },
  output?: RuntimeChild,
  timeoutMs = 60_000,
): Promise<void> {
  const explain = (err: unknown) =>
    output === undefined ? err : new Error(`${(err as Error).message}\nlast lines of the system's output:\n${output.lines.slice(-30).join("\n")}`);
  // A system whose processes take ports of their own choosing: wait until each said which.
  if (sys.listeners !== undefined) {
    const expected = sys.listeners;
    try {
      await waitUntil(() => sys.endpoints().length >= expected, `every process (${expected}) to report its port`, timeoutMs, 50);
    } catch (err) {
      throw explain(err);
    }
  }
  for (const { id, url } of sys.endpoints()) {
    try {
      await waitUntil(
        async () => (await httpJson("GET", `${url}/readyz`, undefined, {}, 1000)).status === 200,
        `${id} to be ready (${url}/readyz)`,
        timeoutMs,
        50,
      );
    } catch (err) {
      throw explain(err);
    }
  }
}

/** The pids of the live processes whose command line contains `marker` (this process excluded). */
export function runtimeProcesses(marker: string): number[] {
  const pids: number[] = [];
  if (existsSync("/proc/self/cmdline")) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      } catch {
        continue; // Gone meanwhile.
      }
      // A zombie's command line is empty: it is dead, only not reaped yet.
      if (cmdline.replaceAll("\0", " ").includes(marker)) pids.push(pid);
    }
    return pids;
  }
  const out = execFileSync("ps", ["-A", "-o", "pid=,args="], { encoding: "utf8" });
  for (const line of out.split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m?.[2]?.includes(marker) && Number(m[1]) !== process.pid) pids.push(Number(m[1]));
  }
  return pids;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  // The process group first (a supervisor's children lead their own), then the process itself.
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, sig);
    } catch {
      // Not a group leader, or gone.
    }
  }
}

/**
 * Kills every process of a system at once: all are stopped (SIGSTOP) before any is killed, so
 * no child drains because its supervisor vanished and no supervisor restarts a child. Waits
 * until none is left; returns the pids it killed.
 */
export async function hardKill(marker: string, timeoutMs = 10_000): Promise<number[]> {
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = runtimeProcesses(marker);
    if (pids.length === 0) return [...killed];
    if (Date.now() > deadline) throw new Error(`processes of ${marker} still alive: ${pids.join(", ")}`);
    for (const pid of pids) signal(pid, "SIGSTOP");
    for (const pid of pids) {
      signal(pid, "SIGKILL");
      killed.add(pid);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills every process of every system made here (afterEach). */
export async function killSystems(): Promise<void> {
  for (const root of systems) await hardKill(root);
}

/** What every end-to-end test ends with (afterEach): loads stopped, systems and children killed. */
export async function stopEverything(): Promise<void> {
  stopLoads();
  await killSystems();
  await killAll();
}

// ---------------------------------------------------------------------------------------------
// Clients

export interface PostAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A network failure of a post: `code` tells a refused connection (nothing was sent) from the rest. */
export class PostError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** POSTs a body over a keep-alive agent; rejects with a PostError when no answer came. */
export function post(
  agent: Agent,
  url: string,
  body: string,
  contentType: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<PostAnswer> {
  return new Promise((resolvePost, reject) => {
    const req = request(
      url,
      { method: "POST", agent, headers: { ...headers, "content-type": contentType, "content-length": Buffer.byteLength(body) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolvePost({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", (err: NodeJS.ErrnoException) => reject(new PostError(err.message, err.code ?? "ERESPONSE")));
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
    req.on("error", (err: NodeJS.ErrnoException) => reject(new PostError(err.message, err.code ?? "EUNKNOWN")));
    req.end(body);
  });
}

/** The record with number n of a load. */
export function record(prefix: string, n: number): { id: string; n: number; note: string } {
  return { id: `${prefix}-${n}`, n, note: "e2e" };
}

export interface Chunk {
  first: number;
  count: number;
  acked: boolean;
  /** Attempts that ended without an answer other than "connection refused": the records may have been logged. */
  ambiguous: number;
  refused503: number;
  /** Posted under an Idempotency-Key (the same for every attempt): a re-post must not store it twice. */
  key?: string;
}

/** The Idempotency-Key of a chunk: the same for every attempt at it. */
export function chunkKey(prefix: string, chunk: { first: number }): string {
  return `${prefix}-${chunk.first}`;
}

/**
 * What a Loader's `url` function throws while there is nowhere to post (the system is being
 * restarted): the attempt is not made, and counts as an outage (with `retryOutages`), not as an
 * attempt that may have been logged.
 */
export class NoUrl extends Error {}

/** The body of a chunk: NDJSON (LF or CRLF, with or without a final newline) or a JSON array, by the chunk's number. */
export function chunkBody(prefix: string, chunk: { first: number; count: number }, k: number): { body: string; contentType: string } {
  const records = Array.from({ length: chunk.count }, (_, j) => record(prefix, chunk.first + j));
  switch (k % 4) {
    case 0:
      return { body: records.map((r) => JSON.stringify(r)).join("\n"), contentType: "application/x-ndjson" };
    case 1:
      return { body: JSON.stringify(records), contentType: "application/json" };
    case 2:
      return { body: `${records.map((r) => JSON.stringify(r)).join("\r\n")}\r\n`, contentType: "application/x-ndjson" };
    default:
      return { body: JSON.stringify(records, null, 1), contentType: "application/json" };
  }
}

export interface LoaderOptions {
  /** Where to post; a function is asked before every post (the system may have restarted on other ports). */
  url: string | (() => string);
  /** Ids are `{prefix}-{n}`, n from 0 to total - 1. */
  prefix: string;
  total: number;
  /** Records per request, cycled through. */
  chunkSizes: number[];
  clients: number;
  /** Paces the clients to this many records per second (default: as fast as answered). */
  ratePerSec?: number;
  /** Keep retrying when the source cannot be reached (it is being restarted); default false: fail. */
  retryOutages?: boolean;
  /** Fail when not done by then (ms from start). */
  timeoutMs: number;
  requestTimeoutMs?: number;
  /**
   * Post every chunk under an Idempotency-Key (`chunkKey`), the same for each attempt: a re-post
   * after an attempt that got no answer is then answered from the source's log. A 409 (the first
   * attempt with the key is still being logged) is retried after its Retry-After.
   */
  idempotencyKeys?: boolean;
  /**
   * Retry a 500 (the source could not log the records, e.g. its disk is full) as an attempt
   * that may have been logged; default false: fail.
   */
  retryServerErrors?: boolean;
}

/** Loads still running: `stopLoads()` (afterEach) stops them when a test failed midway. */
const loads = new Set<{ stop(): void }>();

export function stopLoads(): void {
  for (const load of loads) load.stop();
  loads.clear();
}

/** Closed-loop clients that post every record once acknowledged (see the file's comment). */
export class Loader {
  readonly chunks: Chunk[] = [];
  readonly done: Promise<void>;
  ackedRecords = 0;
  status503 = 0;
  /** 503 answers without a usable Retry-After. */
  missingRetryAfter = 0;
  /** Attempts that got no answer. */
  failures = 0;
  /** Attempts not made because `url` said there was nowhere to post (NoUrl). */
  outages = 0;
  /** 500 answers (retried with retryServerErrors). */
  serverErrors = 0;
  /** 409 answers: a keyed chunk whose first attempt was still being logged. */
  status409 = 0;
  /** 202 answers with `Idempotent-Replayed: true`: a keyed chunk answered from the log. */
  replayed = 0;
  /** Requests sent and not answered yet. */
  inFlight = 0;
  private next = 0;
  private stopped = false;
  private readonly agent: Agent;
  private readonly started = Date.now();

  constructor(private readonly options: LoaderOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: options.clients });
    loads.add(this);
    this.done = Promise.all(Array.from({ length: options.clients }, () => this.client())).then(
      () => {
        loads.delete(this);
        this.agent.destroy();
      },
      (err: unknown) => {
        loads.delete(this);
        this.stopped = true;
        this.agent.destroy();
        throw err;
      },
    );
    // Failures surface through `done`; until someone awaits it they must not be "unhandled".
    this.done.catch(() => undefined);
  }

  /** The ids of the acknowledged records. */
  ackedIds(): Set<string> {
    const ids = new Set<string>();
    for (const c of this.chunks) if (c.acked) for (let n = c.first; n < c.first + c.count; n++) ids.add(`${this.options.prefix}-${n}`);
    return ids;
  }

  /** Stops: no new chunk, no more retries (a chunk being retried stays unacknowledged). */
  stop(): void {
    this.stopped = true;
  }

  private async client(): Promise<void> {
    const { options } = this;
    const deadline = this.started + options.timeoutMs;
    while (!this.stopped && this.next < options.total) {
      const k = this.chunks.length;
      const size = options.chunkSizes[k % options.chunkSizes.length] as number;
      const chunk: Chunk = { first: this.next, count: Math.min(size, options.total - this.next), acked: false, ambiguous: 0, refused503: 0 };
      this.next += chunk.count;
      this.chunks.push(chunk);
      if (options.ratePerSec !== undefined) {
        const due = this.started + (chunk.first / options.ratePerSec) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      const { body, contentType } = chunkBody(options.prefix, chunk, k);
      if (options.idempotencyKeys) chunk.key = chunkKey(options.prefix, chunk);
      const headers: Record<string, string> = chunk.key === undefined ? {} : { "idempotency-key": chunk.key };
      while (!this.stopped) {
        if (Date.now() > deadline)
          throw new Error(`the load was not done within ${options.timeoutMs} ms (${this.ackedRecords} of ${options.total} acknowledged)`);
        let url: string;
        try {
          url = urlOf(options.url);
        } catch (err) {
          // Nowhere to post yet (the system is being restarted, its source has not said where it listens): no attempt was made.
          if (!options.retryOutages) throw err;
          this.outages++;
          await sleep(50);
          continue;
        }
        let answer: PostAnswer;
        this.inFlight++;
        try {
          answer = await post(this.agent, url, body, contentType, options.requestTimeoutMs ?? 30_000, headers);
        } catch (err) {
          this.failures++;
          const code = err instanceof PostError ? err.code : "EUNKNOWN";
          if (code !== "ECONNREFUSED") chunk.ambiguous++;
          if (!options.retryOutages) throw new Error(`posting records failed: ${(err as Error).message} (${code})`);
          await sleep(50);
          continue;
        } finally {
          this.inFlight--;
        }
        if (answer.status === 202) {
          const json = JSON.parse(answer.body) as { accepted: number };
          if (json.accepted !== chunk.count) throw new Error(`202 accepted ${json.accepted} of ${chunk.count} records`);
          if (answer.headers["idempotent-replayed"] === "true") this.replayed++;
          chunk.acked = true;
          this.ackedRecords += chunk.count;
          break;
        }
        if (answer.status === 409 && chunk.key !== undefined) {
          this.status409++;
          const after = Number(answer.headers["retry-after"]);
          await sleep(Number.isFinite(after) && after > 0 ? after * 1000 : 1000);
          continue;
        }
        if (answer.status === 500 && options.retryServerErrors) {
          // The source failed while logging them: some may be in its log.
          this.serverErrors++;
          chunk.ambiguous++;
          await sleep(200);
          continue;
        }
        if (answer.status === 503) {
          this.status503++;
          chunk.refused503++;
          const after = Number(answer.headers["retry-after"]);
          if (!(Number.isFinite(after) && after > 0)) this.missingRetryAfter++;
          await sleep(Number.isFinite(after) && after > 0 ? after * 1000 : 1000);
          continue;
        }
        throw new Error(`unexpected answer ${answer.status}: ${answer.body.slice(0, 300)}`);
      }
    }
  }
}

export interface OpenLoadOptions {
  /** Where to post; a function is asked before every post (the system may have restarted on other ports). */
  url: string | (() => string);
  prefix: string;
  ratePerSec: number;
  durationMs: number;
  /** One request every tickMs (default 50). */
  tickMs?: number;
  /** Ticks are skipped (not offered) while this many requests are unanswered (default 64). */
  maxOutstanding?: number;
  /** Post every chunk under an Idempotency-Key (`chunkKey`). */
  idempotencyKeys?: boolean;
}

/** An open-loop load: a fixed rate offered whatever the answers; refused chunks are dropped. */
export class OpenLoad {
  readonly acked: Chunk[] = [];
  readonly refused: Chunk[] = [];
  readonly errors: string[] = [];
  readonly retryAfter: string[] = [];
  offeredRecords = 0;
  skippedTicks = 0;
  readonly done: Promise<void>;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private stopped = false;

  constructor(options: OpenLoadOptions) {
    loads.add(this);
    this.done = this.run(options).finally(() => loads.delete(this));
    this.done.catch(() => undefined);
  }

  /** Offers nothing more. */
  stop(): void {
    this.stopped = true;
  }

  get ackedRecords(): number {
    return this.acked.reduce((n, c) => n + c.count, 0);
  }

  private async run(options: OpenLoadOptions): Promise<void> {
    const tickMs = options.tickMs ?? 50;
    const maxOutstanding = options.maxOutstanding ?? 64;
    const perTick = Math.round((options.ratePerSec * tickMs) / 1000);
    const started = Date.now();
    const pending = new Set<Promise<void>>();
    let next = 0;
    for (let tick = 0; tick * tickMs < options.durationMs && !this.stopped; tick++) {
      const due = started + tick * tickMs;
      if (due > Date.now()) await sleep(due - Date.now());
      if (pending.size >= maxOutstanding) {
        this.skippedTicks++;
        continue;
      }
      const chunk: Chunk = { first: next, count: perTick, acked: false, ambiguous: 0, refused503: 0 };
      next += perTick;
      this.offeredRecords += perTick;
      const { body, contentType } = chunkBody(options.prefix, chunk, tick);
      if (options.idempotencyKeys) chunk.key = chunkKey(options.prefix, chunk);
      const headers: Record<string, string> = chunk.key === undefined ? {} : { "idempotency-key": chunk.key };
      const p = post(this.agent, urlOf(options.url), body, contentType, 30_000, headers).then(
        (answer) => {
          if (answer.status === 202) {
            chunk.acked = true;
            this.acked.push(chunk);
          } else if (answer.status === 503) {
            chunk.refused503++;
            this.refused.push(chunk);
            this.retryAfter.push(String(answer.headers["retry-after"]));
          } else this.errors.push(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
        },
        (err: unknown) => {
          chunk.ambiguous++;
          this.errors.push(err instanceof Error ? err.message : String(err));
        },
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.all(pending);
    this.agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// What the system stored and says

/** Counts the ids in a JSONL file (missing: empty). `bad` counts lines that are not JSON objects with an id. */
export function readIds(file: string): { ids: Map<string, number>; lines: number; bad: number } {
  const ids = new Map<string, number>();
  let lines = 0;
  let bad = 0;
  if (!existsSync(file)) return { ids, lines, bad };
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line === "") continue;
    lines++;
    try {
      const id = (JSON.parse(line) as { id?: unknown }).id;
      if (typeof id === "string") ids.set(id, (ids.get(id) ?? 0) + 1);
      else bad++;
    } catch {
      bad++;
    }
  }
  return { ids, lines, bad };
}

/**
 * A jsonl sink's batches: its index (`FILE.batches`, one `{key, end, records}` line per stored
 * batch, in the order stored) laid over the data file's lines. Keyed by batch key
 * (`source/…/sink#id`).
 */
export function readSinkBatches(file: string): Map<string, unknown[]> {
  const batches = new Map<string, unknown[]>();
  if (!existsSync(file)) return batches;
  const lines = readFileSync(file, "utf8").split("\n");
  let at = 0;
  for (const text of readFileSync(`${file}.batches`, "utf8").split("\n")) {
    if (text === "") continue;
    const { key, records } = JSON.parse(text) as { key: string; records: number };
    if (batches.has(key)) throw new Error(`${file}.batches names ${key} twice`);
    batches.set(
      key,
      lines.slice(at, at + records).map((l) => JSON.parse(l) as unknown),
    );
    at += records;
  }
  return batches;
}

export interface DeadLetterFile {
  file: string;
  id: string;
  via: string[];
  records: { id: string }[];
  failures: { error: string; service: string | null; attempts: { instance: number | null; kind: string; error: string }[] }[];
}

/** The dead letters of a state folder. */
export function readDeadLetters(stateDir: string): DeadLetterFile[] {
  const dir = join(stateDir, "dead-letter");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json") && !f.startsWith("."))
    .map((f) => ({ file: f, ...(JSON.parse(readFileSync(join(dir, f), "utf8")) as Omit<DeadLetterFile, "file">) }));
}

function urlOf(url: string | (() => string)): string {
  return typeof url === "function" ? url() : url;
}

/** `GET {url}/metrics` as text. */
export async function scrape(url: string): Promise<string> {
  const res = await httpJson("GET", `${url}/metrics`, undefined, {}, 5000);
  if (res.status !== 200) throw new Error(`${url}/metrics answered ${res.status}`);
  return res.text;
}

/** The sum of the samples of metric `name` whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[l[1] as string] = l[2] as string;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** A process's resident memory in bytes (/proc VmRSS, else ps), or null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    if (existsSync("/proc/self/status")) {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : null;
    }
    const kb = Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }).trim());
    return Number.isFinite(kb) && kb > 0 ? kb * 1024 : null;
  } catch {
    return null;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
