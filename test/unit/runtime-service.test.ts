import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WireBatch } from "../../src/runtime/core/contracts.js";
import { DispatchError } from "../../src/runtime/dispatch/index.js";
import { parseWireBatch } from "../../src/runtime/service/index.js";
import { deadLetterName, writeDeadLetter } from "../../src/runtime/source/dead-letter.js";
import { cleanupAll } from "../helpers/runtime.js";

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

// ---------------------------------------------------------------------------------------------

describe("parseWireBatch", () => {
  it("accepts {id, via, records} and says what is wrong with anything else", () => {
    expect(parseWireBatch({ id: "in-0", via: ["in"], records: [] })).toEqual({ id: "in-0", via: ["in"], records: [] });
    expect(parseWireBatch([])).toMatch(/JSON object/);
    expect(parseWireBatch({ id: "", via: [], records: [] })).toMatch(/`id`/);
    expect(parseWireBatch({ id: "x", via: [1], records: [] })).toMatch(/`via`/);
    expect(parseWireBatch({ id: "x", via: [], records: {} })).toMatch(/`records`/);
  });
});

describe("dead letters", () => {
  const batch: WireBatch = { id: "orders-1200", via: ["orders"], records: [{ n: 1 }, { n: 2 }] };

  it("writes the batch, its error and its attempts to STATE_DIR/dead-letter/{id}.json, and adds later failures", async () => {
    const failure = new DispatchError("enrich: failed after 3 attempts", "enrich", "unavailable", [
      { instance: 0, kind: "timeout", error: "no answer within 2000 ms" },
      { instance: 1, kind: "5xx", error: "HTTP 500" },
      { instance: null, kind: "budget", error: "the retry budget refused a retry" },
    ]);
    const path = await writeDeadLetter(dir, batch, failure, new Date("2025-01-02T03:04:05Z"));
    expect(path).toBe(join(dir, "dead-letter", "orders-1200.json"));
    const first = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    expect(first).toEqual({
      id: "orders-1200",
      via: ["orders"],
      records: [{ n: 1 }, { n: 2 }],
      failures: [{ at: "2025-01-02T03:04:05.000Z", error: "enrich: failed after 3 attempts", service: "enrich", attempts: failure.attempts }],
    });

    // Re-sent after a restart and failed again: the file gains the failure, loses nothing.
    await writeDeadLetter(dir, batch, new Error("handler threw"), new Date("2025-01-02T04:00:00Z"));
    const second = JSON.parse(readFileSync(path, "utf8")) as { failures: { error: string; service: string | null }[] };
    expect(second.failures.map((f) => [f.error, f.service])).toEqual([
      ["enrich: failed after 3 attempts", "enrich"],
      ["handler threw", null],
    ]);
    expect(readdirSync(join(dir, "dead-letter"))).toEqual(["orders-1200.json"]);
  });

  it("serialises concurrent writes of one batch and leaves no temporary file", async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeDeadLetter(dir, batch, new Error(`failure ${i}`))));
    const entry = JSON.parse(readFileSync(join(dir, "dead-letter", "orders-1200.json"), "utf8")) as { failures: { error: string }[] };
    expect(entry.failures.map((f) => f.error).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `failure ${i}`).sort());
    expect(readdirSync(join(dir, "dead-letter"))).toEqual(["orders-1200.json"]);
  });

  it("keeps a file it cannot read and writes beside it; names files safely", async () => {
    mkdirSync(join(dir, "dead-letter"));
    writeFileSync(join(dir, "dead-letter", "orders-1200.json"), "{ damaged");
    const path = await writeDeadLetter(dir, batch, new Error("again"), new Date("2025-01-02T03:04:05Z"));
    expect(readFileSync(join(dir, "dead-letter", "orders-1200.json"), "utf8")).toBe("{ damaged");
    expect(path).toBe(join(dir, "dead-letter", "orders-1200.2025-01-02T03-04-05-000Z.json"));
    expect(existsSync(path)).toBe(true);

    expect(deadLetterName("in-7")).toBe("in-7.json");
    expect(deadLetterName("../../etc/passwd")).toMatch(/^_[^/]*etc_passwd-[0-9a-f]{12}\.json$/);
    expect(deadLetterName("a/b")).not.toBe(deadLetterName("a_b"));
  });

  it("records each failed target of a fan-out", async () => {
    const b = new DispatchError("b: failed", "b", "poison", [{ instance: 0, kind: "4xx", error: "HTTP 400" }]);
    const c = new DispatchError("c: failed", "c", "unavailable", [{ instance: 0, kind: "5xx", error: "HTTP 500" }]);
    const both = new DispatchError("fan-out of orders-1200: 2 of 3 targets failed (b, c)", "b", "poison", b.attempts, [b, c]);
    const path = await writeDeadLetter(dir, batch, both);
    const entry = JSON.parse(readFileSync(path, "utf8")) as { failures: { targets: { service: string }[] }[] };
    expect(entry.failures[0]?.targets.map((t) => t.service)).toEqual(["b", "c"]);
  });
});
