/**
 * Editor support, proven with the real yaml-language-server over stdio: completion, hover and
 * diagnostics come from schema/mbc.schema.json, by a `yaml.schemas` glob and by the modeline
 * that `mbc init` writes. Offline: the schema is a local file and the schema store is off.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateText } from "../../src/validate/index.js";
import { LspClient, yamlLanguageServerPath } from "../helpers/lsp.js";
import { assertTool, tool } from "../helpers/tools.js";

const root = resolve(import.meta.dirname, "..", "..");
const schemaPath = join(root, "schema", "mbc.schema.json");
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));

// The contract's lists (spec-v1.md: "Top level", "Service", loadBalancing).
const TOP_LEVEL_KEYS = ["mbc", "name", "description", "defaults", "registry", "sources", "services", "checkpoint", "environments", "simulation", "targets"];
const SERVICE_KEYS = ["handler", "image", "config", "instances", "loadBalancing", "capacity", "port", "timeout", "retry", "resources", "env", "to"];
const STRATEGIES = ["round-robin", "weighted-round-robin", "random", "weighted-random", "least-connections", "power-of-two-choices"];

const server = tool("yaml-language-server", () => (existsSync(yamlLanguageServerPath()) ? null : "the yaml-language-server package is not installed"));

const PROPERTY = 10;
const labels = (items: { label: string }[]) => items.map((i) => i.label).sort();
const keys = (items: { label: string; kind?: number }[]) => labels(items.filter((i) => i.kind === PROPERTY));

describe.skipIf(server.skip)("yaml-language-server with the mbc schema", () => {
  let dir: string;
  let glob: LspClient;

  beforeAll(async () => {
    assertTool(server);
    dir = mkdtempSync(join(tmpdir(), "mbc-lsp-"));
    glob = new LspClient({
      schemas: { [pathToFileURL(schemaPath).href]: ["microbatch.yaml", "*.mbc.yaml"] },
      validate: true,
      completion: true,
      hover: true,
      schemaStore: { enable: false },
    });
    await glob.start(dir);
  });

  afterAll(async () => {
    await glob?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the contract's lists are the schema's", () => {
    expect(Object.keys(schema.properties).sort()).toEqual([...TOP_LEVEL_KEYS].sort());
    expect(Object.keys(schema.$defs.service.properties).sort()).toEqual([...SERVICE_KEYS].sort());
    expect(schema.$defs.service.properties.loadBalancing.enum).toEqual(STRATEGIES);
  });

  it("offers every top-level key at the top level", async () => {
    const file = join(dir, "top.mbc.yaml");
    await glob.open(file, "\n");
    const items = await glob.completion(file, 0, 0);
    expect(keys(items)).toEqual([...TOP_LEVEL_KEYS].sort());
    // and a whole starter spec as one snippet
    expect(items.find((i) => i.label === "new mbc spec")?.insertText).toMatch(/sources:/);
  });

  it("offers the keys not yet written, inside a service", async () => {
    const file = join(dir, "service.mbc.yaml");
    const text = ["mbc: 1", "name: shop", "sources:", "  in: { type: http, port: 8080, to: svc }", "services:", "  svc:", "    ", ""].join("\n");
    await glob.open(file, text);
    const items = await glob.completion(file, 6, 4);
    expect(keys(items)).toEqual([...SERVICE_KEYS].sort());
  });

  it("offers the six strategies after loadBalancing:", async () => {
    const file = join(dir, "lb.mbc.yaml");
    const text = ["mbc: 1", "name: shop", "services:", "  svc:", "    handler: builtin:log", "    loadBalancing: ", ""].join("\n");
    await glob.open(file, text);
    const items = await glob.completion(file, 5, 19);
    expect(labels(items)).toEqual([...STRATEGIES].sort());
  });

  it("offers a builtin's own config keys: path for builtin:jsonl-sink, sample for builtin:log", async () => {
    const file = join(dir, "config.mbc.yaml");
    const text = [
      "mbc: 1",
      "name: shop",
      "services:",
      "  store:",
      "    handler: builtin:jsonl-sink",
      "    config:",
      "      ",
      "  show:",
      "    handler: builtin:log",
      "    config:",
      "      ",
      "",
    ].join("\n");
    await glob.open(file, text);
    expect(keys(await glob.completion(file, 6, 6))).toEqual(["path"]);
    expect(keys(await glob.completion(file, 10, 6))).toEqual(["sample"]);
  });

  it("offers a new source as one completion", async () => {
    const file = join(dir, "snippet.mbc.yaml");
    const text = ["mbc: 1", "name: shop", "sources:", "  ", ""].join("\n");
    await glob.open(file, text);
    const items = await glob.completion(file, 3, 2);
    const http = items.find((i) => i.label === "http source");
    expect(http?.insertText).toMatch(/type: http/);
    expect(http?.insertText).toMatch(/port:/);
  });

  it("shows maxWait's description on hover", async () => {
    const file = join(dir, "hover.mbc.yaml");
    const text = ["mbc: 1", "name: shop", "defaults:", "  batch:", "    maxWait: 200ms", ""].join("\n");
    await glob.open(file, text);
    const hover = await glob.hover(file, 4, 6);
    expect(hover).toContain(schema.$defs.batch.properties.maxWait.description);
  });

  it("reports an invalid value on the line where mbc validate reports it", async () => {
    const file = join(dir, "microbatch.yaml");
    const text = [
      "mbc: 1",
      "name: shop",
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    batch:",
      "      maxWait: 2 seconds",
      "    to: svc",
      "services:",
      "  svc:",
      "    handler: builtin:log",
      "",
    ].join("\n");
    const lsp = await glob.open(file, text);
    const ours = validateText("microbatch.yaml", text).diagnostics;
    expect(ours.map((d) => [d.code, d.line])).toEqual([["schema", 8]]);
    expect(lsp.length).toBeGreaterThan(0);
    expect(lsp.map((d) => d.range.start.line + 1)).toContain(8);
    expect(lsp.every((d) => d.range.start.line + 1 === 8)).toBe(true);
  });

  it("finds the schema through the modeline that mbc init writes, with no yaml.schemas setting", async () => {
    const project = join(dir, "project");
    execFileSync(process.execPath, [join(root, "bin", "mbc"), "init", project], { stdio: "pipe" });
    const specPath = join(project, "microbatch.yaml");
    const text = readFileSync(specPath, "utf8");
    expect(text.split("\n")[0]).toMatch(/^# yaml-language-server: \$schema=\S+$/);
    const modeline = new LspClient({ schemas: {}, validate: true, completion: true, hover: true, schemaStore: { enable: false } });
    try {
      await modeline.start(project);
      // A clean starter gives no diagnostics; one typo gives one, at the typo.
      expect(await modeline.open(specPath, text)).toEqual([]);
      const broken = text.replace("maxRetries: 2", "maxRetrys: 2");
      const other = join(project, "other.yaml");
      const diags = await modeline.open(other, broken);
      const line = broken.split("\n").findIndex((l) => l.includes("maxRetrys"));
      expect(diags.map((d) => d.range.start.line)).toEqual([line]);
    } finally {
      await modeline.stop();
    }
  });
});
