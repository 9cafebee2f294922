/** The output formatters, called directly: escaping, field sets, frames and colour. */

import { describe, expect, it } from "vitest";
import type { Diagnostic } from "../../src/diagnostic.js";
import { FORMAT_NAMES, type FormatContext, formatters } from "../../src/format/index.js";
import { CODES } from "../../src/validate/codes.js";
import { diagnosticsIn, stripAnsi, unescapeProperty } from "../helpers/cli.js";

const ESC = "\u001b[";

function diag(overrides: Partial<Diagnostic> = {}): Diagnostic {
  return {
    code: "unknown-key",
    severity: "error",
    message: "unknown key",
    path: "/sources/in/typo",
    file: "spec.yaml",
    line: 3,
    column: 5,
    ...overrides,
  };
}

function ctx(lines: Record<string, string[]> = {}, overrides: Partial<FormatContext> = {}): FormatContext {
  return {
    lineText: (file, line) => lines[file]?.[line - 1] ?? "",
    color: false,
    files: Object.keys(lines).length > 0 ? Object.keys(lines) : ["spec.yaml"],
    version: "9.9.9",
    ...overrides,
  };
}

describe("the formatter map", () => {
  it("has exactly the four formats", () => {
    expect([...FORMAT_NAMES].sort()).toEqual(["github", "json", "sarif", "stylish"]);
  });

  it.each(FORMAT_NAMES.map((f) => [f]))("%s is deterministic and ends with a newline (or is empty)", (name) => {
    const list = [diag(), diag({ code: "cycle", line: 9, column: 1, hint: "h" })];
    const a = formatters[name](list, ctx());
    expect(formatters[name](list, ctx())).toBe(a);
    if (a !== "") expect(a.endsWith("\n")).toBe(true);
  });
});

describe("github", () => {
  const gh = (list: Diagnostic[]) => formatters.github(list, ctx());

  it("prints one workflow command a diagnostic, by severity", () => {
    const out = gh([diag(), diag({ severity: "warning", code: "unreachable" }), diag({ severity: "info", code: "overloaded" })]);
    const lines = out.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe("");
    expect(lines[0]).toMatch(/^::error file=spec\.yaml,line=3,col=5,title=[^:]*unknown-key::unknown key$/);
    expect(lines[1]).toMatch(/^::warning /);
    expect(lines[2]).toMatch(/^::notice /);
  });

  it("prints nothing for no diagnostics", () => {
    expect(gh([])).toBe("");
  });

  it("escapes %, CR and LF in the message and the hint, keeping one line a command", () => {
    const out = gh([diag({ message: "100% busy\r\nline two: a, b", hint: "raise it by 50%\nor add one" })]);
    expect(out.split("\n")).toHaveLength(2);
    const text = out.slice(out.indexOf("::", 2) + 2, -1);
    expect(text).not.toMatch(/[\r\n]/);
    expect(text).toContain("100%25 busy%0D%0Aline two: a, b");
    expect(text).toContain("raise it by 50%25%0Aor add one");
    // ":" and "," are fine in the data part
    expect(text).toContain(": a, b");
    // The hint follows the message after an (escaped) newline.
    expect(text).toBe("100%25 busy%0D%0Aline two: a, b%0Araise it by 50%25%0Aor add one");
  });

  it("escapes :, ,, %, CR and LF in the file property", () => {
    const file = "C:/odd,name %/sp\nec.yaml";
    const out = gh([diag({ file })]);
    const props = /^::error (.*?)::/.exec(out)?.[1] as string;
    expect(props).toBe("file=C%3A/odd%2Cname %25/sp%0Aec.yaml,line=3,col=5,title=mbc unknown-key");
    const fileProp = /file=([^,]*),/.exec(props)?.[1] as string;
    expect(unescapeProperty(fileProp)).toBe(file);
    expect(diagnosticsIn(out, "github")).toEqual([`${file}:3:5 error unknown-key`]);
  });
});

describe("json", () => {
  it("prints the contract's fields in order, with hint only where there is one", () => {
    const out = formatters.json([diag(), diag({ hint: "did you mean type?" })], ctx());
    expect(out.endsWith("}\n")).toBe(true);
    const parsed = JSON.parse(out) as { diagnostics: Record<string, unknown>[] };
    expect(Object.keys(parsed)).toEqual(["diagnostics"]);
    expect(Object.keys(parsed.diagnostics[0] as object)).toEqual(["code", "severity", "message", "path", "file", "line", "column"]);
    expect(Object.keys(parsed.diagnostics[1] as object)).toEqual(["code", "severity", "message", "path", "file", "line", "column", "hint"]);
    expect(parsed.diagnostics[1]).toEqual({ ...diag(), hint: "did you mean type?" });
  });

  it("prints an empty list for no diagnostics", () => {
    expect(formatters.json([], ctx())).toBe('{"diagnostics":[]}\n');
  });

  it("round-trips awkward text", () => {
    const d = diag({ message: 'a "quoted" \\ line\nand \u2028 more', file: "dir with space/spec.yaml", path: "/services/a~1b" });
    expect((JSON.parse(formatters.json([d], ctx())) as { diagnostics: unknown[] }).diagnostics[0]).toEqual(d);
  });
});

describe("sarif", () => {
  type Log = {
    version: string;
    runs: {
      tool: { driver: { name: string; version: string; rules: { id: string; defaultConfiguration: { level: string } }[] } };
      results: {
        ruleId: string;
        ruleIndex: number;
        level: string;
        message: { text: string };
        locations: {
          physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } };
          logicalLocations?: { fullyQualifiedName: string }[];
        }[];
      }[];
    }[];
  };
  const sarifOf = (list: Diagnostic[]) => JSON.parse(formatters.sarif(list, ctx())) as Log;

  it("names the tool and version and lists a rule for every code, with its default level", () => {
    const log = sarifOf([]);
    expect(log.version).toBe("2.1.0");
    const driver = log.runs[0]?.tool.driver;
    expect(driver?.name).toBe("mbc");
    expect(driver?.version).toBe("9.9.9");
    expect(driver?.rules.length).toBe(Object.keys(CODES).length);
    expect(driver?.rules.find((r) => r.id === "sim-retries-refused")?.defaultConfiguration.level).toBe("warning");
    expect(driver?.rules.find((r) => r.id === "low-headroom")?.defaultConfiguration.level).toBe("warning");
    expect(driver?.rules.find((r) => r.id === "cycle")?.defaultConfiguration.level).toBe("error");
    expect(log.runs[0]?.results).toEqual([]);
  });

  it("maps each diagnostic to a result with ruleId, ruleIndex, level, message and region", () => {
    const log = sarifOf([
      diag({ hint: "the hint" }),
      diag({ severity: "warning", code: "low-headroom", line: 35, column: 3 }),
      diag({ severity: "info", code: "overloaded" }),
    ]);
    const run = log.runs[0] as Log["runs"][number];
    expect(run.results.map((r) => r.level)).toEqual(["error", "warning", "note"]);
    for (const r of run.results) expect(run.tool.driver.rules[r.ruleIndex]?.id).toBe(r.ruleId);
    const first = run.results[0] as Log["runs"][number]["results"][number];
    expect(first.message.text).toContain("unknown key");
    expect(first.message.text).toContain("the hint");
    expect(first.locations[0]?.physicalLocation.region).toEqual({ startLine: 3, startColumn: 5 });
    expect(first.locations[0]?.logicalLocations?.[0]?.fullyQualifiedName).toBe("/sources/in/typo");
    expect(run.results[1]?.locations[0]?.physicalLocation.region).toEqual({ startLine: 35, startColumn: 3 });
  });

  it("writes file names as URI references with forward slashes", () => {
    const log = sarifOf([diag({ file: "my specs\\a#b%c.yaml" })]);
    const uri = log.runs[0]?.results[0]?.locations[0]?.physicalLocation.artifactLocation.uri as string;
    expect(uri).toBe("my%20specs/a%23b%25c.yaml");
    expect(decodeURIComponent(uri)).toBe("my specs/a#b%c.yaml");
  });
});

describe("stylish", () => {
  const source = {
    "spec.yaml": ["mbc: 1", "name: x", "sourcs: {}", "\tto:\tfoo", `desc: ${"y".repeat(300)}`],
  };
  const lines = (out: string) => out.split("\n");

  it("shows the header, a code frame with the caret under the column, and the hint", () => {
    const out = formatters.stylish([diag({ line: 3, column: 1, hint: "did you mean sources?" })], ctx(source));
    const [header, frame, caret, hint] = lines(out);
    expect(header).toMatch(/^spec\.yaml:3:1 error unknown-key unknown key$/);
    expect(frame).toBe("  3 | sourcs: {}");
    expect(caret).toBe("    | ^");
    expect(hint).toMatch(/^\s+hint: did you mean sources\?$/);
    expect(out).toMatch(/1 problem \(1 error, 0 warnings\)/);
  });

  it("puts the caret under the column, with tabs counted as one column", () => {
    // "\tto:\tfoo": the tab after "to:" is column 5, "foo" starts at column 6.
    const out = formatters.stylish([diag({ line: 4, column: 6 })], ctx(source));
    const [, frame, caret] = lines(out);
    expect(frame).toBe("  4 |  to: foo");
    expect((caret as string).indexOf("^")).toBe((frame as string).indexOf("|") + 2 + 5);
    expect((frame as string)[(caret as string).indexOf("^")]).toBe("f");
  });

  it("widens the gutter for long line numbers", () => {
    const many = { "spec.yaml": Array.from({ length: 120 }, (_, i) => `k${i + 1}: v`) };
    const out = formatters.stylish([diag({ line: 105, column: 7 })], ctx(many));
    const [, frame, caret] = lines(out);
    expect(frame).toBe("  105 | k105: v");
    expect(caret).toBe("      |       ^");
  });

  it("clips a very long line and keeps the caret on it", () => {
    const out = formatters.stylish([diag({ line: 5, column: 290 })], ctx(source));
    const [, frame, caret] = lines(out);
    expect((frame as string).length).toBeLessThan(200);
    expect((caret as string).indexOf("^")).toBeLessThanOrEqual((frame as string).length);
  });

  it("shows no frame for a whole-file problem in an empty file", () => {
    const out = formatters.stylish([diag({ code: "schema", line: 1, column: 1, path: "" })], ctx({ "spec.yaml": [""] }));
    expect(lines(out)[1]).toBe("");
  });

  it("counts errors, warnings and infos", () => {
    const out = formatters.stylish(
      [
        diag(),
        diag({ severity: "warning", code: "unreachable" }),
        diag({ severity: "warning", code: "cycle" }),
        diag({ severity: "info", code: "overloaded" }),
      ],
      ctx(source),
    );
    expect(out).toMatch(/4 problems \(1 error, 2 warnings, 1 info\)/);
    expect(diagnosticsIn(out, "stylish")).toEqual([
      "spec.yaml:3:5 error unknown-key",
      "spec.yaml:3:5 warning unreachable",
      "spec.yaml:3:5 warning cycle",
      "spec.yaml:3:5 info overloaded",
    ]);
  });

  it("says which files were clean", () => {
    expect(formatters.stylish([], ctx(source))).toMatch(/spec\.yaml: no problems/);
    expect(formatters.stylish([], ctx({}, { files: ["a.yaml", "b.yaml"] }))).toMatch(/2 files: no problems/);
  });

  it("colours only when asked", () => {
    const list = [diag({ hint: "h" }), diag({ severity: "warning", code: "cycle" })];
    expect(formatters.stylish(list, ctx(source))).not.toContain(ESC);
    const coloured = formatters.stylish(list, ctx(source, { color: true }));
    expect(coloured).toContain(ESC);
    expect(stripAnsi(coloured)).toBe(formatters.stylish(list, ctx(source)));
  });
});
