import { describe, expect, it } from "vitest";
import { MAX_ALIAS_COUNT, parseSpec } from "../../src/parse/index.js";

const encode = (text: string) => new TextEncoder().encode(text);
const codes = (p: { diagnostics: { code: string }[] }) => p.diagnostics.map((d) => d.code);
const at = (p: { diagnostics: { line: number; column: number }[] }) => p.diagnostics.map((d) => [d.line, d.column]);

describe("locate", () => {
  const text = [
    "m:", // 1
    '  "a/b": 1', // 2
    '  "c~d": 2', // 3
    "  flow: {x: 1, y: [10, 20]}", // 4
    "  blk:", // 5
    "    - q: 1", // 6
    "      r:", // 7
    "        - deep", // 8
    "  empty:", // 9
    "",
  ].join("\n");
  const p = parseSpec("f.yaml", text);

  it("parses without diagnostics", () => {
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ m: { "a/b": 1, "c~d": 2, flow: { x: 1, y: [10, 20] }, blk: [{ q: 1, r: ["deep"] }], empty: null } });
  });

  it("finds a value and its key in block style", () => {
    expect(p.locate("/m/blk/0/q")).toEqual({ line: 6, column: 10, exact: true });
    expect(p.locate("/m/blk/0/q", "key")).toEqual({ line: 6, column: 7, exact: true });
    expect(p.locate("/m/blk/0/r/0")).toEqual({ line: 8, column: 11, exact: true });
  });

  it("finds a value and its key in flow style", () => {
    expect(p.locate("/m/flow/x")).toEqual({ line: 4, column: 13, exact: true });
    expect(p.locate("/m/flow/x", "key")).toEqual({ line: 4, column: 10, exact: true });
    expect(p.locate("/m/flow/y/1")).toEqual({ line: 4, column: 24, exact: true });
  });

  it("points at the key of a collection or of a missing value", () => {
    expect(p.locate("/m/flow")).toEqual({ line: 4, column: 3, exact: true });
    expect(p.locate("/m/blk")).toEqual({ line: 5, column: 3, exact: true });
    expect(p.locate("/m/empty")).toEqual({ line: 9, column: 3, exact: true });
  });

  it("points at the key of an empty value in flow style too", () => {
    const flow = parseSpec("f.yaml", "m: {empty: , b: 1}\n");
    expect(flow.locate("/m/empty")).toEqual({ line: 1, column: 5, exact: true });
    expect(flow.locate("/m/b")).toEqual({ line: 1, column: 17, exact: true });
  });

  it("decodes ~1 and ~0 in JSON Pointer segments", () => {
    expect(p.locate("/m/a~1b")).toEqual({ line: 2, column: 10, exact: true });
    expect(p.locate("/m/a~1b", "key")).toEqual({ line: 2, column: 3, exact: true });
    expect(p.locate("/m/c~0d")).toEqual({ line: 3, column: 10, exact: true });
    expect(p.locate("/m/c~0d", "key")).toEqual({ line: 3, column: 3, exact: true });
    // Not decoded, the segments would name keys that do not exist.
    expect(p.locate("/m/a/b").exact).toBe(false);
  });

  it("falls back to the closest existing ancestor", () => {
    expect(p.locate("/m/flow/nope")).toEqual({ line: 4, column: 3, exact: false });
    expect(p.locate("/m/flow/nope/deeper")).toEqual({ line: 4, column: 3, exact: false });
    expect(p.locate("/m/blk/5")).toEqual({ line: 5, column: 3, exact: false });
    expect(p.locate("/m/blk/0/nope")).toEqual({ line: 6, column: 7, exact: false });
    expect(p.locate("/m/blk/x")).toEqual({ line: 5, column: 3, exact: false });
    expect(p.locate("/nope")).toEqual({ line: 1, column: 1, exact: false });
  });

  it("locates the root", () => {
    expect(p.locate("")).toEqual({ line: 1, column: 1, exact: true });
  });

  it("gives source lines for code frames", () => {
    expect(p.lineText(4)).toBe("  flow: {x: 1, y: [10, 20]}");
    expect(p.lineText(100)).toBe("");
  });
});

describe("JSON input", () => {
  it("parses JSON with positions", () => {
    const text = '{\n  "mbc": 1,\n  "sources": {"a": {"to": "b"}},\n  "list": [\n    1,\n    {"k": true}\n  ]\n}\n';
    const p = parseSpec("spec.json", text);
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ mbc: 1, sources: { a: { to: "b" } }, list: [1, { k: true }] });
    expect(p.locate("/mbc")).toEqual({ line: 2, column: 10, exact: true });
    expect(p.locate("/sources/a/to")).toEqual({ line: 3, column: 27, exact: true });
    expect(p.locate("/sources/a/to", "key")).toEqual({ line: 3, column: 21, exact: true });
    expect(p.locate("/sources/a")).toEqual({ line: 3, column: 15, exact: true });
    expect(p.locate("/list/1/k")).toEqual({ line: 6, column: 11, exact: true });
  });

  it("reports duplicate keys in JSON", () => {
    const p = parseSpec("spec.json", '{\n  "a": 1,\n  "a": 2\n}\n');
    expect(codes(p)).toEqual(["duplicate-key"]);
    expect(at(p)).toEqual([[3, 3]]);
  });
});

describe("problems", () => {
  it("reports a duplicate key at the repetition", () => {
    const p = parseSpec("f.yaml", "a: 1\nb:\n  c: 1\n  c: 2\n");
    expect(p.diagnostics).toHaveLength(1);
    expect(p.diagnostics[0]).toMatchObject({ code: "duplicate-key", severity: "error", line: 4, column: 3, file: "f.yaml" });
    expect(p.value).toBeUndefined();
  });

  it("reports yaml-syntax with a position", () => {
    const p = parseSpec("f.yaml", "a: [1, 2\nb: 3\n");
    expect(codes(p)).toContain("yaml-syntax");
    for (const d of p.diagnostics) {
      expect(d.severity).toBe("error");
      expect(d.line).toBeGreaterThanOrEqual(1);
      expect(d.column).toBeGreaterThanOrEqual(1);
    }
  });

  it("keeps later positions right after the parser stumbles", () => {
    // After this slip yaml's own line counting skips newlines; positions come from the text.
    const text = '  "s": {\n  "m": 1,\n  "n": "x",\n{\n    "e": 1\n  },\n  "t": 2\n}\n';
    const p = parseSpec("f.json", text);
    expect(p.diagnostics.length).toBeGreaterThan(0);
    for (const d of p.diagnostics) {
      expect(d.column, JSON.stringify(d)).toBeLessThanOrEqual(p.lineText(d.line).length + 1);
    }
    const t = p.diagnostics.find((d) => d.line === 7);
    expect(t, 'an error on the line of "t"').toBeDefined();
  });

  it("refuses tabs as indentation", () => {
    const p = parseSpec("f.yaml", "a:\n\tb: 1\n");
    expect(codes(p)).toEqual(["yaml-syntax"]);
    expect(p.diagnostics[0]?.line).toBe(2);
  });

  it("refuses several documents, at the second", () => {
    const p = parseSpec("f.yaml", "a: 1\n---\nb: 2\n");
    expect(p.diagnostics).toHaveLength(1);
    expect(p.diagnostics[0]).toMatchObject({ code: "yaml-syntax", severity: "error", line: 2, column: 1 });
  });

  it("accepts one document with a leading ---", () => {
    const p = parseSpec("f.yaml", "---\na: 1\n");
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ a: 1 });
  });

  it("caps alias expansion (billion laughs) quickly", () => {
    const letters = "abcdefghij";
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < letters.length; i++)
      lines.push(
        `${letters[i]}: &${letters[i]} [${Array(10)
          .fill(`*${letters[i - 1]}`)
          .join(", ")}]`,
      );
    const started = performance.now();
    const p = parseSpec("bomb.yaml", `${lines.join("\n")}\n`);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(p.value).toBeUndefined();
    expect(p.diagnostics).toHaveLength(1);
    // At the first alias.
    expect(p.diagnostics[0]).toMatchObject({ code: "yaml-syntax", severity: "error", line: 2, column: 8 });
  });

  it("expands a few aliases", () => {
    const p = parseSpec("f.yaml", "a: &r {x: 1}\nb: *r\n");
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ a: { x: 1 }, b: { x: 1 } });
    expect(MAX_ALIAS_COUNT).toBeGreaterThan(10);
  });

  it("reports a NUL byte at its position", () => {
    const p = parseSpec("f.yaml", "a: 1\nb: x\0y\n");
    expect(p.value).toBeUndefined();
    expect(p.diagnostics).toHaveLength(1);
    expect(p.diagnostics[0]).toMatchObject({ code: "yaml-syntax", severity: "error", line: 2, column: 5 });
  });

  it("reports a NUL byte on the first line on line 1", () => {
    const p = parseSpec("f.yaml", "\0");
    expect(at(p)).toEqual([[1, 1]]);
  });

  it("reports invalid UTF-8 at the bad byte (columns in characters)", () => {
    const bytes = new Uint8Array([...encode("a: 1\nb: é\nc: "), 0xff, 0x41, 0x0a]);
    const p = parseSpec("f.yaml", bytes);
    expect(p.value).toBeUndefined();
    expect(p.diagnostics).toHaveLength(1);
    expect(p.diagnostics[0]).toMatchObject({ code: "yaml-syntax", severity: "error", line: 3, column: 4 });
  });

  it.each([
    ["a lone continuation byte", [0x80]],
    ["an overlong encoding", [0xc0, 0xaf]],
    ["a truncated sequence", [0xe2, 0x82]],
    ["a surrogate", [0xed, 0xa0, 0x80]],
  ])("reports %s", (_, bad) => {
    const p = parseSpec("f.yaml", new Uint8Array([...encode("k: "), ...bad]));
    expect(codes(p)).toEqual(["yaml-syntax"]);
    expect(at(p)).toEqual([[1, 4]]);
  });

  it("accepts multi-byte UTF-8", () => {
    const p = parseSpec("f.yaml", encode("description: Grüße — 日本 🚀\n"));
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ description: "Grüße — 日本 🚀" });
  });

  it("refuses an oversized file by its size", () => {
    const p = parseSpec("big.yaml", encode("a: 1\n"), { maxBytes: 3 });
    expect(codes(p)).toEqual(["yaml-syntax"]);
    expect(at(p)).toEqual([[1, 1]]);
  });
});

describe("text forms", () => {
  it("strips a byte order mark", () => {
    const p = parseSpec("f.yaml", new Uint8Array([0xef, 0xbb, 0xbf, ...encode("a: 1\nb: [x, y]\n")]));
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ a: 1, b: ["x", "y"] });
    expect(p.locate("/a", "key")).toEqual({ line: 1, column: 1, exact: true });
    expect(p.locate("/b/1")).toEqual({ line: 2, column: 8, exact: true });
  });

  it("counts CRLF line endings correctly", () => {
    const p = parseSpec("f.yaml", "a: 1\r\nb:\r\n  c: 2\r\n  d:\r\n    - 3\r\n");
    expect(p.diagnostics).toEqual([]);
    expect(p.value).toEqual({ a: 1, b: { c: 2, d: [3] } });
    expect(p.locate("/b/c")).toEqual({ line: 3, column: 6, exact: true });
    expect(p.locate("/b/d/0")).toEqual({ line: 5, column: 7, exact: true });
    expect(p.lineText(3)).toBe("  c: 2");
  });

  it("gives correct lines for problems in CRLF files", () => {
    const dup = parseSpec("f.yaml", "a: 1\r\nb:\r\n  c: 2\r\n  c: 3\r\n");
    expect(dup.diagnostics[0]).toMatchObject({ code: "duplicate-key", line: 4, column: 3 });
    const nul = parseSpec("f.yaml", "a: 1\r\nb: 2\r\nc: \0\r\n");
    expect(nul.diagnostics[0]).toMatchObject({ code: "yaml-syntax", line: 3, column: 4 });
  });

  it("parses an empty file to no value and no diagnostics", () => {
    for (const text of ["", "\n\n", "# only a comment\n"]) {
      const p = parseSpec("f.yaml", text);
      expect(p.diagnostics).toEqual([]);
      expect(p.value ?? null).toBeNull();
      expect(p.locate("/anything")).toMatchObject({ line: 1, column: 1 });
    }
  });

  it("takes a string or bytes alike", () => {
    const text = "a: 1\nb: ü\n";
    expect(parseSpec("f.yaml", text).value).toEqual(parseSpec("f.yaml", encode(text)).value);
  });
});
