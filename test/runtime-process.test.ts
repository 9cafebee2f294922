import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RUNTIME_ENV_VARS } from "../bench/lib.mjs";
import {
  checkSystem,
  drainBudgetMs,
  listenPort,
  loadSystem,
  parseArgs,
  RuntimeConfigError,
  resolveEnv,
  resolveRole,
  urlHost,
  worstCaseMs,
} from "../src/runtime/env.js";
import {
  createHttpClient,
  createRouter,
  DEFAULT_BODY_LIMIT,
  HttpClientError,
  HttpError,
  type Route,
  type RunningServer,
  startServer,
} from "../src/runtime/http.js";
import { createLogger, formatLine, silentLogger } from "../src/runtime/log.js";
import { createMetrics } from "../src/runtime/metrics.js";
import { heartbeatDelayMs, type RunningRole, startRole } from "../src/runtime/process.js";
import { createRegistryRole } from "../src/runtime/registry.js";
import {
  type Bundle,
  bundleEntry,
  cleanupAll,
  FAKE_ROLE_ENTRY,
  freePorts,
  httpJson,
  killAll,
  makeSystem,
  repoRoot,
  type SystemDir,
  spawnRuntime,
  tempDir,
  waitUntil,
} from "./helpers/runtime.js";

function spec(port: number, registry = "heartbeat: 100ms\n  ttl: 10s"): string {
  return `mbc: 1
name: proc-test
registry:
  port: ${port}
  ${registry}
sources:
  in:
    type: http
    port: ${port + 1}
    to: work
services:
  work:
    handler: builtin:passthrough
    instances:
      - weight: 2
        capacity: 100/s
      - weight: 1
    port: ${port + 2}
    timeout: 1s
    retry:
      maxRetries: 2
      interval: 100ms
      multiplier: 2
    to: sink
  sink:
    handler: builtin:jsonl-sink
    config:
      path: ./out.jsonl
    port: ${port + 4}
    timeout: 500ms
    retry:
      maxRetries: 1
      interval: 200ms
    env:
      GREETING: hello
    resources:
      memory: 256Mi
`;
}

afterAll(() => cleanupAll());

/** The value of the sample of `name` whose labels are exactly `labels` (in any order); null when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | null {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) found[pair[1] as string] = pair[2] as string;
    const keys = Object.keys(labels);
    if (Object.keys(found).length === keys.length && keys.every((k) => found[k] === labels[k])) return Number(match[3]);
  }
  return null;
}

describe("arguments and environment", () => {
  it("parses roles", () => {
    expect(parseArgs([])).toEqual({ role: null, name: null, instance: null });
    expect(parseArgs(["--role", "registry"])).toEqual({ role: "registry", name: null, instance: null });
    expect(parseArgs(["--role=source", "--name", "in"])).toEqual({ role: "source", name: "in", instance: null });
    expect(parseArgs(["--role", "service", "--name=work", "--instance", "1"])).toEqual({ role: "service", name: "work", instance: 1 });
  });

  it.each([
    [["--role", "nope"], /unknown role "nope"/],
    [["--role"], /--role needs a value/],
    [["--role", "source"], /needs --name/],
    [["--name", "x"], /need --role/],
    [["--role", "registry", "--name", "x"], /takes no --name/],
    [["--role", "source", "--name", "x", "--instance", "1"], /only for --role service/],
    [["--role", "service", "--name", "x", "--instance", "-1"], /--instance needs a value|non-negative/],
    [["--role", "service", "--name", "x", "--instance", "one"], /non-negative integer/],
    [["--verbose"], /unknown argument/],
    [["--role", "registry", "--role", "registry"], /twice/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(RuntimeConfigError);
    expect(() => parseArgs(argv)).toThrow(message);
  });

  it("checks the role against the model", () => {
    const system = makeSystem(spec(7400));
    const { model } = system;
    expect(resolveRole(parseArgs(["--role", "service", "--name", "work", "--instance", "1"]), model)).toMatchObject({
      kind: "service",
      name: "work",
      instance: 1,
    });
    expect(resolveRole(parseArgs(["--role", "service", "--name", "sink"]), model)).toMatchObject({ kind: "service", instance: 0 });
    expect(resolveRole(parseArgs(["--role", "source", "--name", "in"]), model)).toMatchObject({ kind: "source", name: "in" });
    expect(() => resolveRole(parseArgs(["--role", "service", "--name", "wrok"]), model)).toThrow(/unknown service "wrok": expected one of work, sink/);
    expect(() => resolveRole(parseArgs(["--role", "service", "--name", "work", "--instance", "2"]), model)).toThrow(/has 2 instance\(s\)/);
    expect(() => resolveRole(parseArgs(["--role", "source", "--name", "out"]), model)).toThrow(/unknown source "out"/);
  });

  it("the children of tests and benchmarks are started without any variable the runtime reads", () => {
    const read = new Set<string>();
    for (const file of ["env.ts", "supervisor.ts", "process.ts"]) {
      const text = readFileSync(join(repoRoot, "src", "runtime", file), "utf8");
      for (const m of text.matchAll(/variable\(vars, "(MBC_[A-Z_]+)"\)/g)) read.add(m[1] as string);
    }
    expect(read.size).toBeGreaterThanOrEqual(8);
    expect([...read].filter((v) => !RUNTIME_ENV_VARS.includes(v))).toEqual([]);
  });

  it("listens on MBC_PORT when the spec gives the process no port, and refuses one that contradicts it", () => {
    const system = makeSystem(`mbc: 1
name: port-test
sources:
  ticks: { type: generator, rate: 10/s, to: sink }
  in: { type: http, port: 8080, to: sink }
services:
  sink: { handler: builtin:passthrough, port: 9100 }
`);
    const model = system.model;
    const role = (args: Parameters<typeof resolveRole>[0]) => resolveRole(args, model);
    const ticks = role({ role: "source", name: "ticks", instance: null });
    expect(listenPort(model, ticks)).toBe(0);
    expect(listenPort(model, ticks, 9300)).toBe(9300);
    const http = role({ role: "source", name: "in", instance: null });
    expect(listenPort(model, http)).toBe(8080);
    expect(listenPort(model, http, 8080)).toBe(8080);
    expect(() => listenPort(model, http, 9300)).toThrow(RuntimeConfigError);
    const sink = role({ role: "service", name: "sink", instance: 0 });
    expect(() => listenPort(model, sink, 9300)).toThrow(/port 9100/);
    expect(listenPort(model, role({ role: null, name: null, instance: null }), 9300)).toBe(0);
    system.cleanup();
  });

  it("resolves the environment with its defaults and overrides", () => {
    const system = makeSystem(spec(7400));
    const env = resolveEnv(system.systemPath, system.model, {});
    expect(env).toEqual({
      systemDir: system.dir,
      dataDir: system.dir,
      stateDir: join(system.dir, ".mbc/state/proc-test"),
      registryUrl: "http://127.0.0.1:7400",
      bind: "127.0.0.1",
      advertiseHost: "127.0.0.1",
      token: null,
      port: null,
    });
    const custom = resolveEnv(system.systemPath, system.model, {
      MBC_DATA_DIR: "data",
      MBC_STATE_DIR: "/var/lib/x",
      MBC_REGISTRY_URL: "http://registry:7400/",
      MBC_BIND: "0.0.0.0",
      MBC_TOKEN: "t",
      MBC_PORT: "9300",
    });
    expect(custom).toMatchObject({
      port: 9300,
      dataDir: join(system.dir, "data"),
      stateDir: "/var/lib/x",
      registryUrl: "http://registry:7400",
      bind: "0.0.0.0",
      advertiseHost: "127.0.0.1",
      token: "t",
    });
    expect(resolveEnv(system.systemPath, system.model, { MBC_BIND: "::", MBC_ADVERTISE_HOST: "enrich-1", MBC_TOKEN: "" })).toMatchObject({
      advertiseHost: "enrich-1",
      token: null,
    });
    expect(() => resolveEnv(system.systemPath, system.model, { MBC_REGISTRY_URL: "registry:7400" })).toThrow(/http/);
    expect(() => resolveEnv(system.systemPath, system.model, { MBC_REGISTRY_URL: "not a url" })).toThrow(/not a URL/);
    for (const bad of ["0", "65536", "80x", "-1", "1e3"])
      expect(() => resolveEnv(system.systemPath, system.model, { MBC_PORT: bad })).toThrow(RuntimeConfigError);
    expect(urlHost("::1")).toBe("[::1]");
    expect(urlHost("10.0.0.1")).toBe("10.0.0.1");
  });

  it("reads system.json and says what is wrong with a bad one", () => {
    const system = makeSystem(spec(7400));
    expect(loadSystem(system.systemPath).model.name).toBe("proc-test");
    expect(() => loadSystem(join(system.dir, "missing.json"))).toThrow(/cannot read system file .*missing\.json: no such file/);
    const bad = join(system.dir, "bad.json");
    writeFileSync(bad, "{");
    expect(() => loadSystem(bad)).toThrow(/not valid JSON/);
    expect(() => checkSystem([], "x")).toThrow(/not a JSON object/);
    expect(() => checkSystem({ mbc: 2, model: {}, handlers: {} }, "x")).toThrow(/mbc: expected 1/);

    const broken = structuredClone(system.system) as unknown as {
      model: { services: Record<string, unknown>[]; registry: Record<string, unknown> };
      handlers: Record<string, unknown>;
    };
    (broken.model.services[0] as Record<string, unknown>).to = ["nowhere"];
    broken.model.registry.ttlMs = "3s";
    broken.handlers.work = "../../etc/evil.mjs";
    const message = (() => {
      try {
        checkSystem(broken, "system.json");
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toMatch(/model\.registry\.ttlMs: expected a number/);
    expect(message).toMatch(/model\.services\[0\]\.to: no service "nowhere"/);
    expect(message).toMatch(/handlers\.work: must be a path inside the system's folder/);

    const moduleHandler = structuredClone(system.system);
    (moduleHandler.model.services[0] as { handler: unknown }).handler = { kind: "module", path: "handlers/x.mjs", outside: false };
    expect(() => checkSystem(moduleHandler, "system.json")).toThrow(/handlers\.work: missing/);
  });

  it("computes worst cases and drain budgets", () => {
    const { model } = makeSystem(spec(7400));
    const work = model.services[0];
    const sink = model.services[1];
    const source = model.sources[0];
    if (!work || !sink || !source) throw new Error("the model is missing a stage");
    // 1 s × 3 attempts + waits 100 ms and 200 ms.
    expect(worstCaseMs(work)).toBe(3300);
    // 500 ms × 2 + 200 ms.
    expect(worstCaseMs(sink)).toBe(1200);
    expect(drainBudgetMs(model, { kind: "source", name: "in", source })).toBe(3300);
    expect(drainBudgetMs(model, { kind: "service", name: "work", instance: 0, service: work })).toBe(1000 + 1200);
    // A sink has nothing downstream: its own timeout, at least 1 s.
    expect(drainBudgetMs(model, { kind: "service", name: "sink", instance: 0, service: sink })).toBe(1000);
    expect(drainBudgetMs(model, { kind: "registry" })).toBe(1000);
    const slow = { ...work, timeoutMs: 60_000 };
    expect(drainBudgetMs({ ...model, services: [slow, sink] }, { kind: "source", name: "in", source })).toBe(30_000);
  });

  it("retries heartbeats quickly at first, never slower than one heartbeat", () => {
    expect(heartbeatDelayMs(1000, 0)).toBe(1000);
    expect([1, 2, 3, 4, 5, 6].map((f) => heartbeatDelayMs(1000, f))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(heartbeatDelayMs(50, 1)).toBe(50);
    expect(heartbeatDelayMs(1000, 500)).toBe(1000);
  });
});

describe("logs and metrics", () => {
  it("writes one JSON object a line with the process's fields first", () => {
    const lines: string[] = [];
    const log = createLogger({ role: "service", name: "work", instance: 1 }, { write: (l) => lines.push(l), now: () => 0 });
    log.child({ batch: "in-1" }).warn("slow", { ms: 5 });
    const err = Object.assign(new Error("nope"), { code: "EX" });
    log.error("failed", { error: err });
    expect(lines[0]).toBe(
      '{"time":"1970-01-01T00:00:00.000Z","level":"warn","role":"service","name":"work","instance":1,"batch":"in-1","msg":"slow","ms":5}\n',
    );
    const second = JSON.parse(lines[1] as string);
    expect(second.error).toMatchObject({ name: "Error", message: "nope", code: "EX" });
    expect(second.error.stack).toMatch(/nope/);
  });

  it("never throws on fields JSON cannot hold, and drops lines below the level", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const line = JSON.parse(formatLine(0, "info", { role: "x" }, "m", { cyclic, big: 1n }));
    expect(line).toMatchObject({ msg: "m", logError: expect.stringMatching(/not serialisable/) });
    expect(JSON.parse(formatLine(0, "info", {}, "m", { big: 10n })).big).toBe("10");
    const lines: string[] = [];
    const log = createLogger({}, { write: (l) => lines.push(l), level: "warn" });
    log.info("dropped");
    log.warn("kept");
    expect(lines.length).toBe(1);
  });

  it("labels every series with the process's identity", async () => {
    const metrics = createMetrics({ role: "service", service: "work", instance: 1 }, { defaultMetrics: false });
    metrics.recordsIn(10);
    metrics.recordsOut(8);
    metrics.batch("ok", 0.02);
    metrics.batch("error", 1.5);
    metrics.attempt("sink", 0, "timeout", 0.5);
    metrics.retry("sink");
    metrics.budgetRefusal("sink");
    metrics.deadLetter();
    metrics.queueDepth(3);
    // Garbage in costs a sample, never an exception.
    metrics.recordsIn(-1);
    metrics.recordsIn(Number.NaN);
    metrics.batch("ok", Number.NaN);
    const text = await metrics.render();
    const me = { service: "work", instance: "1" };
    expect(sample(text, "mbc_records_in_total", me)).toBe(10);
    expect(sample(text, "mbc_records_out_total", me)).toBe(8);
    expect(sample(text, "mbc_batches_total", { ...me, outcome: "ok" })).toBe(2);
    expect(sample(text, "mbc_batch_duration_seconds_bucket", { ...me, outcome: "error", le: "2.5" })).toBe(1);
    expect(sample(text, "mbc_batch_duration_seconds_bucket", { ...me, outcome: "error", le: "1" })).toBe(0);
    expect(sample(text, "mbc_attempts_total", { ...me, to: "sink", to_instance: "0", outcome: "timeout" })).toBe(1);
    expect(sample(text, "mbc_attempt_duration_seconds_count", { ...me, to: "sink", to_instance: "0" })).toBe(1);
    expect(sample(text, "mbc_retries_total", { ...me, to: "sink" })).toBe(1);
    expect(sample(text, "mbc_retry_budget_refusals_total", { ...me, to: "sink" })).toBe(1);
    expect(sample(text, "mbc_dead_letters_total", me)).toBe(1);
    expect(sample(text, "mbc_queue_depth", me)).toBe(3);
    const source = createMetrics({ role: "source", source: "in" });
    source.recordsIn(1);
    const sourceText = await source.render();
    expect(sourceText).toMatch(/mbc_records_in_total\{source="in"\} 1/);
    expect(sourceText).toMatch(/process_cpu_seconds_total\{source="in"\}/);
  });
});

describe("the HTTP router and client", () => {
  let server: RunningServer;
  let base: string;
  let draining = false;
  const client = createHttpClient();

  beforeAll(async () => {
    const routes: Route[] = [
      {
        method: "POST",
        path: "/echo/:name",
        handle: async (req) => ({ status: 200, json: { name: req.params.name, body: await req.json(), q: req.query.get("q") } }),
      },
      { method: "POST", path: "/small", bodyLimit: 10, handle: async (req) => ({ status: 200, json: { size: (await req.body()).length } }) },
      { method: "GET", path: "/teapot", handle: () => Promise.reject(new HttpError(418, "short and stout", { "x-why": "tea" })) },
      {
        method: "GET",
        path: "/boom",
        handle: () => {
          throw new Error("kaput");
        },
      },
      { method: "GET", path: "/slow", handle: () => new Promise((resolve) => setTimeout(() => resolve({ status: 200, text: "late" }), 500)) },
      { method: "GET", path: "/open", whileDraining: true, handle: () => ({ status: 204 }) },
    ];
    server = await startServer(createRouter(routes, { log: silentLogger, isDraining: () => draining }), "127.0.0.1", 0);
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    client.close();
    await server.close(0);
  });

  it("matches methods and paths and decodes params", async () => {
    const res = await client.request("POST", `${base}/echo/a%20b?q=1`, { json: { x: [1] } });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ name: "a b", body: { x: [1] }, q: "1" });
    expect((await client.request("GET", `${base}/nope`)).status).toBe(404);
    const wrong = await client.request("GET", `${base}/echo/x`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe("POST");
    expect((await client.request("POST", `${base}/echo/%E0%A4%A`, { json: {} })).status).toBe(400);
  });

  it("answers 400 for bad JSON, 413 over the limit, an HttpError's status, 500 for a throw", async () => {
    const bad = await client.request("POST", `${base}/echo/x`, { body: "{nope" });
    expect(bad.status).toBe(400);
    expect((bad.json() as { error: string }).error).toMatch(/not JSON/);
    expect((await client.request("POST", `${base}/small`, { body: "0123456789" })).json()).toEqual({ size: 10 });
    const big = await client.request("POST", `${base}/small`, { body: "01234567890" });
    expect(big.status).toBe(413);
    expect(big.headers.connection).toBe("close");
    expect((await client.request("POST", `${base}/echo/x`, { body: Buffer.alloc(DEFAULT_BODY_LIMIT + 1, 32) })).status).toBe(413);
    const tea = await client.request("GET", `${base}/teapot`);
    expect(tea.status).toBe(418);
    expect(tea.headers["x-why"]).toBe("tea");
    expect(tea.json()).toEqual({ error: "short and stout" });
    const boom = await client.request("GET", `${base}/boom`);
    expect(boom.status).toBe(500);
    expect(boom.json()).toEqual({ error: "kaput" });
  });

  it("answers 503 with Retry-After while draining, except routes served while draining", async () => {
    draining = true;
    try {
      const res = await client.request("POST", `${base}/echo/x`, { json: {} });
      expect(res.status).toBe(503);
      expect(res.headers["retry-after"]).toBe("1");
      expect((await client.request("GET", `${base}/open`)).status).toBe(204);
    } finally {
      draining = false;
    }
  });

  it("classifies client failures: timeout, connect, aborted", async () => {
    const timeout = await client.request("GET", `${base}/slow`, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(HttpClientError);
    expect((timeout as HttpClientError).kind).toBe("timeout");
    const closedPort = await freePorts(1);
    const refused = await client.request("GET", `http://127.0.0.1:${closedPort}/`).catch((e: unknown) => e);
    expect((refused as HttpClientError).kind).toBe("connect");
    expect((refused as HttpClientError).code).toBe("ECONNREFUSED");
    const controller = new AbortController();
    const pending = client.request("GET", `${base}/slow`, { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    expect(((await pending) as HttpClientError).kind).toBe("aborted");
    // The pool still works afterwards.
    expect((await client.request("GET", `${base}/slow`)).body.toString()).toBe("late");
  });
});

describe("a role process", () => {
  let bundle: Bundle;
  let registry: RunningRole | null = null;
  let system: SystemDir;
  let port: number;

  beforeAll(async () => {
    bundle = await bundleEntry({ contents: FAKE_ROLE_ENTRY }, "fake-role");
  });
  afterEach(async () => {
    await killAll();
    await registry?.shutdown("test over");
    registry = null;
  });

  async function setup(registrySettings?: string, startRegistry = true) {
    port = await freePorts(6);
    system = makeSystem(spec(port, registrySettings));
    if (startRegistry) await launchRegistry();
  }

  async function launchRegistry() {
    registry = await startRole({
      env: resolveEnv(system.systemPath, system.model, {}),
      system: system.system,
      spec: { kind: "registry" },
      factory: createRegistryRole,
      log: silentLogger,
      metrics: createMetrics({ role: "registry" }, { defaultMetrics: false }),
    });
  }

  const listed = async (service: string) =>
    ((await httpJson("GET", `http://127.0.0.1:${port}/v1/instances/${service}`)).json as { instances: { instance: number; url: string }[] }).instances;

  it("serves health, readiness and metrics, registers, and on SIGTERM deregisters, drains and exits 0", async () => {
    await setup();
    const drained = join(tempDir(), "drained.txt");
    const child = spawnRuntime(bundle.file, ["--role", "service", "--name", "sink"], { env: { MBC_SYSTEM: system.systemPath, FAKE_DRAIN_FILE: drained } });
    const started = await child.waitForLog((l) => l.msg === "fake started", "the role to start");
    expect(started).toMatchObject({ role: "service", name: "sink", instance: 0, level: "info", port: port + 4, url: `http://127.0.0.1:${port + 4}` });
    await waitUntil(async () => (await listed("sink")).length === 1, "the instance to register");
    expect((await listed("sink"))[0]).toMatchObject({ instance: 0, url: `http://127.0.0.1:${port + 4}` });

    const base = `http://127.0.0.1:${port + 4}`;
    expect((await httpJson("GET", `${base}/healthz`)).status).toBe(200);
    await waitUntil(async () => (await httpJson("GET", `${base}/readyz`)).status === 200, "readiness");
    const metrics = await httpJson("GET", `${base}/metrics`);
    expect(metrics.headers.get("content-type")).toMatch(/text\/plain/);
    expect(metrics.text).toMatch(/# TYPE mbc_batches_total counter/);
    expect(metrics.text).toMatch(/nodejs_heap_size_used_bytes\{service="sink",instance="0"\}/);
    expect((await httpJson("POST", `${base}/batch`, { id: "in-1", via: ["in"], records: [] })).json).toMatchObject({ ok: true });

    child.kill("SIGTERM");
    expect(await child.waitForExit()).toEqual({ code: 0, signal: null });
    expect(readFileSync(drained, "utf8")).toBe(`sink/0 ${child.pid}\n`);
    // Deregistered, not expired: the ttl is 10 s.
    expect(await listed("sink")).toEqual([]);
    const messages = child.logs().map((l) => l.msg);
    expect(messages).toEqual(expect.arrayContaining(["registered", "shutting down: draining", "deregistered", "fake drain", "stopped"]));
    expect(messages.indexOf("deregistered")).toBeLessThan(messages.indexOf("fake drain"));
  });

  it("answers 503 to new work while draining, but stays healthy", async () => {
    await setup();
    const child = spawnRuntime(bundle.file, ["--role", "service", "--name", "work", "--instance", "1"], {
      env: { MBC_SYSTEM: system.systemPath, FAKE_DRAIN_MS: "1500" },
    });
    await child.waitForLog((l) => l.msg === "registered", "registration");
    const base = `http://127.0.0.1:${port + 3}`;
    child.kill("SIGTERM");
    await child.waitForLog((l) => l.msg === "fake drain", "the drain to begin");
    const refused = await httpJson("POST", `${base}/batch`, { id: "in-1", via: ["in"], records: [] });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await httpJson("GET", `${base}/healthz`)).status).toBe(200);
    const ready = await httpJson("GET", `${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ ready: false, reasons: expect.arrayContaining(["draining"]) });
    expect((await child.waitForExit()).code).toBe(0);
  });

  it("is ready only once its downstream service has a live instance", async () => {
    await setup();
    const child = spawnRuntime(bundle.file, ["--role", "source", "--name", "in"], { env: { MBC_SYSTEM: system.systemPath } });
    await child.waitForLog((l) => l.msg === "fake started", "the source to start");
    const base = `http://127.0.0.1:${port + 1}`;
    const notReady = await httpJson("GET", `${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.json).toEqual({ ready: false, reasons: ["no live instance of work"] });
    await httpJson("PUT", `http://127.0.0.1:${port}/v1/instances/work/0`, { url: "http://127.0.0.1:1" });
    await waitUntil(async () => (await httpJson("GET", `${base}/readyz`)).status === 200, "readiness once work has an instance", 5000);
    child.kill("SIGINT");
    expect((await child.waitForExit()).code).toBe(0);
  });

  it("keeps heartbeating while the registry is down and registers once it is up", async () => {
    await setup("heartbeat: 100ms\n  ttl: 1s", false);
    const child = spawnRuntime(bundle.file, ["--role", "service", "--name", "sink"], { env: { MBC_SYSTEM: system.systemPath } });
    await child.waitForLog((l) => l.msg === "heartbeat failed: retrying", "a failed heartbeat");
    const ready = await httpJson("GET", `http://127.0.0.1:${port + 4}/readyz`);
    expect(ready.json).toMatchObject({ reasons: ["not registered with the registry"] });
    await launchRegistry();
    await child.waitForLog((l) => l.msg === "registered", "registration once the registry is up", 5000);
    await waitUntil(async () => (await listed("sink")).length === 1, "the instance listed");
    // One warning for the outage, not one a retry.
    expect(child.logs().filter((l) => l.msg === "heartbeat failed: retrying").length).toBe(1);
    child.kill("SIGTERM");
    expect((await child.waitForExit()).code).toBe(0);
  });

  it("exits 1 on an uncaught exception and on an unhandled rejection, with the error logged", async () => {
    await setup();
    for (const [path, msg] of [
      ["/crash", "uncaught exception: exiting"],
      ["/reject", "unhandled rejection: exiting"],
    ] as const) {
      const child = spawnRuntime(bundle.file, ["--role", "service", "--name", "sink"], { env: { MBC_SYSTEM: system.systemPath } });
      await child.waitForLog((l) => l.msg === "fake started", "start");
      await httpJson("POST", `http://127.0.0.1:${port + 4}${path}`, {}).catch(() => null);
      expect((await child.waitForExit()).code).toBe(1);
      const line = child.logs().find((l) => l.msg === msg);
      expect(line).toMatchObject({ level: "error", role: "service", name: "sink" });
      expect(JSON.stringify(line)).toMatch(/boom/);
    }
  });

  it("exits 2 with a clear message on a configuration problem, and 1 when its port is taken", async () => {
    await setup();
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--role", "service", "--name", "nope"], { MBC_SYSTEM: system.systemPath }, /unknown service "nope"/],
      [["--role", "service", "--name", "work", "--instance", "5"], { MBC_SYSTEM: system.systemPath }, /has 2 instance/],
      [["--role", "bogus"], { MBC_SYSTEM: system.systemPath }, /unknown role/],
      [["--role", "registry"], { MBC_SYSTEM: join(system.dir, "absent.json") }, /cannot read system file/],
    ];
    for (const [args, env, message] of cases) {
      const child = spawnRuntime(bundle.file, args, { env });
      expect((await child.waitForExit()).code).toBe(2);
      const line = child.logs().find((l) => l.level === "error");
      expect(String(line?.msg)).toMatch(message);
    }
    // The registry (in-process) holds the registry port: a second registry cannot listen.
    const second = spawnRuntime(bundle.file, ["--role", "registry"], { env: { MBC_SYSTEM: system.systemPath } });
    expect((await second.waitForExit()).code).toBe(1);
    expect(JSON.stringify(second.logs())).toMatch(/address is in use/);
  });

  it("finds system.json beside the entry when MBC_SYSTEM is not set", async () => {
    await setup();
    const besides = join(bundle.dir, "system.json");
    writeFileSync(besides, readFileSync(system.systemPath));
    try {
      const child = spawnRuntime(bundle.file, ["--role", "source", "--name", "in"]);
      await child.waitForLog((l) => l.msg === "fake started", "start with the system beside the bundle");
      child.kill("SIGTERM");
      expect((await child.waitForExit()).code).toBe(0);
    } finally {
      rmSync(besides, { force: true });
    }
  });
});
