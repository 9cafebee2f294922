import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RUNTIME_ENV_VARS } from "../../bench/lib.mjs";
import { configuredPort, drainBudgetMs, worstCaseMs } from "../../src/policy/index.js";
import { checkSystem, listenPort, loadSystem, parseArgs, RuntimeConfigError, resolveEnv, resolveRole, urlHost } from "../../src/runtime/config/index.js";
import { createLogger, formatLine, limitRepeats } from "../../src/runtime/core/log.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { heartbeatDelayMs } from "../../src/runtime/registry/embedded/registrar.js";
import { isStartedMessage } from "../../src/runtime/supervisor/index.js";
import { cleanupAll, makeSystem, repoRoot } from "../helpers/runtime.js";
import { processSpec } from "../helpers/specs.js";

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
    const system = makeSystem(processSpec(7400));
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
    const runtime = join(repoRoot, "src", "runtime");
    for (const file of readdirSync(runtime, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"))) {
      const text = readFileSync(join(runtime, file), "utf8");
      for (const m of text.matchAll(/variable(?:Set)?\(vars, "(MBC_[A-Z_]+)"\)/g)) read.add(m[1] as string);
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

    // A system.json may give port 0 (any free one): then MBC_PORT, which the supervisor sets to
    // take the same port again after a restart, else 0.
    const anyPort = {
      ...model,
      registry: { ...model.registry, port: 0 },
      services: model.services.map((s) => ({ ...s, port: 0, instances: s.instances.map((i) => ({ ...i, port: 0 })) })),
    };
    expect(listenPort(anyPort, { kind: "registry" })).toBe(0);
    expect(listenPort(anyPort, { kind: "registry" }, 9400)).toBe(9400);
    const anySink = resolveRole({ role: "service", name: "sink", instance: 0 }, anyPort);
    if (anySink.kind !== "service" || ticks.kind !== "source" || http.kind !== "source") throw new Error("roles resolved wrongly");
    expect(configuredPort(anyPort, anySink)).toBe(0);
    expect(listenPort(anyPort, anySink, 9401)).toBe(9401);
    expect(configuredPort(model, ticks)).toBeNull();
    expect(configuredPort(model, http)).toBe(8080);
    system.cleanup();
  });

  it("checks the message a child sends its supervisor once it listens", () => {
    expect(isStartedMessage({ type: "mbc:started", port: 9100, url: "http://127.0.0.1:9100" })).toBe(true);
    for (const bad of [
      null,
      "x",
      { type: "mbc:started", port: 0, url: "u" },
      { type: "mbc:started", port: 70_000, url: "u" },
      { type: "other", port: 1, url: "u" },
      { type: "mbc:started", port: 1.5, url: "u" },
    ]) {
      expect(isStartedMessage(bad)).toBe(false);
    }
  });

  it("resolves the environment with its defaults and overrides", () => {
    const system = makeSystem(processSpec(7400));
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
      namespace: "proc-test",
    });
    const custom = resolveEnv(system.systemPath, system.model, {
      MBC_DATA_DIR: "data",
      MBC_STATE_DIR: "/var/lib/x",
      MBC_REGISTRY_URL: "http://registry:7400/",
      MBC_BIND: "0.0.0.0",
      MBC_TOKEN: "t",
      MBC_PORT: "9300",
      MBC_NAMESPACE: "shop-staging",
    });
    expect(custom).toMatchObject({
      port: 9300,
      namespace: "shop-staging",
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
    const system = makeSystem(processSpec(7400));
    expect(loadSystem(system.systemPath).model.name).toBe("proc-test");
    expect(() => loadSystem(join(system.dir, "missing.json"))).toThrow(/cannot read system file .*missing\.json: no such file/);
    const bad = join(system.dir, "bad.json");
    writeFileSync(bad, "{");
    expect(() => loadSystem(bad)).toThrow(/not valid JSON/);
    expect(() => checkSystem([], "x")).toThrow(/not a JSON object/);
    expect(() => checkSystem({ mbc: 2, model: {}, handlers: {} }, "x")).toThrow(/mbc: expected 1/);

    const messageOf = (value: unknown) => {
      try {
        checkSystem(value, "system.json");
        return "";
      } catch (err) {
        expect(err).toBeInstanceOf(RuntimeConfigError);
        return (err as Error).message;
      }
    };
    // The shape first: every field the schema finds wrong, in one message.
    const broken = structuredClone(system.system) as unknown as {
      model: { services: Record<string, unknown>[]; registry: Record<string, unknown> };
      handlers: Record<string, unknown>;
    };
    broken.model.registry.ttlMs = "3s";
    (broken.model.services[0] as Record<string, unknown>).timeoutMs = -1;
    broken.handlers.work = 7;
    const shape = messageOf(broken);
    expect(shape).toMatch(/^system file system\.json is invalid: /);
    expect(shape).toMatch(/model\.registry\.ttlMs: expected a number/);
    expect(shape).toMatch(/model\.services\[0\]\.timeoutMs: expected a number ≥ 0/);
    expect(shape).toMatch(/handlers\.work: expected a string/);

    // Then what a schema cannot say, on a file of the right shape.
    const dangling = structuredClone(system.system);
    (dangling.model.services[0] as { to: string[] }).to = ["nowhere"];
    dangling.handlers.work = "../../etc/evil.mjs";
    const references = messageOf(dangling);
    expect(references).toMatch(/model\.services\[0\]\.to: no service "nowhere"/);
    expect(references).toMatch(/handlers\.work: must be a path inside the system's folder/);

    const moduleHandler = structuredClone(system.system);
    (moduleHandler.model.services[0] as { handler: unknown }).handler = { kind: "module", path: "handlers/x.mjs", outside: false };
    expect(() => checkSystem(moduleHandler, "system.json")).toThrow(/handlers\.work: missing/);
  });

  it("computes worst cases and drain budgets", () => {
    const { model } = makeSystem(processSpec(7400));
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

  it("a repeat-limited logger writes a repeated line a few times a window and says how many it left out", () => {
    const lines: string[] = [];
    let t = 0;
    const base = createLogger({ role: "service" }, { write: (l) => lines.push(l), now: () => t });
    const log = limitRepeats(base, { now: () => t, burst: 3, intervalMs: 1000 });
    const parsed = () => lines.map((l) => JSON.parse(l));
    for (let i = 0; i < 10; i++) log.child({ batch: `b${i}` }).warn("attempt failed", { i });
    log.warn("another line");
    for (let i = 0; i < 5; i++) log.info("child listening", { i });
    for (let i = 0; i < 5; i++) log.error("batch failed", { i });
    expect(parsed().map((l) => [l.level, l.msg, l.i ?? null])).toEqual([
      ["warn", "attempt failed", 0],
      ["warn", "attempt failed", 1],
      ["warn", "attempt failed", 2],
      ["warn", "another line", null],
      ...[0, 1, 2, 3, 4].map((i) => ["info", "child listening", i]),
      ...[0, 1, 2].map((i) => ["error", "batch failed", i]),
    ]);
    expect(parsed()[1].batch).toBe("b1");
    t = 999;
    log.warn("attempt failed", { i: 10 });
    expect(lines.length).toBe(12);
    t = 1000;
    log.warn("attempt failed", { i: 11 });
    expect(parsed().at(-1)).toMatchObject({ msg: "attempt failed", i: 11, suppressed: 8 });
    log.warn("attempt failed", { i: 12 });
    expect(parsed().at(-1)).toMatchObject({ i: 12 });
    expect(parsed().at(-1).suppressed).toBeUndefined();
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
