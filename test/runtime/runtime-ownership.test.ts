/**
 * Ownership and start-up under faults, with real processes (the built node target, `mbc run`):
 * each test tries to break one guarantee of docs/runtime.md ("Ownership", "Start-up",
 * "Shutdown").
 *
 * - One owner per state folder: a second supervisor, or a second source process, on the same
 *   state waits up to the lock's stale time and exits 2 naming the holder; nothing is stored
 *   twice. A dead holder's lock is broken at once.
 * - A child whose supervisor died halts: SIGKILL of the supervisor's process group under load,
 *   at the worst moment (the sink frozen with batches in flight), and a second system started
 *   at once on the same state: nothing acknowledged is lost, nothing is dead-lettered.
 * - `mbc run` keeps its runtime attached: SIGKILL of mbc stops the runtime; a second `mbc run`
 *   names the running one instead of starting.
 * - Ordered, ready start-up: a cold start under load, and an instance restarted on its port
 *   under load, never answer a peer "starting".
 *
 * Bounds on time are the configured value × 2 + 1 s; every other wait is on a condition.
 * MBC_TEST_ECHO=1 echoes every process's log lines.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { OWNER_LOCK_STALE_MS } from "../../src/runtime/core/ownership.js";
import {
  at,
  buildSystem,
  type E2ESystem,
  endpointsOf,
  exampleHandlers,
  exampleSpec,
  Loader,
  metricValue,
  readDeadLetters,
  readIds,
  runtimeProcesses,
  scrape,
  startSystem,
  stopEverything,
  waitReady,
  writeSystem,
} from "../helpers/e2e.js";
import {
  childrenOf,
  freeze,
  killSupervisorGroup,
  refusedBatches,
  secondSupervisor,
  startMbcRun,
  supervisorEvents,
  supervisorPidOf,
  thaw,
  waitGone,
} from "../helpers/faults.js";
import { alive, cleanupAll, httpJson, type RuntimeChild, spawnRuntime, waitUntil } from "../helpers/runtime.js";

afterEach(stopEverything);
afterAll(() => cleanupAll());

const SINK = "result-storage";
/** How long a second owner waits at most, and then some: the configured value × 2 + 1 s. */
const OWNER_BOUND_MS = 2 * OWNER_LOCK_STALE_MS + 1000;

function fastExample(maxRecords: number, maxWait: string) {
  const spec = exampleSpec();
  const batch = at(spec, "sources", "input", "batch");
  batch.maxRecords = maxRecords;
  batch.maxWait = maxWait;
  return spec;
}

async function waitSettled(sys: E2ESystem, timeoutMs = 60_000): Promise<void> {
  const url = `http://127.0.0.1:${sys.ports.sources.input}`;
  await waitUntil(async () => metricValue(await scrape(url), "mbc_queue_depth") === 0, "the source to commit every record it accepted", timeoutMs, 100);
}

/** Every id of `expected` stored once, nothing else; an id of a chunk re-posted after an unanswered attempt may be there once more per such attempt. */
function expectStored(stored: Map<string, number>, load: Loader, prefix: string): void {
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const chunk of load.chunks) {
    if (!chunk.acked) continue;
    for (let n = chunk.first; n < chunk.first + chunk.count; n++) {
      const id = `${prefix}-${n}`;
      expected.add(id);
      const count = stored.get(id) ?? 0;
      if (count < 1 || count > 1 + chunk.ambiguous) problems.push(`${id}×${count} (unanswered attempts: ${chunk.ambiguous})`);
    }
  }
  expect({ count: problems.length, first: problems.slice(0, 10) }).toEqual({ count: 0, first: [] });
  const posted = new Set(load.chunks.flatMap((c) => Array.from({ length: c.count }, (_, k) => `${prefix}-${c.first + k}`)));
  expect([...stored.keys()].filter((id) => !posted.has(id))).toEqual([]);
}

function errorsOf(child: RuntimeChild): string[] {
  return child.logs().flatMap((l) => (l.level === "error" ? [String(l.msg)] : []));
}

describe("one owner per state folder", () => {
  it("a second supervisor on the same state waits up to the stale time, exits 2 naming the first, and starts nothing", { timeout: 150_000 }, async () => {
    const sys = await buildSystem(fastExample(200, "50ms"), exampleHandlers());
    const first = startSystem(sys);
    await waitReady(sys, first.child);
    const total = 20_000;
    const load = new Loader({ url: sys.sourceUrl("input"), prefix: "o", total, chunkSizes: [200, 500], clients: 3, ratePerSec: 1500, timeoutMs: 120_000 });
    await waitUntil(() => load.ackedRecords > 0, "the first records acknowledged", 30_000);

    const began = Date.now();
    const second = secondSupervisor(sys);
    await second.waitForLog(
      (l) => l.msg === `the state folder ${sys.stateDir} is owned by another process: waiting for it to let go`,
      "the second to wait",
      30_000,
    );
    const exit = await second.waitForExit(OWNER_BOUND_MS);
    expect(exit.code).toBe(2);
    expect(Date.now() - began).toBeGreaterThanOrEqual(OWNER_LOCK_STALE_MS);
    expect(errorsOf(second).join("\n")).toMatch(new RegExp(`is owned by pid ${first.child.pid} on .*supervisor\\.lock.*stop that one first`));
    expect(second.logs().filter((l) => l.msg === "child started")).toEqual([]);

    await load.done;
    await waitSettled(sys);
    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expectStored(ids, load, "o");
    expect([...ids.values()].every((n) => n === 1)).toBe(true);
    expect(ids.size).toBe(total);
    expect(first.restarts()).toEqual([]);
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
  });

  it("one source process per state folder: a second waits and exits 2 naming it, takes over once it stops, and breaks a dead one's lock at once", {
    timeout: 150_000,
  }, async () => {
    // A short drain budget: a source with nowhere to send drains until its budget runs out,
    // well within the time a second one waits for it.
    const spec = fastExample(50, "50ms");
    at(spec, "services", "data-processing").timeout = "500ms";
    const sys = await buildSystem(spec, exampleHandlers());
    // Sources alone, as Compose or systemd run them: no registry, so nothing is sent, all is kept.
    const source = () =>
      spawnRuntime(sys.bundle, ["--role", "source", "--name", "input"], {
        env: { MBC_DATA_DIR: sys.dataDir, MBC_STATE_DIR: sys.stateDir, MBC_REGISTRY_URL: "http://127.0.0.1:9" },
      });
    const listening = async (child: RuntimeChild) =>
      `http://127.0.0.1:${(await child.waitForLog((l) => l.msg === "started", "the source to start", 30_000)).port}/records`;
    const post = async (url: string, from: number, count: number) =>
      httpJson(
        "POST",
        url,
        Array.from({ length: count }, (_, k) => ({ id: `s-${from + k}` })),
      );
    const waiting = (child: RuntimeChild) =>
      child.waitForLog(
        (l) => typeof l.msg === "string" && l.msg.endsWith("is owned by another process: waiting for it to let go"),
        "a second source to wait",
        30_000,
      );

    const a = source();
    const aUrl = await listening(a);
    expect((await post(aUrl, 0, 100)).json).toEqual({ accepted: 100, first: 0 });

    // A second: it waits (never listening, never reading the log), then gives up naming A.
    const b = source();
    const told = await waiting(b);
    expect(told.pid).toBe(a.pid);
    expect((await b.waitForExit(OWNER_BOUND_MS)).code).toBe(2);
    expect(errorsOf(b).join("\n")).toMatch(new RegExp(`state folder of source input .* is owned by pid ${a.pid} on `));
    expect(b.logs().some((l) => l.msg === "started")).toBe(false);
    // A was not disturbed: its log goes on where it was.
    expect((await post(aUrl, 100, 50)).json).toEqual({ accepted: 50, first: 100 });

    // A third waits too, and takes over the moment A has drained and let go: the same log, continued.
    const c = source();
    await waiting(c);
    a.kill("SIGTERM");
    expect((await a.waitForExit(30_000)).code).toBe(0);
    const cUrl = await listening(c);
    expect((await post(cUrl, 150, 10)).json).toEqual({ accepted: 10, first: 150 });

    // A holder killed with SIGKILL leaves its lock file: the next breaks it at once, without waiting.
    c.kill("SIGKILL");
    await c.waitForExit();
    const d = source();
    const dUrl = await listening(d);
    expect(d.logs().some((l) => typeof l.msg === "string" && l.msg.includes("waiting for it to let go"))).toBe(false);
    expect((await post(dUrl, 160, 10)).json).toEqual({ accepted: 10, first: 160 });
    d.kill("SIGTERM");
    expect((await d.waitForExit(30_000)).code).toBe(0);
    // Let go once its log was closed.
    expect(existsSync(join(sys.stateDir, "sources", "input", "owner.lock"))).toBe(false);
  });
});

describe("a child whose supervisor died", () => {
  it("halts under load without dead-lettering, and a system restarted at once on the same state stores every acknowledged record", {
    timeout: 180_000,
  }, async () => {
    // Timeouts long enough that the frozen sink fails no attempt before the crash, however
    // loaded the machine: what is in flight at the crash is in flight because of the freeze.
    const spec = fastExample(200, "100ms");
    at(spec, "services", SINK).timeout = "20s";
    at(spec, "services", "data-processing").timeout = "60s";
    const sys = await buildSystem(spec, exampleHandlers());
    const first = startSystem(sys, { detached: true });
    await waitReady(sys, first.child);

    const total = 30_000;
    const load = new Loader({
      url: () => sys.sourceUrl("input"),
      prefix: "h",
      total,
      chunkSizes: [150, 300, 1000],
      clients: 4,
      retryOutages: true,
      timeoutMs: 150_000,
    });
    await waitUntil(() => load.ackedRecords >= total / 4, "a quarter of the records acknowledged", 60_000);
    // The worst moment: the sink stores nothing while batches are on their way to it.
    const sinks = childrenOf(first, `service:${SINK}/`);
    freeze(sinks);
    const unstored = () => {
      const stored = readIds(sys.sinkFile(SINK)).ids;
      return [...load.ackedIds()].filter((id) => !stored.has(id)).length;
    };
    await waitUntil(() => unstored() > 0, "records acknowledged and not stored while the sink is frozen", 60_000);
    const orphans = childrenOf(first);
    expect(orphans.length).toBe(sys.listeners);

    await killSupervisorGroup(first);
    // A second copy at once, while the orphans are still there (and the old sink still frozen).
    const second = startSystem(sys, { detached: true });
    await second.child.waitForLog((l) => l.msg === "child started" && l.child === `service:${SINK}/0`, "the new sink to start", 30_000);
    thaw(sinks);
    await waitReady(sys, second.child);
    await waitGone(orphans, "the orphaned children to halt and exit");

    await load.done;
    await waitSettled(sys);
    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expectStored(ids, load, "h");
    expect(load.ackedRecords).toBe(total);
    // Nothing was dead-lettered: not by the orphans, not by the new system.
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    expect(metricValue(await scrape(`http://127.0.0.1:${sys.ports.sources.input}`), "mbc_dead_letters_total")).toBe(0);
    // What the orphaned source had in flight was left uncommitted and re-sent by the new one.
    const resumed = second.logsOf("source", "input").find((l) => l.msg === "resuming after the last committed batch");
    expect((resumed?.resend as unknown[] | undefined)?.length ?? 0).toBeGreaterThan(0);
    expect(second.restarts()).toEqual([]);
  });
});

describe("mbc run", () => {
  it("stops the runtime it started when it is killed with SIGKILL: every process drains and exits, and what was acknowledged is stored", {
    timeout: 150_000,
  }, async () => {
    const spec = fastExample(100, "50ms");
    const { root, specDir, specPath, ports } = await writeSystem(spec, exampleHandlers());
    const mbc = startMbcRun(root, specPath);
    const supervisor = await supervisorPidOf(mbc);
    await waitReady({ endpoints: () => endpointsOf(ports) }, mbc);
    const load = new Loader({
      url: `http://127.0.0.1:${ports.sources.input}/records`,
      prefix: "m",
      total: 1_000_000,
      chunkSizes: [100, 300],
      clients: 2,
      ratePerSec: 2000,
      retryOutages: true,
      timeoutMs: 120_000,
    });
    await waitUntil(() => load.ackedRecords >= 2000, "records acknowledged", 30_000);
    const processes = runtimeProcesses(root).filter((pid) => pid !== mbc.pid);
    expect(processes).toContain(supervisor);
    // The supervisor and its five children: the registry, the source, three service instances.
    expect(processes.length).toBe(6);

    mbc.kill("SIGKILL");
    expect((await mbc.waitForExit()).signal).toBe("SIGKILL");
    await waitGone(processes, "the runtime of the killed mbc run to stop");
    load.stop();
    // It stopped as on Ctrl-C: drained, every child exited in order.
    expect(mbc.logs().some((l) => l.role === "supervisor" && l.msg === "the process that started the runtime went away: stopping")).toBe(true);
    expect(mbc.logs().find((l) => l.role === "supervisor" && l.msg === "system stopped")).toMatchObject({ clean: true });
    await load.done.catch(() => undefined);
    const { ids, bad } = readIds(join(specDir, "data", "results.jsonl"));
    expect(bad).toBe(0);
    expectStored(ids, load, "m");

    // Nothing holds the state any more: mbc run starts again.
    const again = startMbcRun(root, specPath);
    await supervisorPidOf(again);
    await waitReady({ endpoints: () => endpointsOf(ports) }, again);
    again.kill("SIGTERM");
    expect((await again.waitForExit(60_000)).code).toBe(0);
  });

  it("names the runtime that already runs on the state, and how to stop it, instead of starting a second", { timeout: 120_000 }, async () => {
    const { root, specDir, specPath, ports } = await writeSystem(exampleSpec(), exampleHandlers());
    const first = startMbcRun(root, specPath);
    const supervisor = await supervisorPidOf(first);
    await waitReady({ endpoints: () => endpointsOf(ports) }, first);
    const bundle = join(specDir, ".mbc", "run", "design-example", "mbc-runtime.mjs");
    const written = statSync(bundle).mtimeMs;

    const second = startMbcRun(root, specPath);
    expect((await second.waitForExit(30_000)).code).toBe(2);
    const said = second.lines.join("\n");
    expect(said).toMatch(new RegExp(`already runs on its state folder .*pid ${supervisor}\\b`));
    expect(said).toContain(`kill ${supervisor}`);
    // It started nothing and rewrote nothing the first one runs from.
    expect(said).not.toMatch(/mbc: running/);
    expect(statSync(bundle).mtimeMs).toBe(written);
    expect(alive(supervisor)).toBe(true);

    first.kill("SIGTERM");
    expect((await first.waitForExit(60_000)).code).toBe(0);
    expect(first.logs().filter((l) => l.msg === "child exited: restarting")).toEqual([]);
  });
});

describe("ordered, ready start-up", () => {
  it("under load from the first moment, and through an instance restarted on its port, no peer is ever answered 'starting'", { timeout: 150_000 }, async () => {
    const sys = await buildSystem(fastExample(100, "50ms"), exampleHandlers());
    const run = startSystem(sys);
    const total = 20_000;
    // Clients post as soon as the source says where it listens (until then their attempts fail and are retried).
    const load = new Loader({
      url: () => sys.sourceUrl("input"),
      prefix: "c",
      total,
      chunkSizes: [100, 400],
      clients: 3,
      retryOutages: true,
      timeoutMs: 120_000,
    });
    await waitReady(sys, run.child);
    // Every process answering /readyz can come just before the supervisor's own verdict: wait for it.
    const verdict = await run.child.waitForLog(
      (l) => l.role === "supervisor" && (l.msg === "system ready" || l.msg === "system started, but not every child is ready"),
      "the supervisor's start-up verdict",
      60_000,
    );
    expect(verdict.msg).toBe("system ready");

    // Downstream first, each stage ready before the next starts: registry, sink, processing, source.
    const events = supervisorEvents(run.child.logs());
    const when = (event: string) => {
      const k = events.indexOf(event);
      expect(k, event).toBeGreaterThanOrEqual(0);
      return k;
    };
    expect(when("child started registry")).toBeLessThan(when("child listening registry"));
    expect(when("child listening registry")).toBeLessThan(when(`child started service:${SINK}/0`));
    for (const k of [0, 1]) {
      expect(when(`child listening service:${SINK}/0`)).toBeLessThan(when(`child started service:data-processing/${k}`));
      expect(when(`child listening service:data-processing/${k}`)).toBeLessThan(when("child started source:input"));
    }

    await waitUntil(() => load.ackedRecords >= total / 3, "a third of the records acknowledged", 60_000);
    // Restarted on the port it had: callers that still list it must not be answered "starting".
    const target = "service:data-processing/0";
    const before = run.childPids()[target] as number;
    process.kill(before, "SIGKILL");
    await waitUntil(() => (run.childPids()[target] ?? before) !== before, "the supervisor to restart it", 30_000);
    await waitReady(sys, run.child);

    await load.done;
    await waitSettled(sys);
    const instances = sys.endpoints().filter((e) => e.id.startsWith("service:"));
    expect(Object.values(await refusedBatches(instances.map((e) => e.url)))).toEqual(instances.map(() => 0));
    const source = await scrape(`http://127.0.0.1:${sys.ports.sources.input}`);
    expect(metricValue(source, "mbc_attempts_total", { outcome: "5xx" })).toBe(0);
    expect(metricValue(source, "mbc_dead_letters_total")).toBe(0);
    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expectStored(ids, load, "c");
    expect(ids.size).toBe(total);
  });
});
