/**
 * A build that fails while swapping puts back what it swapped. Every rename of a three-target
 * build with the user's files to carry over is made to fail in turn (as an immutable or
 * append-only entry, a full disk or a vanished folder would make it fail): the output folder must
 * then be as it was, byte for byte, with no temporary folder left.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildArtefacts, TARGET_IDS, type TargetId } from "../../src/build/index.js";
import type { Artefact } from "../../src/build/types.js";
import { BuildFailed, type TargetOutput, writeTargets } from "../../src/build/write.js";
import { validateText } from "../../src/validate/index.js";
import { snapshot } from "../helpers/snapshot.js";

vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  return { ...real, renameSync: vi.fn(real.renameSync), rmSync: vi.fn(real.rmSync) };
});

const real = await vi.importActual<typeof import("node:fs")>("node:fs");
const root = resolve(import.meta.dirname, "..", "..");
const example = join(root, "examples", "01-design-document");

function artefacts(capacity: string): Map<TargetId, Artefact[]> {
  const text = real.readFileSync(join(example, "microbatch.yaml"), "utf8").replace("capacity: 2000/s", `capacity: ${capacity}`);
  const { model } = validateText("microbatch.yaml", text);
  if (!model) throw new Error("the example should be valid");
  const templates: Record<string, string> = {};
  for (const id of TARGET_IDS) {
    const dir = join(root, "generators", id, "templates");
    for (const name of real.readdirSync(dir)) templates[name] = real.readFileSync(join(dir, name), "utf8");
  }
  return buildArtefacts(
    model,
    {
      specName: "microbatch.yaml",
      specSha256: createHash("sha256").update(text).digest("hex"),
      handlerSources: { "handlers/process.mjs": real.readFileSync(join(example, "handlers", "process.mjs")) },
      runtime: new TextEncoder().encode("// runtime\n"),
      templates,
      version: "0.0.0-test",
    },
    TARGET_IDS,
  );
}

let tmp: string;
let out: string;
beforeEach(() => {
  tmp = real.realpathSync(real.mkdtempSync(join(tmpdir(), "mbc-rollback-")));
  out = join(tmp, "build");
  vi.mocked(fs.renameSync).mockImplementation(real.renameSync);
  vi.mocked(fs.rmSync).mockImplementation(real.rmSync);
});
afterEach(() => {
  vi.mocked(fs.renameSync).mockImplementation(real.renameSync);
  vi.mocked(fs.rmSync).mockImplementation(real.rmSync);
  real.rmSync(tmp, { recursive: true, force: true });
});

const outputs = (byTarget: Map<TargetId, Artefact[]>): TargetOutput[] => [...byTarget].map(([id, a]) => ({ dir: join(out, id), artefacts: a }));

/** A first build, with the user's files in generated folders of every target. */
function arrange(): void {
  writeTargets(outputs(artefacts("2000/s")));
  real.writeFileSync(join(out, "node", "handlers", "my-helper.mjs"), "mine\n");
  real.mkdirSync(join(out, "systemd", "units", "x.service.d"));
  real.writeFileSync(join(out, "systemd", "units", "x.service.d", "override.conf"), "[Service]\n");
  real.writeFileSync(join(out, "compose", "runtime", "my-data.txt"), "data\n");
}

/** renameSync failing on its n-th call (1-based), as the file system would. */
function failRename(n: number): void {
  let calls = 0;
  vi.mocked(fs.renameSync).mockImplementation((from, to) => {
    calls++;
    if (calls === n) throw Object.assign(new Error(`EPERM: operation not permitted, rename '${from}' -> '${to}'`), { code: "EPERM" });
    real.renameSync(from, to);
  });
}

describe("a failure at any rename of the swap", () => {
  it("leaves the output as it was", () => {
    arrange();
    // How many renames a successful rebuild makes: 2 a target, 1 a kept entry.
    let renames = 0;
    vi.mocked(fs.renameSync).mockImplementation((from, to) => {
      renames++;
      real.renameSync(from, to);
    });
    const probe = join(tmp, "probe");
    real.cpSync(out, probe, { recursive: true });
    const saved = out;
    out = probe;
    writeTargets(outputs(artefacts("2500/s")));
    out = saved;
    real.rmSync(probe, { recursive: true });
    expect(renames).toBe(TARGET_IDS.length * 2 + 3);

    for (let n = 1; n <= renames; n++) {
      const before = snapshot(tmp);
      failRename(n);
      let failure: unknown;
      try {
        writeTargets(outputs(artefacts("2500/s")));
      } catch (err) {
        failure = err;
      }
      expect(failure, `rename ${n}`).toBeInstanceOf(BuildFailed);
      expect((failure as BuildFailed).stuck, `rename ${n}`).toEqual([]);
      expect(snapshot(tmp), `rename ${n}`).toEqual(before);
    }
  });
});

describe("a previous output that cannot be removed after the swap", () => {
  it("is named, and the new output is in place", () => {
    arrange();
    vi.mocked(fs.rmSync).mockImplementation((path, options) => {
      if (String(path).includes(".mbc-old-")) throw Object.assign(new Error("EBUSY"), { code: "EBUSY" });
      real.rmSync(path, options);
    });
    const next = outputs(artefacts("2500/s"));
    const leftovers = writeTargets(next);
    expect(leftovers).toHaveLength(TARGET_IDS.length);
    for (const l of leftovers) expect(l).toMatch(/\/\.(compose|kubernetes|node|systemd)\.mbc-old-/);
    for (const o of next) for (const a of o.artefacts) expect(real.readFileSync(join(o.dir, a.path))).toEqual(Buffer.from(a.content));
    expect(real.readFileSync(join(out, "node", "handlers", "my-helper.mjs"), "utf8")).toBe("mine\n");
  });
});
