/**
 * The docs stay true to the code: docs/spec.md is what the generator makes of the schema, every
 * diagnostic code has its section, every example's positions are what mbc reports, every flag
 * and dependency is described, and links between the pages resolve.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { makeProgram } from "../../src/cli.js";
import type { Diagnostic } from "../../src/diagnostic.js";
import { CODES } from "../../src/validate/codes.js";
import { validateText } from "../../src/validate/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const docsDir = join(root, "docs");
const read = (file: string) => readFileSync(join(root, file), "utf8");
const pages = readdirSync(docsDir)
  .filter((f) => f.endsWith(".md"))
  .sort();

describe("docs/spec.md", () => {
  it("is what scripts/gen-docs.mjs makes of the schema now (run npm run docs)", () => {
    const generated = execFileSync(process.execPath, [join(root, "scripts/gen-docs.mjs"), "--stdout"], { encoding: "utf8" });
    const current = read("docs/spec.md");
    expect(current, "docs/spec.md is stale: run npm run docs").toBe(generated);
  });

  it("is the same twice over", () => {
    const run = () => execFileSync(process.execPath, [join(root, "scripts/gen-docs.mjs"), "--stdout"], { encoding: "utf8" });
    expect(run()).toBe(run());
  });

  it("has a section for every key of every object in the schema", () => {
    const schema = JSON.parse(read("schema/mbc.schema.json")) as { properties: Record<string, unknown>; $defs: Record<string, { properties?: object }> };
    const spec = read("docs/spec.md");
    for (const key of Object.keys(schema.properties)) expect(spec).toContain(`| \`${key}\` |`);
    for (const [name, def] of Object.entries(schema.$defs)) {
      for (const key of Object.keys(def.properties ?? {})) expect(spec, `${name}.${key}`).toMatch(new RegExp(`\\| \`(?:[A-Za-z]+\\.)?${key}\` \\|`));
    }
  });
});

/** The `## code` sections of docs/diagnostics.md, by code. */
function codeSections(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = text.split(/^## /m).slice(1);
  for (const part of parts) {
    const heading = (part.split("\n")[0] ?? "").replace(/`/g, "").trim();
    if (/^[a-z][a-z0-9-]*$/.test(heading)) sections.set(heading, part);
  }
  return sections;
}

describe("docs/diagnostics.md", () => {
  const text = read("docs/diagnostics.md");
  const sections = codeSections(text);

  it("has a `## code` section for every code in src/validate/codes.ts, and none for codes that do not exist", () => {
    expect([...sections.keys()].sort()).toEqual(Object.keys(CODES).sort());
  });

  it("states each code's severity as codes.ts has it", () => {
    for (const [code, body] of sections) {
      const stated = /\*\*(error|warning|info)\*\*/.exec(body)?.[1];
      expect(stated, code).toBe(CODES[code as keyof typeof CODES].severity);
    }
  });

  it("shows each code in its own example", () => {
    for (const [code, body] of sections) expect(body, code).toMatch(new RegExp(`^\\S+:\\d+:\\d+ (?:error|warning|info) ${code} `, "m"));
  });
});

interface Example {
  page: string;
  /** 1-based, within the page. */
  index: number;
  yaml: string;
  command: string;
  output: string;
}

/** A ```yaml block followed directly by a ```text block that starts with `$ mbc validate`. */
function examples(page: string): Example[] {
  const text = readFileSync(join(docsDir, page), "utf8");
  const out: Example[] = [];
  // A block's text never holds a fence, so one match never spans two blocks.
  for (const m of text.matchAll(/```yaml\n((?:(?!```)[\s\S])*)```\s*\n```text\n\$ (mbc validate[^\n]*)\n((?:(?!```)[\s\S])*)```/g)) {
    out.push({ page, index: out.length + 1, yaml: m[1] as string, command: m[2] as string, output: m[3] as string });
  }
  return out;
}

function headline(d: Pick<Diagnostic, "file" | "line" | "column" | "severity" | "code">): string {
  return `${d.file}:${d.line}:${d.column} ${d.severity} ${d.code}`;
}

describe("examples in docs/", () => {
  const all = pages.flatMap(examples);

  it("there are examples to check", () => {
    expect(all.length).toBeGreaterThanOrEqual(Object.keys(CODES).length);
  });

  it.each(all.map((e) => [`${e.page} example ${e.index}: ${e.command}`, e] as const))("%s reports what the page shows", (_, e) => {
    const args = e.command.split(/\s+/).slice(2);
    let env: string | null = null;
    const files: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i] as string;
      if (a === "--env" || a === "-e") env = args[++i] ?? null;
      else if (a === "--format" || a === "-f") expect(args[++i], "examples are checked in the stylish format").toBe("stylish");
      else if (!a.startsWith("-")) files.push(a);
    }
    const file = files[0] ?? "microbatch.yaml";
    // Handler modules of the examples do not exist: they use builtins unless they show handler-not-found.
    const result = validateText(file, e.yaml, { env, fileExists: () => false });
    const shown = e.output
      .split("\n")
      .map((line) => /^(\S+:\d+:\d+ (?:error|warning|info) [a-z0-9-]+) /.exec(line)?.[1])
      .filter((x): x is string => x !== undefined);
    expect(shown).toEqual(result.diagnostics.map(headline));
    if (shown.length === 0) expect(e.output).toContain("no problems");
  });
});

describe("docs/cli.md", () => {
  const text = read("docs/cli.md");
  const program = makeProgram(() => {});

  it("describes every command and every flag", () => {
    for (const command of program.commands) {
      expect(text, command.name()).toContain(`## \`mbc ${command.name()}`);
      for (const option of command.options) expect(text, `${command.name()} ${option.flags}`).toContain(option.long as string);
    }
  });

  it("names the exit codes", () => {
    for (const code of ["0", "1", "2"]) expect(text).toMatch(new RegExp(`\\| \`${code}\` \\|`));
  });
});

describe("docs/dependencies.md", () => {
  it("explains every dependency in package.json", () => {
    const pkg = JSON.parse(read("package.json")) as Record<string, Record<string, string> | undefined>;
    const text = read("docs/dependencies.md");
    const names = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"].flatMap((k) => Object.keys(pkg[k] ?? {}));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(text, name).toContain(`\`${name}\``);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (!m) continue;
    const base = (m[1] as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replace(/ /g, "-");
    let slug = base;
    for (let n = 1; anchors.has(slug); n++) slug = `${base}-${n}`;
    anchors.add(slug);
  }
  return anchors;
}

describe("links in docs/", () => {
  it("docs/README.md lists every page", () => {
    const index = read("docs/README.md");
    for (const page of pages.filter((p) => p !== "README.md")) expect(index, page).toContain(`](${page})`);
  });

  it.each(pages)("%s links only to files and headings that exist", (page) => {
    const text = readFileSync(join(docsDir, page), "utf8").replace(/```[\s\S]*?```/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] as string;
      if (/^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split("#") as [string, string | undefined];
      const file = path === "" ? join(docsDir, page) : join(docsDir, path);
      expect(existsSync(file), `${page} → ${target}`).toBe(true);
      if (anchor !== undefined && file.endsWith(".md")) expect(anchorsOf(readFileSync(file, "utf8")).has(anchor), `${page} → ${target}`).toBe(true);
    }
  });
});
