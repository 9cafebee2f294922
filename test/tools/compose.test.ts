/**
 * The compose target: every generated compose.yaml is accepted by docker-compose (1.29, `config
 * -q`, no engine needed) and by the official Compose JSON Schema under ajv; hostile names and
 * values cannot add a key, a service or a path, and every value reaches Compose exactly; the
 * healthchecks work against the real runtime. Golden files are in test/build.test.ts.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { composeGenerator } from "../../generators/compose/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { validateText } from "../../src/validate/index.js";
import { cleanupAll, repoRoot, tempDir } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

const templatesDir = join(repoRoot, "generators", "compose", "templates");
const templates = Object.fromEntries(readdirSync(templatesDir).map((n) => [n, readFileSync(join(templatesDir, n), "utf8")]));
const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8"));

interface Built {
  model: Model;
  artefacts: Artefact[];
  file(path: string): string;
  compose: ComposeFile;
}

interface ComposeFile {
  services: Record<string, Record<string, unknown>>;
  networks: Record<string, unknown>;
  volumes: Record<string, unknown>;
}

/**
 * Validates a spec (errors fail the test) and runs the compose generator on it. With
 * `pastConstraints`, errors of the targets' constraints do not: the generator must write safely
 * even what validate refuses (the hostile image below).
 */
function build(
  spec: string | object,
  files: Record<string, string> = {},
  options: { specName?: string; runtime?: Uint8Array; pastConstraints?: boolean } = {},
): Built {
  const source = typeof spec === "string" ? spec : JSON.stringify(spec, null, 2);
  const { model, diagnostics } = validateText("microbatch.yaml", source, { fileExists: (p) => p in files });
  const errors = diagnostics.filter((d) => d.severity === "error" && !(options.pastConstraints && d.code === "target-constraint"));
  if (!model || errors.length > 0) throw new Error(`the test spec has errors: ${errors.map((d) => `${d.code} ${d.path}: ${d.message}`).join("; ")}`);
  const inputs: BuildInputs = {
    specName: options.specName ?? "microbatch.yaml",
    specSha256: createHash("sha256").update(source).digest("hex"),
    handlerSources: Object.fromEntries(Object.entries(files).map(([p, t]) => [p, new TextEncoder().encode(t)])),
    runtime: options.runtime ?? new TextEncoder().encode("// the bundled runtime stands here\n"),
    templates,
    version: "0.0.0-test",
  };
  const artefacts = composeGenerator.generate(model, inputs);
  const file = (path: string) => {
    const a = artefacts.find((x) => x.path === path);
    if (!a) throw new Error(`no ${path} among ${artefacts.map((x) => x.path).join(", ")}`);
    return text(a.content);
  };
  return { model, artefacts, file, compose: parse(file("compose.yaml")) as ComposeFile };
}

function writeOut(built: Built, dir = tempDir("mbc-compose-")): string {
  for (const a of built.artefacts) {
    mkdirSync(dirname(join(dir, a.path)), { recursive: true });
    writeFileSync(join(dir, a.path), a.content);
  }
  return dir;
}

const undoDollars = (v: unknown) => (typeof v === "string" ? v.replace(/\$\$/g, "$") : v);

// ---------------------------------------------------------------------------------------------
// The specs

const examples = readdirSync(join(repoRoot, "examples"))
  .filter((d) => existsSync(join(repoRoot, "examples", d, "microbatch.yaml")))
  .map((d) => {
    const dir = join(repoRoot, "examples", d);
    const spec = readFileSync(join(dir, "microbatch.yaml"), "utf8");
    const { model } = validateText("microbatch.yaml", spec);
    const files: Record<string, string> = {};
    for (const s of model?.services ?? []) if (s.handler?.kind === "module") files[s.handler.path] = readFileSync(join(dir, s.handler.path), "utf8");
    return { name: `example ${d}`, spec, files };
  });

/** Text a user may write, with everything that could break out of a YAML scalar, a line or a path. */
const HOSTILE: Record<string, string> = {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's interpolation syntax, on purpose
  dollar: "$HOME ${HOME} ${HOME:-x} $$ $(id) `id` $",
  quotes: `"double" 'single' \\"escaped\\" \\`,
  newline: "line1\nline2\r\nline3\n  key: injected\nservices:\n  evil:\n    image: x",
  percent: "%s %n %YAML 1.1 100% %%",
  dotdot: "../../../etc/passwd",
  yaml: "- item\n? key\n: value\n# comment\n---\n...\n&a *a !!str | > {a: 1} [b]",
  spaces: "  leading and trailing  ",
  empty: "",
  number: "0x1F",
  boolean: "yes",
  unicode: "é😀 \u0085nel \u2028ls \u2029ps \ufeffbom \u0001ctl \u007fdel \u0080c1",
};

const HANDLER = "export default async (records) => records;\n";

const hostileSpec = {
  mbc: 1,
  name: "hostile",
  description: HOSTILE.newline,
  checkpoint: { dir: "../../../etc/mbc-state" },
  targets: { compose: { project: "shop", network: "backplane", image: "node:20-alpine" } },
  sources: {
    web: { type: "http", port: 8080, path: "/in$HOME&y=%20'x", to: "proc" },
    feed: { type: "file", path: "../%s/$HOME/../in put.jsonl", to: "proc" },
  },
  services: {
    proc: {
      handler: "./handlers/we$ird %s.mjs",
      config: HOSTILE,
      env: { ...HOSTILE, on: "on", NULL: "null", Y: "n", MBC_BIND: "127.0.0.1", MBC_LOG_LEVEL: "debug" },
      instances: [{ weight: 3 }, { weight: 1 }],
      resources: { cpus: 0.5, memory: "512Mi" },
      to: ["store", "external"],
    },
    store: { handler: "builtin:jsonl-sink", config: { path: "../../$HOME/out%s\n.jsonl" }, instances: 2 },
    external: { image: "registry.example.com/sink:1$HOME\n    command: injected", env: { TOKEN: "$ecret\nX: y" } },
  },
};

const hostileFiles = { "handlers/we$ird %s.mjs": HANDLER };

/** Names that YAML 1.1 reads as booleans or null, and names that collide with mbc's own. */
const namesSpec = `
mbc: 1
name: names
sources:
  registry: { type: http, port: 8080, to: x }
  x-0: { type: generator, rate: 10, to: x }
  "yes": { type: file, path: ./in.jsonl, to: "on" }
services:
  x: { handler: builtin:passthrough, instances: 2, to: "on" }
  "on": { handler: builtin:jsonl-sink, config: { path: ./out.jsonl } }
  "null": { image: "example/null:1", to: "on" }
`;

/** Several sources, fan-out, images, resources in every unit. */
const shapesSpec = `
mbc: 1
name: shapes
defaults:
  resources: { cpus: 2, memory: 1G }
sources:
  orders: { type: http, port: 8081, path: /orders, to: split }
  replay: { type: file, path: ./data/replay.jsonl, to: split }
  synthetic: { type: generator, rate: 100/s, count: 1000, record: { id: "{{seq}}" }, to: split }
services:
  split:
    handler: builtin:passthrough
    instances: 3
    resources: { cpus: 0.25, memory: 256Mi }
    to: [enrich, archive, audit]
  enrich:
    image: registry.example.com/enrich:1.4
    handler: ./handlers/enrich.mjs
    instances: [{ weight: 2 }, { weight: 1, capacity: 500/s }]
    port: 9300
    to: store
  archive:
    handler: builtin:jsonl-sink
    config: { path: ./data/archive.jsonl }
    resources: { memory: 100000000 }
  audit:
    handler: builtin:log
    resources: { memory: 65537Ki }
  store:
    handler: builtin:jsonl-sink
    config: { path: ./data/store.jsonl }
    instances: 2
`;

const cases = [
  ...examples,
  { name: "hostile names and values", spec: hostileSpec as string | object, files: hostileFiles as Record<string, string> },
  { name: "YAML 1.1 words and colliding names", spec: namesSpec, files: {} },
  { name: "fan-out, images, resources, several sources", spec: shapesSpec, files: { "handlers/enrich.mjs": HANDLER } },
];

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------

const composeTool = tool("docker-compose", () => {
  const r = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
  if (r.error) return `docker-compose is not installed (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  return r.status === 0 ? null : `docker-compose version failed: ${r.stderr.trim()}`;
});

describe.skipIf(composeTool.skip)("docker-compose config accepts every generated file", () => {
  beforeAll(() => assertTool(composeTool));
  afterAll(() => cleanupAll());

  const config = (dir: string, args: string[]) =>
    spawnSync("docker-compose", ["-f", "compose.yaml", "config", ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, HOME: "/nonexistent-home" } });

  for (const c of cases) {
    it(c.name, () => {
      const dir = writeOut(build(c.spec, c.files, { pastConstraints: c.spec === hostileSpec }));
      const r = config(dir, ["-q"]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    });
  }

  it("and reads each hostile value back exactly", () => {
    const built = build(hostileSpec, hostileFiles, { pastConstraints: true });
    const r = config(writeOut(built), []);
    expect(r.status, r.stderr).toBe(0);
    // docker-compose prints `$` as `$$` again; a YAML 1.1 reader turns U+0085, U+2028 and U+2029 of
    // its output into line breaks, so that one value is compared above, not here.
    const out = parse(r.stdout, { version: "1.1" }) as ComposeFile;
    const env = out.services["proc-1"]?.environment as Record<string, string>;
    const proc = built.model.services.find((s) => s.name === "proc");
    for (const [k, v] of Object.entries(proc?.env ?? {})) {
      if (k.startsWith("MBC_") || k === "unicode") continue;
      expect(undoDollars(env[k]), k).toBe(v);
    }
    expect(Object.keys(out.services).sort()).toEqual(Object.keys(built.compose.services).sort());
  });

  it("and reads COMPOSE_PROJECT_NAME from .env", () => {
    const dir = writeOut(build(hostileSpec, hostileFiles, { pastConstraints: true }));
    // Compose interpolates from the project folder's .env: a probe file beside ours shows what it read.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's interpolation syntax, on purpose
    writeFileSync(join(dir, "probe.yaml"), 'services:\n  probe:\n    image: "x"\n    labels: { project: "${COMPOSE_PROJECT_NAME}" }\n');
    const { COMPOSE_PROJECT_NAME: _, ...env } = process.env;
    const r = spawnSync("docker-compose", ["-f", "probe.yaml", "config"], { cwd: dir, encoding: "utf8", env });
    expect(r.status, r.stderr).toBe(0);
    expect((parse(r.stdout) as ComposeFile).services.probe?.labels).toEqual({ project: "shop" });
  });
});
