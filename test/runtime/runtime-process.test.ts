import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resolveEnv } from "../../src/runtime/config/index.js";
import {
  createHttpClient,
  createRouter,
  DEFAULT_BODY_LIMIT,
  HttpClientError,
  HttpError,
  type Route,
  type RunningServer,
  startServer,
} from "../../src/runtime/core/http.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { type RunningRole, startRole } from "../../src/runtime/process/index.js";
import { createRegistryRole } from "../../src/runtime/registry/embedded/server.js";
import {
  type Bundle,
  bundleEntry,
  cleanupAll,
  FAKE_ROLE_ENTRY,
  freePorts,
  httpJson,
  killAll,
  makeSystem,
  type SystemDir,
  spawnRuntime,
  tempDir,
  waitUntil,
} from "../helpers/runtime.js";
import { processSpec } from "../helpers/specs.js";

afterAll(() => cleanupAll());

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
    system = makeSystem(processSpec(port, registrySettings));
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
    const started = await child.waitForLog((l) => l.msg === "started", "the role to start");
    expect(started).toMatchObject({ role: "service", name: "sink", instance: 0, level: "info", port: port + 4, url: `http://127.0.0.1:${port + 4}` });
    // The role started before the process listened, and it registered after.
    const messages0 = child.logs().map((l) => l.msg);
    expect(messages0.indexOf("fake started")).toBeLessThan(messages0.indexOf("started"));
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
    expect(readFileSync(drained, "utf8")).toBe(`sink/0 ${child.pid} drain\n`);
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
    await child.waitForLog((l) => l.msg === "started", "the source to start");
    const base = `http://127.0.0.1:${port + 1}`;
    const notReady = await httpJson("GET", `${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.json).toEqual({ ready: false, reasons: ["no live instance of work"] });
    // Its own state is fine: only what it needs of others is missing.
    expect(await httpJson("GET", `${base}/readyz?scope=self`)).toMatchObject({ status: 200, json: { ready: true } });
    expect((await httpJson("GET", `${base}/readyz?scope=everything`)).status).toBe(400);
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
      await child.waitForLog((l) => l.msg === "started", "start");
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
