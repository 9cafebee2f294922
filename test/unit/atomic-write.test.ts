/**
 * The one atomic file writer (src/shared/atomic-write.ts). A write that fails at any step (the
 * write itself, part-way; the fsync; the rename) must leave the old file as it was, or no file
 * when there was none, and no temporary file; `durable` must fsync the file before the rename
 * and the folder after it.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { syncFolder, writeFileAtomic, writeFileAtomicSync } from "../../src/shared/atomic-write.js";

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return { ...real, open: vi.fn(real.open), rename: vi.fn(real.rename) };
});
vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  return { ...real, writeSync: vi.fn(real.writeSync), renameSync: vi.fn(real.renameSync), fsyncSync: vi.fn(real.fsyncSync) };
});

const realFsp = await vi.importActual<typeof import("node:fs/promises")>("node:fs/promises");
const realFs = await vi.importActual<typeof import("node:fs")>("node:fs");

let dir: string;
beforeEach(() => {
  dir = realFs.mkdtempSync(join(tmpdir(), "mbc-atomic-"));
});
afterEach(() => {
  vi.mocked(fsp.open).mockImplementation(realFsp.open);
  vi.mocked(fsp.rename).mockImplementation(realFsp.rename);
  vi.mocked(fs.writeSync).mockImplementation(realFs.writeSync);
  vi.mocked(fs.renameSync).mockImplementation(realFs.renameSync);
  vi.mocked(fs.fsyncSync).mockImplementation(realFs.fsyncSync);
  realFs.rmSync(dir, { recursive: true, force: true });
});

const failure = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });
const list = () => realFs.readdirSync(dir).sort();
const read = (name: string) => realFs.readFileSync(join(dir, name), "utf8");
/** Big enough that a write of half of it is a real partial file. */
const NEW = "new ".repeat(50_000);

type Step = "open" | "write" | "sync" | "close" | "rename";

/**
 * Makes fs/promises' open() return handles whose write and sync go through `onStep` (which may
 * throw), recording every step, folder syncs included.
 */
function instrument(onStep: (step: Step, path: string) => void = () => {}): string[] {
  const steps: string[] = [];
  const record = (step: Step, path: string) => {
    steps.push(`${step} ${path === dir ? "folder" : path.endsWith(".tmp") ? "temp" : path.slice(dir.length + 1)}`);
    onStep(step, path);
  };
  vi.mocked(fsp.open).mockImplementation(async (path, flags, mode) => {
    const handle = await realFsp.open(path, flags, mode);
    const p = String(path);
    record("open", p);
    return new Proxy(handle, {
      get(target, key) {
        if (key === "write")
          return async (buffer: Uint8Array, offset: number, length: number) => {
            record("write", p);
            // A partial write, as a full disk makes one: half of what was asked.
            return target.write(buffer, offset, Math.max(1, Math.floor(length / 2)));
          };
        if (key === "sync")
          return async () => {
            record("sync", p);
            return target.sync();
          };
        if (key === "close")
          return async () => {
            record("close", p);
            return target.close();
          };
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as fsp.FileHandle;
  });
  vi.mocked(fsp.rename).mockImplementation(async (from, to) => {
    record("rename", String(to));
    return realFsp.rename(from, to);
  });
  return steps;
}

describe("writeFileAtomic", () => {
  it("creates and replaces a file, leaving nothing else in the folder", async () => {
    const path = join(dir, "state.json");
    await writeFileAtomic(path, "first\n", { durable: false });
    expect(read("state.json")).toBe("first\n");
    await writeFileAtomic(path, new TextEncoder().encode(NEW), { durable: true });
    expect(read("state.json")).toBe(NEW);
    expect(list()).toEqual(["state.json"]);
  });

  it("durable: fsyncs the whole file before the rename, and the folder after it", async () => {
    const steps = instrument();
    await writeFileAtomic(join(dir, "a.json"), "x".repeat(1000), { durable: true });
    // Every write before the file's sync, the sync before the rename, the folder's sync last.
    const syncTemp = steps.indexOf("sync temp");
    const rename = steps.indexOf("rename a.json");
    expect(syncTemp).toBeGreaterThan(steps.lastIndexOf("write temp"));
    expect(rename).toBeGreaterThan(syncTemp);
    expect(steps.slice(rename + 1)).toEqual(["open folder", "sync folder", "close folder"]);
    expect(read("a.json")).toBe("x".repeat(1000));
  });

  it("not durable: no fsync at all", async () => {
    const steps = instrument();
    await writeFileAtomic(join(dir, "a.json"), "x", { durable: false });
    expect(steps.filter((s) => s.startsWith("sync"))).toEqual([]);
    expect(steps).not.toContain("open folder");
  });

  for (const [step, code] of [
    ["write", "ENOSPC"],
    ["sync", "EIO"],
    ["close", "EIO"],
    ["rename", "EPERM"],
  ] as const) {
    it(`a failed ${step} (${code}) leaves the old file whole, and no temporary file`, async () => {
      const path = join(dir, "state.json");
      realFs.writeFileSync(path, "old\n");
      let writes = 0;
      instrument((s, p) => {
        // The write fails on its second call: after half the bytes are in the temporary file.
        if (s === step && s === "write" && ++writes < 2) return;
        if (s === step && p !== dir) throw failure(code);
      });
      await expect(writeFileAtomic(path, NEW, { durable: true })).rejects.toMatchObject({ code });
      expect(read("state.json")).toBe("old\n");
      expect(list()).toEqual(["state.json"]);
    });
  }

  it("a failed write where there was no file leaves none", async () => {
    let writes = 0;
    instrument((s) => {
      if (s === "write" && ++writes === 2) throw failure("ENOSPC");
    });
    await expect(writeFileAtomic(join(dir, "new.json"), NEW, { durable: false })).rejects.toMatchObject({ code: "ENOSPC" });
    expect(list()).toEqual([]);
  });

  it("never writes through a file that stands at the temporary name", async () => {
    // O_EXCL: a stale or planted file at the temporary name fails the write and is left alone.
    vi.mocked(fsp.open).mockImplementationOnce(async () => {
      throw failure("EEXIST");
    });
    realFs.writeFileSync(join(dir, "state.json"), "old\n");
    await expect(writeFileAtomic(join(dir, "state.json"), "new\n", { durable: false })).rejects.toMatchObject({ code: "EEXIST" });
    expect(read("state.json")).toBe("old\n");
  });

  it("concurrent writers of one name: the file is one of them whole", async () => {
    const path = join(dir, "state.json");
    const texts = Array.from({ length: 20 }, (_, k) => `${String(k).repeat(10_000)}\n`);
    await Promise.all(texts.map((t) => writeFileAtomic(path, t, { durable: false })));
    expect(texts).toContain(read("state.json"));
    expect(list()).toEqual(["state.json"]);
  });

  it("creates the file with the mode asked for, less the umask", async () => {
    const path = join(dir, "dead.json");
    await writeFileAtomic(path, "{}\n", { durable: false, mode: 0o600 });
    expect(realFs.statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe("syncFolder", () => {
  it("lets be a platform that cannot sync a folder, and throws any other error", async () => {
    for (const code of ["EISDIR", "EPERM", "EINVAL", "EACCES"]) {
      instrument((s, p) => {
        if (s === "sync" && p === dir) throw failure(code);
      });
      await expect(syncFolder(dir)).resolves.toBeUndefined();
    }
    instrument((s, p) => {
      if (s === "sync" && p === dir) throw failure("EIO");
    });
    await expect(syncFolder(dir)).rejects.toMatchObject({ code: "EIO" });
  });
});

describe("writeFileAtomicSync", () => {
  it("creates and replaces a file, leaving nothing else in the folder", () => {
    const path = join(dir, "report.html");
    writeFileAtomicSync(path, "first", { durable: false });
    writeFileAtomicSync(path, NEW, { durable: true });
    expect(read("report.html")).toBe(NEW);
    expect(list()).toEqual(["report.html"]);
  });

  it("a write that fails part-way leaves the old file whole, and no temporary file", () => {
    const path = join(dir, "report.html");
    realFs.writeFileSync(path, "old\n");
    let writes = 0;
    vi.mocked(fs.writeSync).mockImplementation(((fd: number, buffer: Uint8Array, offset: number, length: number) => {
      if (++writes === 2) throw failure("ENOSPC");
      return realFs.writeSync(fd, buffer, offset, Math.floor(length / 2));
    }) as typeof fs.writeSync);
    expect(() => writeFileAtomicSync(path, NEW, { durable: false })).toThrow(/ENOSPC/);
    expect(read("report.html")).toBe("old\n");
    expect(list()).toEqual(["report.html"]);
  });

  it("a failed rename or fsync leaves the old file whole, and no temporary file", () => {
    const path = join(dir, "report.html");
    realFs.writeFileSync(path, "old\n");
    vi.mocked(fs.renameSync).mockImplementation(() => {
      throw failure("EXDEV");
    });
    expect(() => writeFileAtomicSync(path, NEW, { durable: false })).toThrow(/EXDEV/);
    vi.mocked(fs.renameSync).mockImplementation(realFs.renameSync);
    vi.mocked(fs.fsyncSync).mockImplementation(() => {
      throw failure("EIO");
    });
    expect(() => writeFileAtomicSync(path, NEW, { durable: true })).toThrow(/EIO/);
    expect(read("report.html")).toBe("old\n");
    expect(list()).toEqual(["report.html"]);
  });
});
