/**
 * The runtime's end-to-end proof, with real processes on loopback: the spec is built with the
 * real CLI (`mbc build --target node`) and run with plain `node DIR/node/mbc-runtime.mjs` (the
 * supervisor and one child process per role), or with `mbc run`. Every port is probed free and
 * written into a temp copy of the spec; every process is killed and every temp folder removed
 * afterwards, whatever happens.
 *
 * What a test proves is what docs/runtime.md promises ("Delivery", "Dispatch", "Shutdown"):
 * an acknowledged (202) record is stored exactly once, through crashes of an instance or of
 * the whole system; a poison record alone lands in the dead-letter folder and is counted, a
 * stage that is unavailable holds batches back without dead-lettering any; a full
 * queue answers 503 with Retry-After and memory stays bounded.
 *
 * MBC_TEST_ECHO=1 echoes every process's log lines; MBC_E2E_TIMINGS=1 prints what each test
 * measured (durations, 503s, retries, memory).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { binPath, runMbc } from "../helpers/cli.js";
import {
  at,
  buildSystem,
  type E2ESystem,
  endpointsOf,
  exampleHandlers,
  exampleSpec,
  hardKill,
  Loader,
  metricValue,
  OpenLoad,
  type RunningSystem,
  readDeadLetters,
  readIds,
  readSinkBatches,
  record,
  rssBytes,
  runtimeProcesses,
  scrape,
  sleep,
  startSystem,
  stopEverything,
  waitReady,
  writeSystem,
} from "../helpers/e2e.js";
import { cleanupAll, httpJson, spawnRuntime, waitUntil } from "../helpers/runtime.js";

afterEach(stopEverything);
afterAll(() => cleanupAll());

const SINK = "result-storage";

/** The example with faster batches: the same records, fewer round trips. */
function fastExample(maxRecords: number, maxWait: string) {
  const spec = exampleSpec();
  const batch = at(spec, "sources", "input", "batch");
  batch.maxRecords = maxRecords;
  batch.maxWait = maxWait;
  return spec;
}

/** Waits until a source has committed every record it accepted (its queue is empty). */
async function waitSettled(sys: E2ESystem, source = "input", timeoutMs = 60_000): Promise<void> {
  const url = `http://127.0.0.1:${sys.ports.sources[source]}`;
  await waitUntil(async () => metricValue(await scrape(url), "mbc_queue_depth") === 0, `source ${source} to commit every record it accepted`, timeoutMs, 100);
}

/** Every expected id exactly once, nothing else (a failure shows how many and the first few). */
function expectExactlyOnce(stored: Map<string, number>, expected: Set<string>): void {
  const missing = [...expected].filter((id) => !stored.has(id));
  const duplicated = [...stored].filter(([, n]) => n > 1).map(([id, n]) => `${id}×${n}`);
  const unexpected = [...stored.keys()].filter((id) => !expected.has(id));
  const summary = (list: string[]) => ({ count: list.length, first: list.slice(0, 5) });
  const none = { count: 0, first: [] };
  expect({ missing: summary(missing), duplicated: summary(duplicated), unexpected: summary(unexpected) }).toEqual({
    missing: none,
    duplicated: none,
    unexpected: none,
  });
  expect(stored.size).toBe(expected.size);
}

/** Stops a running system with SIGTERM: it must exit 0 and say it stopped cleanly. */
async function stopCleanly(run: RunningSystem): Promise<void> {
  run.child.kill("SIGTERM");
  const exit = await run.child.waitForExit(60_000);
  expect(exit).toEqual({ code: 0, signal: null });
  expect(run.child.logs().some((l) => l.role === "supervisor" && l.msg === "system stopped" && l.clean === true)).toBe(true);
  expect(runtimeProcesses(run.sys.root)).toEqual([]);
}

function log(what: string, fields: Record<string, unknown>): void {
  if (process.env.MBC_TEST_ECHO === "1" || process.env.MBC_E2E_TIMINGS === "1") process.stderr.write(`[e2e] ${what} ${JSON.stringify(fields)}\n`);
}

describe("the built node target, end to end on loopback", () => {
  it("serves /healthz, /readyz and /metrics on every process, and stores 100,000 posted records exactly once", { timeout: 150_000 }, async () => {
    const sys = await buildSystem(fastExample(500, "50ms"), exampleHandlers());
    const run = startSystem(sys);
    await waitReady(sys, run.child);

    // Every process: the registry, the source, each instance of both services.
    expect(sys.endpoints().map((e) => e.id)).toEqual([
      "registry",
      "source:input",
      "service:data-processing/0",
      "service:data-processing/1",
      "service:result-storage/0",
    ]);
    for (const { id, url } of sys.endpoints()) {
      expect((await httpJson("GET", `${url}/healthz`)).status, `${id} /healthz`).toBe(200);
      expect((await httpJson("GET", `${url}/readyz`)).json, `${id} /readyz`).toEqual({ ready: true });
      const metrics = await scrape(url);
      expect(metrics, `${id} /metrics`).toMatch(/^process_resident_memory_bytes(\{[^}]*\})? \d/m);
      if (id !== "registry") expect(metrics, `${id} /metrics`).toMatch(/^# TYPE mbc_records_in_total counter$/m);
    }

    const started = Date.now();
    const load = new Loader({ url: sys.sourceUrl("input"), prefix: "a", total: 100_000, chunkSizes: [250, 1000, 400, 2000], clients: 6, timeoutMs: 120_000 });
    await load.done;
    await waitSettled(sys);
    const elapsed = Date.now() - started;

    const { ids, lines, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expect(lines).toBe(100_000);
    expectExactlyOnce(ids, load.ackedIds());
    expect(load.ackedRecords).toBe(100_000);
    expect(load.missingRetryAfter).toBe(0);

    const source = await scrape(`http://127.0.0.1:${sys.ports.sources.input}`);
    expect(metricValue(source, "mbc_records_in_total")).toBe(100_000);
    expect(metricValue(source, "mbc_records_out_total")).toBe(100_000);
    expect(metricValue(source, "mbc_dead_letters_total")).toBe(0);
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    expect(run.restarts()).toEqual([]);
    log("100k records", { ms: elapsed, status503: load.status503, requests: load.chunks.length });

    await stopCleanly(run);
  });

  it("loses and duplicates nothing while data-processing instances are killed with SIGKILL mid-stream", { timeout: 150_000 }, async () => {
    const sys = await buildSystem(fastExample(200, "50ms"), exampleHandlers());
    const run = startSystem(sys);
    await waitReady(sys, run.child);

    const total = 50_000;
    const kills = 4;
    const load = new Loader({ url: sys.sourceUrl("input"), prefix: "b", total, chunkSizes: [200, 500], clients: 4, ratePerSec: 4000, timeoutMs: 120_000 });
    const killed: { target: string; pid: number; ackedAtKill: number }[] = [];
    for (let k = 0; k < kills; k++) {
      // Alternate the instances: the other one was restarted and is ready again, so one is always up.
      const target = `service:data-processing/${k % 2}`;
      await waitUntil(() => load.ackedRecords >= ((k + 1) * total) / (kills + 2), `${(k + 1) * 16}% of the records acknowledged`, 60_000);
      const pid = run.childPids()[target] as number;
      expect(pid).toBeGreaterThan(0);
      const portBefore = sys.ports.services["data-processing"]?.[k % 2];
      const listened = () => run.child.logs().filter((l) => l.msg === "child listening" && l.child === target).length;
      const listenedBefore = listened();
      process.kill(pid, "SIGKILL");
      killed.push({ target, pid, ackedAtKill: load.ackedRecords });
      await waitUntil(() => (run.childPids()[target] ?? pid) !== pid, `the supervisor to restart ${target}`, 30_000);
      // The supervisor restarts it on the port it had: what reached it before reaches it again.
      await waitUntil(() => listened() > listenedBefore, `${target} to listen again`, 30_000);
      const port = sys.ports.services["data-processing"]?.[k % 2] as number;
      expect(port).toBe(portBefore);
      await waitUntil(
        async () => (await httpJson("GET", `http://127.0.0.1:${port}/readyz`, undefined, {}, 1000)).status === 200,
        `${target} to be ready again`,
        30_000,
      );
    }
    await load.done;
    await waitSettled(sys);

    // Every kill happened mid-stream, and was a crash the supervisor restarted.
    for (const k of killed) expect(k.ackedAtKill).toBeLessThan(total);
    const restarts = run.restarts();
    expect(restarts.map((r) => [r.child, r.pid, r.signal])).toEqual(killed.map((k) => [k.target, k.pid, "SIGKILL"]));

    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expectExactlyOnce(ids, load.ackedIds());
    expect(load.ackedRecords).toBe(total);

    // What dispatch.ts guarantees: a failed attempt (the dead instance refused or reset the
    // connection, or answered 503 while restarting) is retried — to the other, live instance —
    // so no batch failed for good. Every failed HTTP attempt was followed by a retry.
    const source = await scrape(`http://127.0.0.1:${sys.ports.sources.input}`);
    const failedAttempts = ["connect", "5xx", "timeout"].reduce(
      (n, outcome) => n + metricValue(source, "mbc_attempts_total", { to: "data-processing", outcome }),
      0,
    );
    const retries = metricValue(source, "mbc_retries_total", { to: "data-processing" });
    expect(failedAttempts).toBeGreaterThan(0);
    expect(retries).toBeGreaterThanOrEqual(failedAttempts);
    expect(metricValue(source, "mbc_retry_budget_refusals_total")).toBe(0);
    expect(metricValue(source, "mbc_dead_letters_total")).toBe(0);
    expect(metricValue(source, "mbc_batches_total", { outcome: "ok" })).toBeGreaterThan(0);
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    // Both instances took batches.
    for (const instance of ["0", "1"])
      expect(metricValue(source, "mbc_attempts_total", { to: "data-processing", to_instance: instance, outcome: "ok" })).toBeGreaterThan(0);
    // The other instance took over: a batch whose attempt was refused by the dead instance
    // (nothing reached it) was stored, once, as processed by the other one.
    const stored = readSinkBatches(sys.sinkFile(SINK));
    const refused = run.logsOf("source", "input").filter((l) => l.msg === "attempt failed" && l.kind === "connect" && String(l.error).includes("ECONNREFUSED"));
    expect(refused.length).toBeGreaterThan(0);
    for (const attempt of refused) {
      const records = stored.get(`input/data-processing/${SINK}#${attempt.batch}`) as { processedBy: string }[] | undefined;
      expect(records, `batch ${attempt.batch}`).toBeDefined();
      expect(new Set(records?.map((r) => r.processedBy))).toEqual(new Set([`data-processing/${1 - Number(attempt.toInstance)}`]));
    }
    log("instance kills", { killed, failedAttempts, retries, refused: refused.length });

    await stopCleanly(run);
  });

  it("stores every acknowledged record exactly once after SIGKILL of the supervisor and all its children and a restart on the same state", {
    timeout: 150_000,
  }, async () => {
    // The sink is frozen (SIGSTOP) before the crash, so that the crash surely finds records
    // acknowledged and not stored, however fast the machine drains a backlog. Timeouts long
    // enough that the freeze, however long it lasts on a loaded machine, fails no attempt.
    const spec = fastExample(200, "100ms");
    at(spec, "services", SINK).timeout = "20s";
    at(spec, "services", "data-processing").timeout = "60s";
    const sys = await buildSystem(spec, exampleHandlers());
    const first = startSystem(sys);
    await waitReady(sys, first.child);

    const total = 40_000;
    // The restart gives the source another port: these ask for the current one.
    const sourceUrl = () => `http://127.0.0.1:${sys.ports.sources.input}`;
    const load = new Loader({
      url: () => sys.sourceUrl("input"),
      prefix: "c",
      total,
      chunkSizes: [150, 300, 1000],
      clients: 4,
      retryOutages: true,
      timeoutMs: 120_000,
    });
    await waitUntil(() => load.ackedRecords >= total / 4, "a quarter of the records acknowledged", 60_000);
    const sinkPids = Object.entries(first.childPids())
      .filter(([id]) => id.startsWith(`service:${SINK}/`))
      .map(([, pid]) => pid);
    expect(sinkPids.length).toBeGreaterThan(0);
    for (const pid of sinkPids) process.kill(pid, "SIGSTOP");
    // Acknowledged and not stored: in the source's queue, or on their way to the frozen sink.
    const unstored = () => {
      const stored = readIds(sys.sinkFile(SINK)).ids;
      return [...load.ackedIds()].filter((id) => !stored.has(id)).length;
    };
    await waitUntil(() => unstored() > 0, "records acknowledged and not stored while the sink is frozen", 60_000);
    const depthAtCrash = metricValue(await scrape(sourceUrl()), "mbc_queue_depth");
    const ackedBeforeCrash = load.ackedIds();
    const expectedPids = [first.child.pid, ...Object.values(first.childPids())];
    const killed = await hardKill(sys.root);
    expect(killed.sort((a, b) => a - b)).toEqual(expectedPids.sort((a, b) => a - b));
    expect((await first.child.exited).signal).toBe("SIGKILL");
    expect(runtimeProcesses(sys.root)).toEqual([]);

    // The crash left acknowledged records that no sink had stored yet: the restart must deliver them.
    const storedAtCrash = readIds(sys.sinkFile(SINK)).ids;
    const unstoredAtCrash = [...ackedBeforeCrash].filter((id) => !storedAtCrash.has(id)).length;
    expect(unstoredAtCrash).toBeGreaterThan(0);
    expect(load.ackedRecords).toBeLessThan(total);

    const second = startSystem(sys);
    await waitReady(sys, second.child);
    await load.done;
    await waitSettled(sys);

    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    // A chunk is stored exactly once, except that a chunk re-posted after an attempt that got
    // no answer (the crash cut the connection) may have been logged by that attempt too: the
    // client sent it twice. Everything the system acknowledged is there; nothing is there twice
    // because of the system.
    const problems: string[] = [];
    const expected = new Set<string>();
    const mayBeTwice = new Set<string>();
    let reposted = 0;
    for (const chunk of load.chunks) {
      expect(chunk.acked).toBe(true);
      if (chunk.ambiguous > 0) reposted++;
      for (let n = chunk.first; n < chunk.first + chunk.count; n++) {
        const id = `c-${n}`;
        expected.add(id);
        if (chunk.ambiguous > 0) mayBeTwice.add(id);
        const count = ids.get(id) ?? 0;
        if (count < 1 || count > 1 + chunk.ambiguous) problems.push(`${id}×${count} (ambiguous attempts: ${chunk.ambiguous})`);
      }
    }
    expect({ count: problems.length, first: problems.slice(0, 10) }).toEqual({ count: 0, first: [] });
    expect([...ids.keys()].filter((id) => !expected.has(id))).toEqual([]);
    // In particular, what was acknowledged before the crash is there exactly once.
    expect([...ackedBeforeCrash].filter((id) => ids.get(id) !== 1 && !mayBeTwice.has(id))).toEqual([]);
    expect(metricValue(await scrape(sourceUrl()), "mbc_dead_letters_total")).toBe(0);
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    expect(second.restarts()).toEqual([]);
    const storedTwice = [...ids.values()].filter((n) => n > 1).length;
    log("whole-system crash", { ackedBeforeCrash: ackedBeforeCrash.size, depthAtCrash, unstoredAtCrash, reposted, storedTwice, failures: load.failures });

    await stopCleanly(second);
  });

  it("answers a re-posted Idempotency-Key from the durable log after SIGKILL of the whole system and a restart: its records are stored once", {
    timeout: 120_000,
  }, async () => {
    // Batches wait up to 3 s: the crash most likely finds the records acknowledged, not stored yet.
    const sys = await buildSystem(fastExample(1000, "3s"), exampleHandlers());
    const first = startSystem(sys);
    await waitReady(sys, first.child);
    let url = sys.sourceUrl("input");
    const body = (from: number, count: number) => JSON.stringify(Array.from({ length: count }, (_, k) => record("i", from + k)));
    const keyed = (key: string) => ({ "idempotency-key": key });

    const a = await httpJson("POST", url, body(0, 300), keyed("batch-a"));
    expect(a.status).toBe(202);
    expect(a.json).toEqual({ accepted: 300, first: 0 });
    const b = await httpJson("POST", url, body(300, 200), keyed("batch-b"));
    expect(b.json).toEqual({ accepted: 200, first: 300 });
    // As if the answers had been lost with the system: every process killed at once.
    await hardKill(sys.root);
    expect(runtimeProcesses(sys.root)).toEqual([]);
    const storedAtCrash = readIds(sys.sinkFile(SINK)).ids.size;

    const second = startSystem(sys);
    await waitReady(sys, second.child);
    url = sys.sourceUrl("input");
    // The clients post the same requests again: answered from the log, nothing appended.
    const again = await httpJson("POST", url, body(0, 300), keyed("batch-a"));
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ accepted: 300, first: 0 });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const bAgain = await httpJson("POST", url, body(300, 200), keyed('"batch-b"'));
    expect(bAgain.json).toEqual({ accepted: 200, first: 300 });
    // A key stands for one request: other records under it are refused.
    const misuse = await httpJson("POST", url, body(900, 5), keyed("batch-a"));
    expect(misuse.status).toBe(422);
    const c = await httpJson("POST", url, body(500, 100), keyed("batch-c"));
    expect(c.json).toEqual({ accepted: 100, first: 500 });
    await waitSettled(sys);

    const { ids, bad } = readIds(sys.sinkFile(SINK));
    expect(bad).toBe(0);
    expectExactlyOnce(ids, new Set(Array.from({ length: 600 }, (_, n) => `i-${n}`)));
    const metrics = await scrape(`http://127.0.0.1:${sys.ports.sources.input}`);
    expect(metricValue(metrics, "mbc_source_replays_total")).toBe(2);
    expect(metricValue(metrics, "mbc_records_in_total")).toBe(100);
    expect(second.restarts()).toEqual([]);
    log("idempotency keys", { storedAtCrash });

    await stopCleanly(second);
  });

  it("isolates 1 poison record in 1,000: dead-letters exactly those records, stores every other record once, and replays them once when fixed", {
    timeout: 180_000,
  }, async () => {
    const spec = {
      mbc: 1,
      name: "e2e-poison",
      registry: { port: 7400, heartbeat: "200ms", ttl: "1s" },
      sources: { input: { type: "http", port: 8080, batch: { maxRecords: 200, maxWait: "50ms" }, to: "faulty" } },
      services: {
        faulty: { handler: "./handlers/poison.mjs", instances: 2, timeout: "5s", retry: { maxRetries: 2, interval: "20ms" }, to: "store" },
        store: { handler: "builtin:jsonl-sink", config: { path: "./out/store.jsonl" }, timeout: "2s" },
      },
    };
    const sys = await buildSystem(spec, {
      // Every thousandth record is refused while the data folder holds a file `strict`.
      "handlers/poison.mjs": [
        'import { existsSync } from "node:fs";',
        'import { join } from "node:path";',
        "export default async function refuseEveryThousandth(records) {",
        '  const strict = existsSync(join(process.env.MBC_DATA_DIR ?? ".", "strict"));',
        "  for (const r of records) {",
        "    const n = Number(String(r.id).split('-')[1]);",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the handler's own template string.
        "    if (strict && n % 1000 === 999) throw new Error(`record ${r.id} is not valid`);",
        "  }",
        "  return records;",
        "}",
        "",
      ].join("\n"),
    });
    mkdirSync(sys.dataDir, { recursive: true });
    writeFileSync(join(sys.dataDir, "strict"), "");
    const run = startSystem(sys);
    await waitReady(sys, run.child);
    const sourceUrl = () => `http://127.0.0.1:${sys.ports.sources.input}`;

    const load = new Loader({ url: () => sys.sourceUrl("input"), prefix: "p", total: 5000, chunkSizes: [250, 500], clients: 2, timeoutMs: 120_000 });
    await load.done;
    await waitSettled(sys, "input", 120_000);
    expect((await httpJson("GET", `${sourceUrl()}/readyz`)).status).toBe(200);

    const poison = new Set([...load.ackedIds()].filter((id) => Number(id.split("-")[1]) % 1000 === 999));
    expect(poison.size).toBe(5);
    const letters = readDeadLetters(sys.stateDir);
    // Exactly the poison records, each alone, as a piece of its batch, with the stage and its error.
    expect(letters.map((l) => l.records.map((r) => r.id)).sort()).toEqual([...poison].sort().map((id) => [id]));
    for (const letter of letters) {
      expect(letter.id).toMatch(/^input-\d+@\d+-\d+$/);
      expect(letter.via).toEqual(["input"]);
      expect(letter.failures[0]?.service).toBe("faulty");
      expect(letter.failures[0]?.error).toContain("is not valid");
    }
    const { ids, bad } = readIds(sys.sinkFile("store"));
    expect(bad).toBe(0);
    expectExactlyOnce(ids, new Set([...load.ackedIds()].filter((id) => !poison.has(id))));
    const source = await scrape(sourceUrl());
    expect(metricValue(source, "mbc_dead_letters_total")).toBe(5);
    expect(metricValue(source, "mbc_batches_total", { outcome: "split" })).toBeGreaterThan(0);
    expect(metricValue(source, "mbc_pieces_bisecting")).toBe(0);
    expect(run.restarts()).toEqual([]);
    log("poison", { letters: letters.length, splits: metricValue(source, "mbc_batches_total", { outcome: "split" }) });

    // The handler is fixed; the dead letters are replayed by the runtime's own command: each is
    // stored once, and leaves the listing.
    rmSync(join(sys.dataDir, "strict"));
    const command = (...args: string[]) =>
      spawnSync(process.execPath, [sys.bundle, "dead-letter", ...args], { encoding: "utf8", env: { ...process.env, MBC_STATE_DIR: sys.stateDir } });
    expect(command("list").stdout).toContain("5 dead letters");
    const replay = command("replay", "--all");
    expect(replay.status).toBe(0);
    expect(replay.stdout.match(/^queued /gm)).toHaveLength(5);
    await waitUntil(() => readIds(sys.sinkFile("store")).ids.size === load.ackedRecords, "the replayed records in the sink", 60_000);
    await waitUntil(
      () => !existsSync(join(sys.stateDir, "dead-letter", "replay")) || readdirSync(join(sys.stateDir, "dead-letter", "replay")).length === 0,
      "the replay folder empty",
      30_000,
    );
    expect(command("list").stdout).toContain("no dead letters");
    expectExactlyOnce(readIds(sys.sinkFile("store")).ids, load.ackedIds());
    expect(metricValue(await scrape(sourceUrl()), "mbc_dead_letters_replayed_total", { outcome: "stored" })).toBe(5);

    // Replayed again (the same entry, put back by hand): the sink knows its key, nothing is stored twice.
    const again = letters[0] as (typeof letters)[number];
    mkdirSync(join(sys.stateDir, "dead-letter", "replay"), { recursive: true });
    writeFileSync(
      join(sys.stateDir, "dead-letter", "replay", again.file),
      JSON.stringify({ id: again.id, via: again.via, records: again.records, failures: again.failures }),
    );
    await waitUntil(
      async () => metricValue(await scrape(sourceUrl()), "mbc_dead_letters_replayed_total", { outcome: "stored" }) === 6,
      "the second replay",
      30_000,
    );
    expectExactlyOnce(readIds(sys.sinkFile("store")).ids, load.ackedIds());

    await stopCleanly(run);
  });

  it("holds batches while the handler's database is down (ECONNREFUSED): back-pressure, nothing dead-lettered, all stored once after", {
    timeout: 180_000,
  }, async () => {
    const spec = {
      mbc: 1,
      name: "e2e-db-down",
      registry: { port: 7400, heartbeat: "200ms", ttl: "1s" },
      sources: { input: { type: "http", port: 8080, batch: { maxRecords: 100, maxWait: "50ms" }, to: "writer" } },
      services: {
        writer: { handler: "./handlers/db.mjs", instances: 2, timeout: "5s", retry: { maxRetries: 1, interval: "20ms" }, to: "store" },
        store: { handler: "builtin:jsonl-sink", config: { path: "./out/store.jsonl" }, timeout: "2s" },
      },
    };
    const sys = await buildSystem(spec, {
      // The "database" is down while a marker file exists in the data folder.
      "handlers/db.mjs": [
        'import { existsSync } from "node:fs";',
        'import { join } from "node:path";',
        "export default async function write(records) {",
        '  if (existsSync(join(process.env.MBC_DATA_DIR ?? ".", "db-down"))) {',
        '    throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });',
        "  }",
        "  return records;",
        "}",
        "",
      ].join("\n"),
    });
    mkdirSync(sys.dataDir, { recursive: true });
    writeFileSync(join(sys.dataDir, "db-down"), "");
    const run = startSystem(sys);
    await waitReady(sys, run.child);
    const sourceUrl = () => `http://127.0.0.1:${sys.ports.sources.input}`;

    const load = new Loader({ url: () => sys.sourceUrl("input"), prefix: "q", total: 3000, chunkSizes: [100, 300], clients: 2, timeoutMs: 120_000 });
    await waitUntil(async () => metricValue(await scrape(sourceUrl()), "mbc_batches_waiting") > 0, "batches waiting on the database", 60_000);
    const waitingAt = load.ackedRecords;
    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    expect(readIds(sys.sinkFile("store")).lines).toBe(0);
    rmSync(join(sys.dataDir, "db-down"));
    await load.done;
    await waitSettled(sys, "input", 120_000);

    expect(readDeadLetters(sys.stateDir)).toEqual([]);
    const { ids, bad } = readIds(sys.sinkFile("store"));
    expect(bad).toBe(0);
    expectExactlyOnce(ids, load.ackedIds());
    expect(load.ackedRecords).toBe(3000);
    const source = await scrape(sourceUrl());
    expect(metricValue(source, "mbc_dead_letters_total")).toBe(0);
    expect(metricValue(source, "mbc_batches_total", { outcome: "unavailable" })).toBeGreaterThan(0);
    expect(metricValue(source, "mbc_batches_waiting")).toBe(0);
    log("database down", { ackedWhileDown: waitingAt, refused503: load.chunks.reduce((n, c) => n + c.refused503, 0) });

    await stopCleanly(run);
  });

  it("under 3× its capacity answers 503 with Retry-After, stays within bounded memory, never crashes, and stores every acknowledged record once", {
    timeout: 120_000,
  }, async () => {
    const capacity = 1500;
    const spec = {
      mbc: 1,
      name: "e2e-overload",
      registry: { port: 7400, heartbeat: "200ms", ttl: "1s" },
      // A small queue: 64 batches of 50 records.
      sources: { input: { type: "http", port: 8080, batch: { maxRecords: 50, maxWait: "50ms" }, to: "slow" } },
      services: {
        slow: { handler: "./handlers/slow.mjs", config: { recordsPerSec: capacity }, capacity: `${capacity}/s`, timeout: "20s", to: "store" },
        store: { handler: "builtin:jsonl-sink", config: { path: "./out/store.jsonl" }, timeout: "5s" },
      },
    };
    const sys = await buildSystem(spec, {
      // One server with a known capacity: recordsPerSec records a second, one batch after another.
      "handlers/slow.mjs": [
        "let freeAt = 0;",
        "export default async function slow(records, ctx) {",
        "  const now = Date.now();",
        "  freeAt = Math.max(now, freeAt) + (records.length * 1000) / ctx.config.recordsPerSec;",
        "  await new Promise((resolve) => setTimeout(resolve, freeAt - now));",
        "  return records;",
        "}",
        "",
      ].join("\n"),
    });
    const run = startSystem(sys);
    await waitReady(sys, run.child);
    const pidsAtStart = { supervisor: run.child.pid, ...run.childPids() };
    const sourceUrl = `http://127.0.0.1:${sys.ports.sources.input}`;

    const durationMs = 8000;
    const started = Date.now();
    const load = new OpenLoad({ url: sys.sourceUrl("input"), prefix: "f", ratePerSec: 3 * capacity, durationMs });
    // Sample every runtime process's memory and the source's queue while the load runs and drains.
    const rss: Record<string, number> = {};
    let samples = 0;
    let maxDepth = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const [id, pid] of Object.entries(pidsAtStart)) {
          const bytes = rssBytes(pid);
          if (bytes !== null) rss[id] = Math.max(rss[id] ?? 0, bytes);
        }
        try {
          maxDepth = Math.max(maxDepth, metricValue(await scrape(sourceUrl), "mbc_queue_depth"));
        } catch {
          // Busy: the next sample counts.
        }
        samples++;
        await sleep(200);
      }
    })();
    await load.done;
    const loadMs = Date.now() - started;
    await waitSettled(sys);
    sampling = false;
    await sampler;

    expect(load.errors).toEqual([]);
    expect(load.refused.length).toBeGreaterThan(0);
    expect(new Set(load.retryAfter)).toEqual(new Set(["1"]));
    expect(load.ackedRecords).toBeGreaterThan(0);
    // Back-pressure, not buffering: what the source took is what the handler could do plus a full queue.
    const queueLimit = 64 * 50;
    expect(load.ackedRecords).toBeLessThanOrEqual(capacity * (loadMs / 1000) + queueLimit + 500);
    expect(maxDepth).toBeLessThanOrEqual(queueLimit + 225);
    expect(samples).toBeGreaterThan(10);
    expect(Object.keys(rss).sort()).toEqual(Object.keys(pidsAtStart).sort());
    for (const [id, bytes] of Object.entries(rss)) expect(bytes, `${id} RSS`).toBeLessThan(256 * 1024 * 1024);

    // Nothing crashed: no restart, the same processes as at the start.
    expect(run.restarts()).toEqual([]);
    expect({ supervisor: run.child.pid, ...run.childPids() }).toEqual(pidsAtStart);

    const { ids, bad } = readIds(sys.sinkFile("store"));
    expect(bad).toBe(0);
    const acked = new Set<string>();
    for (const c of load.acked) for (let n = c.first; n < c.first + c.count; n++) acked.add(`f-${n}`);
    expectExactlyOnce(ids, acked);
    expect(metricValue(await scrape(sourceUrl), "mbc_dead_letters_total")).toBe(0);
    log("overload", {
      offered: load.offeredRecords,
      acked: load.ackedRecords,
      refused503: load.refused.length,
      skippedTicks: load.skippedTicks,
      loadMs,
      maxDepth,
      rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
    });

    await stopCleanly(run);
  });

  it("mbc run starts the example in the foreground, stores what is posted, and stops cleanly on SIGTERM", { timeout: 120_000 }, async () => {
    const { root, specDir, specPath, ports } = await writeSystem(exampleSpec(), exampleHandlers());
    const mbc = spawnRuntime(binPath, ["run", specPath], { cwd: root });
    await waitUntil(() => mbc.lines.some((l) => l.startsWith("mbc: running design-example (supervisor pid")), "mbc run to start the supervisor", 30_000);
    await waitReady({ endpoints: () => endpointsOf(ports) }, mbc);

    const url = `http://127.0.0.1:${ports.sources.input}/records`;
    const load = new Loader({ url, prefix: "g", total: 2000, chunkSizes: [100, 300], clients: 2, timeoutMs: 60_000 });
    await load.done;
    const sink = join(specDir, "data", "results.jsonl");
    await waitUntil(() => readIds(sink).ids.size === 2000, "the records in the example's sink", 30_000, 100);

    // mbc dead-letter finds the state folder of mbc run: nothing there.
    const listed = runMbc(["dead-letter", "list", "--spec", specPath], { cwd: root });
    expect(listed.status).toBe(0);
    expect(listed.stdout).toMatch(/^no dead letters in /);

    mbc.kill("SIGTERM");
    const exit = await mbc.waitForExit(60_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(mbc.lines).toContain("mbc: stopped cleanly");
    expect(mbc.logs().some((l) => l.role === "supervisor" && l.msg === "system stopped" && l.clean === true)).toBe(true);
    expect(mbc.logs().filter((l) => l.msg === "child exited: restarting")).toEqual([]);
    expect(runtimeProcesses(root)).toEqual([]);
    const { ids, bad } = readIds(sink);
    expect(bad).toBe(0);
    expectExactlyOnce(ids, load.ackedIds());
  });
});
