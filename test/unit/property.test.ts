/**
 * Property: whatever a spec file is turned into, validation never throws and every
 * diagnostic is well-formed and points into the file.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { compareDiagnostics, type Diagnostic } from "../../src/diagnostic.js";
import { CODES } from "../../src/validate/codes.js";
import { environmentNames, validateText } from "../../src/validate/index.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const KNOWN_CODES = new Set(Object.keys(CODES));
const SEVERITIES = new Set(["error", "warning", "info"]);

/** Seeds: the design example, a few specs in other styles, and the fixtures (when present). */
function corpus(): { name: string; text: string }[] {
  const out = [{ name: "example.yaml", text: readFileSync(join(root, "examples/01-design-document/microbatch.yaml"), "utf8") }];
  out.push({
    name: "flow.yaml",
    text: [
      "mbc: 1",
      "name: flow",
      "defaults: {timeout: 1s, retry: {maxRetries: 1, interval: 50ms, backoff: constant}, batch: {maxRecords: 10}}",
      "sources: {gen: {type: generator, rate: 90000/m, count: 100, record: {id: '{{seq}}'}, to: a}}",
      "services:",
      "  a: {handler: builtin:passthrough, instances: 3, capacity: 2000, to: [b, c]}",
      "  b: {handler: builtin:log, loadBalancing: least-connections, instances: [{capacity: 1000}, {capacity: 3000}]}",
      "  c: {handler: builtin:jsonl-sink, config: {path: ./out.jsonl}, env: {A: 1, B: x}}",
      "simulation: {failureRate: 0.1, faults: [{service: a, instance: 1, at: 5s, duration: 2s}]}",
      "",
    ].join("\n"),
  });
  out.push({
    name: "spec.json",
    text: `${JSON.stringify(
      {
        mbc: 1,
        name: "json-spec",
        registry: { port: 7500, heartbeat: "500ms", ttl: "2s" },
        sources: { file: { type: "file", path: "./in.jsonl", to: "work" }, web: { type: "http", port: 8081, rate: 100, to: "work" } },
        services: { work: { handler: "./h/work.mjs", port: 9200, instances: [{ weight: 1 }, { weight: 3 }], to: "sink" }, sink: { image: "x/y:1" } },
        targets: { compose: { project: "p" }, systemd: { user: "svc" }, node: { bind: "0.0.0.0" } },
      },
      null,
      2,
    )}\n`,
  });
  out.push({
    name: "envs.yaml",
    text: [
      "mbc: 1",
      "name: envs",
      "x-common: &common",
      "  timeout: 3s",
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    rate: 10/s",
      "    to: a",
      "services:",
      "  a:",
      "    <<: *common",
      "    handler: ./a.mjs",
      "    to: b",
      "  b:",
      "    handler: builtin:log",
      "    retry:",
      "      maxRetries: 3",
      "      on: [timeout, 5xx]",
      "environments:",
      "  prod:",
      "    registry:",
      "      ttl: 10s",
      "    services:",
      "      a:",
      "        instances: 4",
      "  dev:",
      "    sources:",
      "      in:",
      "        rate: 1/s",
      "",
    ].join("\r\n"),
  });
  for (const file of listFixtures(join(root, "fixtures"))) out.push({ name: file.slice(root.length), text: readFileSync(file, "utf8") });
  return out;
}

function listFixtures(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = join(dir, n);
    const info = statSync(p);
    if (info.isDirectory()) return listFixtures(p);
    return /\.(ya?ml|json)$/.test(n) && info.size < 64 * 1024 ? [p] : [];
  });
}

const SEEDS = corpus();

type Input = { name: string; input: string | Uint8Array };

// --- text mutations --------------------------------------------------------------------

const splitLines = (text: string) => text.split("\n");

type Mutation = (doc: Input) => Input;

const asText = (input: string | Uint8Array) => (typeof input === "string" ? input : new TextDecoder().decode(input));

const lineMutation = (f: (lines: string[]) => string[]) => (doc: Input) => ({ ...doc, input: f(splitLines(asText(doc.input))).join("\n") });

const pick = <T>(list: readonly T[], n: number): number => (list.length === 0 ? 0 : n % list.length);

const duplicateLine = fc.nat().map((n): Mutation => lineMutation((ls) => (ls.length ? [...ls.slice(0, pick(ls, n) + 1), ...ls.slice(pick(ls, n))] : ls)));
const deleteLine = fc.nat().map((n): Mutation => lineMutation((ls) => ls.filter((_, i) => i !== pick(ls, n))));
const swapLines = fc.tuple(fc.nat(), fc.nat()).map(
  ([a, b]): Mutation =>
    lineMutation((ls) => {
      const out = [...ls];
      const i = pick(ls, a);
      const j = pick(ls, b);
      [out[i], out[j]] = [out[j] as string, out[i] as string];
      return out;
    }),
);
const reindent = fc.tuple(fc.nat(), fc.constantFrom("", " ", "   ", "\t", "      ", "  - ")).map(
  ([n, indent]): Mutation =>
    lineMutation((ls) => {
      const i = pick(ls, n);
      return ls.map((l, k) => (k === i ? indent + l.trimStart() : l));
    }),
);
const insertText = fc
  .tuple(
    fc.nat(),
    fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.string({ unit: "binary", maxLength: 4 }),
      fc.constantFrom(
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "!!str ",
        "? ",
        "|",
        ">",
        "#",
        '"',
        "'",
        "\t",
        "\r",
        "\n",
        "---\n",
        "\u0000",
        "\uFEFF",
        "~",
        "<<: ",
      ),
    ),
  )
  .map(
    ([n, chunk]): Mutation =>
      (doc) => {
        const text = asText(doc.input);
        const at = text.length === 0 ? 0 : n % (text.length + 1);
        return { ...doc, input: text.slice(0, at) + chunk + text.slice(at) };
      },
  );
const insertBytes = fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(
  ([n, bytes]): Mutation =>
    (doc) => {
      const all = typeof doc.input === "string" ? new TextEncoder().encode(doc.input) : doc.input;
      const at = all.length === 0 ? 0 : n % (all.length + 1);
      const out = new Uint8Array(all.length + bytes.length);
      out.set(all.subarray(0, at), 0);
      out.set(bytes, at);
      out.set(all.subarray(at), at + bytes.length);
      return { ...doc, input: out };
    },
);
const truncate = fc.nat().map(
  (n): Mutation =>
    (doc) => {
      const text = asText(doc.input);
      return { ...doc, input: text.slice(0, text.length === 0 ? 0 : n % text.length) };
    },
);

// --- value mutations -------------------------------------------------------------------

type Path = (string | number)[];

/** Every path in a value; a value that contains itself (an alias inside its anchor) is walked once. */
function paths(value: unknown, at: Path = [], out: Path[] = [], open = new Set<unknown>()): Path[] {
  if (at.length > 0) out.push(at);
  if (open.has(value)) return out;
  if (value && typeof value === "object") open.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) paths(value[i], [...at, i], out, open);
  } else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out, open);
  open.delete(value);
  return out;
}

function kind(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

function edit(value: unknown, path: Path, replacement: { value: unknown } | null): unknown {
  const copy = structuredClone(value);
  let node = copy as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (replacement) node[last] = replacement.value;
  else if (Array.isArray(node)) node.splice(last as number, 1);
  else delete node[last];
  return copy;
}

function valueMutation(change: (value: unknown, paths: Path[]) => unknown): Mutation {
  return (doc) => {
    let value: unknown;
    try {
      value = parse(asText(doc.input));
    } catch {
      return doc;
    }
    const all = paths(value);
    if (all.length === 0) return doc;
    const changed = change(value, all);
    return { ...doc, input: doc.name.endsWith(".json") ? JSON.stringify(changed, null, 2) : stringify(changed) };
  };
}

const deleteKey = fc.nat().map((n) => valueMutation((v, all) => edit(v, all[n % all.length] as Path, null)));
const replaceScalar = fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 2 })).map(([n, replacement]) =>
  valueMutation((v, all) => {
    const path = all[n % all.length] as Path;
    let old: unknown = v;
    for (const seg of path) old = (old as Record<string | number, unknown>)[seg];
    // Another type than the one there, so that the schema has something to say.
    const value = kind(replacement) === kind(old) ? [replacement] : replacement;
    return edit(v, path, { value });
  }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  duplicateLine,
  deleteLine,
  swapLines,
  reindent,
  insertText,
  insertBytes,
  truncate,
  deleteKey,
  replaceScalar,
  replaceScalar,
);

const mutated: fc.Arbitrary<Input> = fc.tuple(fc.nat({ max: SEEDS.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([i, ms]) => {
  const seed = SEEDS[i] as { name: string; text: string };
  return ms.reduce<Input>((doc, m) => m(doc), { name: seed.name, input: seed.text });
});

// --- the property ----------------------------------------------------------------------

function checkDiagnostics(doc: Input, diagnostics: Diagnostic[]): void {
  const text = asText(doc.input).replace(/^\uFEFF/, "");
  // A line ends at "\n" (CRLF included), as for the YAML parser; a lone CR does not end one.
  const textLines = text.split(/\r?\n/);
  for (const d of diagnostics) {
    const where = `${JSON.stringify(d)} in ${JSON.stringify(text.slice(0, 2000))}`;
    expect(KNOWN_CODES.has(d.code), where).toBe(true);
    expect(SEVERITIES.has(d.severity), where).toBe(true);
    expect(d.file, where).toBe(doc.name);
    expect(typeof d.message === "string" && d.message.length > 0, where).toBe(true);
    expect(typeof d.path === "string" && (d.path === "" || d.path.startsWith("/")), where).toBe(true);
    expect(Number.isInteger(d.line) && Number.isInteger(d.column), where).toBe(true);
    expect(d.line, where).toBeGreaterThanOrEqual(1);
    expect(d.column, where).toBeGreaterThanOrEqual(1);
    expect(d.line, where).toBeLessThanOrEqual(textLines.length + 1);
    expect(d.column, where).toBeLessThanOrEqual((textLines[d.line - 1] ?? "").length + 1);
  }
  const sorted = [...diagnostics].sort(compareDiagnostics);
  expect(diagnostics).toEqual(sorted);
}

describe("validateText on mutated specs", () => {
  it("the seeds themselves validate without throwing", () => {
    for (const seed of SEEDS) {
      const r = validateText(seed.name, seed.text);
      checkDiagnostics({ name: seed.name, input: seed.text }, r.diagnostics);
    }
    // The inline seeds are valid specs: mutations start from something the pipeline accepts.
    for (const seed of SEEDS.slice(0, 4)) {
      expect(
        validateText(seed.name, seed.text).diagnostics.filter((d) => d.severity === "error"),
        seed.name,
      ).toEqual([]);
    }
  });

  it("never throws, and every diagnostic is well-formed and inside the file", () => {
    fc.assert(
      fc.property(mutated, (doc) => {
        const result = validateText(doc.name, doc.input);
        checkDiagnostics(doc, result.diagnostics);
        // No model only because of an error, which then carries its position (checked above).
        if (result.model === null) expect(result.diagnostics.some((d) => d.severity === "error")).toBe(true);
        // Every environment the mutated file names can be selected, without an exception.
        for (const env of environmentNames(result.parsed.value)) {
          checkDiagnostics(doc, validateText(doc.name, doc.input, { env }).diagnostics);
        }
      }),
      { numRuns: 400, seed: 20240601, endOnFailure: true },
    );
  });

  it("gives the same diagnostics twice", () => {
    fc.assert(
      fc.property(mutated, (doc) => {
        const a = validateText(doc.name, doc.input);
        const b = validateText(doc.name, doc.input);
        expect(JSON.stringify(b.diagnostics)).toBe(JSON.stringify(a.diagnostics));
      }),
      { numRuns: 100, seed: 7, endOnFailure: true },
    );
  });
});
