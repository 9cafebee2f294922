/**
 * Messages a newcomer can act on: the slips seen most often get one diagnostic, at the slip,
 * with a hint that holds the fix; and no message of JavaScript's own (a stack overflow, a
 * circular structure) ever reaches the user, however the document nests.
 */
import { describe, expect, it } from "vitest";
import type { Diagnostic } from "../../src/diagnostic.js";
import { MAX_DEPTH } from "../../src/parse/index.js";
import { validateText } from "../../src/validate/index.js";

const at = (d: Diagnostic) => `${d.line}:${d.column} ${d.severity} ${d.code}`;
const check = (text: string, file = "spec.yaml") => validateText(file, text).diagnostics;

/** Words JavaScript uses for its own failures, which say nothing to a user about the spec. */
const JS_INTERNAL = /Maximum call stack|RangeError|TypeError|ReferenceError|circular structure|\bundefined\b|\[object Object\]|\bat .+:\d+:\d+\)/;

const head = ["mbc: 1", "name: demo"];
const tail = ["services:", '  work: {handler: "builtin:log"}', ""];

describe("hints for the worst messages", () => {
  it("an unquoted colon in a value: quote the value", () => {
    const found = check([...head, "description: Orders: the main pipeline", "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n"));
    expect(found.map(at)).toEqual(["3:14 error yaml-syntax"]);
    expect(found[0]?.hint).toContain('description: "Orders: the main pipeline"');
  });

  it("an unquoted colon in a value with a comment after it: the comment stays out of the quotes", () => {
    const found = check([...head, "description: a: b # note", "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n"));
    expect(found[0]?.hint).toContain('description: "a: b"');
  });

  describe("a key indented too little (or too much): one diagnostic at that key, saying where it should be", () => {
    it.each([
      ["first key of its mapping", ["sources:", "  in:", "  type: http", "    port: 8080", "    to: work", "    rate: 100", "    path: /in"], "5:3", 5],
      ["between keys that line up", ["sources:", "  in:", "    type: http", "   port: 8080", "    to: work"], "6:4", 5],
      [
        "under a key with nothing after it",
        ["sources:", "  in: {type: http, port: 8080, to: work}", "x-a:", "  b:", "  c: 1", "    d: 2", "    e: 3", "    f: 4"],
        "7:3",
        5,
      ],
      // And the other way: one key indented more than its siblings.
      ["first key of its mapping, too far right", ["sources:", "  in:", "     type: http", "    port: 8080", "    to: work"], "5:6", 5],
      ["between keys that line up, too far right", ["sources:", "  in:", "    type: http", "     port: 8080", "    to: work"], "6:6", 5],
      ["last key of its mapping, too far right", ["sources:", "  in:", "    type: http", "    port: 8080", "      to: work"], "7:7", 5],
      ["last key, one short of its siblings", ["sources:", "  in:", "    type: http", "    port: 8080", "   to: work"], "7:4", 5],
    ])("%s", (_, lines, where, column) => {
      const text = [...head, ...lines, ...tail].join("\n");
      const found = check(text);
      expect(found.map(at)).toEqual([`${where} error yaml-syntax`]);
      expect(found[0]?.hint).toContain(`column ${column}`);
    });
  });

  it("two keys out of line where either may be the slip: the hint gives both fixes", () => {
    // "heartbeat" may belong to registry (indent it) or be a top-level key (then "ttl" is off).
    const text = [...head, "registry:", "  port: 7400", "heartbeat: 1s", "  ttl: 3s", "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join(
      "\n",
    );
    const found = check(text);
    expect(found.map(at)).toEqual(["5:1 error yaml-syntax"]);
    expect(found[0]?.hint).toContain("column 1");
    expect(found[0]?.hint).toContain("column 3");
  });

  it("a key with no space after the colon: a space after the colon", () => {
    const found = check([...head, "sources:", "  in:", "    type: http", "    port:8080", "    to: work", ...tail].join("\n"));
    expect(found.map(at)).toEqual(["6:5 error yaml-syntax"]);
    expect(found[0]?.hint).toContain("port: 8080");
  });

  it("a key with no space after the colon, indented more and so folded into the value above: the same advice", () => {
    const found = check([...head, "sources:", "  in:", "    to: work", "    type: http", "      port:8080", ...tail].join("\n"));
    expect(found.map((d) => d.code)).toContain("schema");
    expect(found.find((d) => d.path === "/sources/in/type")?.hint).toContain("port: 8080");
  });

  it("retry: 3 → retry: {maxRetries: 3}", () => {
    const found = check(
      [...head, "sources:", "  in: {type: http, port: 8080, to: work}", "services:", "  work:", '    handler: "builtin:log"', "    retry: 3", ""].join("\n"),
    );
    expect(found.map(at)).toEqual(["8:12 error schema"]);
    expect(found[0]?.hint).toContain("retry: {maxRetries: 3}");
  });

  it("a single value for other settings too, from their schema: batch, resources, a named choice", () => {
    const text = [...head, "defaults: {batch: 500, resources: 2, retry: constant}", "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n");
    const hints = check(text).map((d) => d.hint ?? "");
    expect(hints).toEqual(["batch: {maxRecords: 500}", "resources: {cpus: 2}", "retry: {backoff: constant}"].map((fix) => expect.stringContaining(fix)));
  });

  it("a source with to: [a, b]: a source feeds one service, and how to fan out", () => {
    const found = check(
      [
        ...head,
        "sources:",
        "  in: {type: http, port: 8080, to: [a, b]}",
        "services:",
        '  a: {handler: "builtin:log"}',
        '  b: {handler: "builtin:log"}',
        "",
      ].join("\n"),
    );
    expect(found.map(at)).toEqual(["4:32 error schema"]);
    expect(found[0]?.hint).toMatch(/one service/);
    expect(found[0]?.hint).toContain("to: [a, b]");
  });

  it("a mapping left empty and its keys one level too high: each says where they belong", () => {
    const found = check(
      [
        ...head,
        "sources:",
        "  in: {type: http, port: 8080, to: work}",
        "services:",
        "  work:",
        '    handler: "builtin:log"',
        "    retry:",
        "    maxRetries: 3",
        "",
      ].join("\n"),
    );
    expect(found.map(at)).toEqual(["8:5 error schema", "9:5 error unknown-key"]);
    expect(found[0]?.hint).toContain('indented more than "retry"');
    expect(found[1]?.hint).toContain('"retry"');
  });

  it("does not claim a slip that is not there: valid specs, and other syntax errors, keep their own words", () => {
    const flow = [...head, "sources:", "  in: {type: http,", "    port: 8080, to: work}", ...tail].join("\n");
    expect(check(flow)).toEqual([]);
    const urls = [...head, "description: see https://example.com/a:b", "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n");
    expect(check(urls)).toEqual([]);
    const unclosed = check([...head, "sources:", "  in: {type: http, port: 8080, to: work", ...tail].join("\n"));
    expect(unclosed.length).toBeGreaterThan(0);
    for (const d of unclosed) expect(d.hint ?? "").not.toMatch(/quote the value|space after the colon|indent/);
  });
});

describe("nesting", () => {
  const nested = (depth: number, open: string, close: string) => `${open.repeat(depth)}${close.repeat(depth)}`;
  const doc = (value: string) => [...head, `x-deep: ${value}`, "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n");

  it(`up to ${MAX_DEPTH} levels (the top mapping counts as one) is fine`, () => {
    expect(check(doc(nested(MAX_DEPTH - 1, "[", "]")))).toEqual([]);
  });

  it.each([
    ["a flow list", (n: number) => doc(nested(n, "[", "]"))],
    ["a flow mapping", (n: number) => doc(`${"{a: ".repeat(n)}1${"}".repeat(n)}`)],
    ["JSON", (n: number) => `{"mbc":1,"name":"demo","x-deep":${nested(n, "[", "]")}}`],
    [
      "block mappings",
      (n: number) =>
        [
          ...head,
          "x-deep:",
          ...Array.from({ length: n }, (_, i) => `${" ".repeat(i + 1)}a:`),
          "sources:",
          "  in: {type: http, port: 8080, to: work}",
          ...tail,
        ].join("\n"),
    ],
  ])("deeper, in %s, is one yaml-syntax error at the first collection too deep, at any depth", (_, make) => {
    for (const depth of [MAX_DEPTH, 1_000, 100_000]) {
      if (depth > 5_000 && make(1).startsWith("mbc: 1\nname: demo\nx-deep:\n")) continue; // block nesting grows as depth²
      const found = check(make(depth));
      expect(found.map((d) => d.code)).toEqual(["yaml-syntax"]);
      expect(found[0]?.message).not.toMatch(JS_INTERNAL);
    }
  });

  it("aliases that nest the value deeper than the text are reported at the alias, before anything expands them", () => {
    const lines = [...head, "x-a0: &a0 [[[[[[[[[[1]]]]]]]]]]"];
    for (let i = 1; i <= 20; i++) lines.push(`x-a${i}: &a${i} [[[[[[[[[[*a${i - 1}]]]]]]]]]]`);
    const found = check([...lines, "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n"));
    // x-a10 is the first whose value nests more than MAX_DEPTH lists deep: 11 × 10.
    expect(found.map(at)).toEqual(["13:22 error yaml-syntax"]);
    expect(found[0]?.message).not.toMatch(JS_INTERNAL);
  });

  it("an alias inside the node it names is reported, not turned into a structure that contains itself", () => {
    const found = check(
      [...head, "sources:", "  in: {type: http, port: 8080, to: work}", "services:", '  work: &w {handler: "builtin:log", config: {self: *w}}', ""].join("\n"),
    );
    expect(found.map(at)).toEqual(["6:52 error yaml-syntax"]);
    expect(found[0]?.message).not.toMatch(JS_INTERNAL);
  });

  it("aliases shared many times over are measured once (a wide, shallow document is quick)", () => {
    const lines = [
      ...head,
      "x-a: &a [1, 2, 3]",
      "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a]",
      "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b]",
      "x-d: [*c, *c, *c, *c]",
    ];
    expect(check([...lines, "sources:", "  in: {type: http, port: 8080, to: work}", ...tail].join("\n"))).toEqual([]);
  });
});
