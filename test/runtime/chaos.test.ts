/**
 * The chaos suite: the design example's shape (an http source → `data-processing`, two instances
 * weighted 2:1 → a jsonl sink), built with the real CLI and run as a user runs it, under one
 * fault per scenario while clients post 500-record requests, each under an Idempotency-Key. Each
 * scenario ends in one row of a table — acknowledged, stored once, duplicated, dead-lettered,
 * missing — and its verdict is those counts: nothing missing, nothing duplicated, nothing
 * stored that was never acknowledged, and nothing dead-lettered but the poison records
 * themselves (1 in 1,000), which, fixed, replay into the sink once. Every scenario also checks
 * that its fault really hit (a kill that killed, a disk that filled, a second runtime refused),
 * so none can pass by missing its moment.
 *
 * The short version (the default, what CI runs) keeps to a few minutes; `npm run chaos`
 * (MBC_CHAOS=full) runs the full sizes: 20 kills of random instances, 10 of the supervisor's
 * group, 10 of every process, 30 s of 3× overload, 20 s of a database down. Both print the
 * same table. MBC_CHAOS_SEED=N repeats the random choices of a run; MBC_TEST_ECHO=1 echoes every
 * process's log lines. No verdict depends on how fast the machine is: every wait is on a
 * condition with a generous deadline, and the fixed durations (how long a fault lasts) only
 * decide how much happens, never whether a count is right.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OWNER_LOCK_STALE_MS } from "../../src/runtime/core/ownership.js";
import {
  AnswerThief,
  CHAOS_FULL,
  CHAOS_SEED,
  type ChaosSpecOptions,
  chaosHandlers,
  chaosSpec,
  closeProxies,
  DiskFiller,
  deadLetterCommand,
  formatTable,
  freeBytes,
  isPoison,
  type LoadChunks,
  markers,
  mountTmpfs,
  type Outcome,
  type Row,
  replayAvailable,
  SINK,
  type SinkExpectation,
  SOURCE,
  STAGE,
  STRICT_SINK,
  scale,
  seededRandom,
  tally,
  tmpfsProbe,
  unmountAll,
} from "../helpers/chaos.js";
import {
  buildSystem,
  type E2ESystem,
  hardKill,
  Loader,
  type LoaderOptions,
  metricValue,
  NoUrl,
  OpenLoad,
  type RunningSystem,
  readDeadLetters,
  readIds,
  runtimeProcesses,
  scrape,
  sleep,
  startSystem,
  stopEverything,
  waitReady,
} from "../helpers/e2e.js";
import { childrenOf, killSupervisorGroup, secondSupervisor, waitGone } from "../helpers/faults.js";
import { alive, cleanupAll, httpJson, spawnRuntime, waitUntil } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

/** Long enough for anything on a slow, shared machine: a verdict never waits on a clock. */
const LONG = 180_000;
const TEST_TIMEOUT = scale(300_000, 1_200_000);

const rows: Row[] = [];

afterEach(async () => {
  await stopEverything();
  closeProxies();
  unmountAll();
});

afterAll(() => {
  const title = `chaos suite (${CHAOS_FULL ? "full" : "short"} version, MBC_CHAOS_SEED=${CHAOS_SEED})`;
  process.stdout.write(`\n${formatTable(rows, title)}\n`);
  cleanupAll();
});

/**
 * A built system of the example's shape and its current run: `url()` is where clients post
 * now (NoUrl while it is down or its source has not said where it listens: the clients wait
 * instead of posting to a port that is no longer the source's).
 */
class Subject {
  run!: RunningSystem;
  private down = true;

  private constructor(readonly sys: E2ESystem) {}

  static async build(options: ChaosSpecOptions = {}): Promise<Subject> {
    return new Subject(await buildSystem(chaosSpec(options), chaosHandlers()));
  }

  /** Starts the system (in a process group of its own: a test may kill the group). */
  start(): RunningSystem {
    this.run = startSystem(this.sys, { detached: true });
    this.down = false;
    return this.run;
  }

  async ready(): Promise<void> {
    await waitReady(this.sys, this.run.child, LONG);
  }

  /** Clients stop posting (the system is about to go away). */
  goDown(): void {
    this.down = true;
  }

  readonly url = (): string => {
    if (this.down) throw new NoUrl("the system is being restarted");
    try {
      return this.sys.sourceUrl(SOURCE);
    } catch (err) {
      throw new NoUrl((err as Error).message);
    }
  };

  sourceBase(): string {
    return `http://127.0.0.1:${this.sys.ports.sources[SOURCE]}`;
  }

  async sourceMetric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(await scrape(this.sourceBase()), name, labels);
  }

  /** Until the source has committed every record it accepted. */
  async settled(): Promise<void> {
    await waitUntil(async () => (await this.sourceMetric("mbc_queue_depth")) === 0, "the source to commit every record it accepted", LONG, 100);
  }

  /** The base URL of a child (`registry`, `source:NAME`, `service:NAME/K`) now. */
  childUrl(id: string): string {
    const url = this.sys.endpoints().find((e) => e.id === id)?.url;
    if (url === undefined) throw new Error(`${id} has not said where it listens`);
    return url;
  }

  /** Waits until a service instance has a batch in flight (its `mbc_queue_depth`): a kill then cuts it. */
  async busy(id: string): Promise<void> {
    const url = this.childUrl(id);
    await waitUntil(async () => metricValue(await scrape(url), "mbc_queue_depth") > 0, `${id} to have a batch in flight`, LONG, 2);
  }

  /** Kills a child (SIGKILL), and waits until the supervisor started another and the system is ready; the killed pid. */
  async killChild(id: string, signal: NodeJS.Signals = "SIGKILL"): Promise<number> {
    const pid = this.run.childPids()[id];
    if (pid === undefined) throw new Error(`no child ${id}`);
    process.kill(pid, signal);
    await waitUntil(() => (this.run.childPids()[id] ?? pid) !== pid, `the supervisor to restart ${id}`, LONG);
    await this.ready();
    return pid;
  }

  sinkFile(service = SINK): string {
    return this.sys.sinkFile(service);
  }

  marker(name: string, on: boolean): void {
    const path = join(this.sys.dataDir, name);
    if (on) {
      mkdirSync(this.sys.dataDir, { recursive: true });
      writeFileSync(path, "");
    } else rmSync(path, { force: true });
  }

  /** Every record id in the dead-letter folder. */
  deadLetteredIds(): Set<string> {
    return new Set(readDeadLetters(this.sys.stateDir).flatMap((l) => l.records.map((r) => r.id)));
  }

  /** Log lines of any process of the current run that mention `text`. */
  logsMentioning(text: string): Record<string, unknown>[] {
    return this.run.child.logs().filter((l) => JSON.stringify(l).includes(text));
  }
}

/** Clients posting 500-record requests under Idempotency-Keys, re-posting after an outage; open-ended unless `total`. */
function keyedLoad(subject: Subject, prefix: string, options: Partial<LoaderOptions> = {}): Loader {
  return new Loader({
    url: subject.url,
    prefix,
    total: 100_000_000,
    chunkSizes: [500],
    clients: 4,
    retryOutages: true,
    idempotencyKeys: true,
    timeoutMs: TEST_TIMEOUT,
    requestTimeoutMs: 60_000,
    ...options,
  });
}

/** Waits until `n` more records were acknowledged: the system took records since. */
async function progress(load: Loader, n: number, what: string): Promise<void> {
  const from = load.ackedRecords;
  await waitUntil(() => load.ackedRecords >= from + n, `${n} more records acknowledged ${what}`, LONG, 20);
}

/** What a scenario's body reports: its counts, notes on what happened, the dead letters it expects (the poison records). */
type Count = (outcome: Outcome, notes: string[], expectedDeadLetters?: ReadonlySet<string>) => void;

/**
 * Runs one scenario: its body calls `count` as soon as it has its counts (the row is in the
 * table then, whatever fails later), then checks that its fault really hit. The verdict is the
 * counts: nothing missing, duplicated or stored unacknowledged, and exactly the expected dead
 * letters. A failure of the body marks the row FAIL with its reason.
 */
async function scenario(name: string, body: (count: Count) => Promise<void>): Promise<void> {
  let row: Row | null = null;
  let expected: ReadonlySet<string> = new Set();
  const count: Count = (outcome, notes, expectedDeadLetters = new Set()) => {
    expected = expectedDeadLetters;
    const problems: string[] = [];
    if (outcome.missing > 0) problems.push(`${outcome.missing} missing`);
    if (outcome.duplicated > 0) problems.push(`${outcome.duplicated} duplicated`);
    if (outcome.unexpected > 0) problems.push(`${outcome.unexpected} stored, never acknowledged`);
    if (outcome.badLines > 0) problems.push(`${outcome.badLines} bad lines in a sink`);
    if (outcome.deadLettered !== expected.size) problems.push(`${outcome.deadLettered} dead-lettered, expected ${expected.size}`);
    if (outcome.acknowledged === 0) problems.push("nothing acknowledged");
    row = { scenario: name, outcome, notes, verdict: problems.length === 0 ? "ok" : `FAIL: ${problems.join(", ")}` };
    rows.push(row);
  };
  try {
    await body(count);
  } catch (err) {
    const reason = (err as Error).message.split("\n")[0]?.slice(0, 160) ?? "";
    const failed = row as Row | null;
    if (failed === null) rows.push({ scenario: name, outcome: null, notes: [reason], verdict: "FAIL" });
    else {
      if (failed.verdict === "ok") failed.verdict = "FAIL";
      failed.notes.push(`failed: ${reason}`);
    }
    throw err;
  }
  const done = row as Row | null;
  if (done === null) throw new Error(`scenario ${name} counted nothing`);
  const outcome = done.outcome as Outcome;
  expect(outcome).toMatchObject({ missing: 0, duplicated: 0, unexpected: 0, badLines: 0, examples: [] });
  expect(outcome.acknowledged).toBeGreaterThan(0);
  expect(outcome.deadLettered).toBe(expected.size);
}

/** The loads' chunks for tally(). */
function chunksOf(prefix: string, load: Loader): LoadChunks {
  return { prefix, chunks: load.chunks };
}

/** Stops an open-ended load, lets the system commit what it took, and counts against the main sink. */
async function finish(subject: Subject, prefix: string, load: Loader, sinks: SinkExpectation[] = [{ file: subject.sinkFile() }]): Promise<Outcome> {
  load.stop();
  await load.done;
  await subject.settled();
  return tally([chunksOf(prefix, load)], sinks, subject.deadLetteredIds());
}

/**
 * Replays the dead letters after `fix()`, twice — the second time from a copy of the folder as
 * it was, as an operator restoring a backup would — and counts once both replays are through
 * (`count` with nothing excused: every acknowledged record must be in its sinks). Null when the
 * bundle has no dead-letter command: the row says "replay: not available".
 */
async function replayFixed(subject: Subject, fix: () => void, count: () => Outcome): Promise<Outcome | null> {
  if (!replayAvailable(subject.sys).available) return null;
  const { stateDir } = subject.sys;
  const letters = readDeadLetters(stateDir);
  fix();
  const list = deadLetterCommand(subject.sys, ["list"]);
  expect(list.status, list.stderr).toBe(0);
  for (const l of letters) expect(list.stdout).toContain(l.id);
  const copies = letters.map((l) => ({ file: join(stateDir, "dead-letter", l.file), text: readFileSync(join(stateDir, "dead-letter", l.file), "utf8") }));
  const records = letters.reduce((n, l) => n + l.records.length, 0);
  for (let round = 1; round <= 2; round++) {
    if (round === 2) for (const c of copies) writeFileSync(c.file, c.text);
    const sentBefore = await subject.sourceMetric("mbc_records_out_total");
    const replay = deadLetterCommand(subject.sys, ["replay", "--all"]);
    expect(replay.status, `${replay.stdout}${replay.stderr}`).toBe(0);
    // Picked up: nothing left in the folder or waiting in replay/; sent through (a sink that has
    // them answers 200 too), everything committed.
    await waitUntil(
      () => jsonFiles(join(stateDir, "dead-letter")).length === 0 && jsonFiles(join(stateDir, "dead-letter", "replay")).length === 0,
      `replay ${round} to be picked up`,
      LONG,
      100,
    );
    await waitUntil(
      async () => (await subject.sourceMetric("mbc_records_out_total")) >= sentBefore + records,
      `the ${records} replayed records sent through (replay ${round})`,
      LONG,
      100,
    );
    await subject.settled();
    await waitUntil(() => count().missing === 0, `the replayed records in the sinks (replay ${round})`, LONG, 100);
  }
  // Nothing dead-lettered again, nothing excused.
  expect(subject.deadLetteredIds()).toEqual(new Set());
  return count();
}

function jsonFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json") && !f.startsWith(".")) : [];
}

/** The batches a restarted source re-sent: logged before the crash, not committed. */
function resentBatches(run: RunningSystem): number {
  return run
    .logsOf("source", SOURCE)
    .filter((l) => l.msg === "resuming after the last committed batch")
    .reduce((n, l) => n + ((l.resend as unknown[] | undefined)?.length ?? 0), 0);
}

const ambiguousOf = (load: Loader) => load.chunks.reduce((n, c) => n + c.ambiguous, 0);

describe(`the chaos suite (${CHAOS_FULL ? "full" : "short"} version)`, () => {
  /** Records acknowledged between two faults: the system was under load at each. */
  const step = scale(1000, 5000);

  it("cold start under load", { timeout: TEST_TIMEOUT }, async () => {
    await scenario("cold start under load", async (count) => {
      const subject = await Subject.build();
      subject.start();
      // The clients start with the system: their posts wait until the source listens, which is last.
      const load = keyedLoad(subject, "cold", { total: scale(10_000, 50_000) });
      await subject.ready();
      const early = load.outages + load.failures;
      await load.done;
      await subject.settled();
      count(tally([chunksOf("cold", load)], [{ file: subject.sinkFile() }], subject.deadLetteredIds()), [`${early} posts found no source yet`]);
      // The fault: the clients were there before the source was.
      expect(early).toBeGreaterThan(0);
      expect(subject.run.restarts()).toEqual([]);
    });
  });

  it("SIGKILL of random service instances, sinks included", { timeout: TEST_TIMEOUT }, async () => {
    const kills = scale(5, 20);
    await scenario(`${kills} SIGKILLs of random instances`, async (count) => {
      const subject = await Subject.build();
      const run = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "inst", { ratePerSec: 3000 });
      const random = seededRandom(CHAOS_SEED);
      const targets = [`service:${STAGE}/0`, `service:${STAGE}/1`, `service:${SINK}/0`];
      const killed: { id: string; pid: number }[] = [];
      for (let k = 0; k < kills; k++) {
        await progress(load, step, `before kill ${k + 1}`);
        const id = targets[Math.floor(random() * targets.length)] as string;
        // With a batch in flight in it.
        await subject.busy(id);
        killed.push({ id, pid: await subject.killChild(id) });
      }
      await progress(load, step, "after the last kill");
      const outcome = await finish(subject, "inst", load);
      // The kills cut batches in flight: their senders saw attempts fail.
      const failedAttempts = run.child.logs().filter((l) => l.msg === "attempt failed").length;
      const byTarget = targets.map((t) => `${t.replace("service:", "")}×${killed.filter((k) => k.id === t).length}`);
      count(outcome, [`killed ${byTarget.join(", ")}`, `${failedAttempts} failed attempts`]);
      // Every kill hit a live process, and the supervisor saw it die of the SIGKILL.
      expect(run.restarts().map((r) => [r.child, r.pid, r.signal])).toEqual(killed.map((k) => [k.id, k.pid, "SIGKILL"]));
      expect(failedAttempts).toBeGreaterThan(0);
    });
  });

  it("SIGKILL of the supervisor's group, children orphaned, then a restart", { timeout: TEST_TIMEOUT }, async () => {
    const kills = scale(2, 10);
    await scenario(`${kills} SIGKILLs of the supervisor's group`, async (count) => {
      const subject = await Subject.build();
      subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "group", { ratePerSec: 3000 });
      let orphansHalted = 0;
      let resent = 0;
      for (let k = 0; k < kills; k++) {
        await progress(load, step, `before kill ${k + 1}`);
        const orphans = childrenOf(subject.run);
        expect(orphans.length).toBe(subject.sys.listeners);
        // At a moment with a batch on its way to the sink.
        await subject.busy(`service:${SINK}/0`);
        subject.goDown();
        await killSupervisorGroup(subject.run);
        expect(subject.run.child.proc.signalCode).toBe("SIGKILL");
        // A new system at once, while the orphans are still halting.
        subject.start();
        await waitGone(orphans, "the orphaned children to halt and exit", LONG);
        orphansHalted += orphans.length;
        await subject.ready();
        resent += resentBatches(subject.run);
      }
      await progress(load, step, "after the last restart");
      const outcome = await finish(subject, "group", load);
      count(outcome, [`${orphansHalted} orphans halted`, `${resent} batches re-sent after restarts`, `${ambiguousOf(load)} posts unanswered`]);
    });
  });

  it("SIGKILL of every process, then a restart", { timeout: TEST_TIMEOUT }, async () => {
    const kills = scale(2, 10);
    await scenario(`${kills} SIGKILLs of every process`, async (count) => {
      const subject = await Subject.build();
      subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "all", { ratePerSec: 3000 });
      let processes = 0;
      let resent = 0;
      for (let k = 0; k < kills; k++) {
        await progress(load, step, `before kill ${k + 1}`);
        const expected = [subject.run.child.pid, ...childrenOf(subject.run)].sort((a, b) => a - b);
        await subject.busy(`service:${SINK}/0`);
        subject.goDown();
        const killed = await hardKill(subject.sys.root);
        // The kill hit every process of the system.
        expect(killed.sort((a, b) => a - b)).toEqual(expected);
        processes += killed.length;
        subject.start();
        await subject.ready();
        resent += resentBatches(subject.run);
      }
      await progress(load, step, "after the last restart");
      const outcome = await finish(subject, "all", load);
      count(outcome, [`${processes} processes killed`, `${resent} batches re-sent after restarts`, `${ambiguousOf(load)} posts unanswered`]);
    });
  });

  it("a kill while requests are in flight, re-posted under their Idempotency-Keys", { timeout: TEST_TIMEOUT }, async () => {
    const kills = scale(3, 10);
    await scenario("kill with requests in flight, re-posted", async (count) => {
      const subject = await Subject.build();
      const run = subject.start();
      await subject.ready();
      // The clients post through a proxy that can keep an answer from them, as fast as they are
      // answered: requests are in flight at every moment.
      const thief = await AnswerThief.start(subject.url);
      const load = keyedLoad(subject, "flight", { clients: 6, url: () => thief.url });
      for (let k = 0; k < kills; k++) {
        await progress(load, step, `before kill ${k + 1}`);
        // A request the source logged and answered, whose answer has not reached its client…
        const held = await thief.steal(LONG);
        expect(held.key).not.toBeNull();
        // …and others in flight, when the source is killed. The client re-posts once cut off.
        await subject.killChild(`source:${SOURCE}`);
        held.cut();
        const chunk = load.chunks.find((c) => c.key === held.key);
        await waitUntil(() => chunk?.acked === true, `the held request ${held.key} posted again and acknowledged`, LONG, 20);
      }
      await progress(load, step, "after the last kill");
      const outcome = await finish(subject, "flight", load);
      thief.close();
      count(outcome, [
        `${kills} source kills`,
        `${kills} answers held back`,
        `${thief.cutInFlight} more requests cut in flight`,
        `${load.replayed} re-posts answered from the log`,
      ]);
      expect(run.restarts().map((r) => [r.child, r.signal])).toEqual(Array.from({ length: kills }, () => [`source:${SOURCE}`, "SIGKILL"]));
      // Each held request was posted again under its key and answered from the restarted source's log.
      expect(load.replayed).toBeGreaterThanOrEqual(kills);
    });
  });

  it("the registry killed", { timeout: TEST_TIMEOUT }, async () => {
    const kills = scale(2, 5);
    await scenario(`registry killed ×${kills}`, async (count) => {
      const subject = await Subject.build();
      const run = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "reg", { ratePerSec: 3000 });
      for (let k = 0; k < kills; k++) {
        await progress(load, step, `before kill ${k + 1}`);
        await subject.killChild("registry");
        // The restarted registry knows every instance again (they re-register with their heartbeats).
        const registry = `http://127.0.0.1:${subject.sys.ports.registry}`;
        await waitUntil(
          async () => ((await httpJson("GET", `${registry}/v1/instances`)).json as { instances: unknown[] }).instances.length === 3,
          "the instances registered again",
          LONG,
          100,
        );
      }
      await progress(load, step, "after the last kill");
      count(await finish(subject, "reg", load), [`${kills} registry kills`]);
      expect(run.restarts().map((r) => [r.child, r.signal])).toEqual(Array.from({ length: kills }, () => ["registry", "SIGKILL"]));
    });
  });

  it("SIGTERM under load, then a restart", { timeout: TEST_TIMEOUT }, async () => {
    const stops = scale(1, 3);
    await scenario(`SIGTERM under load ×${stops}`, async (count) => {
      const subject = await Subject.build();
      subject.start();
      await subject.ready();
      // As fast as the source answers: requests are in flight when the stop comes.
      const load = keyedLoad(subject, "term", { clients: 6 });
      for (let k = 0; k < stops; k++) {
        await progress(load, step, `before SIGTERM ${k + 1}`);
        const { child } = subject.run;
        // With a batch on its way to the sink: the stop must finish it, or leave it to the next start.
        await subject.busy(`service:${SINK}/0`);
        child.kill("SIGTERM");
        // It drains (its source answers 503 meanwhile) and exits 0.
        expect(await child.waitForExit(LONG)).toEqual({ code: 0, signal: null });
        expect(child.logs().find((l) => l.role === "supervisor" && l.msg === "system stopped")).toMatchObject({ clean: true });
        expect(runtimeProcesses(subject.sys.root)).toEqual([]);
        subject.goDown();
        subject.start();
        await subject.ready();
      }
      await progress(load, step, "after the last restart");
      count(await finish(subject, "term", load), [`${stops} clean stops`, `${load.status503} answers 503`, `${ambiguousOf(load)} posts unanswered`]);
    });
  });

  it("3× overload", { timeout: TEST_TIMEOUT }, async () => {
    const seconds = scale(6, 30);
    await scenario(`3× overload for ${seconds} s`, async (count) => {
      // Each data-processing instance does 1,000 records/s; weighted 2:1, the system does at
      // most 1,500/s (instance 0 gets two thirds). Offered: 4,500/s, in 500-record requests.
      const subject = await Subject.build({ recordsPerSec: 1000 });
      const run = subject.start();
      await subject.ready();
      const pids = { supervisor: run.child.pid, ...run.childPids() };
      const rate = 3 * 1500;
      const load = new OpenLoad({
        url: subject.url,
        prefix: "over",
        ratePerSec: rate,
        durationMs: seconds * 1000,
        tickMs: (500 * 1000) / rate,
        idempotencyKeys: true,
      });
      await load.done;
      await subject.settled();
      const outcome = tally([{ prefix: "over", chunks: [...load.acked, ...load.refused] }], [{ file: subject.sinkFile() }], subject.deadLetteredIds());
      count(outcome, [`offered ${load.offeredRecords}`, `${load.refused.length} requests refused 503`]);
      // The fault: the system refused what it could not take (503 + Retry-After), and nothing crashed.
      expect(load.errors).toEqual([]);
      expect(load.refused.length).toBeGreaterThan(0);
      expect(new Set(load.retryAfter)).toEqual(new Set(["1"]));
      expect(run.restarts()).toEqual([]);
      expect({ supervisor: run.child.pid, ...run.childPids() }).toEqual(pids);
    });
  });

  it("1 poison record in 1,000, then replay", { timeout: TEST_TIMEOUT }, async () => {
    const total = scale(5000, 20_000);
    await scenario("1 poison record in 1,000, then replay", async (count) => {
      const subject = await Subject.build();
      subject.marker(markers.poison, true);
      const run = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "poison", { total });
      await load.done;
      await subject.settled();
      const poison = new Set([...load.ackedIds()].filter(isPoison));
      const letters = subject.deadLetteredIds();
      const notes = [`${await subject.sourceMetric("mbc_batches_total", { outcome: "split" })} splits`];
      const sinks = [{ file: subject.sinkFile() }];
      let outcome = tally([chunksOf("poison", load)], sinks, letters);
      // Exactly the poison records, each alone.
      const exact = [...letters].sort().join() === [...poison].sort().join() && readDeadLetters(subject.sys.stateDir).every((l) => l.records.length === 1);
      if (exact) {
        // The rule is fixed; the dead letters go back in, twice, and are stored once.
        const replayed = await replayFixed(
          subject,
          () => subject.marker(markers.poison, false),
          () => tally([chunksOf("poison", load)], sinks, new Set()),
        );
        if (replayed === null) notes.push("replay: not available");
        else {
          outcome = { ...replayed, deadLettered: letters.size };
          notes.push(`replayed ${letters.size} twice`);
        }
      }
      count(outcome, notes, poison);
      expect(poison.size).toBe(total / 1000);
      expect(exact).toBe(true);
      expect(run.restarts()).toEqual([]);
    });
  });

  it("a handler whose database is down (ECONNREFUSED)", { timeout: TEST_TIMEOUT }, async () => {
    const seconds = scale(4, 20);
    await scenario(`database down for ${seconds} s`, async (count) => {
      const subject = await Subject.build();
      const run = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "db", { ratePerSec: 3000 });
      await progress(load, step, "before the database goes down");
      subject.marker(markers.dbDown, true);
      // The fault hit: batches wait on the database.
      await waitUntil(async () => (await subject.sourceMetric("mbc_batches_waiting")) > 0, "batches waiting on the database", LONG, 50);
      await sleep(seconds * 1000);
      const unavailable = await subject.sourceMetric("mbc_batches_total", { outcome: "unavailable" });
      subject.marker(markers.dbDown, false);
      await progress(load, step, "after the database is back");
      count(await finish(subject, "db", load), [`${unavailable} sends found it unavailable`, `${load.status503} answers 503`]);
      expect(run.restarts()).toEqual([]);
    });
  });

  describe("a full disk", () => {
    const tmpfs = tool("tmpfs", tmpfsProbe);
    beforeAll(() => {
      if (!tmpfs.skip) assertTool(tmpfs);
    });
    /** Big enough for what a scenario stores, small enough to fill in a moment. */
    const TMPFS_BYTES = 64 * 1024 * 1024;

    for (const where of ["sink", "state folder"] as const) {
      const name = `full tmpfs under the ${where}, then space returns`;
      it(name, { timeout: TEST_TIMEOUT }, async (ctx) => {
        if (tmpfs.skip) {
          rows.push({ scenario: name, outcome: null, notes: [], verdict: `skipped: ${tmpfs.reason}` });
          ctx.skip();
        }
        const seconds = scale(3, 15);
        await scenario(name, async (count) => {
          const subject = await Subject.build();
          const dir = where === "sink" ? subject.sys.dataDir : subject.sys.stateDir;
          mountTmpfs(dir, TMPFS_BYTES);
          const run = subject.start();
          await subject.ready();
          const load = keyedLoad(subject, "disk", { ratePerSec: 3000, retryServerErrors: true });
          await progress(load, step, "before the disk fills");
          const filler = new DiskFiller(dir);
          try {
            // The disk is full: the filler's own last write was refused.
            expect(filler.refusals).toBeGreaterThan(0);
            expect(freeBytes(dir)).toBeLessThan(1024 * 1024);
            // The fault hit: a write of the system met ENOSPC.
            await waitUntil(() => subject.logsMentioning("ENOSPC").length > 0, `a write under the ${where} to fail with ENOSPC`, LONG, 50);
            await sleep(seconds * 1000);
          } finally {
            filler.free();
          }
          const enospc = subject.logsMentioning("ENOSPC").length;
          await progress(load, step, "after space returned");
          const outcome = await finish(subject, "disk", load);
          const restarted = [...new Set(run.restarts().map((r) => String(r.child)))];
          count(outcome, [
            `${enospc} log lines name ENOSPC`,
            `${run.restarts().length} restarts${restarted.length > 0 ? ` (${restarted.join(", ")})` : ""}`,
            `${load.serverErrors} answers 500`,
            `${load.status503} answers 503`,
          ]);
        });
      });
    }
  });

  it("two runtimes started on one state folder", { timeout: TEST_TIMEOUT }, async () => {
    await scenario("two runtimes on one state folder", async (count) => {
      const subject = await Subject.build();
      const first = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "two", { ratePerSec: 3000 });
      await progress(load, step, "before the second runtime");
      // A second supervisor, and a lone second source process, on the same state folder.
      const second = secondSupervisor(subject.sys);
      const lone = spawnRuntime(subject.sys.bundle, ["--role", "source", "--name", SOURCE], {
        env: { MBC_DATA_DIR: subject.sys.dataDir, MBC_STATE_DIR: subject.sys.stateDir, MBC_REGISTRY_URL: `http://127.0.0.1:${subject.sys.ports.registry}` },
      });
      // Each waits up to the lock's stale time for the owner to let go: the configured value × 2 + 1 s.
      const bound = 2 * OWNER_LOCK_STALE_MS + 1000;
      const [secondExit, loneExit] = await Promise.all([second.waitForExit(bound), lone.waitForExit(bound)]);
      await progress(load, step, "after the second runtime gave up");
      count(await finish(subject, "two", load), [`a second supervisor exited ${secondExit.code}, a second source ${loneExit.code}`]);
      expect(secondExit.code).toBe(2);
      expect(loneExit.code).toBe(2);
      // Each named the process that owns what it wanted, and started nothing.
      const errors = (c: typeof second) => c.logs().flatMap((l) => (l.level === "error" ? [String(l.msg)] : []));
      expect(errors(second).join("\n")).toContain(`owned by pid ${first.child.pid}`);
      expect(errors(lone).join("\n")).toContain(`owned by pid ${first.childPids()[`source:${SOURCE}`]}`);
      expect(second.logs().filter((l) => l.msg === "child started")).toEqual([]);
      expect(lone.logs().some((l) => l.msg === "started")).toBe(false);
      expect(first.restarts()).toEqual([]);
      expect(alive(first.child.pid)).toBe(true);
    });
  });

  it("a fan-out where only one branch rejects a record", { timeout: TEST_TIMEOUT }, async () => {
    const total = scale(5000, 20_000);
    await scenario("fan-out, one branch rejects", async (count) => {
      const subject = await Subject.build({ fanOut: true });
      subject.marker(markers.strictPoison, true);
      const run = subject.start();
      await subject.ready();
      const load = keyedLoad(subject, "fan", { total });
      await load.done;
      await subject.settled();
      const poison = new Set([...load.ackedIds()].filter(isPoison));
      const letters = subject.deadLetteredIds();
      const notes = [`${poison.size} refused by one branch`];
      const sinks = (excused: ReadonlySet<string>): SinkExpectation[] => [{ file: subject.sinkFile(SINK) }, { file: subject.sinkFile(STRICT_SINK), excused }];
      let outcome = tally([chunksOf("fan", load)], sinks(letters), letters);
      // The other branch stored them, once.
      const archive = readIds(subject.sinkFile(SINK)).ids;
      const inArchive = [...poison].filter((id) => archive.get(id) === 1).length;
      const exact = [...letters].sort().join() === [...poison].sort().join();
      if (exact) {
        // Fixed and replayed: the strict branch stores them once; the other, which has them, skips them.
        const replayed = await replayFixed(
          subject,
          () => subject.marker(markers.strictPoison, false),
          () => tally([chunksOf("fan", load)], sinks(new Set()), new Set()),
        );
        if (replayed === null) notes.push("replay: not available");
        else {
          outcome = { ...replayed, deadLettered: letters.size };
          notes.push(`replayed ${letters.size} twice`);
        }
      }
      count(outcome, notes, poison);
      expect(poison.size).toBe(total / 1000);
      expect(exact).toBe(true);
      expect(inArchive).toBe(poison.size);
      expect(run.restarts()).toEqual([]);
    });
  });
});
