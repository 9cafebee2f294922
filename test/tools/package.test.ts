/**
 * The package as users install it. Every other test runs mbc from the repository, which once hid
 * a package without the generators' templates: `build` and `run` failed when installed. Here the
 * repository is packed (`npm pack`, as `npm run build` left dist/), the tarball installed into an
 * empty project with `npm install --offline` (mbc has no run-time dependencies, so nothing is
 * fetched), and everything runs from that project:
 *
 * - the tarball holds what the commands read (the schema, every template, the runtime bundle),
 *   the bundles, the API's types and the docs, nothing else, within PACKAGE_BUDGET;
 * - `init`; `validate` in all four formats; `simulate --report`; `build` of every target, byte for
 *   byte what the repository's CLI builds; `build --check`; `run`, with a record posted to the
 *   source and read back from the sink; `schema --out`;
 * - the API: a TypeScript file that imports { loadSpec, validate, simulate } from "mbc" is checked
 *   by the repository's tsc against the installed types (strict, NodeNext), then run, and agrees
 *   with the CLI; `require("mbc")` works where Node can require an ES module;
 * - publint and Are the Types Wrong (profile esm-only: mbc is an ES module) report nothing, and
 *   `npm publish --dry-run` of the tarball warns of nothing but not being logged in;
 * - a package file missing from the install is an error naming the package and the file.
 *
 * The tests run in order and build on each other, as a user's session would: init writes the
 * spec the others use, and the last one takes files out of the install.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { npmEnv, npmVersion, PACKAGE_BUDGET, type PackedPackage, packPackage, runNpm } from "../../bench/package.mjs";
import { generators } from "../../src/build/generators.js";
import { TARGET_IDS } from "../../src/build/targets.js";
import { PACKAGE_FILES, PACKAGE_NAME } from "../../src/package-files.js";
import { assertBuilt, diagnosticsIn, type OutputFormat, type RunResult, repoRoot, runMbc, STACK_LINE } from "../helpers/cli.js";
import { assignFreePorts, endpointsOf, hardKill, readIds, type Spec, waitReady } from "../helpers/e2e.js";
import { childEnv, cleanupAll, httpJson, killAll, spawnRuntime, tempDir, waitUntil } from "../helpers/runtime.js";
import { assertTool, tool } from "../helpers/tools.js";

const npm = tool("npm", () => npmVersion().reason);
const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { name: string; version: string; bin: Record<string, string> };

/** What the tarball may hold: each pattern is something a command or a user of the package reads. */
const SHIPPED: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^CHANGELOG\.md$/,
  /^bin\/(mbc|package\.json)$/,
  // The CLI's bundle and the V8 code caches bin/mbc compiles it with (scripts/build.mjs).
  /^dist\/[\w-]+\.cjs(\.cache)?$/,
  /^dist\/index\.mjs$/,
  /^dist\/runtime\/mbc-runtime\.mjs$/,
  /^dist\/types\/src\/[\w/-]+\.d\.ts$/,
  // Declarations of the generators' checks, which validation runs (src/build/checks.ts).
  /^dist\/types\/generators\/[a-z]+\/[\w-]+\.d\.ts$/,
  /^schema\/mbc\.schema\.json$/,
  /^generators\/[a-z]+\/templates\/[\w.-]+\.hbs$/,
  // npm packs a README of every folder it packs anything of, whatever `files` says.
  /^generators\/README\.md$/,
];

/** What the commands read from the package: every one must be in it. */
function filesCommandsRead(): string[] {
  return [PACKAGE_FILES.schema, PACKAGE_FILES.runtime, ...TARGET_IDS.flatMap((id) => generators[id].templates.map((name) => PACKAGE_FILES.template(id, name)))];
}

/** Every file below `dir`, relative to it, with "/" separators, sorted. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const path = sub === "" ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else out.push(path);
    }
  };
  walk("");
  return out.sort();
}

describe.skipIf(npm.skip)("the packed package, installed into an empty project", () => {
  let work: string;
  /** The user's project. */
  let app: string;
  let packed: PackedPackage;
  /** npm's cache and user config for this test. */
  let npmHome: string;
  /** The installed package. */
  let installed: string;
  let bin: string;

  /** Runs the installed mbc through its link in node_modules/.bin, as `npx mbc` does. */
  function mbc(args: readonly string[], cwd = app): RunResult {
    const r = spawnSync(bin, args, { cwd, env: userEnv(), encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
    if (r.error) throw r.error;
    const result = { stdout: r.stdout, stderr: r.stderr, status: r.status };
    // Whatever happens, never a stack trace.
    expect(`${result.stdout}${result.stderr}`, `mbc ${args.join(" ")}`).not.toMatch(STACK_LINE);
    return result;
  }

  /** A user's environment: no colour or CI settings of the test runner, and this node first on the PATH (bin/mbc's shebang). */
  function userEnv(): Record<string, string> {
    const env = childEnv({ FORCE_COLOR: undefined, NO_COLOR: undefined, TERM: undefined, GITHUB_ACTIONS: undefined });
    env.PATH = [dirname(process.execPath), env.PATH ?? ""].join(delimiter);
    return env;
  }

  function node(args: readonly string[], cwd = app): RunResult {
    const r = spawnSync(process.execPath, args, { cwd, env: userEnv(), encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 300_000 });
    if (r.error) throw r.error;
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  }

  const ok = (r: RunResult, what: string) => expect(r.status, `${what}\n${r.stdout}${r.stderr}`).toBe(0);

  beforeAll(() => {
    assertTool(npm);
    assertBuilt();
    work = tempDir("mbc-package-");
    npmHome = join(work, ".npm");
    packed = packPackage(join(work, "pack"));
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), `${JSON.stringify({ name: "app", private: true, type: "module" }, null, 2)}\n`);
    const r = runNpm(["install", packed.file, "--offline", "--no-audit", "--no-fund"], { cwd: app, env: npmEnv(npmHome) });
    if (r.status !== 0) throw new Error(`npm install of the tarball failed (${r.status}):\n${r.stdout}${r.stderr}`);
    installed = join(app, "node_modules", PACKAGE_NAME);
    bin = join(app, "node_modules", ".bin", "mbc");
  });

  afterAll(async () => {
    await killAll();
    if (app !== undefined) await hardKill(app);
    cleanupAll();
  });

  describe("the tarball", () => {
    it("holds every file the commands read, and nothing but what the package's users need", () => {
      const paths = packed.files.map((f) => f.path);
      expect(paths.filter((p) => !SHIPPED.some((re) => re.test(p)))).toEqual([]);
      expect(filesCommandsRead().filter((p) => !paths.includes(p))).toEqual([]);
      // And what package.json points at.
      const entries = [pkg.bin.mbc, "dist/index.mjs", "dist/types/src/index.d.ts", "bin/package.json"].map((p) => (p ?? "").replace(/^\.\//, ""));
      expect(entries.filter((p) => !paths.includes(p))).toEqual([]);
    });

    it(`is at most ${PACKAGE_BUDGET.tarballBytes / 1000} kB (PACKAGE_BUDGET in bench/package.mjs)`, () => {
      expect(packed.size).toBeGreaterThan(0);
      expect(packed.size, `the tarball is ${packed.size} bytes`).toBeLessThanOrEqual(PACKAGE_BUDGET.tarballBytes);
      expect(statSync(packed.file).size).toBe(packed.size);
    });

    it("passes publint, suggestions included", async () => {
      const bytes = readFileSync(packed.file);
      const tarball = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      const { messages, pkg: linted } = await publint({ pack: { tarball }, level: "suggestion", strict: true });
      expect(messages.map((m) => `${m.code}: ${formatMessage(m, linted) ?? ""}`)).toEqual([]);
    });

    it("passes Are the Types Wrong with the esm-only profile (mbc is an ES module)", () => {
      const attw = join(repoRoot, "node_modules", "@arethetypeswrong", "cli", "dist", "index.js");
      const r = node([attw, packed.file, "--profile", "esm-only", "--no-definitely-typed", "--format", "json"], work);
      const report = JSON.parse(r.stdout) as { problems?: Record<string, { resolutionKind?: string; entrypoint?: string }[]> };
      // The JSON lists every problem; the profile decides which count: none may, outside the
      // resolutions an ES-module-only package is not meant for (node10, require from CommonJS).
      const counted = Object.values(report.problems ?? {})
        .flat()
        .filter((p) => p.resolutionKind !== "node10" && p.resolutionKind !== "node16-cjs");
      expect(counted).toEqual([]);
      expect(r.status, r.stderr).toBe(0);
    });

    it("npm publish --dry-run of it warns of nothing but not being logged in", () => {
      const r = runNpm(["publish", packed.file, "--dry-run", "--offline", "--json"], { cwd: work, env: npmEnv(npmHome) });
      ok(r, "npm publish --dry-run");
      const warnings = r.stderr.split("\n").filter((l) => /^npm (warn|error)/i.test(l) && !/requires you to be logged in/.test(l));
      expect(warnings).toEqual([]);
      const report = JSON.parse(r.stdout) as Record<string, { id: string; files: unknown[] }>;
      expect(report[PACKAGE_NAME]?.id).toBe(`${PACKAGE_NAME}@${pkg.version}`);
      expect(report[PACKAGE_NAME]?.files.length).toBe(packed.files.length);
    });
  });

  describe("installed", () => {
    it("is the packed version, with no dependency beside it, and npx finds it", () => {
      const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { version: string };
      expect(manifest.version).toBe(pkg.version);
      expect(readdirSync(join(app, "node_modules")).filter((n) => !n.startsWith("."))).toEqual([PACKAGE_NAME]);
      const r = runNpm(["exec", "--offline", "--", "mbc", "--version"], { cwd: app, env: { ...npmEnv(npmHome), PATH: userEnv().PATH ?? "" } });
      ok(r, "npx mbc --version");
      expect(r.stdout.trim()).toBe(pkg.version);
    });

    it("init writes a spec whose modeline names the schema inside the installed package", () => {
      const r = mbc(["init"]);
      ok(r, "mbc init");
      const spec = readFileSync(join(app, "microbatch.yaml"), "utf8");
      const modeline = `# yaml-language-server: $schema=./node_modules/${PACKAGE_NAME}/${PACKAGE_FILES.schema}`;
      expect(spec.split("\n")[0]).toBe(modeline);
      // The path docs/editors.md gives editors that resolve the schema offline.
      expect(readFileSync(join(repoRoot, "docs", "editors.md"), "utf8")).toContain(modeline);
      expect(readFileSync(join(app, "node_modules", PACKAGE_NAME, PACKAGE_FILES.schema)).equals(readFileSync(join(repoRoot, PACKAGE_FILES.schema)))).toBe(true);
      expect(existsSync(join(app, "handlers", "enrich.mjs"))).toBe(true);
    });

    it("validate: the starter spec is clean, and a mistake is the same diagnostic, in all four formats", () => {
      const formats: OutputFormat[] = ["stylish", "json", "sarif", "github"];
      for (const format of formats) {
        const r = mbc(["validate", "--format", format, "microbatch.yaml"]);
        ok(r, `validate --format ${format}`);
        expect(diagnosticsIn(r.stdout, format), format).toEqual([]);
      }
      // A misspelt key: an error at the key, in every format.
      const text = readFileSync(join(app, "microbatch.yaml"), "utf8").replace("    capacity: 5000/s", "    capcity: 5000/s");
      writeFileSync(join(app, "broken.yaml"), text);
      const lines = text.split("\n");
      const line = lines.findIndex((l) => l.includes("capcity:")) + 1;
      const column = (lines[line - 1] ?? "").indexOf("capcity") + 1;
      for (const format of formats) {
        const r = mbc(["validate", "--format", format, "broken.yaml"]);
        expect(r.status, `${format}\n${r.stderr}`).toBe(1);
        expect(diagnosticsIn(r.stdout, format), format).toEqual([`broken.yaml:${line}:${column} error unknown-key`]);
      }
    });

    it("simulate prints the table, writes the HTML report, and its JSON is the API's result", () => {
      const r = mbc(["simulate", "microbatch.yaml", "--duration", "30s", "--seed", "7", "--report", "report.html"]);
      ok(r, "simulate --report");
      expect(r.stdout).toContain("enrich");
      const html = readFileSync(join(app, "report.html"), "utf8");
      expect(html).toMatch(/^<!doctype html>/i);
      expect(html).toContain("<svg");
      const json = mbc(["simulate", "microbatch.yaml", "--duration", "30s", "--seed", "7", "--format", "json"]);
      ok(json, "simulate --format json");
      const result = JSON.parse(json.stdout) as { services: { name: string }[] };
      expect(result.services.map((s) => s.name)).toEqual(["enrich", "store"]);
      writeFileSync(join(app, "simulated.json"), json.stdout);
    });

    it("build writes every target, byte for byte what the repository's CLI writes", () => {
      const targets = TARGET_IDS.join(",");
      ok(mbc(["build", "microbatch.yaml", "-o", "out", "--target", targets]), "build");
      const fromRepo = runMbc(["build", "microbatch.yaml", "-o", "out-repository", "--target", targets], { cwd: app });
      ok(fromRepo, "the repository's build");
      const out = join(app, "out");
      const files = filesBelow(out);
      expect(files).toEqual(filesBelow(join(app, "out-repository")));
      for (const id of TARGET_IDS)
        expect(
          files.some((f) => f.startsWith(`${id}/`)),
          id,
        ).toBe(true);
      for (const f of files) {
        const mine = join(out, f);
        const theirs = join(app, "out-repository", f);
        expect(readFileSync(mine).equals(readFileSync(theirs)), f).toBe(true);
        expect(statSync(mine).mode & 0o777, f).toBe(statSync(theirs).mode & 0o777);
      }
      expect(readFileSync(join(out, "node", "mbc-runtime.mjs")).equals(readFileSync(join(installed, PACKAGE_FILES.runtime)))).toBe(true);
    });

    it("build --check: up to date after a build; a changed file fails and is named", () => {
      const args = ["build", "microbatch.yaml", "-o", "out", "--target", TARGET_IDS.join(","), "--check"];
      ok(mbc(args), "build --check");
      appendFileSync(join(app, "out", "node", "README.md"), "\nedited by hand\n");
      const r = mbc(args);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stdout.split("\n").filter(Boolean)).toEqual([`changed ${join("out", "node", "README.md")}`]);
    });

    it("schema --out writes the schema the package ships", () => {
      ok(mbc(["schema", "--out", join("editor", "mbc.schema.json")]), "schema --out");
      expect(readFileSync(join(app, "editor", "mbc.schema.json")).equals(readFileSync(join(repoRoot, PACKAGE_FILES.schema)))).toBe(true);
    });

    it("run: a record posted to the source is stored by the sink, and SIGTERM stops the system cleanly", { timeout: 300_000 }, async () => {
      // The starter spec with free ports, in a folder of its own.
      const dir = join(app, "running");
      mkdirSync(join(dir, "handlers"), { recursive: true });
      copyFileSync(join(app, "handlers", "enrich.mjs"), join(dir, "handlers", "enrich.mjs"));
      const spec = parse(readFileSync(join(app, "microbatch.yaml"), "utf8")) as Spec;
      const ports = await assignFreePorts(spec);
      writeFileSync(join(dir, "microbatch.yaml"), stringify(spec));

      const run = spawnRuntime(bin, ["run", "microbatch.yaml"], { cwd: dir, env: { PATH: userEnv().PATH } });
      const exitedEarly = run.exited.then((e) => {
        throw new Error(`mbc run exited (${JSON.stringify(e)}) before it started the system:\n${run.lines.join("\n")}`);
      });
      exitedEarly.catch(() => undefined);
      await Promise.race([exitedEarly, waitUntil(() => run.lines.some((l) => l.startsWith("mbc: running ")), "mbc run to start the supervisor", 60_000)]);
      await waitReady({ endpoints: () => endpointsOf(ports) }, run, 120_000);

      const posted = await httpJson("POST", `http://127.0.0.1:${ports.sources.orders}/records`, [{ id: "installed-1", item: "tea" }], {}, 30_000);
      expect(posted.status, posted.text).toBe(202);
      const sink = join(dir, "data", "orders.jsonl");
      await waitUntil(() => readIds(sink).ids.has("installed-1"), "the record in the sink", 120_000, 100);
      const stored = readFileSync(sink, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(stored).toHaveLength(1);
      // The user's handler ran on it.
      expect(stored[0]).toMatchObject({ id: "installed-1", item: "tea", enrichedBy: expect.stringMatching(/^enrich\/[01]$/) });

      run.kill("SIGTERM");
      expect(await run.waitForExit(120_000)).toEqual({ code: 0, signal: null });
      expect(run.lines).toContain("mbc: stopped cleanly");
      expect(run.lines.join("\n")).not.toMatch(STACK_LINE);
    });

    it("the API: tsc checks a TypeScript user of it against the installed types, and it runs as the CLI does", () => {
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            // The package's declarations are checked too, not taken on trust.
            skipLibCheck: false,
            outDir: "compiled",
            types: ["node"],
            typeRoots: [join(repoRoot, "node_modules", "@types")],
          },
          files: ["consumer.ts"],
        }),
      );
      writeFileSync(
        join(app, "consumer.ts"),
        `import { readFileSync } from "node:fs";
import { type Diagnostic, loadSpec, type SimulationResult, simulate, validate } from "mbc";

const loaded = await loadSpec("microbatch.yaml");
if (loaded.model === null) throw new Error("no model");
const result: SimulationResult = simulate(loaded.model, { durationMs: 30_000, seed: 7 });
const broken = validate(readFileSync("broken.yaml", "utf8"), { file: "broken.yaml", specDir: "." });
const where = (d: Diagnostic): string => \`\${d.file}:\${d.line}:\${d.column} \${d.severity} \${d.code}\`;

// Were the types "any", tsc would find no error here, and the directive would be one.
export function typesAreReal(): void {
  // @ts-expect-error simulate takes a model, not a file name
  simulate("microbatch.yaml");
}

console.log(JSON.stringify({ clean: loaded.diagnostics.map(where), broken: broken.diagnostics.map(where), result }));
`,
      );
      const tsc = node([join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"]);
      expect(`${tsc.stdout}${tsc.stderr}`).toBe("");
      ok(tsc, "tsc");
      const ran = node([join("compiled", "consumer.js")]);
      ok(ran, "the compiled consumer");
      const out = JSON.parse(ran.stdout) as { clean: string[]; broken: string[]; result: unknown };
      expect(out.clean).toEqual([]);
      expect(out.broken).toEqual([expect.stringMatching(/^broken\.yaml:\d+:\d+ error unknown-key$/)]);
      // The API's result is what `mbc simulate --format json` printed for the same seed and duration.
      expect(out.result).toEqual(JSON.parse(readFileSync(join(app, "simulated.json"), "utf8")));
    });

    it("require('mbc') works where Node can require an ES module", () => {
      const r = node(["--input-type=commonjs", "-e", `const m = require(${JSON.stringify(PACKAGE_NAME)}); console.log(typeof m.loadSpec, typeof m.simulate);`]);
      if ((process.features as { require_module?: boolean }).require_module === true) {
        ok(r, "require('mbc')");
        expect(r.stdout.trim()).toBe("function function");
      } else expect(r.stderr).toContain("ERR_REQUIRE_ESM");
    });

    it("a file missing from the installed package is an error naming the package and the file", () => {
      // The chunk of the CLI that simulate, build and run load when they start (scripts/build.mjs).
      const chunk = readdirSync(join(installed, "dist")).find((n) => /^cli-commands-\w+\.cjs$/.test(n));
      expect(chunk).toBeDefined();
      const cases: { file: string; args: string[] }[] = [
        { file: PACKAGE_FILES.template("systemd", "systemd-install.sh.hbs"), args: ["build", "microbatch.yaml", "-o", "out-2", "--target", "systemd"] },
        { file: PACKAGE_FILES.runtime, args: ["run", "microbatch.yaml"] },
        { file: PACKAGE_FILES.schema, args: ["schema"] },
        { file: `dist/${chunk}`, args: ["simulate", "microbatch.yaml"] },
        { file: "dist/cli.cjs", args: ["--version"] },
      ];
      for (const { file, args } of cases) {
        rmSync(join(realpathSync(installed), file));
        const r = mbc(args);
        expect(r.status, `mbc ${args.join(" ")}\n${r.stderr}`).toBe(2);
        expect(r.stderr).toContain(`${PACKAGE_NAME} package`);
        expect(r.stderr).toContain(file);
        expect(r.stderr).toContain(realpathSync(installed));
      }
      expect(existsSync(join(app, "out-2"))).toBe(false);
    });
  });
});
