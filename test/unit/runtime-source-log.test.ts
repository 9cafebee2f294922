import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  BATCHES_FILE,
  COMMITS_FILE,
  isBatchEntry,
  isCommitEntry,
  KEYS_FILE,
  LogCorruptError,
  lineEnds,
  parseEntries,
  planRecovery,
  SourceLog,
  type SourceLogOptions,
  segmentBase,
  segmentName,
} from "../../src/runtime/source/log.js";

const dirs: string[] = [];
const logs: SourceLog[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mbc-source-log-"));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const log of logs.splice(0)) await log.close().catch(() => {});
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function openLog(dir: string, options: Partial<SourceLogOptions> = {}) {
  const opened = await SourceLog.open(dir, { source: "orders", fsync: true, ...options });
  logs.push(opened.log);
  return opened;
}

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => JSON.stringify({ n: from + k }));
const records = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => ({ n: from + k }));
const segments = (dir: string) =>
  readdirSync(dir)
    .filter((f) => segmentBase(f) !== null)
    .sort();
const text = (path: string) => readFileSync(path, "utf8");

describe("source log: pure helpers", () => {
  it("names segments by their first sequence number", () => {
    expect(segmentName(1200)).toBe("records-0000000000001200.jsonl");
    expect(segmentBase(segmentName(1200))).toBe(1200);
    expect(segmentBase("batches.jsonl")).toBeNull();
    expect(segmentBase("records-12.jsonl")).toBeNull();
  });

  it("finds complete lines; what follows the last newline is torn", () => {
    expect(lineEnds(Buffer.from("a\nbb\nccc"))).toEqual([2, 5]);
    expect(lineEnds(Buffer.from(""))).toEqual([]);
  });

  it("keeps the longest prefix of valid control entries", () => {
    const good = `${JSON.stringify({ id: "o-0", first: 0, last: 9 })}\n${JSON.stringify({ id: "o-10", first: 10, last: 19 })}\n`;
    expect(parseEntries(Buffer.from(good), isBatchEntry)).toEqual({
      entries: [
        { id: "o-0", first: 0, last: 9 },
        { id: "o-10", first: 10, last: 19 },
      ],
      validBytes: good.length,
      problem: null,
    });
    const torn = parseEntries(Buffer.from(`${good}{"id":"o-20","fi`), isBatchEntry);
    expect(torn.entries).toHaveLength(2);
    expect(torn.validBytes).toBe(good.length);
    expect(torn.problem).toMatchObject({ line: 3, reason: expect.stringContaining("torn") });
    const bad = parseEntries(Buffer.from(`{"id":"o-20"}\n{"id":"o-30","last":3}\n`), isCommitEntry);
    expect(bad.entries).toHaveLength(0);
    expect(bad.problem?.line).toBe(1);
  });

  it("plans recovery: pending batches after the last commit, unbatched records after the last batch", () => {
    const plan = planRecovery(
      [{ id: "o-0", last: 9 }],
      [
        { id: "o-0", first: 0, last: 9 },
        { id: "o-10", first: 10, last: 19 },
        { id: "o-20", first: 20, last: 24 },
      ],
      [
        { base: 0, count: 20 },
        { base: 20, count: 10 },
      ],
    );
    expect(plan.committedThrough).toBe(9);
    expect(plan.pending.map((b) => b.id)).toEqual(["o-10", "o-20"]);
    expect(plan.lastCommitted?.id).toBe("o-0");
    expect(plan.unbatchedFirst).toBe(25);
    expect(plan.recordsEnd).toBe(30);
    expect(plan.nextSeq).toBe(30);
    expect(plan.deletable).toEqual([]);
    expect(plan.notes).toEqual([]);
  });

  it("plans the deletion of fully committed segments, never the last one", () => {
    const plan = planRecovery(
      [{ id: "o-20", last: 29 }],
      [{ id: "o-20", first: 20, last: 29 }],
      [
        { base: 0, count: 10 },
        { base: 10, count: 10 },
        { base: 20, count: 10 },
      ],
    );
    expect(plan.deletable).toEqual([0, 10]);
    expect(plan.pending).toEqual([]);
    expect(plan.unbatchedFirst).toBe(30);
    expect(plan.nextSeq).toBe(30);
  });

  it("drops a batch whose records are not on disk, and every batch after it", () => {
    const plan = planRecovery(
      [],
      [
        { id: "o-0", first: 0, last: 4 },
        { id: "o-5", first: 5, last: 14 },
        { id: "o-15", first: 15, last: 16 },
      ],
      [{ base: 0, count: 8 }],
    );
    expect(plan.pending.map((b) => b.id)).toEqual(["o-0"]);
    expect(plan.unbatchedFirst).toBe(5);
    // Never reuse a number a logged batch has seen.
    expect(plan.nextSeq).toBe(8);
    expect(plan.notes.join("\n")).toContain("o-5");
  });

  it("never hands out a sequence number a commit has seen, even with the records gone", () => {
    const plan = planRecovery([{ id: "o-0", last: 99 }], [{ id: "o-0", first: 0, last: 99 }], []);
    expect(plan.nextSeq).toBe(100);
    expect(plan.unbatchedFirst).toBe(0);
    expect(plan.pending).toEqual([]);
  });

  it("drops a batch that does not follow the previous one", () => {
    const plan = planRecovery(
      [],
      [
        { id: "o-0", first: 0, last: 4 },
        { id: "o-7", first: 7, last: 9 },
      ],
      [{ base: 0, count: 10 }],
    );
    expect(plan.batches.map((b) => b.id)).toEqual(["o-0"]);
    expect(plan.unbatchedFirst).toBe(5);
  });
});

describe("source log: appends and recovery", () => {
  it("numbers records in call order and makes them durable before resolving", async () => {
    const dir = freshDir();
    const { log, recovery } = await openLog(dir);
    expect(recovery).toMatchObject({ nextSeq: 0, committedThrough: -1, pending: [], lastBatch: null, notes: [] });
    const a = log.appendRecords(lines(0, 2));
    const b = log.appendRecords(lines(3, 4));
    expect([a.first, a.last, b.first, b.last]).toEqual([0, 2, 3, 4]);
    // Appended in the same turn: one group, one write, one fsync.
    expect(a.durable).toBe(b.durable);
    await b.durable;
    expect(text(join(dir, segmentName(0)))).toBe(`${lines(0, 4).join("\n")}\n`);
    expect(log.nextSeq).toBe(5);
  });

  it("recovers uncommitted batches with their ids and records, and the unbatched records", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 9)).durable;
    await first.log.appendBatch({ id: "orders-0", first: 0, last: 3 });
    await first.log.appendBatch({ id: "orders-4", first: 4, last: 7 });
    await first.log.appendCommit({ id: "orders-0", last: 3 });
    await first.log.close();

    const { log, recovery } = await openLog(dir);
    expect(recovery.committedThrough).toBe(3);
    expect(recovery.pending).toEqual([
      { id: "orders-4", first: 4, last: 7, records: lines(4, 7), bytes: JSON.stringify(records(4, 7)).length, cursor: null, reason: "recovered" },
    ]);
    expect(recovery.unbatched).toEqual({ first: 8, lines: lines(8, 9), bytes: [7, 7] });
    expect(recovery.lastBatch).toEqual({ id: "orders-4", first: 4, last: 7 });
    expect(recovery.nextSeq).toBe(10);
    expect(log.nextSeq).toBe(10);
    // New records continue the sequence in the same segment.
    await log.appendRecords(lines(10, 10)).durable;
    expect(
      text(join(dir, segmentName(0)))
        .trim()
        .split("\n"),
    ).toEqual(lines(0, 10));
  });

  it("truncates a torn last record line (a crash in the middle of a write)", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 4)).durable;
    await first.log.close();
    const segment = join(dir, segmentName(0));
    appendFileSync(segment, '{"n":5,"tr');

    const { log, recovery } = await openLog(dir);
    expect(recovery.notes.join("\n")).toMatch(/torn last line/);
    expect(recovery.nextSeq).toBe(5);
    expect(recovery.unbatched.lines).toEqual(lines(0, 4));
    expect(text(segment)).toBe(`${lines(0, 4).join("\n")}\n`);
    const next = log.appendRecords(lines(5, 5));
    expect(next.first).toBe(5);
    await next.durable;
    expect(text(segment).trim().split("\n")).toEqual(lines(0, 5));
  });

  it("truncates torn batch and commit lines: a batch that was not logged was never sent", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 9)).durable;
    await first.log.appendBatch({ id: "orders-0", first: 0, last: 4 });
    await first.log.appendCommit({ id: "orders-0", last: 4 });
    await first.log.close();
    appendFileSync(join(dir, BATCHES_FILE), '{"id":"orders-5","first":5,"la');
    appendFileSync(join(dir, COMMITS_FILE), '{"id":"orders-5"');

    const { recovery } = await openLog(dir);
    expect(recovery.committedThrough).toBe(4);
    expect(recovery.pending).toEqual([]);
    expect(recovery.unbatched.first).toBe(5);
    expect(recovery.unbatched.lines).toEqual(lines(5, 9));
    expect(text(join(dir, BATCHES_FILE))).toBe(`${JSON.stringify({ id: "orders-0", first: 0, last: 4 })}\n`);
    expect(text(join(dir, COMMITS_FILE))).toBe(`${JSON.stringify({ id: "orders-0", last: 4 })}\n`);
  });

  it("refuses to re-send a logged batch with a damaged record", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 2)).durable;
    await first.log.appendBatch({ id: "orders-0", first: 0, last: 2 });
    await first.log.close();
    const segment = join(dir, segmentName(0));
    writeFileSync(segment, `${lines(0, 0)}\nnot json\n${lines(2, 2)}\n`);
    await expect(SourceLog.open(dir, { source: "orders", fsync: true })).rejects.toBeInstanceOf(LogCorruptError);
  });

  it("drops the unbatched records when asked (the file source reads them again)", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 9)).durable;
    await first.log.appendBatch({ id: "orders-0", first: 0, last: 5, cursor: { offset: 60, line: 7 } });
    await first.log.close();

    const { log, recovery } = await openLog(dir, { discardUnbatched: true });
    expect(recovery.pending.map((b) => [b.id, b.cursor])).toEqual([["orders-0", { offset: 60, line: 7 }]]);
    expect(recovery.unbatched.lines).toEqual([]);
    expect(recovery.nextSeq).toBe(6);
    expect(
      text(join(dir, segmentName(0)))
        .trim()
        .split("\n"),
    ).toEqual(lines(0, 5));
    expect(log.appendRecords(lines(6, 6)).first).toBe(6);
  });

  it("rolls segments and deletes the ones whose records are all committed", async () => {
    const dir = freshDir();
    const { log } = await openLog(dir, { segmentBytes: 50 });
    // Each append is one group: 5 records of 8 bytes = 40 bytes, so every second group rolls.
    for (let g = 0; g < 6; g++) await log.appendRecords(lines(g * 5, g * 5 + 4)).durable;
    expect(segments(dir)).toEqual([segmentName(0), segmentName(10), segmentName(20)]);
    for (let g = 0; g < 6; g++) await log.appendBatch({ id: `orders-${g * 5}`, first: g * 5, last: g * 5 + 4 });
    await log.appendCommit({ id: "orders-0", last: 4 });
    expect(segments(dir)).toHaveLength(3);
    await log.appendCommit({ id: "orders-5", last: 9 });
    expect(segments(dir)).toEqual([segmentName(10), segmentName(20)]);
    await log.appendCommit({ id: "orders-10", last: 14 });
    await log.appendCommit({ id: "orders-15", last: 19 });
    await log.appendCommit({ id: "orders-20", last: 24 });
    await log.appendCommit({ id: "orders-25", last: 29 });
    // The active segment stays, even when all of it is committed.
    expect(segments(dir)).toEqual([segmentName(20)]);
    await log.close();

    const { recovery } = await openLog(dir, { segmentBytes: 50 });
    expect(recovery).toMatchObject({ nextSeq: 30, committedThrough: 29, pending: [], notes: [] });
    expect(recovery.unbatched.lines).toEqual([]);
    // The control logs are rewritten down to the last committed batch.
    expect(text(join(dir, BATCHES_FILE))).toBe(`${JSON.stringify({ id: "orders-25", first: 25, last: 29 })}\n`);
    expect(text(join(dir, COMMITS_FILE))).toBe(`${JSON.stringify({ id: "orders-25", last: 29 })}\n`);
  });

  it("rewrites long batch and commit logs while running", async () => {
    const dir = freshDir();
    const { log } = await openLog(dir, { controlCompactEntries: 10 });
    await log.appendRecords(lines(0, 19)).durable;
    for (let k = 0; k < 20; k++) {
      await log.appendBatch({ id: `orders-${k}`, first: k, last: k });
      if (k < 18) await log.appendCommit({ id: `orders-${k}`, last: k });
    }
    await log.appendCommit({ id: "orders-18", last: 18 });
    const batches = text(join(dir, BATCHES_FILE)).trim().split("\n");
    expect(batches.length).toBeLessThan(10);
    expect(batches.map((l) => JSON.parse(l).id)).toContain("orders-19");
    await log.close();
    const { recovery } = await openLog(dir);
    expect(recovery.committedThrough).toBe(18);
    expect(recovery.pending.map((b) => b.id)).toEqual(["orders-19"]);
  });

  it("keeps up with many concurrent appends and recovers every record", async () => {
    const dir = freshDir();
    const { log } = await openLog(dir, { segmentBytes: 256 * 1024 });
    const requests = 200;
    const perRequest = 250;
    const appended = [];
    for (let r = 0; r < requests; r++) {
      appended.push(log.appendRecords(Array.from({ length: perRequest }, (_, k) => JSON.stringify({ r, k, pad: "x".repeat(40) }))));
      // Interleave turns of the event loop, as request bodies arrive.
      if (r % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(appended.map((a) => a.durable));
    expect(appended.map((a) => a.first)).toEqual(Array.from({ length: requests }, (_, r) => r * perRequest));
    await log.close();
    const { recovery } = await openLog(dir);
    expect(recovery.nextSeq).toBe(requests * perRequest);
    expect(recovery.unbatched.lines).toHaveLength(requests * perRequest);
    expect(JSON.parse(recovery.unbatched.lines[perRequest + 3] as string)).toEqual({ r: 1, k: 3, pad: "x".repeat(40) });
    expect(segments(dir).length).toBeGreaterThan(1);
  });

  it("fails later appends after close", async () => {
    const dir = freshDir();
    const { log } = await openLog(dir);
    await log.close();
    await expect(log.appendRecords(lines(0, 0)).durable).rejects.toThrow(/closed/);
    await expect(log.appendCommit({ id: "orders-0", last: 0 })).rejects.toThrow(/closed/);
  });
});

describe("source log: idempotency keys", () => {
  const key = (name: string, hash = "h") => ({ key: name, hash });

  it("logs a key with its records, durable before them, and remembers it after a restart", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    const a = first.log.appendRecords(lines(0, 2), key("a"));
    expect(first.log.keyState("a")).toEqual({ entry: { key: "a", hash: "h", first: 0, count: 3 }, durable: false });
    await a.durable;
    expect(first.log.keyState("a")?.durable).toBe(true);
    await first.log.appendRecords(lines(3, 3)).durable;
    await first.log.appendRecords(lines(4, 5), key("b", "g")).durable;
    expect(() => first.log.appendRecords(lines(6, 6), key("a"))).toThrow(/already logged/);
    expect(text(join(dir, KEYS_FILE))).toBe(
      `${JSON.stringify({ key: "a", hash: "h", first: 0, count: 3 })}\n${JSON.stringify({ key: "b", hash: "g", first: 4, count: 2 })}\n`,
    );
    await first.log.close();

    const { log, recovery } = await openLog(dir);
    expect(recovery.notes).toEqual([]);
    expect(log.keyState("a")).toEqual({ entry: { key: "a", hash: "h", first: 0, count: 3 }, durable: true });
    expect(log.keyState("b")?.entry).toEqual({ key: "b", hash: "g", first: 4, count: 2 });
    expect(log.keyState("c")).toBeUndefined();
  });

  it("drops a key whose records are not all on disk, and cuts what its append had written", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 1), key("done")).durable;
    await first.log.close();
    // A crash after the key of the next append was made durable, and half of its records written.
    appendFileSync(join(dir, KEYS_FILE), `${JSON.stringify({ key: "torn", hash: "h", first: 2, count: 4 })}\n`);
    appendFileSync(join(dir, segmentName(0)), `${lines(2, 3).join("\n")}\n`);

    const { log, recovery } = await openLog(dir);
    expect(recovery.notes.join("\n")).toMatch(/records 2\.\.3 of the unacknowledged append under key "torn" are cut/);
    expect(recovery.nextSeq).toBe(2);
    expect(recovery.unbatched.lines).toEqual(lines(0, 1));
    expect(text(join(dir, segmentName(0)))).toBe(`${lines(0, 1).join("\n")}\n`);
    expect(log.keyState("torn")).toBeUndefined();
    expect(log.keyState("done")?.durable).toBe(true);
    // The keys file no longer names it: the client's retry is a new append.
    expect(text(join(dir, KEYS_FILE))).toBe(`${JSON.stringify({ key: "done", hash: "h", first: 0, count: 2 })}\n`);
    const retry = log.appendRecords(lines(2, 5), key("torn"));
    expect(retry.first).toBe(2);
    await retry.durable;
  });

  it("drops a key whose records were never written, and a torn key line", async () => {
    const dir = freshDir();
    const first = await openLog(dir);
    await first.log.appendRecords(lines(0, 0), key("a")).durable;
    await first.log.close();
    appendFileSync(join(dir, KEYS_FILE), `${JSON.stringify({ key: "b", hash: "h", first: 1, count: 1 })}\n{"key":"c","ha`);

    const { log, recovery } = await openLog(dir);
    expect(recovery.nextSeq).toBe(1);
    expect(recovery.notes.join("\n")).toMatch(/keys\.jsonl:3: torn last line/);
    expect(recovery.notes.join("\n")).toMatch(/1 idempotency key\(s\) whose records are not in the log dropped/);
    expect(log.keyState("b")).toBeUndefined();
    expect(text(join(dir, KEYS_FILE))).toBe(`${JSON.stringify({ key: "a", hash: "h", first: 0, count: 1 })}\n`);
  });

  it("remembers the last keys of its window, and rewrites the keys file past twice as many", async () => {
    const dir = freshDir();
    const first = await openLog(dir, { idempotencyKeys: 3 });
    for (let k = 0; k < 7; k++) await first.log.appendRecords(lines(k, k), key(`k${k}`)).durable;
    expect(["k0", "k1", "k2", "k3"].map((k) => first.log.keyState(k))).toEqual([undefined, undefined, undefined, undefined]);
    expect(first.log.keyState("k6")?.entry.first).toBe(6);
    // 7 lines > 2 × 3: rewritten down to the window.
    expect(text(join(dir, KEYS_FILE)).trim().split("\n")).toHaveLength(3);
    await first.log.appendRecords(lines(7, 7), key("k7")).durable;
    await first.log.close();

    const { log } = await openLog(dir, { idempotencyKeys: 3 });
    expect(["k4", "k5", "k6", "k7"].map((k) => log.keyState(k)?.entry.first ?? null)).toEqual([null, 5, 6, 7]);
  });

  it("keeps keys of committed records whose segments are gone", async () => {
    const dir = freshDir();
    const { log } = await openLog(dir, { segmentBytes: 20 });
    for (let k = 0; k < 6; k++) {
      await log.appendRecords(lines(k * 2, k * 2 + 1), key(`k${k}`)).durable;
      await log.appendBatch({ id: `orders-${k * 2}`, first: k * 2, last: k * 2 + 1 });
      await log.appendCommit({ id: `orders-${k * 2}`, last: k * 2 + 1 });
    }
    await log.close();
    const again = await openLog(dir, { segmentBytes: 20 });
    expect(segments(dir).length).toBeLessThan(6);
    expect(again.log.keyState("k0")?.entry).toEqual({ key: "k0", hash: "h", first: 0, count: 2 });
    expect(again.recovery.notes).toEqual([]);
  });
});
