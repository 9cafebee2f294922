/**
 * system.json and its schema (schema/system.schema.json): every model the validator makes is a
 * system.json the runtime accepts, in v1's layout; each kind of source and service is one
 * variant of the schema and of the model's types; a bad file is named field by field.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { systemFileText } from "../../src/model/system-file.js";
import { type Model, SOURCE_TYPES } from "../../src/model/types.js";
import { checkSystem, RuntimeConfigError } from "../../src/runtime/config/index.js";
import { fieldOf } from "../../src/runtime/config/schema-errors.js";
import { sourceKinds } from "../../src/runtime/source/kinds/index.js";
import { validateText } from "../../src/validate/index.js";

const root = resolve(import.meta.dirname, "..", "..");
const schema = JSON.parse(readFileSync(join(root, "schema", "system.schema.json"), "utf8"));

/** Every valid spec of the repository: the examples and the valid fixtures. */
function validSpecs(): { id: string; model: Model }[] {
  const dirs = [
    ...readdirSync(join(root, "examples")).map((d) => join(root, "examples", d)),
    ...readdirSync(join(root, "fixtures", "valid")).map((d) => join(root, "fixtures", "valid", d)),
  ];
  const out: { id: string; model: Model }[] = [];
  for (const dir of dirs) {
    const file = ["microbatch.yaml", "microbatch.json"].map((f) => join(dir, f)).find((f) => existsSync(f));
    if (file === undefined) continue;
    const { model } = validateText(file, readFileSync(file, "utf8"), { fileExists: () => true });
    if (model === null) throw new Error(`${file} gives no model`);
    out.push({ id: dir.slice(root.length + 1), model });
  }
  return out;
}

function handlersOf(model: Model): Record<string, string> {
  const handlers: Record<string, string> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlers[s.name] = `handlers/${s.handler.path}`;
  return handlers;
}

/** A model with a source of every kind and a service of each kind. */
function everyKind(): Model {
  const yaml = `
mbc: 1
name: kinds
sources:
  web: { type: http, port: 8080, path: /in, rate: 10/s, to: work }
  file: { type: file, path: ./in.jsonl, to: work }
  gen: { type: generator, rate: 5/s, count: 100, record: { id: "{{seq}}" }, to: work }
services:
  work: { handler: ./work.mjs, image: example/work:1, to: [store, external] }
  store: { handler: "builtin:jsonl-sink", config: { path: ./out.jsonl } }
  external: { image: example/sink:1 }
`;
  const { model, diagnostics } = validateText("microbatch.yaml", yaml, { fileExists: () => true });
  if (model === null) throw new Error(JSON.stringify(diagnostics));
  return model;
}

/** The message checkSystem throws for `value` (a RuntimeConfigError, exit status 2). */
function problem(value: unknown): string {
  try {
    checkSystem(value, "system.json");
  } catch (err) {
    expect(err).toBeInstanceOf(RuntimeConfigError);
    expect((err as RuntimeConfigError).exitCode).toBe(2);
    return (err as Error).message;
  }
  throw new Error("checkSystem accepted the file");
}

type Rec = Record<string, unknown>;

/** The parts of a parsed system.json that a test changes. */
interface Parts {
  top: Rec;
  model: Rec;
  source(k: number): Rec;
  service(k: number): Rec;
  handlers: Rec;
}
type Edit = (parts: Parts) => void;

/** system.json of `everyKind()` as plain data, changed by `edit`. */
function edited(edit: Edit): unknown {
  const model = everyKind();
  const top = JSON.parse(systemFileText(model, handlersOf(model))) as Rec & { model: Rec & { sources: Rec[]; services: Rec[] }; handlers: Rec };
  const nth = (list: Rec[], k: number): Rec => {
    const item = list[k];
    if (item === undefined) throw new Error(`no item ${k}`);
    return item;
  };
  edit({ top, model: top.model, source: (k) => nth(top.model.sources, k), service: (k) => nth(top.model.services, k), handlers: top.handlers });
  return top;
}

describe("system.json as mbc build writes it", () => {
  it.each(validSpecs().map(({ id, model }) => [id, model] as const))("%s: the runtime accepts it", (_, model) => {
    const system = checkSystem(JSON.parse(systemFileText(model, handlersOf(model))), "system.json");
    expect(system.model.services).toEqual(model.services);
    expect(system.model.sources).toEqual(model.sources.map((s) => expect.objectContaining(s)));
  });

  it("writes every source in v1's layout: all of v1's fields in v1's order, null where the kind has none", () => {
    const model = everyKind();
    const system = JSON.parse(systemFileText(model, handlersOf(model)));
    const v1 = ["name", "path", "type", "port", "location", "ratePerSec", "count", "record", "batch", "to"];
    for (const s of system.model.sources) expect(Object.keys(s)).toEqual(v1);
    const [web, file, gen] = system.model.sources;
    expect([web.port, web.location, web.count, web.record]).toEqual([8080, "/in", null, {}]);
    expect([file.port, file.location, file.count, file.record]).toEqual([null, "./in.jsonl", null, {}]);
    expect([gen.port, gen.location, gen.count, gen.record]).toEqual([null, null, 100, { id: "{{seq}}" }]);
  });

  it("a source or a service is one variant a kind, with only its own fields", () => {
    const model = everyKind();
    expect(model.sources.map((s) => Object.keys(s).sort())).toEqual([
      ["batch", "location", "name", "path", "port", "ratePerSec", "to", "type"],
      ["batch", "location", "name", "path", "ratePerSec", "to", "type"],
      ["batch", "count", "name", "path", "ratePerSec", "record", "to", "type"],
    ]);
    const [work, , external] = model.services;
    expect([work?.handler?.kind, work?.image]).toEqual(["module", "example/work:1"]);
    expect([external?.handler, external?.image]).toEqual([null, "example/sink:1"]);
  });
});

describe("the schema's kinds are the spec's", () => {
  it("a source variant for every source type, and a runtime kind for each", () => {
    const variants = (schema.$defs.source.oneOf as { $ref: string }[]).map((v) => schema.$defs[v.$ref.split("/").pop() as string].properties.type.const);
    expect(variants.sort()).toEqual([...SOURCE_TYPES].sort());
    expect(Object.keys(sourceKinds).sort()).toEqual([...SOURCE_TYPES].sort());
  });
});

describe("a bad system.json", () => {
  it("of another version is named as such", () => {
    expect(problem({ mbc: 2, model: {}, handlers: {} })).toMatch(/invalid: mbc: expected 1 \(this runtime reads system files of version 1\)$/);
    expect(problem([])).toMatch(/not a JSON object/);
  });

  const shapes: [string, Edit, string][] = [
    ["an unknown kind of source", (s) => (s.source(0).type = "ftp"), "model.sources[0].type: expected one of http, file, generator"],
    ["an http source without a port", (s) => delete s.source(0).port, "model.sources[0].port: missing"],
    ["a generator without a rate", (s) => (s.source(2).ratePerSec = null), "model.sources[2].ratePerSec: expected a number"],
    ["a generator at rate 0", (s) => (s.source(2).ratePerSec = 0), "model.sources[2].ratePerSec: expected a number > 0"],
    ["another kind's field with a value", (s) => (s.source(1).port = 8081), "model.sources[1].port: expected null"],
    ["an unknown field", (s) => (s.source(1).colour = "red"), "model.sources[1].colour: unknown field"],
    ["a service with neither handler nor image", (s) => (s.service(2).image = null), "model.services[2].image: expected a string"],
    ["a handler of an unknown kind", (s) => (s.service(0).handler = { kind: "script" }), "model.services[0].handler.kind: expected one of builtin, module"],
    ["a service without instances", (s) => (s.service(1).instances = []), "model.services[1].instances: expected a non-empty array"],
    ["a port out of range", (s) => (s.service(1).port = 70_000), "model.services[1].port: expected a number ≤ 65535"],
    ["an unknown strategy", (s) => (s.service(1).loadBalancing = "fastest"), "model.services[1].loadBalancing: expected one of round-robin,"],
    ["a missing model field", (s) => delete s.model.checkpoint, "model.checkpoint: missing"],
    ["an unknown top-level field", (s) => (s.top.extra = 1), "extra: unknown field"],
  ];
  it.each(shapes)("%s: names the field and what was expected", (_, edit, expected) => {
    expect(problem(edited(edit))).toContain(`system file system.json is invalid: ${expected}`);
  });

  const beyond: [string, Edit, string][] = [
    ["a stage that names no service", (s) => (s.service(0).to = ["store", "nowhere"]), 'model.services[0].to: no service "nowhere"'],
    ["a source that names no service", (s) => (s.source(0).to = "nowhere"), 'model.sources[0].to: no service "nowhere"'],
    [
      "an instance out of its place",
      (s) => (s.service(1).instances = [{ index: 3, weight: 1, capacityPerSec: null, port: 9102 }]),
      "model.services[1].instances[0].index: expected 0",
    ],
    ["an unknown builtin", (s) => (s.service(1).handler = { kind: "builtin", name: "jsonl-sunk" }), "model.services[1].handler.name: expected one of"],
    ["a module handler the file does not list", (s) => delete s.handlers.work, "handlers.work: missing: the service has a module handler"],
    ["a handler outside the folder", (s) => (s.handlers.work = "/etc/evil.mjs"), "handlers.work: must be a path inside the system's folder"],
    ["a handler that climbs out", (s) => (s.handlers.work = "handlers\\..\\..\\evil.mjs"), "handlers.work: must be a path inside the system's folder"],
    ["a handler on another drive", (s) => (s.handlers.work = "C:evil.mjs"), "handlers.work: must be a path inside the system's folder"],
  ];
  it.each(beyond)("%s: checked after the schema", (_, edit, expected) => {
    expect(problem(edited(edit))).toContain(`system file system.json is invalid: ${expected}`);
  });

  it("shows ten problems and counts the rest", () => {
    const message = problem(
      edited((s) => {
        for (const k of [0, 1, 2]) for (const field of ["timeoutMs", "port", "capacityPerSec", "portAssigned", "config"]) s.service(k)[field] = "x";
      }),
    );
    expect(message.split("; ")).toHaveLength(10);
    expect(message).toMatch(/\(and 5 more\)$/);
  });
});

describe("fieldOf", () => {
  it("writes a JSON Pointer as a field, decoding ~1 and ~0", () => {
    expect(fieldOf("/model/services/0/retry", "maxRetries")).toBe("model.services[0].retry.maxRetries");
    expect(fieldOf("/handlers/a~1b~0c")).toBe('handlers["a/b~c"]');
    expect(fieldOf("")).toBe("(the file)");
    expect(fieldOf("", "model")).toBe("model");
  });
});
