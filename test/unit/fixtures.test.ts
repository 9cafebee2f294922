/**
 * Spec fixtures, validated through the public API as a user's file would be.
 *
 *   fixtures/valid/NN-name/microbatch.{yaml,yml,json}   no diagnostics, with or without any overlay
 *   fixtures/invalid/CODE/NN-name.{yaml,yml,json}        with NN-name.expected.txt beside it
 *   fixtures/invalid/CODE/NN-name/microbatch.{yaml,...}  the same, when the case needs files beside the spec
 *
 * An expectation file holds one `LINE:COL SEVERITY CODE` line per diagnostic, in the
 * validator's order, after an optional `# env: NAME` line. `npm run test:update` rewrites the
 * expectation files from what the validator says (review the diff: they are the contract's
 * positions, not a snapshot). Byte-level problems (NUL, invalid UTF-8, the size cap) are
 * generated here rather than committed.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Diagnostic, loadSpec, MAX_SPEC_BYTES } from "../../src/index.js";
import { CODES } from "../../src/validate/codes.js";
import { CONTRACT_CODES } from "../helpers/contract.js";

const root = resolve(import.meta.dirname, "..", "..");
const fixturesDir = join(root, "fixtures");
const update = process.env.MBC_UPDATE_GOLDEN === "1";

const SPEC_EXTENSIONS = [".yaml", ".yml", ".json"];
const SPEC_NAMES = SPEC_EXTENSIONS.map((ext) => `microbatch${ext}`);
const EXPECTED_SUFFIX = ".expected.txt";
const LINE_FORMAT = /^(\d+):(\d+) (error|warning|info) ([a-z][a-z-]*)$/;

interface Expectation {
  env: string | null;
  lines: string[];
}

interface InvalidFixture {
  /** Relative to fixtures/, for test names. */
  id: string;
  /** The folder under invalid/: the code the fixture is about. */
  code: string;
  spec: string;
  expectedFile: string;
}

const rel = (path: string) => relative(fixturesDir, path).split("\\").join("/");
const isDir = (path: string) => statSync(path).isDirectory();
const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
const specIn = (dir: string) => SPEC_NAMES.map((n) => join(dir, n)).find((p) => existsSync(p));
const hasSpecExtension = (name: string) => SPEC_EXTENSIONS.some((ext) => name.endsWith(ext));
const stem = (name: string) => name.replace(/\.(ya?ml|json)$/, "");

function validFixtures(): string[] {
  return list(join(fixturesDir, "valid")).map((name) => {
    const dir = join(fixturesDir, "valid", name);
    return (isDir(dir) && specIn(dir)) || dir;
  });
}

function invalidFixtures(): InvalidFixture[] {
  const out: InvalidFixture[] = [];
  for (const code of list(join(fixturesDir, "invalid"))) {
    const dir = join(fixturesDir, "invalid", code);
    if (!isDir(dir)) continue;
    for (const name of list(dir)) {
      const path = join(dir, name);
      if (isDir(path)) {
        out.push({ id: rel(path), code, spec: specIn(path) ?? path, expectedFile: join(dir, `${name}${EXPECTED_SUFFIX}`) });
      } else if (hasSpecExtension(name)) {
        out.push({ id: rel(path), code, spec: path, expectedFile: join(dir, `${stem(name)}${EXPECTED_SUFFIX}`) });
      }
    }
  }
  return out;
}

function readExpectation(file: string): Expectation {
  const lines = readFileSync(file, "utf8").split(/\r?\n/);
  const env = /^# env: (\S+)$/.exec(lines[0] ?? "")?.[1] ?? null;
  return { env, lines: lines.slice(env === null ? 0 : 1).filter((l) => l.trim() !== "") };
}

function writeExpectation(file: string, expectation: Expectation): void {
  const header = expectation.env === null ? [] : [`# env: ${expectation.env}`];
  writeFileSync(file, [...header, ...expectation.lines].map((l) => `${l}\n`).join(""));
}

const summary = (d: Diagnostic) => `${d.line}:${d.column} ${d.severity} ${d.code}`;

function expectWellFormed(diagnostics: readonly Diagnostic[]): void {
  for (const d of diagnostics) {
    expect(typeof d.message, summary(d)).toBe("string");
    expect(d.message.trim(), summary(d)).not.toBe("");
    expect(typeof d.path, summary(d)).toBe("string");
    expect(d.path === "" || d.path.startsWith("/"), `${summary(d)}: path ${JSON.stringify(d.path)}`).toBe(true);
    expect(Number.isInteger(d.line) && d.line >= 1, summary(d)).toBe(true);
    expect(Number.isInteger(d.column) && d.column >= 1, summary(d)).toBe(true);
    if (d.hint !== undefined) expect(d.hint.trim(), summary(d)).not.toBe("");
  }
}

function environmentsOf(result: { parsed: { value: unknown } }): string[] {
  const envs = (result.parsed.value as { environments?: unknown } | null)?.environments;
  return envs && typeof envs === "object" ? Object.keys(envs) : [];
}

describe("valid fixtures", () => {
  const fixtures = validFixtures();

  it("are there, each a folder with one spec", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(6);
    for (const spec of fixtures) expect(SPEC_NAMES, `${rel(spec)} holds no microbatch.yaml/.yml/.json`).toContain(basename(spec));
  });

  it.each(fixtures.filter((f) => SPEC_NAMES.includes(basename(f))).map((f) => [rel(f), f]))("%s has no diagnostics", async (_id, spec) => {
    const result = await loadSpec(spec);
    expect(result.diagnostics.map(summary)).toEqual([]);
    expect(result.model).not.toBeNull();
    // Every overlay keeps the spec clean too.
    for (const env of environmentsOf(result)) {
      const merged = await loadSpec(spec, { env });
      expect(merged.diagnostics.map(summary), `--env ${env}`).toEqual([]);
      expect(merged.model?.environment).toBe(env);
    }
  });
});

describe("invalid fixtures", () => {
  const fixtures = invalidFixtures();

  it("are filed under the contract's codes, each with its expectation file", () => {
    for (const f of fixtures) {
      expect(Object.keys(CODES), `${f.id}: folder is not a diagnostic code`).toContain(f.code);
      expect(
        SPEC_EXTENSIONS.some((ext) => f.spec.endsWith(ext)),
        `${f.id}: no spec file`,
      ).toBe(true);
      if (!update) expect(existsSync(f.expectedFile), `${f.id}: missing ${rel(f.expectedFile)}`).toBe(true);
    }
    // An expectation file without its spec is stale.
    const expectedFiles = new Set(fixtures.map((f) => f.expectedFile));
    for (const code of list(join(fixturesDir, "invalid"))) {
      for (const name of list(join(fixturesDir, "invalid", code))) {
        if (!name.endsWith(EXPECTED_SUFFIX)) continue;
        const file = join(fixturesDir, "invalid", code, name);
        expect(expectedFiles.has(file), `${rel(file)} has no spec beside it`).toBe(true);
      }
    }
  });

  it.each(fixtures.map((f) => [f.id, f] as const))("%s gives the expected diagnostics", async (_id, f) => {
    const expectation: Expectation = existsSync(f.expectedFile) ? readExpectation(f.expectedFile) : { env: null, lines: [] };
    for (const line of expectation.lines) expect(line, `${rel(f.expectedFile)}: not LINE:COL SEVERITY CODE`).toMatch(LINE_FORMAT);
    const started = performance.now();
    const result = await loadSpec(f.spec, { env: expectation.env });
    // Hostile input (an alias bomb, say) must be refused quickly, not expanded.
    expect(performance.now() - started).toBeLessThan(1000);
    expectWellFormed(result.diagnostics);
    for (const d of result.diagnostics) expect(d.file).toBe(f.spec);
    const actual = result.diagnostics.map(summary);
    if (update) writeExpectation(f.expectedFile, { env: expectation.env, lines: actual });
    else expect(actual).toEqual(expectation.lines);
    // A fixture filed under a code shows that code.
    expect(result.diagnostics.map((d) => d.code)).toContain(f.code);
  });

  it("cover every diagnostic code of the contract", () => {
    const expected = new Set<string>();
    for (const f of fixtures) {
      if (!existsSync(f.expectedFile)) continue;
      for (const line of readExpectation(f.expectedFile).lines) expected.add(line.split(" ")[2] ?? "");
    }
    const missing = CONTRACT_CODES.filter((c) => !expected.has(c));
    expect(missing, "codes that no invalid fixture expects").toEqual([]);
    // And every code has a folder of its own.
    for (const code of CONTRACT_CODES)
      expect(
        fixtures.some((f) => f.code === code),
        `no fixtures/invalid/${code}/`,
      ).toBe(true);
  });

  it("give hints where the contract promises a 'did you mean'", async () => {
    const hinted = fixtures.filter((f) => /did-you-mean|misspelled/.test(f.id));
    expect(hinted.length).toBeGreaterThan(0);
    for (const f of hinted) {
      const result = await loadSpec(f.spec);
      expect(
        result.diagnostics.some((d) => d.code === f.code && /did you mean/i.test(d.hint ?? "")),
        f.id,
      ).toBe(true);
    }
  });
});

describe("byte-level problems", () => {
  let dir: string;
  const spec = [
    "mbc: 1",
    "name: bytes",
    "sources:",
    "  input:",
    "    type: generator",
    "    rate: 10/s",
    "    to: sink",
    "services:",
    "  sink:",
    "    handler: builtin:log",
    "",
  ].join("\n");

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "mbc-fixtures-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, bytes: Uint8Array | string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const bytesOf = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
  const only = async (path: string) => {
    const result = await loadSpec(path);
    expectWellFormed(result.diagnostics);
    expect(result.diagnostics.map(summary)).toHaveLength(1);
    expect(result.model).toBeNull();
    return result.diagnostics[0] as Diagnostic;
  };

  it("the generated spec itself is clean", async () => {
    expect((await loadSpec(write("clean.yaml", spec))).diagnostics).toEqual([]);
  });

  it("a NUL byte is a yaml-syntax error at its line and column", async () => {
    const d = await only(write("nul.yaml", bytesOf("mbc: 1\nname: nul\nsources:\n  in", [0], "put:\n")));
    expect(summary(d)).toBe("4:5 error yaml-syntax");
  });

  it("a NUL byte on the first line", async () => {
    const d = await only(write("nul-first.yaml", bytesOf("mb", [0], "c: 1\n")));
    expect(summary(d)).toBe("1:3 error yaml-syntax");
  });

  it("invalid UTF-8 is a yaml-syntax error at the bad byte, counted in characters", async () => {
    // "naïve" is 6 bytes but 5 characters: the column counts characters.
    const d = await only(write("latin1.yaml", bytesOf("mbc: 1\nname: x\ndescription: naïve caf", [0xe9], "\n")));
    expect(summary(d)).toBe("3:23 error yaml-syntax");
  });

  it("a truncated multi-byte sequence at the end of the file", async () => {
    const d = await only(write("truncated.yaml", bytesOf("mbc: 1\nname: ", [0xe2, 0x82])));
    expect(summary(d)).toBe("2:7 error yaml-syntax");
  });

  it("an overlong encoding is invalid UTF-8", async () => {
    const d = await only(write("overlong.yaml", bytesOf("a: ", [0xc0, 0xaf], "\n")));
    expect(summary(d)).toBe("1:4 error yaml-syntax");
  });

  it("a byte-order mark is allowed and does not shift columns", async () => {
    expect((await loadSpec(write("bom.yaml", bytesOf([0xef, 0xbb, 0xbf], spec)))).diagnostics).toEqual([]);
    const d = await only(write("bom-nul.yaml", bytesOf([0xef, 0xbb, 0xbf], "mbc: 1\nna", [0], "me: x\n")));
    expect(summary(d)).toBe("2:3 error yaml-syntax");
  });

  it("CRLF line endings give the same positions as LF", async () => {
    const broken = spec.replace("rate: 10/s", "rate: 10/sec");
    const lf = await only(write("lf.yaml", broken));
    const crlf = await only(write("crlf.yaml", broken.replace(/\n/g, "\r\n")));
    expect(summary(lf)).toBe("6:11 error schema");
    expect(summary(crlf)).toBe(summary(lf));
  });

  it("a file over the size cap is refused at 1:1 without being read", async () => {
    const path = join(dir, "huge.yaml");
    writeFileSync(path, "");
    truncateSync(path, MAX_SPEC_BYTES + 1); // sparse: no need to write 16 MiB
    const started = performance.now();
    const d = await only(path);
    expect(summary(d)).toBe("1:1 error yaml-syntax");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("a file exactly at the size cap is read", async () => {
    const path = write("at-cap.yaml", `${spec}#`.padEnd(MAX_SPEC_BYTES, "#"));
    const result = await loadSpec(path);
    expect(result.diagnostics.filter((d) => d.code === "yaml-syntax")).toEqual([]);
  });
});
