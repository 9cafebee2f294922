/**
 * End-to-end tests of the built CLI: `node bin/mbc …`, as a user runs it. The data-driven
 * cases live in test/cli-cases/NAME/case.json beside the specs they use; everything that needs
 * more than "args → status, diagnostics, output" is written out below.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSpec, UsageError, validate } from "../../src/index.js";
import { CODES } from "../../src/validate/codes.js";
import { assertBuilt, binPath, diagnosticsIn, examplePath, type OutputFormat, repoRoot, runMbc, STACK_LINE, stripAnsi } from "../helpers/cli.js";
import { CONTRACT_CODES } from "../helpers/contract.js";
import { assertTool, tool } from "../helpers/tools.js";

const casesDir = join(repoRoot, "test", "cli-cases");
const schemaPath = join(repoRoot, "schema", "mbc.schema.json");
const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
const EXAMPLE_REL = "examples/01-design-document/microbatch.yaml";
const EXAMPLE_DIAGNOSTICS = [`${EXAMPLE_REL}:35:3 warning low-headroom`, `${EXAMPLE_REL}:35:3 warning weight-capacity-mismatch`];
const ESC = "\u001b[";

beforeAll(() => {
  assertBuilt();
});

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mbc-cli-"));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function formatOf(args: readonly string[]): OutputFormat {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if ((a === "--format" || a === "-f") && i + 1 < args.length) return args[i + 1] as OutputFormat;
    if (a.startsWith("--format=")) return a.slice("--format=".length) as OutputFormat;
  }
  return "stylish";
}

interface CliCase {
  description: string;
  args: string[];
  status: number;
  /** "file:line:col severity code", in output order; read from whichever format the args ask for. */
  diagnostics?: string[];
  stdout?: "empty";
  stderr?: "empty";
  /** Regular expressions (case-insensitive) that must match. */
  stdoutMatches?: string[];
  stderrMatches?: string[];
  env?: Record<string, string>;
}

describe("cli cases (test/cli-cases)", () => {
  const dirs = readdirSync(casesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

  it("finds the cases", () => {
    expect(dirs.length).toBeGreaterThan(10);
  });

  for (const dir of dirs) {
    const raw = JSON.parse(readFileSync(join(casesDir, dir, "case.json"), "utf8")) as CliCase | CliCase[];
    for (const c of Array.isArray(raw) ? raw : [raw]) {
      it(`${dir}: ${c.description}`, () => {
        const r = runMbc(c.args, { cwd: join(casesDir, dir), ...(c.env ? { env: c.env } : {}) });
        const context = `mbc ${c.args.join(" ")}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
        expect(r.status, context).toBe(c.status);
        expect(r.stderr, context).not.toMatch(STACK_LINE);
        if (c.stdout === "empty") expect(r.stdout, context).toBe("");
        if (c.stderr === "empty") expect(r.stderr, context).toBe("");
        for (const re of c.stdoutMatches ?? []) expect(r.stdout, context).toMatch(new RegExp(re, "i"));
        for (const re of c.stderrMatches ?? []) expect(r.stderr, context).toMatch(new RegExp(re, "i"));
        if (c.diagnostics) expect(diagnosticsIn(r.stdout, formatOf(c.args)), context).toEqual(c.diagnostics);
      });
    }
  }
});

describe("help and version", () => {
  it.each([["--help"], ["-h"]])("mbc %s prints the usage with every command, exit 0", (flag) => {
    const r = runMbc([flag]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^Usage: mbc /);
    for (const command of ["validate", "schema", "init"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
  });

  it.each([["--version"], ["-V"]])("mbc %s prints the package's version, exit 0", (flag) => {
    const r = runMbc([flag]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${pkg.version}\n`);
    expect(r.stderr).toBe("");
  });

  it.each([["validate"], ["schema"], ["init"]])("mbc %s --help, -h and `mbc help` of it print its usage, exit 0", (command) => {
    for (const args of [
      [command, "--help"],
      [command, "-h"],
      ["help", command],
    ]) {
      const r = runMbc(args);
      expect(r.status, args.join(" ")).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: mbc ${command}\\b`));
      expect(r.stderr).toBe("");
    }
  });

  it("validate --help lists its options", () => {
    const r = runMbc(["validate", "--help"]);
    for (const option of ["--env", "--format", "--strict"]) expect(r.stdout).toContain(option);
    for (const format of ["stylish", "json", "sarif", "github"]) expect(r.stdout).toContain(format);
  });

  it("bare mbc prints the usage on stderr and exits 2", () => {
    const r = runMbc([]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/Usage: mbc /);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it.each([
    [["frobnicate"], /frobnicate/],
    [["--frobnicate"], /--frobnicate/],
    [["validate", "--env"], /--env/],
    [["schema", "extra", "args"], /extra|argument/i],
    [["help", "bogus"], /Usage: mbc /],
  ])("usage trouble %j: exit 2, a message on stderr, nothing on stdout", (args, message) => {
    const r = runMbc(args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

describe("validate --format json", () => {
  const allowed = ["code", "severity", "message", "path", "file", "line", "column", "hint"];

  it("prints exactly one JSON object with the contract's fields, and nothing else", () => {
    const r = runMbc(["validate", "--format", "json", EXAMPLE_REL]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    // One line, one object: a second value or any stray text would break the parse or the line count.
    expect(r.stdout.endsWith("}\n")).toBe(true);
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(1);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(["diagnostics"]);
    const diagnostics = out.diagnostics as Record<string, unknown>[];
    expect(diagnostics).toHaveLength(2);
    for (const d of diagnostics) {
      expect(Object.keys(d).filter((k) => !allowed.includes(k))).toEqual([]);
      expect(d).toMatchObject({ severity: "warning", path: "/services/data-processing", file: EXAMPLE_REL, line: 35, column: 3 });
      expect(typeof d.message).toBe("string");
      expect(d.message).not.toBe("");
    }
    expect(diagnostics.map((d) => d.code)).toEqual(["low-headroom", "weight-capacity-mismatch"]);
  });

  it("gives every diagnostic of a broken spec the required fields, with hint only where there is one", () => {
    const r = runMbc(["validate", "--format", "json", "spec.yaml"], { cwd: join(casesDir, "references") });
    expect(r.status).toBe(1);
    const { diagnostics } = JSON.parse(r.stdout) as { diagnostics: Record<string, unknown>[] };
    expect(diagnostics.length).toBeGreaterThan(3);
    for (const d of diagnostics) {
      expect(Object.keys(d).slice(0, 7)).toEqual(allowed.slice(0, 7));
      expect(Object.keys(d).filter((k) => !allowed.includes(k))).toEqual([]);
      expect(CONTRACT_CODES).toContain(d.code);
      expect(["error", "warning", "info"]).toContain(d.severity);
      expect(d.path).toMatch(/^(\/.*)?$/);
      expect(Number.isInteger(d.line) && (d.line as number) >= 1).toBe(true);
      expect(Number.isInteger(d.column) && (d.column as number) >= 1).toBe(true);
      if ("hint" in d) expect(typeof d.hint === "string" && d.hint !== "").toBe(true);
    }
  });

  it.each([["json"], ["sarif"], ["github"], ["stylish"]])("--format %s is byte-identical over two runs", (format) => {
    for (const [cwd, file] of [
      [repoRoot, EXAMPLE_REL],
      [join(casesDir, "references"), "spec.yaml"],
      [join(casesDir, "rules"), "spec.yaml"],
    ] as const) {
      const a = runMbc(["validate", "--format", format, file], { cwd });
      const b = runMbc(["validate", "--format", format, file], { cwd });
      expect(a.stdout).not.toBe("");
      expect(b.stdout).toBe(a.stdout);
      expect(b.status).toBe(a.status);
    }
  });
});

describe("validate --format sarif", () => {
  interface SarifLog {
    $schema?: string;
    version: string;
    runs: {
      tool: { driver: { name: string; version?: string; rules: { id: string; defaultConfiguration?: { level?: string } }[] } };
      results: {
        ruleId: string;
        ruleIndex?: number;
        level: string;
        message: { text: string };
        locations: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }[];
      }[];
    }[];
  }
  const sarifOf = (args: string[], cwd = repoRoot) => {
    const r = runMbc(["validate", "--format", "sarif", ...args], { cwd });
    expect(r.stderr).toBe("");
    return { status: r.status, log: JSON.parse(r.stdout) as SarifLog, stdout: r.stdout };
  };

  it("is a SARIF 2.1.0 log of one run by mbc, with a rule for every code", () => {
    const { status, log } = sarifOf([EXAMPLE_REL]);
    expect(status).toBe(0);
    expect(log.version).toBe("2.1.0");
    expect(log.runs).toHaveLength(1);
    const run = log.runs[0] as SarifLog["runs"][number];
    expect(run.tool.driver.name).toBe("mbc");
    expect(run.tool.driver.version).toBe(pkg.version);
    const ids = run.tool.driver.rules.map((rule) => rule.id);
    // The contract's codes, and mbc's own (target-constraint, the simulation's): every code mbc has.
    for (const code of CONTRACT_CODES) expect(ids).toContain(code);
    expect([...ids].sort()).toEqual(Object.keys(CODES).sort());
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("reports each diagnostic as a result with ruleId, level and a region", () => {
    const { log } = sarifOf(["spec.yaml"], join(casesDir, "rules"));
    const run = log.runs[0] as SarifLog["runs"][number];
    const rules = run.tool.driver.rules;
    expect(run.results.length).toBe(5);
    for (const result of run.results) {
      expect(CONTRACT_CODES).toContain(result.ruleId);
      expect(["error", "warning", "note"]).toContain(result.level);
      if (result.ruleIndex !== undefined) expect(rules[result.ruleIndex]?.id).toBe(result.ruleId);
      expect(result.message.text).not.toBe("");
      const where = result.locations[0]?.physicalLocation;
      expect(where?.artifactLocation.uri).toBe("spec.yaml");
      expect(where?.region.startLine).toBeGreaterThanOrEqual(1);
      expect(where?.region.startColumn).toBeGreaterThanOrEqual(1);
    }
    expect(run.results.map((r) => r.level)).toEqual(["error", "warning", "warning", "error", "error"]);
  });

  it("prints an empty results list for a clean spec", () => {
    const { status, log } = sarifOf(["--env", "prod", EXAMPLE_REL]);
    expect(status).toBe(0);
    expect(log.runs[0]?.results).toEqual([]);
  });

  // The official schema (2.1.0-rtm.5, the OASIS standard's) as an npm package ships it.
  const schemaTool = tool("SARIF 2.1.0 JSON schema", () => {
    try {
      createRequire(import.meta.url).resolve("@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json");
      return null;
    } catch {
      return "the dev dependency @microsoft/jest-sarif (which ships the schema) is not installed";
    }
  });

  describe.skipIf(schemaTool.skip)("against the official SARIF 2.1.0 schema", () => {
    let check: (log: unknown) => string[];
    beforeAll(() => {
      assertTool(schemaTool);
      const file = createRequire(import.meta.url).resolve("@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json");
      const schema = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      // A draft-04 schema: ajv 8 reads it once `id` is `$id`; its language-tag pattern is not a valid
      // unicode regular expression, and formats are not what this test is about.
      const { $schema: _, id, ...rest } = schema;
      const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false, validateFormats: false });
      const validateLog = ajv.compile({ ...rest, $id: String(id) });
      check = (log) => (validateLog(log) ? [] : (validateLog.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
    });

    it.each([
      ["the example", repoRoot, [EXAMPLE_REL]],
      ["cli-cases/rules", join(casesDir, "rules"), ["spec.yaml"]],
      ["cli-cases/references", join(casesDir, "references"), ["spec.yaml"]],
      ["cli-cases/multiple-files", join(casesDir, "multiple-files"), ["clean.yaml", "broken.yaml", "warned.yaml"]],
      ["cli-cases/yaml-syntax", join(casesDir, "yaml-syntax"), ["spec.yaml"]],
    ])("the log of %s validates", (_name, cwd, files) => {
      expect(check(sarifOf(files, cwd).log)).toEqual([]);
    });

    it("the schema check does reject a broken log", () => {
      const { log } = sarifOf([EXAMPLE_REL]);
      expect(check({ ...log, version: "2.0.0" })).not.toEqual([]);
    });
  });
});

describe("validate --format github", () => {
  it("prints one workflow command per diagnostic", () => {
    const r = runMbc(["validate", "--format", "github", EXAMPLE_REL]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^::warning file=[^,]+,line=35,col=3,title=[^:]+::\S/);
    expect(lines[0]).toContain("low-headroom");
    expect(lines[1]).toContain("weight-capacity-mismatch");
  });

  it("maps severities to error, warning and notice commands", () => {
    const r = runMbc(["validate", "--format", "github", "spec.yaml"], { cwd: join(casesDir, "rules") });
    expect(r.status).toBe(1);
    const kinds = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => /^::(\w+) /.exec(l)?.[1]);
    expect(kinds).toEqual(["error", "warning", "warning", "error", "error"]);
  });
});

describe("validate, stylish output", () => {
  it("shows file:line:col, severity, code, a code frame with a caret under the column, and the hint", () => {
    const r = runMbc(["validate", "spec.yaml"], { cwd: join(casesDir, "references") });
    expect(r.status).toBe(1);
    const lines = r.stdout.split("\n");
    const headers = lines.map((l, i) => [l, i] as const).filter(([l]) => /^spec\.yaml:\d+:\d+ (error|warning|info) [a-z-]+ \S/.test(l));
    expect(headers.length).toBe(8);
    const source = readFileSync(join(casesDir, "references", "spec.yaml"), "utf8").split("\n");
    for (const [header, i] of headers) {
      const [, line, column] = /^spec\.yaml:(\d+):(\d+)/.exec(header) as RegExpExecArray;
      const frame = lines[i + 1] as string;
      const caret = lines[i + 2] as string;
      // "  12 |     port: 8080" then "     |           ^"
      const bar = frame.indexOf(" | ");
      expect(frame.slice(0, bar).trim()).toBe(line);
      expect(frame.slice(bar + 3)).toBe(source[Number(line) - 1]);
      expect(caret.indexOf("|")).toBe(bar + 1);
      expect(caret.indexOf("^") - (bar + 3)).toBe(Number(column) - 1);
      expect(caret.trimEnd().endsWith("^")).toBe(true);
      expect(lines[i + 3]).toMatch(/^\s+hint: \S/);
    }
    expect(r.stdout).toMatch(/8 problems/);
  });

  it("has no ANSI escapes when stdout is not a terminal", () => {
    const r = runMbc(["validate", EXAMPLE_REL]);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stderr).toBe("");
  });

  it("colours with FORCE_COLOR=1", () => {
    const r = runMbc(["validate", EXAMPLE_REL], { env: { FORCE_COLOR: "1" } });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(ESC);
    // Colour changes the paint, not what is said.
    expect(diagnosticsIn(stripAnsi(r.stdout), "stylish")).toEqual(EXAMPLE_DIAGNOSTICS);
  });

  it("does not colour with NO_COLOR=1 (FORCE_COLOR unset), nor with FORCE_COLOR=0", () => {
    expect(runMbc(["validate", EXAMPLE_REL], { env: { NO_COLOR: "1" } }).stdout).not.toContain(ESC);
    expect(runMbc(["validate", EXAMPLE_REL], { env: { FORCE_COLOR: "0" } }).stdout).not.toContain(ESC);
  });

  it.each([["json"], ["sarif"], ["github"]])("never colours --format %s, even with FORCE_COLOR=1", (format) => {
    const r = runMbc(["validate", "--format", format, EXAMPLE_REL], { env: { FORCE_COLOR: "1" } });
    expect(r.stdout).not.toContain(ESC);
    expect(diagnosticsIn(r.stdout, format as OutputFormat)).toEqual(EXAMPLE_DIAGNOSTICS);
  });

  it("prints a success line for a clean spec", () => {
    const r = runMbc(["validate", "--env", "prod", EXAMPLE_REL]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(EXAMPLE_REL);
    expect(r.stdout).toMatch(/no problems/);
  });
});

describe("validate, paths", () => {
  it("accepts an absolute path", () => {
    const r = runMbc(["validate", "--format", "json", examplePath], { cwd: tempDir() });
    expect(r.status).toBe(0);
    expect(diagnosticsIn(r.stdout, "json")).toEqual([`${examplePath}:35:3 warning low-headroom`, `${examplePath}:35:3 warning weight-capacity-mismatch`]);
  });

  it("checks handler files relative to the spec, not to the working folder", () => {
    const r = runMbc(["validate", "--format", "json", "default-file/microbatch.yaml"], { cwd: casesDir });
    expect(r.status).toBe(0);
    expect(diagnosticsIn(r.stdout, "json")).toEqual(["default-file/microbatch.yaml:18:3 warning unreachable"]);
  });
});

describe("schema", () => {
  it("prints exactly the bytes of schema/mbc.schema.json", () => {
    const r = runMbc(["schema"], { cwd: tempDir() });
    expect(r.status).toBe(0);
    expect(Buffer.from(r.stdout, "utf8").equals(readFileSync(schemaPath))).toBe(true);
    expect(r.stderr).toBe("");
  });

  it("--out FILE writes it, creating folders", () => {
    const dir = tempDir();
    for (const args of [
      ["schema", "--out", "mbc.schema.json"],
      ["schema", "-o", "nested/deeper/mbc.schema.json"],
    ]) {
      const r = runMbc(args, { cwd: dir });
      expect(r.status).toBe(0);
      expect(r.stdout).not.toContain('"$schema"');
      expect(readFileSync(join(dir, args[2] as string)).equals(readFileSync(schemaPath))).toBe(true);
    }
  });

  it("--out into a place it cannot write is exit 2 without a stack trace", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "a-file"), "");
    const r = runMbc(["schema", "--out", "a-file/mbc.schema.json"], { cwd: dir });
    expect(r.status).toBe(2);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toBe("");
  });
});

describe("init", () => {
  const modeline = /^# yaml-language-server: \$schema=(\S+)$/;

  it("writes a starter spec and handler that validate clean, with a modeline that resolves", () => {
    const dir = tempDir();
    const r = runMbc(["init", "proj"], { cwd: dir });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    const spec = join(dir, "proj", "microbatch.yaml");
    const handler = join(dir, "proj", "handlers", "enrich.mjs");
    expect(existsSync(spec)).toBe(true);
    expect(existsSync(handler)).toBe(true);

    const first = readFileSync(spec, "utf8").split("\n")[0] as string;
    const ref = modeline.exec(first)?.[1];
    expect(ref, first).toBeDefined();
    const schemaFile = resolve(dirname(spec), ref as string);
    expect(existsSync(schemaFile), schemaFile).toBe(true);
    expect(readFileSync(schemaFile).equals(readFileSync(schemaPath))).toBe(true);

    const v = runMbc(["validate", "--format", "json", "proj/microbatch.yaml"], { cwd: dir });
    expect(v.status).toBe(0);
    expect(JSON.parse(v.stdout)).toEqual({ diagnostics: [] });
    expect(runMbc(["validate", "--strict", "proj/microbatch.yaml"], { cwd: dir }).status).toBe(0);
  });

  it("writes a handler module that loads and passes records on", async () => {
    const dir = tempDir();
    expect(runMbc(["init", "."], { cwd: dir }).status).toBe(0);
    const mod = (await import(pathToFileURL(join(dir, "handlers", "enrich.mjs")).href)) as {
      default: (records: unknown[], ctx: unknown) => Promise<unknown[]>;
    };
    const ctx = { batchId: "b1", service: "enrich", instance: 0, config: {}, log: () => {} };
    const out = await mod.default([{ id: 1 }, { id: 2 }], ctx);
    expect(out).toHaveLength(2);
  });

  it("defaults to the working folder and names the system after it", () => {
    const dir = join(tempDir(), "Orders_Pipeline");
    mkdirSync(dir);
    const r = runMbc(["init"], { cwd: dir });
    expect(r.status).toBe(0);
    const text = readFileSync(join(dir, "microbatch.yaml"), "utf8");
    expect(text).toMatch(/^name: orders-pipeline$/m);
    expect(runMbc(["validate"], { cwd: dir }).status).toBe(0);
  });

  it("--name sets the name; an invalid one is exit 2", () => {
    const dir = tempDir();
    expect(runMbc(["init", "a", "--name", "billing"], { cwd: dir }).status).toBe(0);
    expect(readFileSync(join(dir, "a", "microbatch.yaml"), "utf8")).toMatch(/^name: billing$/m);
    const bad = runMbc(["init", "b", "--name", "Bad_Name"], { cwd: dir });
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe("");
    expect(existsSync(join(dir, "b", "microbatch.yaml"))).toBe(false);
  });

  it("refuses to overwrite without --force, losing nothing; --force overwrites", () => {
    const dir = tempDir();
    expect(runMbc(["init", "proj"], { cwd: dir }).status).toBe(0);
    const spec = join(dir, "proj", "microbatch.yaml");
    const handler = join(dir, "proj", "handlers", "enrich.mjs");
    const starter = readFileSync(spec, "utf8");
    writeFileSync(spec, "# my own edits\n");
    writeFileSync(handler, "// my own handler\n");

    const again = runMbc(["init", "proj"], { cwd: dir });
    expect(again.status).toBe(2);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(/--force/);
    expect(again.stderr).not.toMatch(STACK_LINE);
    expect(readFileSync(spec, "utf8")).toBe("# my own edits\n");
    expect(readFileSync(handler, "utf8")).toBe("// my own handler\n");

    const forced = runMbc(["init", "proj", "--force"], { cwd: dir });
    expect(forced.status).toBe(0);
    expect(readFileSync(spec, "utf8")).toBe(starter);
    expect(readFileSync(handler, "utf8")).not.toBe("// my own handler\n");
  });

  it("refuses when only the handler exists, and writes neither file", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "handlers"));
    writeFileSync(join(dir, "handlers", "enrich.mjs"), "// mine\n");
    const r = runMbc(["init", "."], { cwd: dir });
    expect(r.status).toBe(2);
    expect(existsSync(join(dir, "microbatch.yaml"))).toBe(false);
    expect(readFileSync(join(dir, "handlers", "enrich.mjs"), "utf8")).toBe("// mine\n");
  });
});

describe("bad input never gives a stack trace", () => {
  /** Deterministic garbage: the same bytes on every run. */
  function garbage(size: number, seed: number): Buffer {
    const out = Buffer.alloc(size);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < size; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  }

  const inputs: [string, () => Buffer | string][] = [
    ["binary garbage", () => garbage(4096, 7)],
    ["an empty file", () => ""],
    ["only whitespace and comments", () => "\n  \n# nothing here\n"],
    ["a list", () => "[]\n"],
    ["a scalar", () => "42\n"],
    ["null", () => "null\n"],
    ["2 MB of garbage", () => garbage(2 * 1024 * 1024, 42)],
    ["2 MB of printable garbage", () => garbage(2 * 1024 * 1024, 99).toString("base64")],
    ["a NUL byte", () => "mbc: 1\0\nname: x\n"],
    ["invalid UTF-8 on line 3", () => Buffer.concat([Buffer.from("mbc: 1\nname: x\ndescription: "), Buffer.from([0xc3, 0x28]), Buffer.from("\n")])],
    ["a UTF-8 BOM", () => "\ufeffmbc: 1\nname: x\n"],
    ["deep nesting", () => `${"[".repeat(20_000)}${"]".repeat(20_000)}\n`],
    ["deep mappings", () => `a: ${"{a: ".repeat(5_000)}${"}".repeat(5_000)}\n`],
    [
      "an alias bomb",
      () => {
        let s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
        for (let i = 1; i < 12; i++)
          s += `a${i}: &a${i} [${Array(10)
            .fill(`*a${i - 1}`)
            .join(", ")}]\n`;
        return s;
      },
    ],
    ["wrong types everywhere", () => "mbc: one\nname: 7\nsources: []\nservices: yes\nenvironments: 3\n"],
    ["tabs for indentation", () => "mbc: 1\nsources:\n\tin:\n\t\ttype: http\n"],
  ];

  it.each(inputs)("%s: exit 1 or 2, diagnostics with positions ≥ 1, no stack", (_name, make) => {
    const dir = tempDir();
    writeFileSync(join(dir, "spec.yaml"), make());
    for (const format of ["stylish", "json"] as const) {
      const r = runMbc(["validate", "--format", format, "spec.yaml"], { cwd: dir });
      expect([1, 2]).toContain(r.status);
      expect(r.stderr).not.toMatch(STACK_LINE);
      expect(r.stderr).not.toMatch(/internal error/i);
      if (format === "json" && r.status === 1) {
        const { diagnostics } = JSON.parse(r.stdout) as { diagnostics: { line: number; column: number; severity: string }[] };
        expect(diagnostics.some((d) => d.severity === "error")).toBe(true);
        for (const d of diagnostics) {
          expect(d.line).toBeGreaterThanOrEqual(1);
          expect(d.column).toBeGreaterThanOrEqual(1);
        }
      }
    }
  });

  it("an oversized file is refused by its size", () => {
    const dir = tempDir();
    const file = join(dir, "spec.yaml");
    writeFileSync(file, "");
    truncateSync(file, 17 * 1024 * 1024);
    const r = runMbc(["validate", "--format", "json", "spec.yaml"], { cwd: dir });
    expect([1, 2]).toContain(r.status);
    expect(r.stderr).not.toMatch(STACK_LINE);
    if (r.status === 1) expect(diagnosticsIn(r.stdout, "json")).toEqual(["spec.yaml:1:1 error yaml-syntax"]);
  });
});

describe("stdout that goes away", () => {
  /** A spec with 20,000 unknown keys: far more output than a pipe holds. */
  function noisySpec(): string {
    const dir = tempDir();
    const keys = Array.from({ length: 20_000 }, (_, k) => `    bogus${k}: 1`).join("\n");
    writeFileSync(
      join(dir, "spec.yaml"),
      `mbc: 1\nname: x\nsources:\n  s:\n    type: http\n    port: 8080\n    to: a\nservices:\n  a:\n    handler: builtin:log\n${keys}\n`,
    );
    return join(dir, "spec.yaml");
  }

  it.each(["stylish", "json"])("a reader that closes the pipe early (| head), %s: the command's status, no stack", async (format) => {
    const child = spawn(process.execPath, [binPath, "validate", "--format", format, noisySpec()], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString("utf8");
    });
    child.stdout.once("data", () => child.stdout.destroy());
    const status = await new Promise<number | null>((done) => child.on("close", (code) => done(code)));
    expect(status).toBe(1);
    expect(stderr).not.toMatch(STACK_LINE);
    expect(stderr).not.toMatch(/EPIPE/);
  });

  it.skipIf(!existsSync("/dev/full"))("a write that fails (a full disk): exit 2 and a message, no stack", () => {
    const r = spawnSync(process.execPath, [binPath, "validate", noisySpec()], { stdio: ["ignore", openSync("/dev/full", "w"), "pipe"], encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/ENOSPC/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

describe("the programmatic API", () => {
  it("loadSpec and validate from the sources return diagnostics", async () => {
    const result = await loadSpec(examplePath);
    expect(result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`)).toEqual([
      "35:3 warning low-headroom",
      "35:3 warning weight-capacity-mismatch",
    ]);
    expect((await loadSpec(examplePath, { env: "prod" })).diagnostics).toEqual([]);

    const bad = validate("mbc: 1\nname: x\nsourcs: {}\n", { file: "inline.yaml" });
    expect(bad.diagnostics.some((d) => d.code === "unknown-key" && d.line === 3 && d.column === 1 && d.file === "inline.yaml")).toBe(true);
    expect(bad.model).toBeNull();
  });

  it("loadSpec rejects with a UsageError for a missing file or an unknown environment", async () => {
    await expect(loadSpec(join(tempDir(), "missing.yaml"))).rejects.toBeInstanceOf(UsageError);
    await expect(loadSpec(examplePath, { env: "nope" })).rejects.toBeInstanceOf(UsageError);
  });

  it("dist/index.mjs can be imported and gives the same answers", async () => {
    const api = (await import(pathToFileURL(join(repoRoot, "dist", "index.mjs")).href)) as {
      loadSpec: typeof loadSpec;
      validate: typeof validate;
    };
    expect(typeof api.loadSpec).toBe("function");
    expect(typeof api.validate).toBe("function");
    const fromDist = await api.loadSpec(examplePath);
    const fromSrc = await loadSpec(examplePath);
    expect(fromDist.diagnostics).toEqual(fromSrc.diagnostics);
    expect(api.validate("mbc: 1\n").diagnostics.every((d) => d.severity === "error")).toBe(true);
  });
});
