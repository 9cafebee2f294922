/**
 * mbc build's pure part and its writer: golden files for every example and target (the set of
 * emitted paths is compared too), byte-stable output, atomic writes that keep the user's files.
 * MBC_UPDATE_GOLDEN=1 rewrites the goldens (npm run test:update).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildArtefacts, TARGET_IDS, type TargetId } from "../../src/build/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import { checkTarget, MANIFEST, writeTarget } from "../../src/build/write.js";
import { environmentNames, validateText } from "../../src/validate/index.js";

const root = resolve(import.meta.dirname, "..", "..");
const goldenRoot = join(root, "test", "golden");
const update = process.env.MBC_UPDATE_GOLDEN === "1";
const examples = readdirSync(join(root, "examples")).filter((d) => existsSync(join(root, "examples", d, "microbatch.yaml")));

/** Build inputs as the CLI gathers them, with a stand-in runtime so goldens do not change with every runtime edit. */
function inputsFor(exampleDir: string): { inputs: BuildInputs; model: NonNullable<ReturnType<typeof validateText>["model"]> } {
  const specPath = join(exampleDir, "microbatch.yaml");
  const text = readFileSync(specPath);
  const { model, diagnostics } = validateText("microbatch.yaml", text);
  if (!model) throw new Error(`example ${exampleDir} has errors: ${JSON.stringify(diagnostics)}`);
  const handlerSources: Record<string, Uint8Array> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlerSources[s.handler.path] = readFileSync(join(exampleDir, s.handler.path));
  const templates: Record<string, string> = {};
  for (const id of TARGET_IDS) {
    const dir = join(root, "generators", id, "templates");
    for (const name of existsSync(dir) ? readdirSync(dir) : []) templates[name] = readFileSync(join(dir, name), "utf8");
  }
  // Each environment's model, as `--env NAME` would make it: the kubernetes target writes an overlay for each.
  const environments: Record<string, NonNullable<ReturnType<typeof validateText>["model"]>> = {};
  for (const env of environmentNames(parse(text.toString("utf8")))) {
    const merged = validateText("microbatch.yaml", text, { env }).model;
    if (!merged) throw new Error(`example ${exampleDir} has errors in environment ${env}`);
    environments[env] = merged;
  }
  return {
    model,
    inputs: {
      environments,
      specName: "microbatch.yaml",
      specSha256: createHash("sha256").update(text).digest("hex"),
      handlerSources,
      runtime: new TextEncoder().encode("// the bundled runtime stands here\n"),
      templates,
      version: "0.0.0-test",
    },
  };
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8"));

describe("golden files", () => {
  for (const example of examples) {
    for (const target of TARGET_IDS) {
      it(`${example} → ${target}`, () => {
        const { model, inputs } = inputsFor(join(root, "examples", example));
        const artefacts = buildArtefacts(model, inputs, [target]).get(target) as Artefact[];
        const dir = join(goldenRoot, example, target);
        if (update) {
          rmSync(dir, { recursive: true, force: true });
          for (const a of artefacts) {
            mkdirSync(dirname(join(dir, a.path)), { recursive: true });
            writeFileSync(join(dir, a.path), a.content);
          }
        }
        expect(artefacts.map((a) => a.path).sort()).toEqual(filesUnder(dir));
        for (const a of artefacts) expect(text(a.content), a.path).toBe(readFileSync(join(dir, a.path), "utf8"));
      });
    }
  }
});

describe("build is pure and deterministic", () => {
  it("same spec, same bytes", () => {
    const { model, inputs } = inputsFor(join(root, "examples", "01-design-document"));
    const a = buildArtefacts(model, inputs, TARGET_IDS as TargetId[]);
    const b = buildArtefacts(structuredClone(model), inputs, TARGET_IDS as TargetId[]);
    expect(JSON.stringify([...a].map(([k, v]) => [k, v.map((x) => [x.path, text(x.content)])]))).toBe(
      JSON.stringify([...b].map(([k, v]) => [k, v.map((x) => [x.path, text(x.content)])])),
    );
  });

  it("the node target's system.json is the model and names the copied handlers", () => {
    const { model, inputs } = inputsFor(join(root, "examples", "01-design-document"));
    const artefacts = buildArtefacts(model, inputs, ["node"]).get("node") as Artefact[];
    const system = JSON.parse(text(artefacts.find((a) => a.path === "system.json")?.content ?? ""));
    // A source also carries v1's fields of the other kinds, null (record: empty).
    expect(system.model).toEqual({ ...model, sources: model.sources.map((s) => expect.objectContaining(s)) });
    system.model.sources.forEach((s: Record<string, unknown>, k: number) => {
      for (const [field, value] of Object.entries(s)) if (!(field in (model.sources[k] ?? {}))) expect([null, {}], field).toContainEqual(value);
    });
    for (const path of Object.values(system.handlers as Record<string, string>)) expect(artefacts.map((a) => a.path)).toContain(path);
  });
});

describe("writing a target folder", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "mbc-build-"));
    dirs.push(d);
    return d;
  };

  it("writes every file and a manifest, and --check then finds nothing", () => {
    const out = join(tmp(), "node");
    const artefacts: Artefact[] = [
      { path: "a.txt", content: "a\n" },
      { path: "sub/b.bin", content: new Uint8Array([0, 1, 2]) },
    ];
    writeTarget(out, artefacts);
    expect(filesUnder(out)).toEqual([MANIFEST, "a.txt", "sub/b.bin"].sort());
    expect(checkTarget(out, artefacts)).toEqual({ changed: [], missing: [], stale: [] });
  });

  it("--check lists changed, missing and stale files without writing", () => {
    const out = join(tmp(), "node");
    writeTarget(out, [
      { path: "a.txt", content: "a\n" },
      { path: "old.txt", content: "old\n" },
    ]);
    const next: Artefact[] = [
      { path: "a.txt", content: "A\n" },
      { path: "new.txt", content: "new\n" },
    ];
    const before = filesUnder(out).map((f) => [f, readFileSync(join(out, f), "utf8")]);
    expect(checkTarget(out, next)).toEqual({ changed: ["a.txt"], missing: ["new.txt"], stale: ["old.txt"] });
    expect(filesUnder(out).map((f) => [f, readFileSync(join(out, f), "utf8")])).toEqual(before);
  });

  it("a rebuild removes stale generated files but keeps what the runtime or the user put there", () => {
    const out = join(tmp(), "node");
    writeTarget(out, [
      { path: "a.txt", content: "a\n" },
      { path: "old.txt", content: "old\n" },
    ]);
    mkdirSync(join(out, ".mbc", "state"), { recursive: true });
    writeFileSync(join(out, ".mbc", "state", "commit.log"), "batch-1\n");
    writeFileSync(join(out, "notes.md"), "mine\n");
    writeTarget(out, [{ path: "a.txt", content: "b\n" }]);
    expect(filesUnder(out)).toEqual([".mbc/state/commit.log", MANIFEST, "a.txt", "notes.md"].sort());
    expect(readFileSync(join(out, ".mbc", "state", "commit.log"), "utf8")).toBe("batch-1\n");
    expect(readdirSync(dirname(out))).toEqual(["node"]);
  });

  it("a failed build leaves the previous output untouched and no temporary folder behind", () => {
    const out = join(tmp(), "node");
    writeTarget(out, [{ path: "a.txt", content: "a\n" }]);
    // A path whose parent is a file cannot be written: the build fails midway.
    expect(() =>
      writeTarget(out, [
        { path: "x", content: "file\n" },
        { path: "x/y", content: "under a file\n" },
      ]),
    ).toThrow();
    expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("a\n");
    expect(readdirSync(dirname(out))).toEqual(["node"]);
  });

  it("refuses generated paths that leave the folder", () => {
    const { model, inputs } = inputsFor(join(root, "examples", "01-design-document"));
    const bad = structuredClone(model);
    const svc = bad.services[0];
    if (svc) svc.handler = { kind: "module", path: "../../etc/passwd", outside: true };
    expect(() => buildArtefacts(bad, { ...inputs, handlerSources: { "../../etc/passwd": new Uint8Array() } }, ["node"])).toThrow(/unsafe path/);
  });
});
