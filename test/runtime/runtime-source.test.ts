import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { SourceModel } from "../../src/model/types.js";
import type { RuntimeEnv, WireBatch } from "../../src/runtime/core/contracts.js";
import { createRouter, type RunningServer, startServer } from "../../src/runtime/core/http.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { startRole } from "../../src/runtime/process/index.js";
import type { Timer } from "../../src/runtime/source/batcher.js";
import { deadLetterDir, deadLetterName } from "../../src/runtime/source/dead-letter.js";
import { sourceRoleFactory } from "../../src/runtime/source/index.js";
import { FileSource } from "../../src/runtime/source/kinds/file.js";
import { GeneratorSource } from "../../src/runtime/source/kinds/generator.js";
import { bodyFingerprint, httpSourceRoute, idempotencyKey, SOURCE_BODY_LIMIT } from "../../src/runtime/source/kinds/http.js";
import { COMMITS_FILE, segmentName } from "../../src/runtime/source/log.js";
import { SourcePipeline, type SourcePipelineOptions, sourceLogDir } from "../../src/runtime/source/pipeline.js";
import { FakeDispatcher, failedAs, fakeMetrics, memoryLogger, type Sent, sourceModel } from "../helpers/pipeline.js";
import { bundleEntry, cleanupAll, freePorts, httpJson, killAll, makeSystem, spawnRuntime, waitUntil } from "../helpers/runtime.js";

// ---------------------------------------------------------------------------------------------
// Fixtures

const dirs: string[] = [];
const pipelines: SourcePipeline[] = [];
const servers: RunningServer[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mbc-source-"));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
  for (const p of pipelines.splice(0)) await p.drain(Date.now()).catch(() => {});
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await killAll();
  cleanupAll();
});

async function openPipeline(source: SourceModel, stateDir: string, options: Partial<SourcePipelineOptions> = {}) {
  const dispatcher = (options.dispatcher as FakeDispatcher | undefined) ?? new FakeDispatcher();
  const { metrics, calls } = fakeMetrics();
  const log = memoryLogger();
  const pipeline = await SourcePipeline.open({ source, stateDir, fsync: true, dispatcher, log, metrics, ...options });
  pipelines.push(pipeline);
  return { pipeline, dispatcher, calls, log };
}

/** An http source's route on an ephemeral port, as the process scaffolding would serve it. */
async function serveHttp(source: SourceModel, pipeline: SourcePipeline) {
  if (source.type !== "http") throw new Error(`serveHttp needs an http source, not ${source.type}`);
  const router = createRouter([httpSourceRoute(source, pipeline)], { log: memoryLogger(), isDraining: () => pipeline.isDraining });
  const server = await startServer(router, "127.0.0.1", 0);
  servers.push(server);
  return `http://127.0.0.1:${server.port}${source.location}`;
}

function committedIds(stateDir: string): string[] {
  const path = join(sourceLogDir(stateDir, "orders"), COMMITS_FILE);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { id: string }).id);
}

function loggedRecords(stateDir: string): unknown[] {
  const dir = sourceLogDir(stateDir, "orders");
  return readdirSync(dir)
    .filter((f) => f.startsWith("records-"))
    .sort()
    .flatMap((f) =>
      readFileSync(join(dir, f), "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as unknown),
    );
}

// ---------------------------------------------------------------------------------------------
// Pure parts

// ---------------------------------------------------------------------------------------------
// The pipeline over HTTP

describe("http source", () => {
  it("answers 202 only once the records are in the durable log", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1000, maxWait: 1h } }");
    const { pipeline } = await openPipeline(source, stateDir, { dispatcher: new FakeDispatcher("manual") });
    const url = await serveHttp(source, pipeline);
    const segment = join(sourceLogDir(stateDir, "orders"), segmentName(0));

    const first = await httpJson("POST", url, [{ id: 1 }, { id: 2 }]);
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ accepted: 2, first: 0 });
    // When the 202 arrives, the records are on disk.
    expect(readFileSync(segment, "utf8")).toBe('{"id":1}\n{"id":2}\n');

    const second = await httpJson("POST", url, '{"id":3}\n{"id":4}\n{"id":5}\n', { "content-type": "application/x-ndjson" });
    expect(second.json).toEqual({ accepted: 3, first: 2 });
    expect(readFileSync(segment, "utf8").split("\n")).toHaveLength(6);
    expect(pipeline.depth).toBe(5);
  });

  it("answers 400 with a reason for a bad body and logs nothing of it", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink }");
    const { pipeline } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);

    const badArray = await httpJson("POST", url, "[1, 2,");
    expect(badArray.status).toBe(400);
    expect((badArray.json as { error: string }).error).toMatch(/^not a JSON array/);
    const badLine = await httpJson("POST", url, '{"ok":1}\n{"ok":2}\n{oops}\n');
    expect(badLine.status).toBe(400);
    expect((badLine.json as { error: string }).error).toMatch(/^line 3: /);
    const empty = await httpJson("POST", url, "");
    expect(empty.status).toBe(400);
    const notUtf8 = await fetch(url, { method: "POST", body: Buffer.from([0x5b, 0xff, 0x5d]) });
    expect(notUtf8.status).toBe(400);

    expect(pipeline.nextSeq).toBe(0);
    expect(loggedRecords(stateDir)).toEqual([]);
  });

  it("answers 413 for a body over the limit", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink }");
    const { pipeline } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);
    const big = `[${'"x",'.repeat(SOURCE_BODY_LIMIT / 4)}"x"]`;
    const answer = await httpJson("POST", url, big);
    expect(answer.status).toBe(413);
    expect(pipeline.nextSeq).toBe(0);
  });

  it("answers 503 with Retry-After while the queue is full, and takes records again once batches commit", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2 } }");
    const dispatcher = new FakeDispatcher("manual");
    const { pipeline } = await openPipeline(source, stateDir, { dispatcher, queue: { records: 10, bytes: 1_000_000 }, maxInFlight: 2 });
    const url = await serveHttp(source, pipeline);

    const answers: number[] = [];
    for (let k = 0; k < 6; k++)
      answers.push(
        (
          await httpJson("POST", url, [
            { k, a: 1 },
            { k, a: 2 },
          ])
        ).status,
      );
    expect(answers).toEqual([202, 202, 202, 202, 202, 503]);
    const full = await httpJson("POST", url, [{ more: true }]);
    expect(full.status).toBe(503);
    expect(full.headers.get("retry-after")).toBe("1");
    // Nothing of a refused request is logged.
    expect(pipeline.nextSeq).toBe(10);

    // The stuck pipeline holds two batches in flight; answering them frees room.
    await waitUntil(() => dispatcher.sent.length === 2, "two batches in flight");
    for (const s of dispatcher.sent.splice(0)) s.resolve();
    await waitUntil(() => pipeline.depth === 6, "two batches committed");
    expect((await httpJson("POST", url, [{ again: true }])).status).toBe(202);
  });

  it("sends batches in order and commits strictly in order, whatever order the answers come in", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2 } }");
    const dispatcher = new FakeDispatcher("manual");
    const { pipeline, calls } = await openPipeline(source, stateDir, { dispatcher, maxInFlight: 3 });
    const url = await serveHttp(source, pipeline);
    expect((await httpJson("POST", url, [1, 2, 3, 4, 5, 6, 7, 8])).status).toBe(202);
    await waitUntil(() => dispatcher.sent.length === 3, "three batches in flight");
    expect(dispatcher.ids()).toEqual(["orders-0", "orders-2", "orders-4"]);
    expect(dispatcher.sent[0]?.to).toEqual(["sink"]);
    expect(dispatcher.sent[0]?.batch).toEqual({ id: "orders-0", via: ["orders"], records: [1, 2] });

    (dispatcher.sent[2] as Sent).resolve();
    (dispatcher.sent[1] as Sent).resolve();
    await waitUntil(() => calls.batches.length === 2, "two answers");
    await pipeline.drain(Date.now() + 50).catch(() => {});
    // Answers for 2 and 4 arrived, but 0 is still out: nothing may be committed.
    expect(committedIds(stateDir)).toEqual([]);
  });

  it("commits as a prefix once the head is answered", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2 } }");
    const dispatcher = new FakeDispatcher("manual");
    const { pipeline, calls } = await openPipeline(source, stateDir, { dispatcher, maxInFlight: 3 });
    const url = await serveHttp(source, pipeline);
    await httpJson("POST", url, [1, 2, 3, 4, 5, 6]);
    await waitUntil(() => dispatcher.sent.length === 3, "three batches in flight");
    (dispatcher.sent[2] as Sent).resolve();
    (dispatcher.sent[0] as Sent).resolve();
    // 0 and 4 are answered: only 0 is committed, 4 waits for 2.
    await waitUntil(() => pipeline.depth === 4, "the head committed");
    (dispatcher.sent[1] as Sent).resolve();
    await waitUntil(() => pipeline.depth === 0, "all committed");
    expect(calls.recordsIn).toBe(6);
    expect(calls.recordsOut).toBe(6);
    await pipeline.drain(Date.now() + 1000);
    expect(committedIds(stateDir)).toEqual(["orders-0", "orders-2", "orders-4"]);
  });

  it("dead-letters a record that is poison on its own, commits the batch and counts it", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1 } }");
    const dispatcher = new FakeDispatcher("manual");
    const { pipeline, calls, log } = await openPipeline(source, stateDir, { dispatcher });
    const url = await serveHttp(source, pipeline);
    await httpJson("POST", url, [{ a: 1 }, { a: 2 }]);
    await waitUntil(() => dispatcher.sent.length === 2, "two batches sent");
    (dispatcher.sent[0] as Sent).reject(failedAs("poison", "orders-0"));
    (dispatcher.sent[1] as Sent).resolve();
    await waitUntil(() => pipeline.depth === 0, "both committed");
    expect(calls.deadLetters).toBe(1);
    expect(calls.batches.sort()).toEqual(["dead-letter", "ok"]);
    const letter = JSON.parse(readFileSync(join(deadLetterDir(stateDir), deadLetterName("orders-0")), "utf8"));
    expect(letter).toMatchObject({ id: "orders-0", via: ["orders"], records: [{ a: 1 }], failures: [{ service: "sink" }] });
    expect(log.lines.some((l) => l.level === "error" && l.fields?.batch === "orders-0")).toBe(true);
    await pipeline.drain(Date.now() + 1000);
    expect(committedIds(stateDir)).toEqual(["orders-0", "orders-1"]);
  });

  it("stops, leaving the batch uncommitted, when its dead letter cannot be written", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1 } }");
    const dispatcher = new FakeDispatcher("manual");
    const fatal: Error[] = [];
    const { pipeline } = await openPipeline(source, stateDir, {
      dispatcher,
      deadLetter: () => Promise.reject(new Error("disk full")),
      onFatal: (error) => fatal.push(error),
    });
    await pipeline.append({ lines: ["1"], bytes: [1] });
    await waitUntil(() => dispatcher.sent.length === 1, "the batch sent");
    dispatcher.sent[0]?.reject(failedAs("poison", "orders-0"));
    await waitUntil(() => fatal.length === 1, "the failure reported");
    expect(pipeline.failure?.message).toBe("disk full");
    expect(pipeline.hasRoom()).toBe(false);
    await pipeline.drain(Date.now() + 1000);
    expect(committedIds(stateDir)).toEqual([]);
    // The next start sends it again.
    const again = await openPipeline(source, stateDir);
    expect(again.pipeline.recovery.pending.map((b) => b.id)).toEqual(["orders-0"]);
  });

  it("holds batches while they may not be sent", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1 } }");
    let open = false;
    const { pipeline, dispatcher } = await openPipeline(source, stateDir, { canSend: () => open });
    await pipeline.append({ lines: ["1"], bytes: [1] });
    await pipeline.whenChanged(50);
    expect((dispatcher as FakeDispatcher).sent).toHaveLength(0);
    open = true;
    pipeline.poke();
    await waitUntil(() => pipeline.depth === 0, "the held batch committed");
    expect((dispatcher as FakeDispatcher).ids()).toEqual(["orders-0"]);
  });

  it("drains: refuses new records, closes and sends the open batch, commits it, flushes", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 100, maxWait: 1h } }");
    const { pipeline, dispatcher } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);
    await httpJson("POST", url, [1, 2, 3]);
    expect((dispatcher as FakeDispatcher).sent).toHaveLength(0);
    const drained = pipeline.drain(Date.now() + 5000);
    const refused = await httpJson("POST", url, [4]);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    await drained;
    expect((dispatcher as FakeDispatcher).ids()).toEqual(["orders-0"]);
    expect(committedIds(stateDir)).toEqual(["orders-0"]);

    // A restart finds nothing to re-send and continues the sequence.
    const again = await openPipeline(source, stateDir);
    expect(again.pipeline.recovery.pending).toEqual([]);
    expect(again.pipeline.nextSeq).toBe(3);
  });

  it("re-sends uncommitted batches with the same ids after a restart, and loses no acknowledged record", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 3, maxWait: 1h } }");
    const stuck = new FakeDispatcher("manual");
    const first = await openPipeline(source, stateDir, { dispatcher: stuck, maxInFlight: 2 });
    const url = await serveHttp(source, first.pipeline);
    const acked: unknown[] = [];
    for (let k = 0; k < 4; k++) {
      const body = [
        { k, n: 0 },
        { k, n: 1 },
      ];
      const answer = await httpJson("POST", url, body);
      expect(answer.status).toBe(202);
      acked.push(...body);
    }
    await waitUntil(() => stuck.sent.length === 2, "two batches in flight");
    // The first batch is answered and committed; the second stays in flight; one more is queued.
    (stuck.sent[0] as Sent).resolve();
    await waitUntil(() => committedIds(stateDir).length === 1, "the first commit");
    const inFlight = stuck.sent.slice(1).map((s) => s.batch);
    // Stop at once: what is not committed stays so.
    await first.pipeline.drain(Date.now());
    for (const s of servers.splice(0)) await s.close(0);

    const again = await openPipeline(source, stateDir);
    const resent = again.pipeline.recovery.pending.map((b) => b.id);
    expect(resent).toEqual(["orders-3", "orders-6"]);
    await waitUntil(() => again.pipeline.depth === 0, "everything committed after the restart");
    const dispatcher = again.dispatcher as FakeDispatcher;
    // The batch that was in flight comes back with the same id and the same records.
    expect(dispatcher.sent[0]?.batch).toEqual(inFlight[0]);
    expect(dispatcher.ids()).toEqual(["orders-3", "orders-6"]);
    // Every acknowledged record reached the pipeline exactly once across both runs (counting
    // the committed first batch and the re-sent ones).
    const delivered = [...(stuck.sent[0] as Sent).batch.records, ...dispatcher.sent.flatMap((s) => s.batch.records)];
    expect(delivered).toEqual(acked);
  });

  it("halts: sends nothing more, ignores late answers and failures (no dead letter), keeps what it acknowledged for the next start", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 2, maxWait: 1h } }");
    const stuck = new FakeDispatcher("manual");
    const first = await openPipeline(source, stateDir, { dispatcher: stuck, maxInFlight: 2 });
    const url = await serveHttp(source, first.pipeline);
    for (let k = 0; k < 3; k++)
      expect(
        (
          await httpJson("POST", url, [
            { k, n: 0 },
            { k, n: 1 },
          ])
        ).status,
      ).toBe(202);
    // An open batch too: acknowledged, not closed.
    expect((await httpJson("POST", url, [{ k: 3, n: 0 }])).status).toBe(202);
    await waitUntil(() => stuck.sent.length === 2, "two batches in flight");

    await first.pipeline.halt(Date.now() + 5000);
    // What was in flight fails now (the services went away), or is answered late: neither counts.
    (stuck.sent[0] as Sent).reject(failedAs("unavailable", "orders-0"));
    (stuck.sent[1] as Sent).resolve();
    await new Promise((r) => setImmediate(r));
    expect(stuck.sent).toHaveLength(2);
    expect(first.calls.deadLetters).toBe(0);
    expect(existsSync(deadLetterDir(stateDir))).toBe(false);
    expect(committedIds(stateDir)).toEqual([]);
    expect((await httpJson("POST", url, [{ k: 9 }])).status).toBe(503);
    for (const s of servers.splice(0)) await s.close(0);

    // The next start has every acknowledged record: the three batches, and the open one closed with its boundaries logged.
    const again = await openPipeline(source, stateDir);
    expect(again.pipeline.recovery.pending.map((b) => b.id)).toEqual(["orders-0", "orders-2", "orders-4", "orders-6"]);
    await waitUntil(() => again.pipeline.depth === 0, "everything committed after the restart");
    expect((again.dispatcher as FakeDispatcher).sent.flatMap((s) => s.batch.records)).toEqual([
      { k: 0, n: 0 },
      { k: 0, n: 1 },
      { k: 1, n: 0 },
      { k: 1, n: 1 },
      { k: 2, n: 0 },
      { k: 2, n: 1 },
      { k: 3, n: 0 },
    ]);
  });

  it("re-batches records that were acknowledged but not batched before the restart", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 100, maxWait: 1h } }");
    const first = await openPipeline(source, stateDir, { dispatcher: new FakeDispatcher("manual") });
    await first.pipeline.append({ lines: ['{"a":1}', '{"a":2}'], bytes: [7, 7] });
    // Abandoned without drain: the batch was never closed.
    const again = await openPipeline(source, stateDir);
    expect(again.pipeline.recovery.unbatched.lines).toEqual(['{"a":1}', '{"a":2}']);
    await again.pipeline.drain(Date.now() + 5000);
    expect((again.dispatcher as FakeDispatcher).sent.map((s) => s.batch)).toEqual([{ id: "orders-0", via: ["orders"], records: [{ a: 1 }, { a: 2 }] }]);
  });
});

// ---------------------------------------------------------------------------------------------
// A real crash: SIGKILL while batches are in flight

describe("http source: idempotency keys", () => {
  const keyed = (key: string) => ({ "idempotency-key": key });

  it("takes a key once: the same key and body again are answered from the log, another body is 422", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1000, maxWait: 1h } }");
    const { pipeline } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);
    const body = [{ id: 1 }, { id: 2 }];

    const first = await httpJson("POST", url, body, keyed("order-7"));
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ accepted: 2, first: 0 });
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const other = await httpJson("POST", url, [{ id: 3 }], keyed("order-8"));
    expect(other.json).toEqual({ accepted: 1, first: 2 });

    const again = await httpJson("POST", url, body, keyed("order-7"));
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ accepted: 2, first: 0 });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    // The IETF draft's form of the same key: a quoted string.
    const quoted = await httpJson("POST", url, body, keyed('"order-7"'));
    expect(quoted.json).toEqual({ accepted: 2, first: 0 });

    const changed = await httpJson("POST", url, [{ id: 1 }, { id: 99 }], keyed("order-7"));
    expect(changed.status).toBe(422);
    expect((changed.json as { error: string }).error).toMatch(/Idempotency-Key "order-7" was used for another body/);
    // A request without a key is taken as before, even with the same body.
    const plain = await httpJson("POST", url, body);
    expect(plain.json).toEqual({ accepted: 2, first: 3 });

    expect(pipeline.nextSeq).toBe(5);
    expect(loggedRecords(stateDir)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 1 }, { id: 2 }]);
  });

  it("remembers a key across a restart, and answers it even with a full queue", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1000, maxWait: 1h } }");
    const first = await openPipeline(source, stateDir, { dispatcher: new FakeDispatcher("manual") });
    const url = await serveHttp(source, first.pipeline);
    const body = '{"n":1}\n{"n":2}\n{"n":3}\n';
    expect((await httpJson("POST", url, body, keyed("k-1"))).json).toEqual({ accepted: 3, first: 0 });
    await first.pipeline.drain(Date.now());
    for (const server of servers.splice(0)) await server.close(0);

    // The records were never committed: the restart queues them again, and remembers the key.
    const second = await openPipeline(source, stateDir, { dispatcher: new FakeDispatcher("manual"), queue: { records: 3, bytes: 1_000_000 } });
    const url2 = await serveHttp(source, second.pipeline);
    expect(second.pipeline.hasRoom()).toBe(false);
    const replay = await httpJson("POST", url2, body, keyed("k-1"));
    expect(replay.status).toBe(202);
    expect(replay.json).toEqual({ accepted: 3, first: 0 });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect((await httpJson("POST", url2, body, keyed("k-2"))).status).toBe(503);
    expect(second.pipeline.nextSeq).toBe(3);
    expect(loggedRecords(stateDir)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it("appends a key posted twice at once only once", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 1000, maxWait: 1h } }");
    const { pipeline } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);
    const body = Array.from({ length: 50 }, (_, k) => ({ k }));
    const answers = await Promise.all(Array.from({ length: 4 }, () => httpJson("POST", url, body, keyed("same"))));
    // One takes it; each other finds it being logged (409, to retry) or logged (a replay).
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === 202 || s === 409)).toBe(true);
    for (const a of answers) if (a.status === 202) expect(a.json).toEqual({ accepted: 50, first: 0 });
    const conflict = answers.find((a) => a.status === 409);
    if (conflict !== undefined) expect(conflict.headers.get("retry-after")).toBe("1");
    expect(answers.filter((a) => a.status === 202 && a.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    expect(pipeline.nextSeq).toBe(50);
  });

  it("refuses a malformed key with 400 and logs nothing", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: http, port: 8080, to: sink }");
    const { pipeline } = await openPipeline(source, stateDir);
    const url = await serveHttp(source, pipeline);
    for (const key of ['""', '"unclosed', "k".repeat(256), "café"]) {
      const answer = await httpJson("POST", url, [1], keyed(key));
      expect({ key, status: answer.status }).toEqual({ key, status: 400 });
    }
    expect(pipeline.nextSeq).toBe(0);
  });

  it("reads the header as the IETF draft and Stripe write it", () => {
    const headers = (...values: string[]) =>
      values.length === 0
        ? { headers: {}, headersDistinct: {} }
        : { headers: { "idempotency-key": values.join(", ") }, headersDistinct: { "idempotency-key": values } };
    expect(idempotencyKey(headers())).toBeNull();
    expect(idempotencyKey(headers("KG5LxwFBepaKHyUD"))).toBe("KG5LxwFBepaKHyUD");
    expect(idempotencyKey(headers(' "8e03978e-40d5-43e8-bc93-6894a57f9324" '))).toBe("8e03978e-40d5-43e8-bc93-6894a57f9324");
    expect(idempotencyKey(headers('"a \\"b\\\\"'))).toBe('a "b\\');
    expect(idempotencyKey(headers("k".repeat(255)))).toHaveLength(255);
    expect(() => idempotencyKey(headers("a", "b"))).toThrow(/one Idempotency-Key/);
    expect(() => idempotencyKey(headers('"a\\x"'))).toThrow(/quoted string/);
    expect(() => idempotencyKey(headers("tab\there"))).toThrow(/printable ASCII/);
    expect(bodyFingerprint(Buffer.from("[1]"))).toHaveLength(22);
    expect(bodyFingerprint(Buffer.from("[1]"))).not.toBe(bodyFingerprint(Buffer.from("[2]")));
  });
});

describe("http source: a killed process", () => {
  it("loses no acknowledged record and re-sends in-flight batches with their ids", async () => {
    const stateDir = freshDir();
    const entry = await bundleEntry({
      contents: `
import { createRouter, startServer } from "./src/runtime/core/http.ts";
import { silentLogger } from "./src/runtime/core/log.ts";
import { SourcePipeline } from "./src/runtime/source/pipeline.ts";
import { httpSourceRoute } from "./src/runtime/source/kinds/http.ts";

const source = JSON.parse(process.env.SOURCE_MODEL);
// Never answers: every batch stays in flight; each send is reported on stdout.
const dispatcher = { send: (to, { id, via, texts }) => { process.stdout.write(JSON.stringify({ sent: { id, via, records: texts.map((t) => JSON.parse(t)) } }) + "\\n"); return new Promise(() => {}); }, close() {} };
const metrics = { recordsIn() {}, recordsOut() {}, batch() {}, deadLetter() {}, queueDepth() {} };
const pipeline = await SourcePipeline.open({ source, stateDir: process.env.STATE_DIR, fsync: true, dispatcher, log: silentLogger, metrics, maxInFlight: 2 });
const server = await startServer(createRouter([httpSourceRoute(source, pipeline)], { log: silentLogger }), "127.0.0.1", 0);
process.stdout.write(JSON.stringify({ port: server.port }) + "\\n");
`,
    });
    const source = sourceModel("{ type: http, port: 8080, to: sink, batch: { maxRecords: 5, maxWait: 1h } }");
    const child = spawnRuntime(entry.file, [], { env: { SOURCE_MODEL: JSON.stringify(source), STATE_DIR: stateDir } });
    const parsed = () => child.lines.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as { port?: number; sent?: WireBatch }] : []));
    await waitUntil(() => parsed().some((m) => m.port !== undefined), "the child listening");
    const port = parsed().find((m) => m.port !== undefined)?.port as number;

    const acked: unknown[] = [];
    const posts = Array.from({ length: 8 }, (_, r) => {
      const body = Array.from({ length: 3 }, (_, k) => ({ r, k }));
      return httpJson("POST", `http://127.0.0.1:${port}/records`, body).then((a) => {
        if (a.status === 202) acked.push(...body);
      });
    });
    await Promise.all(posts);
    expect(acked).toHaveLength(24);
    await waitUntil(() => parsed().filter((m) => m.sent !== undefined).length === 2, "two batches in flight");
    child.kill("SIGKILL");
    await child.exited;

    const inFlight = parsed().flatMap((m) => (m.sent === undefined ? [] : [m.sent]));
    const again = await openPipeline(source, stateDir);
    await again.pipeline.drain(Date.now() + 5000);
    const dispatcher = again.dispatcher as FakeDispatcher;
    const resent = dispatcher.sent.map((s) => s.batch);
    // The batches that were in flight come back first, unchanged.
    expect(resent.slice(0, 2)).toEqual(inFlight);
    // Every acknowledged record is delivered exactly once after the restart (nothing was committed before).
    const delivered = resent.flatMap((b) => b.records) as { r: number; k: number }[];
    const key = (v: { r: number; k: number }) => `${v.r}/${v.k}`;
    expect(delivered.map(key).sort()).toEqual((acked as { r: number; k: number }[]).map(key).sort());
    entry.cleanup();
  });
});

// ---------------------------------------------------------------------------------------------
// File source

describe("file source", () => {
  async function startFile(stateDir: string, path: string, options: Partial<SourcePipelineOptions> = {}) {
    const source = sourceModel(`{ type: file, path: ${JSON.stringify(path)}, to: sink, batch: { maxRecords: 2, maxWait: 20ms } }`);
    const opened = await openPipeline(source, stateDir, { discardUnbatched: true, ...options });
    let badLines = 0;
    const file = new FileSource({ pipeline: opened.pipeline, path, log: opened.log, pollMs: 10, onBadLine: () => badLines++ });
    file.start();
    const stop = async () => {
      await file.stop();
      await opened.pipeline.drain(Date.now() + 5000);
    };
    return { ...opened, file, stop, badLines: () => badLines };
  }

  it("reads a JSONL file, skips and logs a bad line with its number, and resumes from its checkpoint", async () => {
    const stateDir = freshDir();
    const path = join(freshDir(), "input.jsonl");
    writeFileSync(path, '{"n":1}\n{"n":2}\nnot json\n{"n":3}\n\n{"n":4}\n');
    const run1 = await startFile(stateDir, path);
    await waitUntil(() => run1.pipeline.stats.committed === 2, "two batches committed");
    expect((run1.dispatcher as FakeDispatcher).sent.map((s) => s.batch)).toEqual([
      { id: "orders-0", via: ["orders"], records: [{ n: 1 }, { n: 2 }] },
      { id: "orders-2", via: ["orders"], records: [{ n: 3 }, { n: 4 }] },
    ]);
    expect(run1.badLines()).toBe(1);
    expect(run1.log.lines.find((l) => l.level === "warn" && l.msg.includes("not JSON"))?.fields).toMatchObject({ line: 3 });
    await run1.stop();

    // Appended while stopped: the next run reads only what is new.
    appendFileSync(path, '{"n":5}\n');
    const run2 = await startFile(stateDir, path);
    await waitUntil(() => run2.pipeline.stats.committed === 1, "the new record committed");
    expect((run2.dispatcher as FakeDispatcher).sent.map((s) => s.batch)).toEqual([{ id: "orders-4", via: ["orders"], records: [{ n: 5 }] }]);
    // It follows appends while running.
    appendFileSync(path, '{"n":6}\n{"n":7}\n');
    await waitUntil(() => run2.pipeline.stats.committed === 2, "the appended records committed");
    expect((run2.dispatcher as FakeDispatcher).sent[1]?.batch.records).toEqual([{ n: 6 }, { n: 7 }]);
    // Nine lines read (one bad, one blank): the next one is line 10.
    expect(run2.file.position).toEqual({ offset: readFileSync(path).length, line: 10 });
    await run2.stop();
  });

  it("re-sends an uncommitted batch with its id and reads on after it, not twice", async () => {
    const stateDir = freshDir();
    const path = join(freshDir(), "input.jsonl");
    writeFileSync(path, "1\n2\n3\n4\n5\n");
    const stuck = new FakeDispatcher("manual");
    const run1 = await startFile(stateDir, path, { dispatcher: stuck, maxInFlight: 1 });
    await waitUntil(() => stuck.sent.length === 1, "the first batch in flight");
    stuck.sent[0]?.resolve();
    await waitUntil(() => stuck.sent.length === 2, "the second batch in flight");
    await run1.file.stop();
    await run1.pipeline.drain(Date.now());

    const run2 = await startFile(stateDir, path);
    await waitUntil(() => run2.pipeline.stats.committed === 2 && run2.pipeline.idle, "the rest committed");
    const sent = (run2.dispatcher as FakeDispatcher).sent.map((s) => s.batch);
    expect(sent[0]).toEqual(stuck.sent[1]?.batch);
    expect(sent.flatMap((b) => b.records)).toEqual([3, 4, 5]);
    expect(sent.map((b) => b.id)).toEqual(["orders-2", "orders-4"]);
    await run2.stop();
  });

  it("takes a last line without newline once the file stops growing, and waits for a missing file", async () => {
    const stateDir = freshDir();
    const path = join(freshDir(), "later.jsonl");
    const run = await startFile(stateDir, path);
    await waitUntil(() => run.log.lines.some((l) => l.msg.includes("does not exist")), "the missing file noticed");
    writeFileSync(path, '{"a":1}\n{"a":2}');
    const sentRecords = () => (run.dispatcher as FakeDispatcher).sent.flatMap((s) => s.batch.records);
    await waitUntil(() => sentRecords().length === 2, "both records sent");
    expect(sentRecords()).toEqual([{ a: 1 }, { a: 2 }]);
    // The writer finishes the line later: the lone newline is a blank line.
    appendFileSync(path, '\n{"a":3}\n');
    await waitUntil(() => sentRecords().length === 3, "the next record sent");
    expect(sentRecords()).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(run.badLines()).toBe(0);
    await run.stop();
  });
});

// ---------------------------------------------------------------------------------------------
// Generator

describe("generator source", () => {
  function manualClock() {
    let now = 1_700_000_000_000;
    const callbacks: (() => void)[] = [];
    const timer: Timer = {
      set: (callback) => {
        callbacks.push(callback);
        return callback;
      },
      clear: (handle) => {
        const k = callbacks.indexOf(handle as () => void);
        if (k >= 0) callbacks.splice(k, 1);
      },
    };
    return {
      timer,
      now: () => now,
      advance(ms: number) {
        now += ms;
      },
      fire() {
        const due = callbacks.splice(0);
        for (const c of due) c();
      },
    };
  }

  it("makes records at its rate from the template, up to count, and resumes its sequence", async () => {
    const stateDir = freshDir();
    const source = sourceModel(
      "{ type: generator, rate: 100/s, count: 25, record: { id: 'r-{{seq}}', at: '{{now}}', fixed: 1 }, to: sink, batch: { maxRecords: 10, maxWait: 1h } }",
    );
    if (source.type !== "generator") throw new Error("the spec has a generator source");
    const clock = manualClock();
    const { pipeline } = await openPipeline(source, stateDir);
    const generator = new GeneratorSource({
      pipeline,
      template: source.record,
      ratePerSec: source.ratePerSec,
      count: source.count,
      log: memoryLogger(),
      timer: clock.timer,
      now: clock.now,
    });
    generator.start();
    clock.advance(100);
    await generator.tick();
    // 100 ms at 100/s: 10 records.
    expect(pipeline.nextSeq).toBe(10);
    clock.advance(50);
    await generator.tick();
    expect(pipeline.nextSeq).toBe(15);
    await generator.stop();
    await pipeline.drain(Date.now() + 5000);
    const records = loggedRecords(stateDir) as { id: string; at: string; fixed: number }[];
    expect(records[0]).toEqual({ id: "r-0", at: new Date(clock.now() - 50).toISOString(), fixed: 1 });
    expect(records.map((r) => r.id)).toEqual(Array.from({ length: 15 }, (_, k) => `r-${k}`));

    // After a restart the sequence goes on, and the generator stops at count.
    const again = await openPipeline(source, stateDir);
    const resumed = new GeneratorSource({
      pipeline: again.pipeline,
      template: source.record,
      ratePerSec: 100,
      count: 25,
      log: memoryLogger(),
      timer: clock.timer,
      now: clock.now,
    });
    resumed.start();
    clock.advance(10_000);
    await resumed.tick();
    expect(again.pipeline.nextSeq).toBe(25);
    expect(resumed.finished).toBe(true);
    await resumed.tick();
    expect(again.pipeline.nextSeq).toBe(25);
    await resumed.stop();
    await again.pipeline.drain(Date.now() + 5000);
    expect((loggedRecords(stateDir) as { id: string }[]).map((r) => r.id).slice(-3)).toEqual(["r-22", "r-23", "r-24"]);
    expect(committedIds(stateDir).at(-1)).toBe("orders-15");
  });

  it("waits while the queue is full instead of bursting afterwards", async () => {
    const stateDir = freshDir();
    const source = sourceModel("{ type: generator, rate: 1000/s, to: sink, batch: { maxRecords: 5, maxWait: 1h } }");
    const clock = manualClock();
    const dispatcher = new FakeDispatcher("manual");
    const { pipeline } = await openPipeline(source, stateDir, { dispatcher, queue: { records: 20, bytes: 1_000_000 }, maxInFlight: 1 });
    const generator = new GeneratorSource({ pipeline, template: {}, ratePerSec: 1000, count: null, log: memoryLogger(), timer: clock.timer, now: clock.now });
    generator.start();
    clock.advance(1000);
    await generator.tick();
    // 1000 due, 20 fit.
    expect(pipeline.nextSeq).toBe(20);
    clock.advance(1000);
    await generator.tick();
    expect(pipeline.nextSeq).toBe(20);
    // Room again: only what is due since the wait, not the backlog.
    await waitUntil(() => dispatcher.sent.length === 1, "a batch in flight");
    dispatcher.sent[0]?.resolve();
    await waitUntil(() => pipeline.depth === 15, "a batch committed");
    clock.advance(3);
    await generator.tick();
    expect(pipeline.nextSeq).toBe(23);
    await generator.stop();
  });
});

// ---------------------------------------------------------------------------------------------
// The role in the process scaffolding

describe("source role", () => {
  it("serves POST {path}, /metrics and /readyz through the process scaffolding, and drains", async () => {
    const port = await freePorts(1);
    const system = makeSystem(`mbc: 1
name: t
sources:
  orders: { type: http, port: ${port}, path: /in, to: sink, batch: { maxRecords: 2 } }
services:
  sink: { handler: builtin:passthrough }
`);
    const stateDir = freshDir();
    const env: RuntimeEnv = {
      systemDir: system.dir,
      dataDir: system.dir,
      stateDir,
      // Nothing listens there: readiness reports the missing downstream instances.
      registryUrl: "http://127.0.0.1:9",
      bind: "127.0.0.1",
      advertiseHost: "127.0.0.1",
      token: null,
      port: null,
      namespace: system.model.targets.kubernetes.namespace,
    };
    const dispatcher = new FakeDispatcher();
    const source = system.model.sources[0] as SourceModel;
    const running = await startRole({
      env,
      system: system.system,
      spec: { kind: "source", name: "orders", source },
      factory: sourceRoleFactory({ dispatcher }),
      log: memoryLogger(),
      metrics: createMetrics({ role: "source", source: "orders" }, { defaultMetrics: false }),
    });
    try {
      expect(running.port).toBe(port);
      const answer = await httpJson("POST", `http://127.0.0.1:${port}/in`, [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }]);
      expect(answer.status).toBe(202);
      await waitUntil(() => dispatcher.sent.length === 2, "two batches sent");
      const metrics = await httpJson("GET", `http://127.0.0.1:${port}/metrics`);
      expect(metrics.text).toMatch(/mbc_records_in_total\{source="orders"\} 4/);
      expect(metrics.text).toMatch(/mbc_batches_total\{outcome="ok",source="orders"\} 2/);
      const ready = await httpJson("GET", `http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
    } finally {
      expect(await running.shutdown("test")).toBe(0);
    }
    expect(committedIds(stateDir)).toEqual(["orders-0", "orders-2"]);
    system.cleanup();
  });
});
