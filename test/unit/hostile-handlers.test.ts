/**
 * Hostile specs, handler paths: a handler that is a symbolic link out of the spec's folder, or
 * sits in a linked folder, is `handler-outside`, and nothing is read from where it leads. Real
 * files in temporary folders; no child processes.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gatherBuildInputs } from "../../src/build/inputs.js";
import { validate } from "../../src/index.js";
import { loadSpec } from "../../src/load.js";
import { isWithin, leavesFolder, realPathOf } from "../../src/real-path.js";
import { UsageError } from "../../src/usage-error.js";

const spec = (handler: string) =>
  ["mbc: 1", "name: demo", "sources:", "  in: {type: http, port: 8080, to: work}", "services:", "  work:", `    handler: ${handler}`, ""].join("\n");

let root: string;
let specDir: string;
let outside: string;
beforeEach(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "mbc-hostile-")));
  specDir = join(root, "project");
  outside = join(root, "elsewhere");
  mkdirSync(join(specDir, "handlers"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.mjs"), "export default async (r) => r; // not the spec's\n");
  writeFileSync(join(specDir, "handlers", "real.mjs"), "export default async (r) => r;\n");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function diagnosticsOf(handler: string) {
  writeFileSync(join(specDir, "microbatch.yaml"), spec(handler));
  const result = await loadSpec(join(specDir, "microbatch.yaml"));
  return result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`);
}

describe("a handler that is a symbolic link", () => {
  it("to a file outside the folder is handler-outside, at the handler", async () => {
    symlinkSync(join(outside, "secret.mjs"), join(specDir, "handlers", "x.mjs"));
    expect(await diagnosticsOf("./handlers/x.mjs")).toEqual(["7:14 error handler-outside"]);
  });

  it("to a system file (an absolute link) is handler-outside", async () => {
    symlinkSync("/etc/passwd", join(specDir, "handlers", "x.mjs"));
    expect(await diagnosticsOf("./handlers/x.mjs")).toEqual(["7:14 error handler-outside"]);
  });

  it("inside a linked folder is handler-outside, whether or not the file exists there", async () => {
    symlinkSync(outside, join(specDir, "hd"));
    expect(await diagnosticsOf("./hd/secret.mjs")).toEqual(["7:14 error handler-outside"]);
    expect(await diagnosticsOf("./hd/missing.mjs")).toEqual(["7:14 error handler-outside"]);
  });

  it("that leads back inside the folder is fine", async () => {
    symlinkSync(join(specDir, "handlers", "real.mjs"), join(specDir, "handlers", "alias.mjs"));
    symlinkSync("handlers", join(specDir, "linked"));
    expect(await diagnosticsOf("./handlers/alias.mjs")).toEqual([]);
    expect(await diagnosticsOf("./linked/real.mjs")).toEqual([]);
  });

  it("that loops is a missing handler, not a crash", async () => {
    symlinkSync("loop.mjs", join(specDir, "handlers", "loop.mjs"));
    expect(await diagnosticsOf("./handlers/loop.mjs")).toEqual(["7:14 error handler-not-found"]);
  });

  it("is judged from the real folder when the spec's folder is itself reached through a link", async () => {
    const via = join(root, "via");
    symlinkSync(specDir, via);
    writeFileSync(join(specDir, "microbatch.yaml"), spec("./handlers/real.mjs"));
    expect((await loadSpec(join(via, "microbatch.yaml"))).diagnostics).toEqual([]);
  });

  it("is found by the API's validate() too, given the spec's folder", () => {
    symlinkSync(outside, join(specDir, "hd"));
    const codes = validate(spec("./hd/secret.mjs"), { specDir }).diagnostics.map((d) => d.code);
    expect(codes).toEqual(["handler-outside"]);
  });
});

describe("gathering a build's inputs", () => {
  const gather = (handler: string) => {
    writeFileSync(join(specDir, "microbatch.yaml"), spec(handler));
    const { model } = validate(spec("./handlers/real.mjs"));
    if (!model) throw new Error("the spec should be valid without a file system");
    const svc = model.services[0];
    if (svc?.handler?.kind === "module") svc.handler.path = handler.replace(/^\.\//, "");
    return () =>
      gatherBuildInputs({
        specPath: join(specDir, "microbatch.yaml"),
        specName: "microbatch.yaml",
        model,
        targets: [],
        packageRoot: join(import.meta.dirname, "..", ".."),
        version: "0.0.0-test",
      });
  };

  // The build refuses what validation would have refused, should the folder change in between.
  it("refuses a handler that leads out of the folder, and reads nothing from there", () => {
    symlinkSync(outside, join(specDir, "hd"));
    expect(gather("./hd/secret.mjs")).toThrow(UsageError);
    expect(gather("./hd/secret.mjs")).toThrow(/leads out of the spec's folder/);
  });

  it("refuses a handler that is not a regular file (a FIFO or device would block the build)", () => {
    mkdirSync(join(specDir, "handlers", "dir.mjs"));
    expect(gather("./handlers/dir.mjs")).toThrow(UsageError);
  });
});

describe("real paths", () => {
  it("resolve a missing file through its deepest existing folder", () => {
    symlinkSync(outside, join(specDir, "hd"));
    expect(realPathOf(join(specDir, "hd", "no", "such.mjs"))).toBe(join(outside, "no", "such.mjs"));
    expect(leavesFolder(specDir, "hd/no/such.mjs")).toBe(true);
    expect(leavesFolder(specDir, "handlers/no/such.mjs")).toBe(false);
  });

  it("a sibling whose name starts like the folder's is not inside it", () => {
    expect(isWithin("/a/project", "/a/project-2/x")).toBe(false);
    expect(isWithin("/a/project", "/a/project/..x")).toBe(true);
    expect(isWithin("/a/project", "/a/project")).toBe(true);
    expect(isWithin("/a/project", "/a")).toBe(false);
  });
});
