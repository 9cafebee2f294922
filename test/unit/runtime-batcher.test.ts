import { describe, expect, it } from "vitest";
import { arrayBytes, Batcher, batchId, type ClosedBatch, type Timer } from "../../src/runtime/source/batcher.js";

/** A manual clock: `advance(ms)` runs the timers that come due, in order. */
function manualTimer() {
  let now = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  const timer: Timer = {
    set(callback, ms) {
      nextId += 1;
      timers.set(nextId, { at: now + ms, callback });
      return nextId;
    },
    clear(handle) {
      timers.delete(handle as number);
    },
  };
  const advance = (ms: number) => {
    const until = now + ms;
    for (;;) {
      let due: [number, { at: number; callback: () => void }] | null = null;
      for (const entry of timers) if (entry[1].at <= until && (due === null || entry[1].at < due[1].at)) due = entry;
      if (due === null) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].callback();
    }
    now = until;
  };
  return { timer, advance, pending: () => timers.size };
}

function setup(limits: { maxRecords?: number; maxBytes?: number; maxWaitMs?: number } = {}) {
  const clock = manualTimer();
  const batches: ClosedBatch[] = [];
  const batcher = new Batcher({
    source: "orders",
    limits: { maxRecords: limits.maxRecords ?? 100, maxBytes: limits.maxBytes ?? 1_000_000, maxWaitMs: limits.maxWaitMs ?? 200 },
    timer: clock.timer,
    onBatch: (b) => batches.push(b),
  });
  let seq = 0;
  const add = (record: unknown) => {
    const text = JSON.stringify(record);
    batcher.add(seq++, record, Buffer.byteLength(text));
  };
  return { batcher, batches, add, clock };
}

describe("batcher", () => {
  it("names a batch after its source and first sequence number", () => {
    expect(batchId("orders", 1200)).toBe("orders-1200");
  });

  it("closes at maxRecords", () => {
    const { batches, add, clock } = setup({ maxRecords: 3 });
    for (let k = 0; k < 7; k++) add({ k });
    expect(batches.map((b) => [b.id, b.first, b.last, b.reason])).toEqual([
      ["orders-0", 0, 2, "records"],
      ["orders-3", 3, 5, "records"],
    ]);
    expect(batches[1]?.records).toEqual([{ k: 3 }, { k: 4 }, { k: 5 }]);
    // The seventh record waits in the open batch, its timer running.
    expect(clock.pending()).toBe(1);
  });

  it("closes at maxBytes, counting the records as one JSON array", () => {
    // Each record `{"k":N}` is 7 bytes; an array of n of them takes 7n + n + 1 bytes.
    const { batches, add } = setup({ maxBytes: arrayBytes(3, 21) });
    for (let k = 0; k < 7; k++) add({ k });
    expect(batches.map((b) => [b.first, b.last, b.bytes, b.reason])).toEqual([
      [0, 2, 25, "bytes"],
      [3, 5, 25, "bytes"],
    ]);
    expect(JSON.stringify(batches[0]?.records).length).toBe(25);
  });

  it("closes before a record that would go over maxBytes, and sends an oversized record alone", () => {
    const { batches, add, batcher } = setup({ maxBytes: 30 });
    add("aaaaaaaaaa"); // 12 bytes: [..] = 14
    add("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"); // 42 bytes: too big to join, too big alone
    add("c");
    expect(batches.map((b) => [b.first, b.last, b.reason])).toEqual([
      [0, 0, "bytes"],
      [1, 1, "bytes"],
    ]);
    expect(batcher.size).toBe(1);
  });

  it("closes maxWait after the first record, not the last", () => {
    const { batches, add, clock } = setup({ maxWaitMs: 200 });
    add("a");
    clock.advance(150);
    add("b");
    clock.advance(49);
    expect(batches).toEqual([]);
    clock.advance(1);
    expect(batches.map((b) => [b.first, b.last, b.reason])).toEqual([[0, 1, "wait"]]);
    // The next batch's window starts with its own first record.
    clock.advance(1000);
    add("c");
    clock.advance(199);
    expect(batches).toHaveLength(1);
    clock.advance(1);
    expect(batches.map((b) => [b.id, b.reason])).toEqual([
      ["orders-0", "wait"],
      ["orders-2", "wait"],
    ]);
  });

  it("cancels the window's timer when a batch closes on a limit", () => {
    const { batches, add, clock } = setup({ maxRecords: 2, maxWaitMs: 100 });
    add(1);
    add(2);
    expect(clock.pending()).toBe(0);
    clock.advance(500);
    expect(batches).toHaveLength(1);
  });

  it("flushes the open batch on demand and carries the last cursor", () => {
    const { batches, batcher, clock } = setup();
    batcher.add(10, "a", 3, { offset: 4, line: 2 });
    batcher.add(11, "b", 3, { offset: 8, line: 3 });
    expect(batcher.flush()).toBe(true);
    expect(batcher.flush()).toBe(false);
    expect(batches).toEqual([{ id: "orders-10", first: 10, last: 11, records: ["a", "b"], bytes: 9, cursor: { offset: 8, line: 3 }, reason: "flush" }]);
    expect(clock.pending()).toBe(0);
  });

  it("refuses a gap inside a batch but may start the next batch anywhere", () => {
    const { batcher, batches } = setup();
    batcher.add(5, "a", 3);
    expect(() => batcher.add(7, "b", 3)).toThrow(RangeError);
    batcher.flush();
    batcher.add(9, "c", 3);
    batcher.flush();
    expect(batches.map((b) => b.id)).toEqual(["orders-5", "orders-9"]);
  });

  it("stop() cancels the window without closing the batch", () => {
    const { batcher, batches, add, clock } = setup({ maxWaitMs: 10 });
    add("a");
    batcher.stop();
    clock.advance(100);
    expect(batches).toEqual([]);
    expect(batcher.size).toBe(1);
  });
});
