import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildArtefacts, TARGET_IDS, type TargetId } from "../../src/build/index.js";
import type { Artefact } from "../../src/build/types.js";
import { BuildFailed, BuildRefused, checkTarget, MANIFEST, planTarget, type TargetOutput, writeTarget, writeTargets } from "../../src/build/write.js";
import { validateText } from "../../src/validate/index.js";
import { buildInputs } from "../helpers/build.js";
import { snapshot } from "../helpers/snapshot.js";

const root = resolve(import.meta.dirname, "..", "..");
const example = join(root, "examples", "01-design-document");

/** The real artefacts of every target for the example, with `edit` applied to the spec's text. */
function artefactsOf(edit: (spec: string) => string = (s) => s): Map<TargetId, Artefact[]> {
  const text = edit(readFileSync(join(example, "microbatch.yaml"), "utf8"));
  const { model, diagnostics } = validateText("microbatch.yaml", text);
  if (!model) throw new Error(`the example has errors: ${JSON.stringify(diagnostics)}`);
  const handlerSources: Record<string, Uint8Array> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlerSources[s.handler.path] = readFileSync(join(example, s.handler.path));
  return buildArtefacts(model, buildInputs(text, { handlerSources }), TARGET_IDS);
}

let tmp: string;
let out: string;
beforeEach(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), "mbc-hostile-build-")));
  out = join(tmp, "build");
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const outputs = (byTarget: Map<TargetId, Artefact[]>): TargetOutput[] => [...byTarget].map(([id, artefacts]) => ({ dir: join(out, id), artefacts }));
const put = (rel: string, text: string) => {
  mkdirSync(join(out, rel, ".."), { recursive: true });
  writeFileSync(join(out, rel), text);
};
const refusalsOf = (f: () => unknown): string[] => {
  try {
    f();
  } catch (err) {
    if (err instanceof BuildRefused) return err.refusals.map((r) => `${r.path.slice(out.length + 1)}: ${r.kind}`);
    throw err;
  }
  throw new Error("the build was not refused");
};

/** The files the user put into generated folders in the reports. */
const USER_FILES = {
  "node/handlers/my-helper.mjs": "export const helper = 1;\n",
  "systemd/env/services/secrets.env": "TOKEN=s3cret\n",
  "systemd/units/mbc-design-example-registry.service.d/override.conf": "[Service]\nNice=5\n",
  "compose/runtime/my-data.txt": "keep me\n",
  "node/.mbc/state/sources/input/log.jsonl": '{"offset":1}\n',
  "notes.md": "beside the targets\n",
};

describe("a rebuild", () => {
  it("keeps every file its manifest does not list, where it is, in generated folders too", () => {
    writeTargets(outputs(artefactsOf()));
    for (const [rel, text] of Object.entries(USER_FILES)) put(rel, text);
    writeTargets(outputs(artefactsOf((s) => s.replace("capacity: 2000/s", "capacity: 2500/s"))));
    for (const [rel, text] of Object.entries(USER_FILES)) expect(readFileSync(join(out, rel), "utf8")).toBe(text);
    expect(readdirSync(out).sort()).toEqual(["compose", "kubernetes", "node", "notes.md", "systemd"]);
  });

  it("deletes generated files it no longer writes, and keeps the user's files in their folder", () => {
    writeTargets(outputs(artefactsOf()));
    put("node/handlers/my-helper.mjs", "mine\n");
    // The example without its module handler: nothing is generated under handlers/ any more.
    const next = artefactsOf((s) => s.replace("handler: ./handlers/process.mjs", "handler: builtin:passthrough"));
    writeTargets(outputs(next));
    expect(readdirSync(join(out, "node", "handlers"))).toEqual(["my-helper.mjs"]);
    expect(checkTarget(join(out, "node"), next.get("node") as Artefact[])).toEqual({ changed: [], missing: [], stale: [] });
  });

  it("replaces a generated file the user edited (the header says not to)", () => {
    const first = artefactsOf();
    writeTargets(outputs(first));
    put("node/README.md", "edited\n");
    writeTargets(outputs(first));
    expect(checkTarget(join(out, "node"), first.get("node") as Artefact[])).toEqual({ changed: [], missing: [], stale: [] });
  });

  it("never deletes what a forged manifest lists outside the folder", () => {
    writeTargets(outputs(artefactsOf()));
    writeFileSync(join(tmp, "precious.txt"), "mine\n");
    const manifest = JSON.parse(readFileSync(join(out, "node", MANIFEST), "utf8")) as { files: string[] };
    manifest.files.push("../../precious.txt", "/etc/passwd", "../compose/compose.yaml");
    writeFileSync(join(out, "node", MANIFEST), JSON.stringify(manifest));
    writeTargets(outputs(artefactsOf()));
    expect(readFileSync(join(tmp, "precious.txt"), "utf8")).toBe("mine\n");
    expect(readFileSync(join(out, "compose", "compose.yaml"), "utf8")).toMatch(/^# generated by mbc/);
  });
});

describe("a path that holds what mbc did not write stops the build before anything is written", () => {
  const cases: [string, () => void, string[]][] = [
    [
      "a folder without a manifest, with a README.md of the user's",
      () => {
        rmSync(out, { recursive: true });
        put("node/README.md", "my readme\n");
        put("node/handlers/tool.sh", "#!/bin/sh\n");
      },
      ["node/README.md: foreign"],
    ],
    [
      "a target folder replaced by a file",
      () => {
        rmSync(join(out, "systemd"), { recursive: true });
        put("systemd", "a file\n");
      },
      ["systemd: foreign"],
    ],
    [
      "a target folder that is a symbolic link",
      () => {
        renameSync(join(out, "node"), join(tmp, "elsewhere"));
        symlinkSync(join(tmp, "elsewhere"), join(out, "node"));
      },
      ["node: foreign"],
    ],
    [
      "a generated folder replaced by a symbolic link",
      () => {
        mkdirSync(join(tmp, "elsewhere"));
        rmSync(join(out, "node", "handlers"), { recursive: true });
        symlinkSync(join(tmp, "elsewhere"), join(out, "node", "handlers"));
      },
      ["node/handlers: foreign"],
    ],
    [
      "a generated file replaced by a symbolic link",
      () => {
        rmSync(join(out, "compose", "compose.yaml"));
        symlinkSync("/etc/passwd", join(out, "compose", "compose.yaml"));
      },
      ["compose/compose.yaml: foreign"],
    ],
    [
      "a folder of the user's where mbc writes a file",
      () => {
        rmSync(join(out, "systemd", "install.sh"));
        put("systemd/install.sh/mine.txt", "x\n");
      },
      ["systemd/install.sh: foreign"],
    ],
    ["a manifest that is not mbc's", () => put(`compose/${MANIFEST}`, "{}\n"), [`compose/${MANIFEST}: foreign`, "compose/compose.yaml: foreign"]],
  ];

  it.each(cases)("%s", (_, arrange, expected) => {
    writeTargets(outputs(artefactsOf()));
    arrange();
    const before = snapshot(tmp);
    const next = outputs(artefactsOf((s) => s.replace("capacity: 2000/s", "capacity: 2500/s")));
    const refused = refusalsOf(() => writeTargets(next));
    for (const e of expected) expect(refused).toContain(e);
    expect(snapshot(tmp)).toEqual(before);
    // --check sees the same and writes nothing either.
    expect(next.flatMap((o) => planTarget(o.dir, o.artefacts).refusals).length).toBe(refused.length);
    for (const o of next) checkTarget(o.dir, o.artefacts);
    expect(snapshot(tmp)).toEqual(before);
  });

  it("into a folder with no manifest at all, where no path collides, keeps everything", () => {
    put("node/handlers/tool.sh", "#!/bin/sh\n");
    put("node/docs/mine.md", "mine\n");
    writeTargets(outputs(artefactsOf()));
    expect(readFileSync(join(out, "node", "handlers", "tool.sh"), "utf8")).toBe("#!/bin/sh\n");
    expect(readFileSync(join(out, "node", "docs", "mine.md"), "utf8")).toBe("mine\n");
  });

  it("names every such path, in every target, at once", () => {
    put("node/README.md", "x\n");
    put("compose/README.md", "x\n");
    put("systemd/README.md", "x\n");
    expect(refusalsOf(() => writeTargets(outputs(artefactsOf()))).sort()).toEqual([
      "compose/README.md: foreign",
      "node/README.md: foreign",
      "systemd/README.md: foreign",
    ]);
    expect(readdirSync(out).sort()).toEqual(["compose", "node", "systemd"]);
    expect(readdirSync(join(out, "node"))).toEqual(["README.md"]);
  });
});

describe("a failure while writing", () => {
  it("leaves the output as it was, and no temporary folder behind", () => {
    writeTargets(outputs(artefactsOf()));
    put("node/handlers/my-helper.mjs", "mine\n");
    const before = snapshot(tmp);
    // A generator's mistake: a file, and a file under it. The staging fails on the second.
    const bad: TargetOutput = {
      dir: join(out, "systemd"),
      artefacts: [
        { path: "x", content: "file\n" },
        { path: "x/y", content: "under a file\n" },
      ],
    };
    expect(() => writeTargets([...outputs(artefactsOf()).filter((o) => !o.dir.endsWith("systemd")), bad])).toThrow(BuildFailed);
    expect(snapshot(tmp)).toEqual(before);
  });

  it("into an output folder that did not exist removes the folders it created", () => {
    const deep = join(tmp, "a", "b", "build");
    expect(() =>
      writeTarget(join(deep, "node"), [
        { path: "x", content: "file\n" },
        { path: "x/y", content: "under a file\n" },
      ]),
    ).toThrow(BuildFailed);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe("--check", () => {
  it("reports a file whose mode changed", () => {
    const node = artefactsOf().get("node") as Artefact[];
    writeTarget(join(out, "node"), node);
    const changedMode = node.map((a) => (a.path === "README.md" ? { ...a, mode: 0o755 } : a));
    expect(checkTarget(join(out, "node"), changedMode).changed).toEqual(["README.md"]);
  });

  it("counts a listed file the user replaced by a link as missing, not as one to delete", () => {
    const node = artefactsOf().get("node") as Artefact[];
    writeTarget(join(out, "node"), node);
    rmSync(join(out, "node", "README.md"));
    symlinkSync("/etc/hostname", join(out, "node", "README.md"));
    const before = snapshot(tmp);
    expect(checkTarget(join(out, "node"), node)).toEqual({ changed: [], missing: ["README.md"], stale: [] });
    expect(snapshot(tmp)).toEqual(before);
  });
});
