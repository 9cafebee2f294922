import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { type FileHandle, open as fsOpen } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Model, ServiceModel } from "../../src/model/types.js";
import type { Logger } from "../../src/runtime/core/contracts.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createBuiltin } from "../../src/runtime/service/builtins/index.js";
import { batchKey, JsonlStore, LEASE_YIELD_MS, sinkPath } from "../../src/runtime/service/builtins/jsonl-sink.js";
import { HandlerError, type HandlerSetup, loadHandler, resolveInside, type StageContext } from "../../src/runtime/service/handlers.js";
import { validateText } from "../../src/validate/index.js";
import { ManualClock } from "../helpers/clock.js";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "mbc-builtins-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function modelOf(services: Record<string, Record<string, unknown>>): Model {
  const first = Object.keys(services)[0] as string;
  const spec = { mbc: 1, name: "t", sources: { in: { type: "generator", rate: 10, to: first } }, services };
  const { diagnostics, model } = validateText("spec.json", JSON.stringify(spec));
  expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  if (model === null) throw new Error("no model");
  return model;
}

function service(model: Model, name: string): ServiceModel {
  const s = model.services.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no service ${name}`);
  return s;
}

/** A service whose handler is the module at `path` (relative to the system folder). */
function moduleService(path: string, to: string[] = ["next"]): ServiceModel {
  const model = modelOf({ work: { handler: "./work.mjs", config: { greeting: "hi" }, to: "next" }, next: { handler: "builtin:passthrough" } });
  return { ...service(model, "work"), handler: { kind: "module", path, outside: false }, to };
}

function setup(svc: ServiceModel, handlers: Record<string, string>, systemDir = join(dir, "system")): HandlerSetup {
  return { service: svc, instance: 1, systemDir, dataDir: join(dir, "data"), handlers, fsync: true, log: silentLogger };
}

interface Captured {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function capturingLogger(lines: Captured[], base: Record<string, unknown> = {}): Logger {
  const emit = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, fields: { ...base, ...fields } });
  return { info: emit("info"), warn: emit("warn"), error: emit("error"), child: (more) => capturingLogger(lines, { ...base, ...more }) };
}

function writeModule(relative: string, text: string): string {
  const path = join(dir, "system", relative);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return path;
}

// ---------------------------------------------------------------------------------------------
// Handler loading

describe("module handlers", () => {
  it("loads the default export from the system folder and gives it ctx", async () => {
    writeModule(
      "handlers/tag.mjs",
      `export default async (records, ctx) => records.map((r) => ({ ...r, batch: ctx.batchId, service: ctx.service, instance: ctx.instance, greeting: ctx.config.greeting, via: ctx.via, logs: typeof ctx.log.info }));`,
    );
    const handler = await loadHandler(setup(moduleService("handlers/tag.mjs"), { work: "handlers/tag.mjs" }));
    expect(handler.description).toBe("handlers/tag.mjs");
    const out = await handler.run({ id: "in-7", via: ["in"], records: [{ n: 1 }] });
    expect(out).toEqual([{ n: 1, batch: "in-7", service: "work", instance: 1, greeting: "hi", via: ["in"], logs: "function" }]);
    await handler.close();
  });

  it("refuses a path that leaves the system folder", async () => {
    writeFileSync(join(dir, "outside.mjs"), "export default (r) => r;");
    mkdirSync(join(dir, "system"));
    await expect(loadHandler(setup(moduleService("../outside.mjs"), { work: "../outside.mjs" }))).rejects.toThrow(/leaves the system folder/);
    await expect(loadHandler(setup(moduleService("x.mjs"), { work: join(dir, "outside.mjs") }))).rejects.toThrow(/leaves the system folder/);
    const outside = { ...moduleService("../outside.mjs"), handler: { kind: "module" as const, path: "../outside.mjs", outside: true } };
    await expect(loadHandler(setup(outside, { work: "handlers/x.mjs" }))).rejects.toThrow(/leaves the spec's folder/);
  });

  it("refuses a symlink inside the folder that points outside it, and follows one that stays inside", async () => {
    writeFileSync(join(dir, "outside.mjs"), "export default (r) => r;");
    writeModule("handlers/real.mjs", "export default (r) => r.concat(['real']);");
    symlinkSync(join(dir, "outside.mjs"), join(dir, "system", "handlers", "escape.mjs"));
    symlinkSync(join(dir, "system", "handlers", "real.mjs"), join(dir, "system", "handlers", "alias.mjs"));
    await expect(loadHandler(setup(moduleService("handlers/escape.mjs"), { work: "handlers/escape.mjs" }))).rejects.toThrow(
      /link to .*outside the system folder/,
    );
    const ok = await loadHandler(setup(moduleService("handlers/alias.mjs"), { work: "handlers/alias.mjs" }));
    expect(await ok.run({ id: "b", via: ["in"], records: [] })).toEqual(["real"]);
    // A linked system folder is fine: the check compares real paths.
    symlinkSync(join(dir, "system"), join(dir, "linked"));
    expect(await resolveInside(join(dir, "linked"), "handlers/real.mjs")).toBe(join(dir, "system", "handlers", "real.mjs"));
  });

  it("says clearly what is wrong with a module that cannot serve as a handler", async () => {
    writeModule("handlers/number.mjs", "export default 42;");
    writeModule("handlers/named.mjs", "export const handler = (r) => r;");
    writeModule("handlers/broken.mjs", "export default (r => ;");
    mkdirSync(join(dir, "system", "handlers", "folder.mjs"));
    await expect(loadHandler(setup(moduleService("handlers/number.mjs"), { work: "handlers/number.mjs" }))).rejects.toThrow(
      /must have a function as its default export .* found a number/,
    );
    await expect(loadHandler(setup(moduleService("handlers/named.mjs"), { work: "handlers/named.mjs" }))).rejects.toThrow(/found undefined/);
    await expect(loadHandler(setup(moduleService("handlers/broken.mjs"), { work: "handlers/broken.mjs" }))).rejects.toThrow(/failed to load/);
    await expect(loadHandler(setup(moduleService("handlers/none.mjs"), { work: "handlers/none.mjs" }))).rejects.toThrow(/does not exist/);
    await expect(loadHandler(setup(moduleService("handlers/folder.mjs"), { work: "handlers/folder.mjs" }))).rejects.toThrow(/not a file/);
    await expect(loadHandler(setup(moduleService("handlers/x.mjs"), {}))).rejects.toThrow(/lists no handler module/);
  });

  it("turns a throwing handler or a non-array result into a HandlerError; a sink's result is ignored", async () => {
    writeModule("handlers/throws.mjs", "export default async () => { throw new Error('bad record 3'); };");
    writeModule("handlers/forgets.mjs", "export default async (records) => { records.length; };");
    const throws = await loadHandler(setup(moduleService("handlers/throws.mjs"), { work: "handlers/throws.mjs" }));
    const err = await throws.run({ id: "in-1", via: ["in"], records: [1] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerError);
    expect((err as Error).message).toBe("service work: handler handlers/throws.mjs failed on batch in-1: bad record 3");
    const forgets = await loadHandler(setup(moduleService("handlers/forgets.mjs"), { work: "handlers/forgets.mjs" }));
    await expect(forgets.run({ id: "in-2", via: ["in"], records: [1] })).rejects.toThrow(
      /returned undefined for batch in-2; a stage with `to` must return an array/,
    );
    const sink = await loadHandler(setup(moduleService("handlers/forgets.mjs", []), { work: "handlers/forgets.mjs" }));
    expect(await sink.run({ id: "in-3", via: ["in"], records: [1] })).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Builtins

describe("builtins", () => {
  const ctx = (over: Partial<StageContext> = {}): StageContext => ({
    batchId: "in-0",
    service: "work",
    instance: 0,
    config: {},
    log: silentLogger,
    via: ["in"],
    ...over,
  });

  it("passthrough returns the batch; log logs its size and a sample and returns it", async () => {
    const model = modelOf({ pass: { handler: "builtin:passthrough", to: "show" }, show: { handler: "builtin:log", config: { sample: 2 } } });
    const base = { instance: 0, dataDir: dir, fsync: true, log: silentLogger };
    const pass = await createBuiltin("passthrough", { ...base, service: service(model, "pass") });
    const records = [{ a: 1 }, { a: 2 }, { a: 3 }];
    expect(await pass.handle(records, ctx())).toBe(records);
    const lines: Captured[] = [];
    const show = await createBuiltin("log", { ...base, service: service(model, "show") });
    expect(await show.handle(records, ctx({ log: capturingLogger(lines) }))).toBe(records);
    expect(lines).toEqual([{ level: "info", msg: "batch", fields: { batch: "in-0", via: ["in"], records: 3, sample: [{ a: 1 }, { a: 2 }] } }]);
  });

  it("refuses unknown builtins and bad config with a clear message", async () => {
    // validate refuses these configs (each builtin's config has a schema); the runtime still
    // checks what a system.json written by hand may hold.
    const model = modelOf({ sink: { handler: "builtin:jsonl-sink", config: { path: "x.jsonl" } }, bad: { handler: "builtin:log" } });
    const base = { instance: 0, dataDir: dir, fsync: true, log: silentLogger };
    await expect(createBuiltin("nope", { ...base, service: service(model, "sink") })).rejects.toThrow(/unknown builtin handler "builtin:nope"/);
    await expect(createBuiltin("jsonl-sink", { ...base, service: { ...service(model, "sink"), config: {} } })).rejects.toThrow(/needs config.path/);
    await expect(createBuiltin("log", { ...base, service: { ...service(model, "bad"), config: { sample: -1 } } })).rejects.toThrow(
      /config.sample must be a whole number/,
    );
    expect(() => sinkPath("s", { path: 3 }, dir)).toThrow(/non-empty string/);
    expect(sinkPath("s", { path: "out/x.jsonl" }, dir)).toBe(join(dir, "out", "x.jsonl"));
    expect(sinkPath("s", { path: "/abs/x.jsonl" }, dir)).toBe("/abs/x.jsonl");
  });

  it("the jsonl sink resolves config.path against the data folder and stores each batch once", async () => {
    const model = modelOf({ a: { handler: "builtin:passthrough", to: "sink" }, sink: { handler: "builtin:jsonl-sink", config: { path: "out/sink.jsonl" } } });
    const sink = await createBuiltin("jsonl-sink", { service: service(model, "sink"), instance: 0, dataDir: dir, fsync: true, log: silentLogger });
    const path = join(dir, "out", "sink.jsonl");
    await sink.handle([{ n: 1 }, { n: 2 }], ctx({ service: "sink", via: ["in", "a"] }));
    await sink.handle([{ n: 1 }, { n: 2 }], ctx({ service: "sink", via: ["in", "a"] }));
    // A fan-out copy that came another way is another batch.
    await sink.handle([{ n: 1 }, { n: 2 }], ctx({ service: "sink", via: ["in", "b"] }));
    await sink.close();
    expect(readFileSync(path, "utf8")).toBe('{"n":1}\n{"n":2}\n{"n":1}\n{"n":2}\n');
  });
});

// ---------------------------------------------------------------------------------------------
// The JSONL store: idempotency and crash recovery

describe("JsonlStore", () => {
  const open = (path: string, lines: Captured[] = []) => JsonlStore.open(path, { fsync: true, log: capturingLogger(lines) });
  const lines = (path: string) => readFileSync(path, "utf8");

  it("keys batches by path and id, and remembers them across a restart", async () => {
    expect(batchKey(["in", "a"], "sink", "in-0")).toBe("in/a/sink#in-0");
    const path = join(dir, "out.jsonl");
    const first = await open(path);
    expect(await first.store("k1", [{ a: 1 }, "two", null])).toBe(true);
    expect(await first.store("k1", [{ a: 1 }, "two", null])).toBe(false);
    expect(await first.store("k2", [])).toBe(true);
    await first.close();
    const again = await open(path);
    expect(again.has("k1")).toBe(true);
    expect(await again.store("k1", [{ a: 1 }])).toBe(false);
    expect(await again.store("k3", [3])).toBe(true);
    await again.close();
    expect(lines(path)).toBe('{"a":1}\n"two"\nnull\n3\n');
    const index = readFileSync(`${path}.batches`, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { key: string; end: number });
    expect(index.map((e) => [e.key, e.end])).toEqual([
      ["k1", 19],
      ["k2", 19],
      ["k3", 21],
    ]);
  });

  it("removes a batch half-written by a crash, so the re-sent batch is stored once and whole", async () => {
    const path = join(dir, "out.jsonl");
    const store = await open(path);
    await store.store("k1", [{ n: 1 }]);
    await store.close();
    // The crash: part of k2's lines reached the file, its index line did not.
    appendFileSync(path, '{"n":2}\n{"n":');
    const log: Captured[] = [];
    const restarted = await open(path, log);
    expect(lines(path)).toBe('{"n":1}\n');
    expect(log.some((l) => l.level === "warn" && l.msg.includes("interrupted"))).toBe(true);
    expect(await restarted.store("k2", [{ n: 2 }, { n: 3 }])).toBe(true);
    await restarted.close();
    expect(lines(path)).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
  });

  it("treats a batch whose index line was torn by a crash as not stored", async () => {
    const path = join(dir, "out.jsonl");
    const store = await open(path);
    await store.store("k1", [1]);
    await store.close();
    // All of k2's lines are in, but its index line is cut short.
    appendFileSync(path, "2\n");
    appendFileSync(`${path}.batches`, '{"key":"k2","en');
    const restarted = await open(path);
    expect(restarted.has("k2")).toBe(false);
    expect(lines(path)).toBe("1\n");
    expect(readFileSync(`${path}.batches`, "utf8")).toBe('{"key":"k1","end":2,"records":1}\n');
    expect(await restarted.store("k2", [2])).toBe(true);
    await restarted.close();
    expect(lines(path)).toBe("1\n2\n");
  });

  it("refuses a data file shorter than its index says (changed outside the sink)", async () => {
    const path = join(dir, "out.jsonl");
    const store = await open(path);
    await store.store("k1", [1, 2, 3]);
    await store.close();
    writeFileSync(path, "");
    await expect(open(path)).rejects.toThrow(/changed outside the sink/);
  });

  it("lets several instances share one file: every batch once, whole lines, nothing lost", async () => {
    const path = join(dir, "shared.jsonl");
    const a = await open(path);
    const b = await open(path);
    const batches = Array.from({ length: 40 }, (_, i) => ({
      key: `in#in-${i}`,
      records: Array.from({ length: 5 }, (_, r) => ({ batch: i, r, pad: "x".repeat(100) })),
    }));
    // Each batch goes to both instances at once (a retry racing the first attempt).
    const results = await Promise.all(batches.flatMap((batch) => [a.store(batch.key, batch.records), b.store(batch.key, batch.records)]));
    await Promise.all([a.close(), b.close()]);
    expect(results.filter(Boolean)).toHaveLength(40);
    const stored = lines(path)
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { batch: number; r: number });
    expect(stored).toHaveLength(200);
    const seen = new Set(stored.map((s) => `${s.batch}/${s.r}`));
    expect(seen.size).toBe(200);
    const reopened = await open(path);
    expect(reopened.size).toBe(40);
    await reopened.close();
  });
});

describe("JsonlStore group commit", () => {
  const open = (path: string, lines: Captured[] = []) => JsonlStore.open(path, { fsync: true, log: capturingLogger(lines) });
  const indexKeys = (path: string) =>
    readFileSync(`${path}.batches`, "utf8")
      .trimEnd()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => (JSON.parse(l) as { key: string }).key);

  /** The prototype of the stores' file handles, whose methods the tests spy on. */
  async function fileHandleProto(): Promise<FileHandle> {
    const handle = await fsOpen(join(dir, "probe"), "w");
    await handle.close();
    return Object.getPrototypeOf(handle) as FileHandle;
  }

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("stores concurrent batches each once, in few fsync groups, and a duplicate within a group once", async () => {
    const path = join(dir, "out.jsonl");
    const store = await open(path);
    const syncs = vi.spyOn(await fileHandleProto(), "datasync");
    const keys = Array.from({ length: 200 }, (_, i) => `in#in-${i}`);
    // Every batch twice in the same tick: the copies land in the same group as the originals.
    const results = await Promise.all([...keys, ...keys].map((key) => store.store(key, [{ key }])));
    expect(results.slice(0, 200).every((r) => r)).toBe(true);
    expect(results.slice(200).some((r) => r)).toBe(false);
    // One group: one fsync of the data, one of the index (one per batch would be 400).
    expect(syncs.mock.calls.length).toBeLessThanOrEqual(4);
    expect(indexKeys(path)).toEqual(keys);
    const stored = readFileSync(path, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => (JSON.parse(l) as { key: string }).key);
    expect(stored).toEqual(keys);
    // Batches arriving while a group is written form the next group, and are stored too.
    const late = store.store("late-1", [1]);
    await Promise.resolve();
    const later = [store.store("late-2", [2]), store.store("late-1", [1])];
    expect(await Promise.all([late, ...later])).toEqual([true, true, false]);
    await store.close();
    const reopened = await open(path);
    expect(reopened.size).toBe(202);
    await reopened.close();
  });

  it("resolves a batch only once its data and index line are durable", async () => {
    const path = join(dir, "out.jsonl");
    const store = await open(path);
    const synced: string[] = [];
    const proto = await fileHandleProto();
    const real = proto.datasync;
    vi.spyOn(proto, "datasync").mockImplementation(async function (this: FileHandle) {
      await real.call(this);
      synced.push(readFileSync(`${path}.batches`, "utf8"));
    });
    const results: string[] = [];
    await Promise.all(
      ["a", "b", "c"].map((key) =>
        store.store(key, [key]).then(() => {
          // By now the index fsync has run after the index lines were written.
          results.push(key);
          expect(synced.at(-1)).toContain(`"key":"${key}"`);
        }),
      ),
    );
    expect(results).toEqual(["a", "b", "c"]);
    await store.close();
  });

  for (const failing of ["data", "index"] as const) {
    it(`rejects the whole group when its ${failing} write fails, and recovers to whole lines`, async () => {
      const path = join(dir, "out.jsonl");
      const store = await open(path);
      expect(await store.store("before", [{ n: 0 }])).toBe(true);
      const proto = await fileHandleProto();
      const realWrite = proto.write as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
      // The data write is the group's first write, the index write its second. The failing one
      // gets part of its bytes into the file (a torn line), then the disk fails.
      let writes = 0;
      const failAt = failing === "data" ? 1 : 2;
      let failed = false;
      vi.spyOn(proto, "write").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
        writes++;
        if (writes === failAt) {
          const [buf, offset, length, position] = args as [Buffer, number, number, number];
          return realWrite.call(this, buf, offset, Math.max(1, Math.floor(length / 2)), position);
        }
        if (writes === failAt + 1 && !failed) {
          failed = true;
          throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
        }
        return realWrite.apply(this, args);
      } as typeof proto.write);
      const group = ["g1", "g2", "g2", "g3"].map((key) => store.store(key, [{ key, pad: "x".repeat(50) }]));
      const outcomes = await Promise.allSettled(group);
      expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
      expect(store.has("g1")).toBe(false);
      vi.restoreAllMocks();

      // The next group repairs what the failed one left; the retried batches are then stored
      // once. (A failed index write may have got whole lines in for the first batches, whose
      // lines were already durable: those count as stored, as after a crash.)
      const log: Captured[] = [];
      const retry = (s: JsonlStore, key: string) => s.store(key, [{ key, pad: "x".repeat(50) }]);
      expect(typeof (await retry(store, "g2"))).toBe("boolean");
      await store.close();
      const restarted = await open(path, log);
      for (const key of ["g1", "g2", "g3"]) await retry(restarted, key);
      expect(await retry(restarted, "g1")).toBe(false);
      await restarted.close();
      const data = readFileSync(path, "utf8");
      expect(data.endsWith("\n")).toBe(true);
      const stored = data
        .trimEnd()
        .split("\n")
        .map((l) => {
          const r = JSON.parse(l) as { n?: number; key?: string };
          return r.key ?? r.n;
        });
      expect(stored[0]).toBe(0);
      expect([...stored].sort()).toEqual([0, "g1", "g2", "g3"].sort());
      // The index names the same batches, in the same order, each ending on a line boundary.
      expect(indexKeys(path)).toEqual(stored.map((k) => (k === 0 ? "before" : k)));
      const ends = readFileSync(`${path}.batches`, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => (JSON.parse(l) as { end: number }).end);
      expect(ends.at(-1)).toBe(Buffer.byteLength(data));
      const reopened = await open(path, log);
      expect(reopened.size).toBe(4);
      await reopened.close();
    });
  }
});

describe("JsonlStore lock lease, on a manual clock", () => {
  const IDLE = 10;
  const MAX = 100;
  /** The token of the lock file's holder, or null when nobody holds the lock. */
  const holder = (path: string): string | null => {
    try {
      return (JSON.parse(readFileSync(`${path}.lock`, "utf8")) as { token: string }).token;
    } catch {
      return null;
    }
  };
  const open = (path: string, clock: ManualClock) => JsonlStore.open(path, { fsync: true, log: silentLogger, lease: { idleMs: IDLE, maxMs: MAX }, clock });

  it("keeps the lock from one group to the next while busy, lets it go once idle, and when closed", async () => {
    const clock = new ManualClock();
    const path = join(dir, "out.jsonl");
    const store = await open(path, clock);
    // Opening repaired the files and let the lock go at once.
    expect(holder(path)).toBeNull();
    expect(await store.store("k1", [1])).toBe(true);
    const first = holder(path);
    expect(first).not.toBeNull();
    await clock.advance(IDLE - 1);
    expect(await store.store("k2", [2])).toBe(true);
    expect(holder(path)).toBe(first);
    await clock.advance(IDLE - 1);
    expect(holder(path)).toBe(first);
    await clock.advance(1);
    await store.settled();
    expect(holder(path)).toBeNull();
    expect(await store.store("k3", [3])).toBe(true);
    expect(holder(path)).not.toBeNull();
    expect(holder(path)).not.toBe(first);
    await store.close();
    expect(holder(path)).toBeNull();
    expect(readFileSync(path, "utf8")).toBe("1\n2\n3\n");
  });

  it("takes the lock afresh once it has held it for the lease's longest, however busy", async () => {
    const clock = new ManualClock();
    const path = join(dir, "busy.jsonl");
    const store = await open(path, clock);
    expect(await store.store("k0", [0])).toBe(true);
    const first = holder(path);
    // Busy: a batch every IDLE - 1 ms keeps the lease until it is MAX old.
    let k = 1;
    for (; k * (IDLE - 1) < MAX; k++) {
      await clock.advance(IDLE - 1);
      expect(await store.store(`k${k}`, [k])).toBe(true);
      expect(holder(path)).toBe(first);
    }
    await clock.advance(IDLE - 1);
    // Past MAX: let go, a pause for a waiting instance, then taken again.
    const paused = clock.nextTimer();
    const storing = store.store(`k${k}`, [k]);
    await paused;
    expect(holder(path)).toBeNull();
    await clock.advance(LEASE_YIELD_MS);
    expect(await storing).toBe(true);
    expect(holder(path)).not.toBeNull();
    expect(holder(path)).not.toBe(first);
    await store.close();
  });
});
