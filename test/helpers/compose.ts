/**
 * Builds the compose target in-process for tests: `build(spec, files)` validates a spec (errors
 * fail the test) and runs the compose generator on it; `writeOut` writes the artefacts to a
 * folder; `cases` are the specs every check walks (each example, hostile names and values, YAML
 * 1.1 words, several shapes).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "yaml";
import { composeGenerator } from "../../generators/compose/index.js";
import type { Artefact, BuildInputs } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { validateText } from "../../src/validate/index.js";
import { repoRoot, tempDir } from "./runtime.js";

export const templatesDir = join(repoRoot, "generators", "compose", "templates");
export const templates = Object.fromEntries(readdirSync(templatesDir).map((n) => [n, readFileSync(join(templatesDir, n), "utf8")]));
export const text = (c: string | Uint8Array) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8"));

export interface Built {
  model: Model;
  artefacts: Artefact[];
  file(path: string): string;
  compose: ComposeFile;
}

export interface ComposeFile {
  services: Record<string, Record<string, unknown>>;
  networks: Record<string, unknown>;
  volumes: Record<string, unknown>;
}

/**
 * Validates a spec (errors fail the test) and runs the compose generator on it. With
 * `pastConstraints`, errors of the targets' constraints do not: the generator must write safely
 * even what validate refuses (the hostile image below).
 */
export function build(
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

/** Writes the artefacts of a build into a folder (a new temporary one by default). */
export function writeOut(built: Built, dir = tempDir("mbc-compose-")): string {
  for (const a of built.artefacts) {
    mkdirSync(dirname(join(dir, a.path)), { recursive: true });
    writeFileSync(join(dir, a.path), a.content);
  }
  return dir;
}
export const undoDollars = (v: unknown) => (typeof v === "string" ? v.replace(/\$\$/g, "$") : v);

// ---------------------------------------------------------------------------------------------
// The specs

export const examples = readdirSync(join(repoRoot, "examples"))
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
export const HOSTILE: Record<string, string> = {
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

export const HANDLER = "export default async (records) => records;\n";

export const hostileSpec = {
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

export const hostileFiles = { "handlers/we$ird %s.mjs": HANDLER };

/** Names that YAML 1.1 reads as booleans or null, and names that collide with mbc's own. */
export const namesSpec = `
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
export const shapesSpec = `
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

export const cases = [
  ...examples,
  { name: "hostile names and values", spec: hostileSpec as string | object, files: hostileFiles as Record<string, string> },
  { name: "YAML 1.1 words and colliding names", spec: namesSpec, files: {} },
  { name: "fan-out, images, resources, several sources", spec: shapesSpec, files: { "handlers/enrich.mjs": HANDLER } },
  {
    name: "the etcd registry: no registry container",
    spec: shapesSpec.replace("name: shapes\n", "name: shapes\nregistry:\n  backend: etcd\n  endpoints: [http://etcd-1:2379, http://etcd-2:2379]\n"),
    files: { "handlers/enrich.mjs": HANDLER },
  },
];
