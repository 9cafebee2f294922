import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resolveEnv } from "../../src/runtime/config/index.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { type SupervisorEvent, type SupervisorHandle, startSupervisor } from "../../src/runtime/supervisor/index.js";
import {
  alive,
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
import { supervisedSpec } from "../helpers/specs.js";

afterAll(() => cleanupAll());

describe("a supervised system", () => {
  let bundle: Bundle;
  let system: SystemDir;
  let port: number;
  let handle: SupervisorHandle | null = null;
  let events: SupervisorEvent[];
  let lines: { line: string; id: string }[];

  beforeAll(async () => {
    bundle = await bundleEntry({ contents: FAKE_ROLE_ENTRY }, "fake-role");
  });
  afterEach(async () => {
    await handle?.stop();
    handle = null;
    await killAll();
  });

  async function start(
    vars: Record<string, string> = {},
    tuning: { stableMs?: number; killGraceMs?: number; startTimeoutMs?: number } = {},
  ): Promise<SupervisorHandle> {
    port = await freePorts(6);
    system = makeSystem(supervisedSpec(port));
    events = [];
    lines = [];
    const env = resolveEnv(system.systemPath, system.model, {});
    const childVars: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "NODE_OPTIONS") childVars[k] = v;
    handle = await startSupervisor({
      entry: bundle.file,
      env,
      model: system.model,
      systemPath: system.systemPath,
      vars: { ...childVars, ...vars },
      log: silentLogger,
      onStatus: (e) => events.push(e),
      onLog: (line, id) => lines.push({ line, id }),
      ...tuning,
    });
    return handle;
  }

  const registered = async () => {
    const res = await httpJson("GET", `http://127.0.0.1:${port}/v1/instances`);
    return (res.json as { instances: { service: string; instance: number }[] }).instances.map((i) => `${i.service}/${i.instance}`).join(",");
  };
  const allRegistered = () => waitUntil(async () => (await registered()) === "sink/0,work/0,work/1", "every instance to register", 15_000);
  const startedLogs = () =>
    lines.flatMap(({ line }) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      return parsed.msg === "fake started" ? [parsed] : [];
    });

  it("runs one child per role, passes the environment and forwards logs; stop() drains all in order", async () => {
    const drained = join(tempDir(), "drained.txt");
    const sup = await start({ FAKE_DRAIN_FILE: drained });
    expect((await sup.started).ready).toBe(true);
    await allRegistered();
    expect(startedLogs()).toHaveLength(4);
    const pids = sup.pids();
    expect(Object.keys(pids).sort()).toEqual(["registry", "service:sink/0", "service:work/0", "service:work/1", "source:in"]);
    expect(new Set(Object.values(pids)).size).toBe(5);
    expect(sup.children().every((c) => c.state === "running" && c.restarts === 0)).toBe(true);

    // The service's env and memory limit reach its process, and only its process.
    const sink = startedLogs().find((l) => l.id === "sink/0");
    expect(sink).toMatchObject({ greeting: "hello", execArgv: ["--max-old-space-size=192"] });
    expect(startedLogs().find((l) => l.id === "work/0")).toMatchObject({ greeting: null, execArgv: [] });
    // Plain output is wrapped into a JSON line naming the child.
    await waitUntil(() => lines.some(({ line }) => line.includes("plain output from in")), "the source's plain output");
    const plain = lines.find(({ line }) => line.includes("plain output from in"));
    expect(JSON.parse(plain?.line ?? "{}")).toMatchObject({ role: "supervisor", child: "source:in", stream: "stdout", msg: "plain output from in" });
    expect((await httpJson("GET", `http://127.0.0.1:${port + 1}/healthz`)).status).toBe(200);

    const result = await sup.stop();
    expect(result).toEqual({ clean: true });
    for (const pid of Object.values(pids)) expect(alive(pid)).toBe(false);
    const order = readFileSync(drained, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" ")[0]);
    // Sources first, then services from upstream to downstream (the registry is not a fake role).
    expect(order.slice(0, 1)).toEqual(["in"]);
    expect(order.slice(1, 3).sort()).toEqual(["work/0", "work/1"]);
    expect(order.slice(3)).toEqual(["sink/0"]);
    expect(events.filter((e) => e.type === "exit").every((e) => e.type === "exit" && e.expected && e.code === 0)).toBe(true);
    expect(events.at(-1)).toEqual({ type: "stopped", clean: true });
  });

  it("starts each stage once the one below it is ready: registry, sink, work, source", async () => {
    const sup = await start();
    expect(await sup.started).toEqual({ ready: true, notReady: [] });
    const order = events.flatMap((e) => (e.type === "spawn" || e.type === "ready" ? [`${e.type} ${e.id}`] : []));
    expect(order).toEqual([
      "spawn registry",
      "ready registry",
      "spawn service:sink/0",
      "ready service:sink/0",
      // One stage: started together, in either order of readiness.
      ...order.slice(4, 8),
      "spawn source:in",
      "ready source:in",
    ]);
    expect(order.slice(4, 6).sort()).toEqual(["spawn service:work/0", "spawn service:work/1"]);
    expect(order.slice(6, 8).sort()).toEqual(["ready service:work/0", "ready service:work/1"]);
    expect(events.at(-1)).toEqual({ type: "started", ready: true });
    // Ready means registered: by the time the source starts, every instance is listed.
    expect(await registered()).toBe("sink/0,work/0,work/1");
    expect((await sup.stop()).clean).toBe(true);
  });

  it("gives up on a child that does not become ready, says why, and starts the stages above it anyway", async () => {
    const sup = await start({ FAKE_HANG_START: "sink/0", FAKE_NOT_READY: "work/1" }, { startTimeoutMs: 1500 });
    const outcome = await sup.started;
    expect(outcome.ready).toBe(false);
    expect(Object.fromEntries(outcome.notReady.map((n) => [n.id, n.reason]))).toEqual({
      "service:sink/0": expect.stringMatching(/not ready within 1500 ms: it has not started listening/),
      "service:work/1": expect.stringMatching(/not ready within 1500 ms: its \/readyz\?scope=self answered 503: fake: never ready/),
    });
    expect(events.filter((e) => e.type === "not-ready").map((e) => e.type === "not-ready" && e.id)).toEqual(["service:sink/0", "service:work/1"]);
    // Not stopped, not blocking: the source runs, and the stuck child is still there.
    expect(events.some((e) => e.type === "ready" && e.id === "source:in")).toBe(true);
    expect(sup.children().every((c) => c.state === "running")).toBe(true);
    // The one still starting stops at once on SIGTERM (nothing acknowledged yet): a clean stop.
    expect(await sup.stop()).toEqual({ clean: true });
    expect(events.find((e) => e.type === "exit" && e.id === "service:sink/0")).toMatchObject({ code: 0, expected: true });
  });

  it("gives up on a child that crashes at every start without waiting for the timeout, and keeps restarting it", async () => {
    const began = Date.now();
    const sup = await start({ FAKE_CRASH_ALWAYS: "sink/0" }, { startTimeoutMs: 60_000 });
    const outcome = await sup.started;
    expect(Date.now() - began).toBeLessThan(60_000);
    expect(outcome.notReady).toEqual([{ id: "service:sink/0", reason: expect.stringMatching(/exited 3 times before it was ready \(last exit code 3\)/) }]);
    expect(events.some((e) => e.type === "ready" && e.id === "source:in")).toBe(true);
    const restarts = () => sup.children().find((c) => c.id === "service:sink/0")?.restarts ?? 0;
    const after = restarts();
    await waitUntil(() => restarts() > after, "the crashing child to be restarted again");
    await sup.stop();
  });

  it("restarts a child that exits with an error, with its backoff", async () => {
    const crashDir = tempDir();
    const sup = await start({ FAKE_CRASH_ONCE_DIR: crashDir });
    await waitUntil(() => sup.children().filter((c) => c.restarts >= 1).length === 4, "every fake role to crash once and restart", 15_000);
    await allRegistered();
    await waitUntil(() => startedLogs().length === 8, "every fake role to start twice");
    const crashes = events.filter((e): e is Extract<SupervisorEvent, { type: "exit" }> => e.type === "exit");
    expect(crashes.map((e) => e.code)).toEqual([3, 3, 3, 3]);
    expect(crashes.every((e) => !e.expected)).toBe(true);
    const restarts = events.filter((e): e is Extract<SupervisorEvent, { type: "restart" }> => e.type === "restart");
    expect(Object.fromEntries(restarts.map((e) => [e.id, e.delayMs]))).toEqual({
      "service:sink/0": 150,
      "service:work/0": 100,
      "service:work/1": 100,
      "source:in": 100,
    });
    const status = sup.children().find((c) => c.id === "service:sink/0");
    expect(status).toMatchObject({ restarts: 1, lastExit: { code: 3, signal: null } });
    const stopped = await sup.stop();
    expect(events.filter((e) => e.type === "exit").slice(4)).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: "source:in", code: 0, expected: true })]),
    );
    expect(stopped.clean).toBe(true);
  });

  it("brings back a child killed with SIGKILL, which registers again", async () => {
    const sup = await start({}, { stableMs: 100 });
    await allRegistered();
    const before = sup.pids()["service:work/1"] as number;
    process.kill(before, "SIGKILL");
    await waitUntil(() => {
      const pid = sup.pids()["service:work/1"];
      return pid !== undefined && pid !== before;
    }, "a new work/1 process");
    const exit = events.find((e) => e.type === "exit" && e.id === "service:work/1");
    expect(exit).toMatchObject({ pid: before, code: null, signal: "SIGKILL", expected: false });
    // It registers again (the old registration might linger up to the ttl; the url is the same either way).
    await waitUntil(async () => startedLogs().filter((l) => l.id === "work/1").length === 2, "the restarted work/1 to start");
    await allRegistered();
    await waitUntil(async () => (await httpJson("GET", `http://127.0.0.1:${port + 3}/readyz`)).status === 200, "the restarted work/1 to be ready");
    expect((await sup.stop()).clean).toBe(true);
  });

  it("kills a child that does not drain in time and reports an unclean stop", async () => {
    // The source's drain budget is 1 s; with 0.2 s of grace it is killed before it would give up by itself.
    const sup = await start({ FAKE_DRAIN_MS: "60000" }, { killGraceMs: 200 });
    // Listening, so that each drains (one told to stop while starting would just exit).
    expect((await sup.started).ready).toBe(true);
    const result = await sup.stop();
    expect(result.clean).toBe(false);
    expect(events.find((e) => e.type === "exit" && e.id === "source:in")).toMatchObject({ signal: "SIGKILL", expected: true });
    for (const pid of Object.values(sup.pids())) expect(alive(pid)).toBe(false);
    expect(sup.children().every((c) => c.state === "stopped")).toBe(true);
  }, 60_000);

  it("runs as the process's main: SIGTERM drains every child and exits 0", async () => {
    port = await freePorts(6);
    system = makeSystem(supervisedSpec(port));
    const drained = join(tempDir(), "drained.txt");
    const supervisor = spawnRuntime(bundle.file, [], { env: { MBC_SYSTEM: system.systemPath, FAKE_DRAIN_FILE: drained } });
    await allRegistered();
    await supervisor.waitForLog((l) => l.msg === "system ready", "every child to be ready");
    supervisor.kill("SIGTERM");
    expect(await supervisor.waitForExit(30_000)).toEqual({ code: 0, signal: null });
    expect(readFileSync(drained, "utf8").trim().split("\n").length).toBe(4);
    const childPids = supervisor.logs().flatMap((l) => (l.msg === "child started" ? [l.pid as number] : []));
    expect(childPids.length).toBe(5);
    for (const pid of childPids) expect(alive(pid)).toBe(false);
    expect(supervisor.logs().some((l) => l.msg === "system stopped" && l.clean === true)).toBe(true);
  }, 60_000);

  it("children halt and exit by themselves when the supervisor dies", async () => {
    port = await freePorts(6);
    system = makeSystem(supervisedSpec(port));
    const drained = join(tempDir(), "drained.txt");
    const supervisor = spawnRuntime(bundle.file, [], { env: { MBC_SYSTEM: system.systemPath, FAKE_DRAIN_FILE: drained } });
    await allRegistered();
    await supervisor.waitForLog((l) => l.msg === "system ready", "every child to be ready");
    const childPids = supervisor.logs().flatMap((l) => (l.msg === "child started" ? [l.pid as number] : []));
    expect(childPids.length).toBe(5);
    supervisor.kill("SIGKILL");
    await supervisor.waitForExit();
    try {
      await waitUntil(() => childPids.every((pid) => !alive(pid)), "every child to exit", 20_000);
    } finally {
      for (const pid of childPids) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    // They halted (the fake roles wrote their drain lines, in mode "halt") rather than being killed.
    const modes = readFileSync(drained, "utf8")
      .trim()
      .split("\n")
      .map((l) => `${l.split(" ")[0]} ${l.split(" ")[2]}`);
    expect(modes.sort()).toEqual(["in halt", "sink/0 halt", "work/0 halt", "work/1 halt"]);
  }, 60_000);
});
