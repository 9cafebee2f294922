/**
 * A source's pipeline under failures, on a manual clock: a stage that is unavailable is
 * back-pressure (the batch is sent again after its back-off, never dead-lettered), a poison
 * batch is split until the records that fail are alone (the split logged first, so a restart
 * sends the same pieces), and nothing is dead-lettered while the source drains. The log is on
 * disk as in production; time is the clock's, so every back-off is asserted exactly.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { SourceModel } from "../../src/model/types.js";
import type { FailureClass } from "../../src/runtime/core/failure.js";
import { covers, parsePieceId, pieceId } from "../../src/runtime/core/pieces.js";
import { StoredKeys } from "../../src/runtime/service/builtins/jsonl-sink.js";
import { deadLetterDir } from "../../src/runtime/source/dead-letter.js";
import { COMMITS_FILE, SPLITS_FILE } from "../../src/runtime/source/log.js";
import { piecesAfterSplits, SourcePipeline, type SourcePipelineOptions, sourceLogDir } from "../../src/runtime/source/pipeline.js";
import { ManualClock } from "../helpers/clock.js";
import { BACKOFF, FakeDispatcher, fakeMetrics, memoryLogger, sourceModel } from "../helpers/pipeline.js";
import { cleanupAll, tempDir, waitUntil } from "../helpers/runtime.js";

const pipelines: SourcePipeline[] = [];
afterEach(async () => {
  for (const p of pipelines.splice(0)) await p.drain(Date.now()).catch(() => {});
});
afterAll(() => cleanupAll());

async function open(source: SourceModel, stateDir: string, dispatcher: FakeDispatcher, clock: ManualClock, options: Partial<SourcePipelineOptions> = {}) {
  const { metrics, calls } = fakeMetrics();
  const log = memoryLogger();
  const pipeline = await SourcePipeline.open({
    source,
    stateDir,
    fsync: true,
    dispatcher,
    log,
    metrics,
    backoff: BACKOFF,
    clock,
    timer: { set: (callback, ms) => clock.setTimer(callback, ms), clear: (handle) => clock.clearTimer(handle) },
    ...options,
  });
  pipelines.push(pipeline);
  return { pipeline, calls, log };
}

/** `n` records `{"n": k}`, appended as an http source would. */
async function appendRecords(pipeline: SourcePipeline, n: number, from = 0): Promise<void> {
  const lines = Array.from({ length: n }, (_, k) => JSON.stringify({ n: from + k }));
  await pipeline.append({ lines, bytes: lines.map((l) => Buffer.byteLength(l)) });
}

function committed(stateDir: string): string[] {
  const path = join(sourceLogDir(stateDir, "orders"), COMMITS_FILE);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { id: string }).id);
}

function deadLetters(stateDir: string): { id: string; records: unknown[]; failures: { service: string | null }[] }[] {
  const dir = deadLetterDir(stateDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")));
}

/** A dispatcher that fails as `failure` every batch holding a record whose `n` is in `bad`. */
function refusing(bad: readonly number[], failure: FailureClass = "poison"): FakeDispatcher {
  const dispatcher = new FakeDispatcher("rule");
  dispatcher.answer = (batch) => (batch.records.some((r) => bad.includes((r as { n: number }).n)) ? failure : null);
  return dispatcher;
}

describe("pieces of a batch", () => {
  it("name records by their offsets in the batch, and a batch or a larger piece covers the pieces inside it", () => {
    expect(pieceId("orders-1200", 0, 100)).toBe("orders-1200@0-100");
    expect(parsePieceId("orders-1200@100-150")).toEqual({ batch: "orders-1200", range: { from: 100, to: 150 } });
    expect(parsePieceId("orders-1200")).toEqual({ batch: "orders-1200", range: null });
    expect(parsePieceId("orders-1@5-5")).toEqual({ batch: "orders-1@5-5", range: null });
    expect(covers(null, { from: 3, to: 4 })).toBe(true);
    expect(covers({ from: 0, to: 4 }, { from: 3, to: 4 })).toBe(true);
    expect(covers({ from: 0, to: 3 }, { from: 3, to: 4 })).toBe(false);
    expect(covers({ from: 0, to: 4 }, null)).toBe(false);
  });

  it("a sink's keys: a stored batch covers its pieces at the same path only", () => {
    const keys = new StoredKeys();
    keys.add("in/store#in-0");
    keys.add("in/store#in-8@0-4");
    expect(keys.covers("in/store#in-0@2-3")).toBe(true);
    expect(keys.covers("in/store#in-8@1-2")).toBe(true);
    expect(keys.covers("in/store#in-8@4-8")).toBe(false);
    expect(keys.covers("in/other#in-0@2-3")).toBe(false);
    expect(keys.covers("in/store#in-80@0-1")).toBe(false);
    expect(keys.has("in/store#in-0@2-3")).toBe(false);
    expect(keys.size).toBe(2);
  });

  it("are rebuilt from the split log, in the order the splits were made", () => {
    const batch = { id: "o-0", records: Array.from({ length: 8 }, (_, k) => k) };
    expect(piecesAfterSplits(batch, [])).toEqual([{ from: 0, to: 8 }]);
    const splits = [
      { id: "o-0", from: 0, to: 8, at: 4 },
      { id: "o-0", from: 4, to: 8, at: 6 },
      { id: "other", from: 0, to: 8, at: 1 },
      // Not a piece of this batch: ignored.
      { id: "o-0", from: 1, to: 3, at: 2 },
    ];
    expect(piecesAfterSplits(batch, splits)).toEqual([
      { from: 0, to: 4 },
      { from: 4, to: 6 },
      { from: 6, to: 8 },
    ]);
  });
});

describe("an unavailable stage is back-pressure", () => {
  it("sends the batch again after each back-off, for as long as it takes, and never dead-letters it", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = new FakeDispatcher("rule");
    let down = true;
    dispatcher.answer = () => (down ? "unavailable" : null);
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 4 } }");
    const { pipeline, calls } = await open(source, stateDir, dispatcher, clock);
    await appendRecords(pipeline, 4);
    await waitUntil(() => dispatcher.sent.length === 1, "the first send");
    // 100, 200, 400, 800 ms, then the cap, 1000 ms, again and again.
    const sends: number[] = [];
    const start = clock.now();
    for (let t = 0; t < 6000; t += 50) {
      const before = dispatcher.sent.length;
      await clock.advance(50);
      await waitUntil(() => calls.waiting === 1 || dispatcher.sent.length > before, "the send to fail again");
      if (dispatcher.sent.length > before) sends.push(clock.now() - start);
    }
    expect(sends.slice(0, 6)).toEqual([100, 300, 700, 1500, 2500, 3500]);
    expect(dispatcher.ids().every((id) => id === "orders-0")).toBe(true);
    expect(calls.deadLetters).toBe(0);
    expect(pipeline.depth).toBe(4);
    expect(committed(stateDir)).toEqual([]);

    down = false;
    await clock.advance(1000);
    await waitUntil(() => pipeline.depth === 0, "the batch to go through once the stage is back");
    expect(calls.waiting).toBe(0);
    await pipeline.drain(Date.now() + 5000);
    expect(committed(stateDir)).toEqual(["orders-0"]);
    expect(deadLetters(stateDir)).toEqual([]);
  });

  it("fills the queue meanwhile, so that the source stops taking records", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = refusing([0, 1, 2, 3, 4, 5, 6, 7], "unavailable");
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2 } }");
    const { pipeline } = await open(source, stateDir, dispatcher, clock, { queue: { records: 8, bytes: 1 << 20 } });
    await appendRecords(pipeline, 8);
    expect(pipeline.hasRoom(1, 10)).toBe(false);
    await clock.advance(5000);
    expect(pipeline.depth).toBe(8);
    expect(deadLetters(stateDir)).toEqual([]);
  });

  it("dead-letters a batch only once deadLetterAfter has passed since its first send", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = refusing([0, 1], "unavailable");
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2 } }");
    const { pipeline, calls } = await open(source, stateDir, dispatcher, clock, { deadLetterAfterMs: 3000 });
    await appendRecords(pipeline, 2);
    await waitUntil(() => dispatcher.sent.length === 1, "the first send");
    await clock.advance(2900);
    await waitUntil(() => calls.waiting === 1, "the batch to wait");
    expect(calls.deadLetters).toBe(0);
    await clock.advance(1100);
    await waitUntil(() => pipeline.depth === 0, "the batch dead-lettered and committed");
    expect(deadLetters(stateDir).map((d) => [d.id, d.records])).toEqual([["orders-0", [{ n: 0 }, { n: 1 }]]]);
  });
});

describe("a poison batch is isolated", () => {
  it("splits in halves until the poison record is alone, dead-letters only it, and commits the batch", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = refusing([5]);
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 8 } }");
    const { pipeline, calls } = await open(source, stateDir, dispatcher, clock);
    await appendRecords(pipeline, 8);
    await waitUntil(() => pipeline.depth === 0, "the batch committed");
    expect(dispatcher.ids()).toEqual(["orders-0", "orders-0@0-4", "orders-0@4-8", "orders-0@4-6", "orders-0@6-8", "orders-0@4-5", "orders-0@5-6"]);
    const stored = dispatcher.sent.filter((s) => !s.batch.records.some((r) => (r as { n: number }).n === 5)).flatMap((s) => s.batch.records);
    expect(stored).toEqual([0, 1, 2, 3, 6, 7, 4].map((n) => ({ n })));
    expect(deadLetters(stateDir).map((d) => [d.id, d.records])).toEqual([["orders-0@5-6", [{ n: 5 }]]]);
    expect(calls.deadLetters).toBe(1);
    await pipeline.drain(Date.now() + 5000);
    expect(committed(stateDir)).toEqual(["orders-0"]);
    // The splits of committed batches are not kept.
    const reopened = await open(source, stateDir, new FakeDispatcher(), clock);
    expect(reopened.pipeline.recovery.splits).toEqual([]);
  });

  it("logs each split before it sends the pieces, so that a restart sends the same pieces", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = new FakeDispatcher("rule");
    // The first send is poison; then the stage stays unavailable: the pieces wait.
    dispatcher.answer = (batch) => (batch.id === "orders-0" ? "poison" : "unavailable");
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 8 } }");
    const { pipeline } = await open(source, stateDir, dispatcher, clock);
    await appendRecords(pipeline, 8);
    await waitUntil(() => dispatcher.ids().includes("orders-0@4-8"), "the pieces sent");
    const splits = readFileSync(join(sourceLogDir(stateDir, "orders"), SPLITS_FILE), "utf8");
    expect(splits).toBe(`${JSON.stringify({ id: "orders-0", from: 0, to: 8, at: 4 })}\n`);
    // Stopped past its deadline, as a crash would leave it: nothing committed.
    await pipeline.drain(Date.now());
    expect(committed(stateDir)).toEqual([]);

    const again = new FakeDispatcher("ok");
    const restarted = await open(source, stateDir, again, clock);
    await waitUntil(() => restarted.pipeline.depth === 0, "the pieces sent and committed");
    expect(again.ids()).toEqual(["orders-0@0-4", "orders-0@4-8"]);
    expect(deadLetters(stateDir)).toEqual([]);
  });

  it("dead-letters nothing while the source drains: what fails stays uncommitted for the next start", async () => {
    const clock = new ManualClock();
    const stateDir = tempDir("mbc-pipeline-");
    const dispatcher = new FakeDispatcher("manual");
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1 } }");
    const { pipeline, calls } = await open(source, stateDir, dispatcher, clock);
    await appendRecords(pipeline, 2);
    await waitUntil(() => dispatcher.sent.length === 2, "both sent");
    const drained = pipeline.drain(Date.now() + 120_000);
    dispatcher.sent[0]?.reject(Object.assign(new Error("poison"), { failure: "poison" }));
    dispatcher.sent[1]?.resolve();
    await waitUntil(() => calls.batches.includes("unavailable"), "the failure to come back");
    expect(calls.deadLetters).toBe(0);
    // Time moves on; the drain's deadline (on the wall clock) is what ends it.
    await clock.advance(100);
    await waitUntil(() => dispatcher.sent.length === 3, "sent again while draining");
    dispatcher.sent[2]?.reject(Object.assign(new Error("poison"), { failure: "poison" }));
    await waitUntil(() => calls.batches.filter((b) => b === "unavailable").length === 2, "failed again");
    expect(calls.deadLetters).toBe(0);
    expect(deadLetters(stateDir)).toEqual([]);
    // Once it goes through, the drain ends, with both committed.
    await clock.advance(200);
    await waitUntil(() => dispatcher.sent.length === 4, "sent once more");
    dispatcher.sent[3]?.resolve();
    await drained;
    expect(committed(stateDir)).toEqual(["orders-0", "orders-1"]);
  });
});
