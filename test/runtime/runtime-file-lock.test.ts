import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Logger } from "../../src/runtime/core/contracts.js";
import { acquireFileLock, FileLockHeldError, inspectFileLock, parseStartTicks, waitForChange } from "../../src/runtime/core/file-lock.js";
import { JsonlStore } from "../../src/runtime/service/builtins/jsonl-sink.js";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "mbc-builtins-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Captured {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function capturingLogger(lines: Captured[], base: Record<string, unknown> = {}): Logger {
  const emit = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, fields: { ...base, ...fields } });
  return { info: emit("info"), warn: emit("warn"), error: emit("error"), child: (more) => capturingLogger(lines, { ...base, ...more }) };
}

// ---------------------------------------------------------------------------------------------
// Handler loading

describe("JsonlStore lock lease", () => {
  // A lease as long as a test: however slow an fsync here, it does not run out between two stores.
  const open = (path: string, maxMs = 60_000) => JsonlStore.open(path, { fsync: true, log: capturingLogger([]), lease: { maxMs } });
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 500 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
    return what();
  };

  it("lets another instance take its turn while it stays busy", async () => {
    const path = join(dir, "shared.jsonl");
    const a = await open(path, 100);
    const b = await open(path, 100);
    let bDone = false;
    let aStored = 0;
    let aAfterB = 0;
    // A stores batch after batch for up to 5 s; B's one batch must get in meanwhile.
    const busy = (async () => {
      const end = Date.now() + 5000;
      for (let i = 0; Date.now() < end && aAfterB < 3; i++) {
        await a.store(`a#${i}`, [{ a: i }]);
        aStored++;
        if (bDone) aAfterB++;
      }
    })();
    await until(() => aStored > 0);
    expect(await b.store("b#0", [{ b: 0 }])).toBe(true);
    bDone = true;
    await busy;
    expect(aAfterB).toBe(3);
    await Promise.all([a.close(), b.close()]);
    const stored = readFileSync(path, "utf8").trimEnd().split("\n");
    expect(stored).toContain('{"b":0}');
    expect(stored).toHaveLength(aStored + 1);
  });
});

describe("file lock", () => {
  it("breaks a lock left by a dead process on this host, and one untouched for too long", async () => {
    const lock = join(dir, "x.lock");
    const { hostname } = await import("node:os");
    // No process has pid 2^22 + 1 on Linux (pid_max is at most 2^22).
    writeFileSync(lock, JSON.stringify({ pid: 4_194_305, host: hostname(), at: "then" }));
    const held = await acquireFileLock(lock, { timeoutMs: 2000 });
    expect(await held.held()).toBe(true);
    await held.release();
    expect(() => statSync(lock)).toThrow();

    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: "elsewhere", at: "then" }));
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const again = await acquireFileLock(lock, { staleMs: 10_000, timeoutMs: 2000 });
    await again.release();

    // This pid on this host, but another process start: a predecessor's, as after a container
    // restart. A lock this process holds is never taken for one.
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: performance.timeOrigin - 60_000, token: "an earlier life" }));
    const third = await acquireFileLock(lock, { staleMs: 60_000, timeoutMs: 2000 });
    await expect(acquireFileLock(lock, { staleMs: 60_000, timeoutMs: 200 })).rejects.toThrow(/timed out/);
    await third.release();
  });

  const linux = existsSync("/proc/self/stat");
  /** A live process of this host other than this one, with its kernel start time. */
  const parent = () => ({ pid: process.ppid, ticks: parseStartTicks(readFileSync(`/proc/${process.ppid}/stat`, "utf8")) });

  it("reads the kernel's start time of a process, whatever its command name holds", () => {
    const fields = Array.from({ length: 50 }, (_, k) => String(k + 3));
    expect(parseStartTicks(`123 (a) b (c) ${fields.join(" ")}`)).toBe(22);
    expect(parseStartTicks("123 (short) S 1")).toBeNull();
  });

  it.runIf(linux)("never breaks the lock of a live holder on this host, however long untouched", async () => {
    const lock = join(dir, "x.lock");
    const { hostname } = await import("node:os");
    const { pid, ticks } = parent();
    writeFileSync(lock, JSON.stringify({ pid, host: hostname(), ticks, token: "alive", at: "2020-01-01T00:00:00.000Z" }));
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const err = await acquireFileLock(lock, { staleMs: 1000, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileLockHeldError);
    expect((err as FileLockHeldError).holder).toEqual({ pid, host: hostname(), since: "2020-01-01T00:00:00.000Z" });
    expect(JSON.parse(readFileSync(lock, "utf8"))).toMatchObject({ token: "alive" });
    expect(await inspectFileLock(lock, 1000)).toEqual({ holder: { pid, host: hostname(), since: "2020-01-01T00:00:00.000Z" }, state: "alive" });
  });

  it.runIf(linux)("breaks at once a lock whose pid now belongs to a process started at another time", async () => {
    const lock = join(dir, "x.lock");
    const { hostname } = await import("node:os");
    const { pid, ticks } = parent();
    writeFileSync(lock, JSON.stringify({ pid, host: hostname(), ticks: (ticks ?? 0) + 1, token: "reused" }));
    expect(await inspectFileLock(lock, 60_000)).toBeNull();
    const held = await acquireFileLock(lock, { staleMs: 60_000, timeoutMs: 2000 });
    expect(JSON.parse(readFileSync(lock, "utf8"))).toMatchObject({ pid: process.pid, ticks: parseStartTicks(readFileSync("/proc/self/stat", "utf8")) });
    await held.release();
  });

  it.runIf(linux)("judges a holder in another pid namespace under the same host name by age, not by a pid of ours", async () => {
    const lock = join(dir, "x.lock");
    const { hostname } = await import("node:os");
    // Pid 4194305 does not exist here; in the holder's namespace it may.
    writeFileSync(lock, JSON.stringify({ pid: 4_194_305, host: hostname(), ns: "pid:[1]", token: "elsewhere" }));
    await expect(acquireFileLock(lock, { staleMs: 60_000, timeoutMs: 200 })).rejects.toBeInstanceOf(FileLockHeldError);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const held = await acquireFileLock(lock, { staleMs: 10_000, timeoutMs: 2000 });
    await held.release();
  });

  it("tells its holder once when another process took the lock from it", async () => {
    const lock = join(dir, "x.lock");
    let lost = 0;
    const held = await acquireFileLock(lock, { staleMs: 150, onLost: () => lost++ });
    expect(await inspectFileLock(lock)).toMatchObject({ holder: { pid: process.pid }, state: "alive" });
    renameSync(lock, `${lock}.aside`);
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: "elsewhere", token: "another" }));
    for (let i = 0; i < 200 && lost === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(lost).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(lost).toBe(1);
    await held.release();
  });

  it("knows its lock is no longer its own once the file under the name was replaced", async () => {
    const lock = join(dir, "x.lock");
    const held = await acquireFileLock(lock);
    expect(await held.held()).toBe(true);
    // Broken as stale (moved aside) and taken by another holder.
    renameSync(lock, `${lock}.aside`);
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: "elsewhere", token: "another" }));
    expect(await held.held()).toBe(false);
    await held.release();
    expect(JSON.parse(readFileSync(lock, "utf8"))).toMatchObject({ token: "another" });
    // Given back (linked again under the name): its own again until released.
    const again = await acquireFileLock(join(dir, "y.lock"));
    renameSync(join(dir, "y.lock"), join(dir, "y.aside"));
    expect(await again.held()).toBe(false);
    renameSync(join(dir, "y.aside"), join(dir, "y.lock"));
    expect(await again.held()).toBe(true);
    await again.release();
    expect(await again.held()).toBe(false);
    expect(() => statSync(join(dir, "y.lock"))).toThrow();
  });

  it("waits for a live holder and gives up at its timeout naming the holder", async () => {
    const lock = join(dir, "x.lock");
    const first = await acquireFileLock(lock);
    await expect(acquireFileLock(lock, { timeoutMs: 100 })).rejects.toThrow(new RegExp(`timed out waiting for the lock .* held by pid ${process.pid}`));
    const waiting = acquireFileLock(lock, { timeoutMs: 5000 });
    await first.release();
    const second = await waiting;
    expect(await second.held()).toBe(true);
    expect(await first.held()).toBe(false);
    await second.release();
  });

  it("lets one holder in at a time among many waiters of one process", async () => {
    const lock = join(dir, "x.lock");
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        for (let round = 0; round < 3; round++) {
          const held = await acquireFileLock(lock, { timeoutMs: 20_000 });
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, Math.random() * 3));
          expect(await held.held()).toBe(true);
          inside--;
          await held.release();
        }
      }),
    );
    expect(most).toBe(1);
  });

  it("wakes a waiter the moment the lock file goes or changes, not at its next poll", async () => {
    const lock = join(dir, "x.lock");
    writeFileSync(lock, "{}");
    const never = new Promise<string>((r) => setTimeout(() => r("timer"), 5000));
    const gone = waitForChange(lock, 60_000).then(() => "woken");
    rmSync(lock);
    expect(await Promise.race([gone, never])).toBe("woken");
    writeFileSync(lock, "{}");
    const touched = waitForChange(lock, 60_000).then(() => "woken");
    const now = new Date();
    utimesSync(lock, now, now);
    expect(await Promise.race([touched, never])).toBe("woken");
    // No file: no wait at all.
    rmSync(lock);
    expect(await Promise.race([waitForChange(lock, 60_000).then(() => "woken"), never])).toBe("woken");
  });
});
