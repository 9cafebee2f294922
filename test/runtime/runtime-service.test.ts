import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Model } from "../../src/model/types.js";
import { resolveEnv } from "../../src/runtime/config/index.js";
import type { Discovery, Dispatcher, InstanceEndpoint, SystemFile, WireBatch } from "../../src/runtime/core/contracts.js";
import { createHttpClient, createRouter, type HttpClient, type RunningServer, startServer } from "../../src/runtime/core/http.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { createDispatcher } from "../../src/runtime/dispatch/index.js";
import { type RunningRole, startRole } from "../../src/runtime/process/index.js";
import { createDiscovery } from "../../src/runtime/registry/embedded/discovery.js";
import { createRegistryRole } from "../../src/runtime/registry/embedded/server.js";
import type { StageHandler } from "../../src/runtime/service/handlers.js";
import { createServiceRole, type ServiceMetrics, type ServiceRole, serviceRole } from "../../src/runtime/service/index.js";
import { validateText } from "../../src/validate/index.js";
import { cleanupAll, freePorts, makeSystem, waitUntil } from "../helpers/runtime.js";

let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "mbc-service-"));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

afterAll(() => cleanupAll());

function modelOf(services: Record<string, Record<string, unknown>>): Model {
  const first = Object.keys(services)[0] as string;
  const spec = { mbc: 1, name: "t", sources: { in: { type: "generator", rate: 10, to: first } }, services };
  const { diagnostics, model } = validateText("spec.json", JSON.stringify(spec));
  expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  if (model === null) throw new Error("no model");
  return model;
}

class FakeDiscovery implements Discovery {
  readonly live = new Map<string, InstanceEndpoint[]>();
  instances(service: string): readonly InstanceEndpoint[] {
    return this.live.get(service) ?? [];
  }
  async waitFor(): Promise<void> {}
  close(): void {}
}

/** A dispatcher for a stage with no `to`: never called. */
const noDispatch: Dispatcher = {
  send: () => Promise.reject(new Error("a sink sends nothing")),
  close() {},
};

function recordingMetrics() {
  const batches: string[] = [];
  let recordsIn = 0;
  let recordsOut = 0;
  let depth = 0;
  let maxDepth = 0;
  const metrics: ServiceMetrics = {
    recordsIn: (n) => {
      recordsIn += n;
    },
    recordsOut: (n) => {
      recordsOut += n;
    },
    batch: (outcome) => batches.push(outcome),
    queueDepth: (n) => {
      depth = n;
      maxDepth = Math.max(maxDepth, n);
    },
  };
  return { metrics, batches, totals: () => ({ recordsIn, recordsOut, depth, maxDepth }) };
}

interface Running {
  role: ServiceRole;
  server: RunningServer;
  url: string;
}

/** Starts a service instance role behind a real HTTP server on an ephemeral port. */
async function serve(role: ServiceRole): Promise<Running> {
  const server = await startServer(createRouter(role.routes, { log: silentLogger, isDraining: role.isDraining }), "127.0.0.1", 0);
  cleanups.push(() => server.close(100));
  return { role, server, url: `http://127.0.0.1:${server.port}` };
}

function client(): HttpClient {
  const c = createHttpClient();
  cleanups.push(() => c.close());
  return c;
}

async function post(
  c: HttpClient,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown; headers: Record<string, unknown> }> {
  const res = await c.request(
    "POST",
    `${url}/batch`,
    typeof body === "string" ? { body, headers: { "content-type": "application/json", ...headers } } : { json: body, headers },
  );
  return { status: res.status, json: JSON.parse(res.body.toString("utf8")) as unknown, headers: res.headers };
}

/** A handler whose batches wait until released (to hold batches in flight). */
function gatedHandler(): StageHandler & { release(): void; started: number } {
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const h = {
    description: "gated",
    started: 0,
    async run(batch: { records: unknown[] }) {
      h.started++;
      await gate;
      return batch.records;
    },
    async close() {},
    release() {
      open();
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
    },
  };
  return h;
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const system = (model: Model, handlers: Record<string, string> = {}): SystemFile => ({ mbc: 1, model, handlers });

// ---------------------------------------------------------------------------------------------

describe("the service instance role", () => {
  it("runs the handler, passes the result down to a jsonl sink, answers 200 once stored; a re-sent batch is stored once", async () => {
    const model = modelOf({
      enrich: { handler: "builtin:passthrough", to: "store", retry: { interval: "1ms", jitter: "none" } },
      store: { handler: "builtin:jsonl-sink", config: { path: "out/store.jsonl" } },
    });
    const env = { systemDir: dir, dataDir: dir };
    const storeModel = model.services.find((s) => s.name === "store");
    const enrichModel = model.services.find((s) => s.name === "enrich");
    if (storeModel === undefined || enrichModel === undefined) throw new Error("model");

    const sinkMetrics = recordingMetrics();
    const sink = await serve(
      createServiceRole({
        system: system(model),
        env,
        service: storeModel,
        instance: 0,
        dispatcher: noDispatch,
        log: silentLogger,
        metrics: sinkMetrics.metrics,
      }),
    );
    await sink.role.start();

    const discovery = new FakeDiscovery();
    discovery.live.set("store", [{ service: "store", instance: 0, url: sink.url, weight: 1, capacityPerSec: null }]);
    const dispatcher = createDispatcher({ services: model.services, discovery, log: silentLogger });
    cleanups.push(() => dispatcher.close());
    const enrichMetrics = recordingMetrics();
    const enrich = await serve(
      createServiceRole({ system: system(model), env, service: enrichModel, instance: 0, dispatcher, log: silentLogger, metrics: enrichMetrics.metrics }),
    );
    await enrich.role.start();
    expect(enrich.role.isReady()).toBe(true);

    const c = client();
    const batch: WireBatch = { id: "in-100", via: ["in"], records: [{ n: 1 }, { n: 2 }] };
    expect(await post(c, enrich.url, batch)).toMatchObject({ status: 200, json: { ok: true } });
    const file = join(dir, "out", "store.jsonl");
    expect(readFileSync(file, "utf8")).toBe('{"n":1}\n{"n":2}\n');
    const index = readFileSync(`${file}.batches`, "utf8");
    expect(index).toContain('"key":"in/enrich/store#in-100"');

    // The source re-sends it after a restart: answered 200, not stored again.
    expect((await post(c, enrich.url, batch)).status).toBe(200);
    expect(readFileSync(file, "utf8")).toBe('{"n":1}\n{"n":2}\n');

    expect(enrichMetrics.batches).toEqual(["ok", "ok"]);
    expect(enrichMetrics.totals()).toMatchObject({ recordsIn: 4, recordsOut: 4, depth: 0 });
    expect(sinkMetrics.totals()).toMatchObject({ recordsIn: 4, recordsOut: 4 });

    // Draining closes the sink's files.
    await sink.role.drain(Date.now() + 1000);
    await enrich.role.drain(Date.now() + 1000);
    expect(enrich.role.isReady()).toBe(false);
  });

  it("hands a jsonl sink the records' texts as they came, checked but not parsed, and refuses a bad body as before", async () => {
    const model = modelOf({ store: { handler: "builtin:jsonl-sink", config: { path: "out/texts.jsonl" } } });
    const storeModel = model.services[0];
    if (storeModel === undefined) throw new Error("model");
    const metrics = recordingMetrics();
    const sink = await serve(
      createServiceRole({
        system: system(model),
        env: { systemDir: dir, dataDir: dir },
        service: storeModel,
        instance: 0,
        dispatcher: noDispatch,
        log: silentLogger,
        metrics: metrics.metrics,
      }),
    );
    await sink.role.start();
    const c = client();
    const file = join(dir, "out", "texts.jsonl");

    // Members in any order, white space, an extra member; a record over two lines is put on one.
    const body = '{ "via": ["in"], "records": [ {"n": 1} , {"a":\n [1, "]"]}, "\\"" ], "extra": {"x": [1]}, "id": "in-7" }';
    expect(await post(c, sink.url, body)).toMatchObject({ status: 200, json: { ok: true } });
    expect(readFileSync(file, "utf8")).toBe('{"n": 1}\n{"a":[1,"]"]}\n"\\""\n');
    expect(readFileSync(`${file}.batches`, "utf8")).toContain('"key":"in/store#in-7"');
    expect(await post(c, sink.url, body)).toMatchObject({ status: 200 });
    expect(readFileSync(file, "utf8").split("\n")).toHaveLength(4);
    expect(metrics.totals()).toMatchObject({ recordsIn: 6, recordsOut: 6 });

    for (const [bad, reason] of [
      ['{"id":"x","via":["in"],"records":[1,]}', /not JSON/],
      ['{"id":"x","via":["in"]}', /`records` must be an array/],
      ['{"id":"x","via":["in"],"records":{"0":1}}', /`records` must be an array/],
      ['{"id":"","via":["in"],"records":[1]}', /`id` must be a non-empty string/],
      ['{"id":"x","via":"in","records":[1]}', /`via` must be an array/],
      ['{"id":"x","via":["in"],"records":[1]} x', /not JSON/],
      ["[1]", /must be a JSON object/],
    ] as const) {
      const answer = await post(c, sink.url, bad);
      expect({ bad, status: answer.status }).toEqual({ bad, status: 400 });
      expect((answer.json as { error: string }).error).toMatch(reason);
    }
    expect(readFileSync(file, "utf8").split("\n")).toHaveLength(4);
    await sink.role.drain(Date.now() + 1000);
  });

  it("answers 400 for a malformed body and 500 with the error when the handler or the downstream service fails", async () => {
    const model = modelOf({
      first: { handler: "builtin:passthrough", to: "second" },
      // The target's own policy governs the attempts sent to it.
      second: { handler: "builtin:passthrough", retry: { interval: "1ms", jitter: "none", maxRetries: 1 } },
    });
    const env = { systemDir: dir, dataDir: dir };
    const [firstModel, secondModel] = model.services;
    if (firstModel === undefined || secondModel === undefined) throw new Error("model");
    const failing: StageHandler = {
      description: "failing",
      run: async (b) => {
        throw new Error(`cannot store ${b.id}`);
      },
      close: async () => {},
    };
    const second = await serve(
      createServiceRole({ system: system(model), env, service: secondModel, instance: 0, dispatcher: noDispatch, log: silentLogger, handler: failing }),
    );
    await second.role.start();
    const discovery = new FakeDiscovery();
    discovery.live.set("second", [{ service: "second", instance: 0, url: second.url, weight: 1, capacityPerSec: null }]);
    const dispatcher = createDispatcher({ services: model.services, discovery, log: silentLogger });
    cleanups.push(() => dispatcher.close());
    const metrics = recordingMetrics();
    const first = await serve(
      createServiceRole({ system: system(model), env, service: firstModel, instance: 0, dispatcher, log: silentLogger, metrics: metrics.metrics }),
    );
    await first.role.start();

    const c = client();
    const notJson = await post(c, first.url, "{nope");
    expect(notJson.status).toBe(400);
    expect((notJson.json as { error: string }).error).toMatch(/not JSON/);
    const noRecords = await post(c, first.url, { id: "x", via: ["in"] });
    expect(noRecords).toMatchObject({ status: 400, json: { error: "`records` must be an array" } });

    // The downstream handler fails every batch: as no batch gets through, that is not poison but
    // a stage that cannot work now, and the caller is told so.
    const failed = await post(c, first.url, { id: "in-5", via: ["in"], records: [1] });
    expect(failed.status).toBe(503);
    expect(failed.headers["mbc-failure"]).toBe("unavailable");
    expect((failed.json as { error: string }).error).toMatch(
      /^second: unavailable after 2 attempts; last: poison on instance 0: HTTP 500: .*cannot store in-5$/,
    );
    expect(metrics.batches).toEqual(["error"]);

    // An empty result goes nowhere: nothing to store downstream.
    const empty = await serve(
      createServiceRole({
        system: system(model),
        env,
        service: firstModel,
        instance: 1,
        dispatcher,
        log: silentLogger,
        handler: { description: "drop", run: async () => [], close: async () => {} },
      }),
    );
    await empty.role.start();
    expect((await post(c, empty.url, { id: "in-6", via: ["in"], records: [1] })).status).toBe(200);
  });

  it("answers each failure with its class: a system error is unavailable, anything else poison, no time left a timeout", async () => {
    const model = modelOf({ only: { handler: "builtin:passthrough" } });
    const onlyModel = model.services[0];
    if (onlyModel === undefined) throw new Error("model");
    const env = { systemDir: dir, dataDir: dir };
    let seenTimeLeft: number | null = null;
    const handler: StageHandler = {
      description: "picky",
      run: async (b) => {
        const first = b.records[0] as string;
        if (first === "disk") throw Object.assign(new Error("write failed"), { code: "ENOSPC" });
        if (first === "db") throw new Error("query failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
        if (first === "flaky") throw Object.assign(new Error("try later"), { retryable: true });
        if (first === "bad") throw new Error("record 7 has no id");
        seenTimeLeft = 1;
        return b.records;
      },
      close: async () => {},
    };
    const only = await serve(
      createServiceRole({ system: system(model), env, service: onlyModel, instance: 0, dispatcher: noDispatch, log: silentLogger, handler }),
    );
    await only.role.start();
    const c = client();
    const answer = async (record: string, headers: Record<string, string> = {}) => {
      const r = await post(c, only.url, { id: `in-${record}`, via: ["in"], records: [record] }, headers);
      return [r.status, r.headers["mbc-failure"] ?? null];
    };
    expect(await answer("disk")).toEqual([503, "unavailable"]);
    expect(await answer("db")).toEqual([503, "unavailable"]);
    expect(await answer("flaky")).toEqual([503, "unavailable"]);
    expect(await answer("bad")).toEqual([500, "poison"]);
    expect(await answer("fine")).toEqual([200, null]);
    expect(await answer("fine", { "mbc-time-left": "5000" })).toEqual([200, null]);
    seenTimeLeft = null;
    // No time left: answered at once, the handler not run.
    expect(await answer("fine", { "mbc-time-left": "0" })).toEqual([504, "timeout"]);
    expect(seenTimeLeft).toBeNull();
  });

  it("loads a module handler from the system folder and passes its output on", async () => {
    mkdirSync(join(dir, "handlers"));
    writeFileSync(
      join(dir, "handlers", "double.mjs"),
      'export default async (records, ctx) => records.map((r) => ({ v: r.v * 2, by: ctx.service + "/" + ctx.instance }));',
    );
    const model = modelOf({ double: { handler: "builtin:passthrough", to: "next" }, next: { handler: "builtin:passthrough" } });
    const doubleModel = {
      ...(model.services[0] as (typeof model.services)[number]),
      handler: { kind: "module" as const, path: "handlers/double.mjs", outside: false },
    };
    const sent: WireBatch[] = [];
    const capture: Dispatcher = {
      send: async (to, b) => {
        expect(to).toEqual(["next"]);
        if ("texts" in b) throw new Error("a service sends values");
        sent.push(b);
      },
      close() {},
    };
    const role = createServiceRole({
      system: system(model, { double: "handlers/double.mjs" }),
      env: { systemDir: dir, dataDir: dir },
      service: doubleModel,
      instance: 2,
      dispatcher: capture,
      log: silentLogger,
    });
    await expect(role.handleBatch({ id: "in-1", via: ["in"], records: [] })).rejects.toMatchObject({ status: 503 });
    await role.start();
    expect(await role.handleBatch({ id: "in-1", via: ["in"], records: [{ v: 1 }, { v: 5 }] })).toEqual({ status: 200, json: { ok: true } });
    expect(sent).toEqual([
      {
        id: "in-1",
        via: ["in", "double"],
        records: [
          { v: 2, by: "double/2" },
          { v: 10, by: "double/2" },
        ],
      },
    ]);
  });

  it("limits concurrent batches, answers 503 with Retry-After when the line is full", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough" } });
    const gated = gatedHandler();
    const metrics = recordingMetrics();
    const role = createServiceRole({
      system: system(model),
      env: { systemDir: dir, dataDir: dir },
      service: model.services[0] as (typeof model.services)[number],
      instance: 0,
      dispatcher: noDispatch,
      log: silentLogger,
      handler: gated,
      metrics: metrics.metrics,
      concurrency: 1,
      queue: 1,
    });
    const running = await serve(role);
    await role.start();
    const c = client();
    const a = post(c, running.url, { id: "a", via: ["in"], records: [1] });
    await until(() => gated.started === 1);
    const b = post(c, running.url, { id: "b", via: ["in"], records: [1] });
    await until(() => role.inFlight() === 2);
    const refused = await post(c, running.url, { id: "c", via: ["in"], records: [1] });
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect((refused.json as { error: string }).error).toMatch(/busy/);
    gated.release();
    await until(() => gated.started === 2);
    gated.release();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    expect(metrics.batches.sort()).toEqual(["ok", "ok", "rejected"]);
    expect(metrics.totals()).toMatchObject({ maxDepth: 2, depth: 0 });
  });

  it("drains: refuses new and waiting batches, lets running ones finish, gives up at the deadline", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough" } });
    const gated = gatedHandler();
    let closed = false;
    const handler: StageHandler = {
      ...gated,
      run: (b) => gated.run(b),
      close: async () => {
        closed = true;
      },
    };
    const role = createServiceRole({
      system: system(model),
      env: { systemDir: dir, dataDir: dir },
      service: model.services[0] as (typeof model.services)[number],
      instance: 0,
      dispatcher: noDispatch,
      log: silentLogger,
      handler,
      concurrency: 1,
      queue: 4,
    });
    await role.start();
    const running = role.handleBatch({ id: "a", via: ["in"], records: [1] });
    await until(() => gated.started === 1);
    const waiting = role.handleBatch({ id: "b", via: ["in"], records: [1] });
    const drained = role.drain(Date.now() + 10_000);
    await expect(waiting).rejects.toMatchObject({ status: 503 });
    await expect(role.handleBatch({ id: "c", via: ["in"], records: [1] })).rejects.toMatchObject({ status: 503 });
    expect(closed).toBe(false);
    gated.release();
    await drained;
    expect((await running).status).toBe(200);
    expect(closed).toBe(true);

    // A batch that never finishes: drain returns at its deadline.
    const stuck = gatedHandler();
    const role2 = createServiceRole({
      system: system(model),
      env: { systemDir: dir, dataDir: dir },
      service: model.services[0] as (typeof model.services)[number],
      instance: 0,
      dispatcher: noDispatch,
      log: silentLogger,
      handler: stuck,
    });
    await role2.start();
    const never = role2.handleBatch({ id: "z", via: ["in"], records: [] });
    await until(() => stuck.started === 1);
    const t0 = Date.now();
    await role2.drain(Date.now() + 150);
    // The configured deadline × 2 + 1 s: late only if the machine stalls for a second.
    expect(Date.now() - t0).toBeLessThan(150 * 2 + 1000);
    expect(role2.inFlight()).toBe(1);
    stuck.release();
    expect((await never).status).toBe(200);
  });
});

describe("the service role under the process scaffolding", () => {
  it("registers, finds its downstream through the registry, and stores batches once across two sink instances", async () => {
    const port = await freePorts(4);
    const sys = makeSystem(
      `mbc: 1
name: svc-test
registry:
  port: ${port}
  heartbeat: 100ms
  ttl: 2s
sources:
  in:
    type: generator
    rate: 10
    to: enrich
services:
  enrich:
    handler: ./handlers/stamp.mjs
    port: ${port + 1}
    to: store
  store:
    handler: builtin:jsonl-sink
    config:
      path: out/store.jsonl
    instances: 2
    port: ${port + 2}
`,
      { "handlers/stamp.mjs": "export default (records, ctx) => records.map((r) => ({ ...r, by: ctx.service }));" },
    );
    const env = resolveEnv(sys.systemPath, sys.model, {});
    const roles: RunningRole[] = [];
    cleanups.push(async () => {
      for (const r of roles.reverse()) await r.shutdown("test over");
    });
    const start = async (spec: Parameters<typeof startRole>[0]["spec"], factory: Parameters<typeof startRole>[0]["factory"]) => {
      const identity = spec.kind === "service" ? { role: "service" as const, service: spec.name, instance: spec.instance } : { role: "registry" as const };
      const running = await startRole({
        env,
        system: sys.system,
        spec,
        factory,
        log: silentLogger,
        metrics: createMetrics(identity, { defaultMetrics: false }),
      });
      roles.push(running);
      return running;
    };
    const service = (name: string) => {
      const s = sys.model.services.find((x) => x.name === name);
      if (s === undefined) throw new Error(name);
      return s;
    };
    await start({ kind: "registry" }, createRegistryRole);
    const stores = [await start({ kind: "service", name: "store", instance: 0, service: service("store") }, serviceRole)];
    stores.push(await start({ kind: "service", name: "store", instance: 1, service: service("store") }, serviceRole));
    const enrich = await start({ kind: "service", name: "enrich", instance: 0, service: service("enrich") }, serviceRole);
    await waitUntil(() => enrich.readiness().ready, "enrich to see both store instances", 10_000);

    // What a source does: discover enrich through the registry and send it batches.
    const discovery = createDiscovery({ registryUrl: env.registryUrl, token: null, intervalMs: 100, log: silentLogger });
    cleanups.push(() => discovery.close());
    await discovery.waitFor(["enrich"], 5000);
    const dispatcher = createDispatcher({ services: sys.model.services, discovery, log: silentLogger });
    cleanups.push(() => dispatcher.close());
    const batches = Array.from(
      { length: 10 },
      (_, i): WireBatch => ({ id: `in-${i * 3}`, via: ["in"], records: [{ seq: i * 3 }, { seq: i * 3 + 1 }, { seq: i * 3 + 2 }] }),
    );
    for (const b of batches) await dispatcher.send(["enrich"], b);
    // Re-sent after a pretend restart of the source: no duplicates.
    await dispatcher.send(["enrich"], batches[0] as WireBatch);

    const lines = readFileSync(join(sys.dir, "out", "store.jsonl"), "utf8")
      .trimEnd()
      .split("\n");
    expect(lines.map((l) => JSON.parse(l) as { seq: number; by: string })).toEqual(Array.from({ length: 30 }, (_, seq) => ({ seq, by: "enrich" })));
    // Both sink instances took batches (round-robin), into the one shared file.
    for (const s of stores) expect(await s.metrics.render()).toMatch(/mbc_records_in_total\{service="store",instance="\d"\} ([1-9]\d*)/);
    expect(await enrich.metrics.render()).toMatch(/mbc_attempts_total\{[^}]*to="store"[^}]*outcome="ok"[^}]*\} [1-9]/);
  });
});
