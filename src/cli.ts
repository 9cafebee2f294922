/**
 * argv → pipeline → print → exit code. The only module that prints or exits.
 * Exit codes: 0 success (warnings allowed; --strict makes them fail), 1 the spec has errors,
 * 2 usage or I/O trouble.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { fidelityWarnings, renderFidelity } from "./build/fidelity.js";
import { generators } from "./build/generators.js";
import { buildArtefacts, TARGET_IDS, type TargetId } from "./build/index.js";
import { gatherBuildInputs } from "./build/inputs.js";
import { checkTarget, writeTarget } from "./build/write.js";
import { childProcess } from "./builtins-lazy.js";
import { hasErrors, sortDiagnostics } from "./diagnostic.js";
import { FORMAT_NAMES, type FormatName, formatters } from "./format/index.js";
import { loadSpec } from "./index.js";
import { starterHandler, starterSpec } from "./init/templates.js";
import { parseDuration, parseRate } from "./model/units.js";
import { createProgress, noProgress, renderReport, renderTable, seriesBuckets } from "./report/index.js";
import { duration as showDuration } from "./report/numbers.js";
import { liveEndpoints, renderLive, type Snapshot, snapshot } from "./run/live.js";
import { simulate } from "./simulate/index.js";
import { UsageError, type ValidationResult } from "./validate/index.js";
import { blocksSimulation, simulationDiagnostics, strictFailures } from "./validate/simulate-findings.js";
import { VERSION } from "./version.js";

const EXIT_OK = 0;
const EXIT_SPEC_ERRORS = 1;
const EXIT_USAGE = 2;
const DEFAULT_SPEC = "microbatch.yaml";

/** The package root: the bundle lives in dist/, the sources in src/. */
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const schemaFile = join(packageRoot, "schema", "mbc.schema.json");

function useColor(stream: NodeJS.WriteStream): boolean {
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== "" && force !== "0" && force !== "false") return true;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (force === "0" || force === "false") return false;
  return Boolean(stream.isTTY) && process.env.TERM !== "dumb";
}

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function fail(message: string, hint?: string): never {
  process.stderr.write(`mbc: ${message}\n${hint ? `  hint: ${hint}\n` : ""}`);
  throw new Exit(EXIT_USAGE);
}

async function runValidate(files: string[], opts: { env?: string; format: FormatName; strict?: boolean; simulate?: boolean }): Promise<number> {
  if (files.length === 0) {
    if (!existsSync(DEFAULT_SPEC))
      fail(`no spec given, and there is no ${DEFAULT_SPEC} here`, "name a spec file: mbc validate path/to/spec.yaml (or run mbc init)");
    files = [DEFAULT_SPEC];
  }
  const results: ValidationResult[] = [];
  for (const file of files) {
    try {
      results.push(await loadSpec(file, { env: opts.env ?? null }));
    } catch (err) {
      if (err instanceof UsageError) fail(err.message, err.hint);
      throw err;
    }
  }
  // --simulate: each spec that can be simulated is, with its own `simulation` settings.
  const simulated = results.map((r) =>
    opts.simulate && r.model !== null && !blocksSimulation(r.diagnostics) ? simulationDiagnostics(r, simulate(r.model)) : [],
  );
  // One list for all files, in the one order of every output: file, line, column, code.
  const diagnostics = sortDiagnostics(results.flatMap((r, k) => [...r.diagnostics, ...(simulated[k] ?? [])]));
  const byFile = new Map(results.map((r) => [r.file, r.parsed]));
  const text = formatters[opts.format](diagnostics, {
    color: opts.format === "stylish" && useColor(process.stdout),
    files: results.map((r) => r.file),
    lineText: (file, line) => byFile.get(file)?.lineText(line) ?? "",
    version: VERSION,
  });
  process.stdout.write(text);
  if (hasErrors(diagnostics)) return EXIT_SPEC_ERRORS;
  if (opts.strict && diagnostics.length > 0) return EXIT_SPEC_ERRORS;
  return EXIT_OK;
}

/** Writes through a temporary file in the same folder and a rename: a reader never sees half a file. */
function writeAtomically(file: string, text: string): void {
  const target = resolve(file);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  try {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(temp, text);
    renameSync(temp, target);
  } catch (err) {
    rmSync(temp, { force: true });
    fail(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

interface SimulateFlags {
  env?: string;
  duration?: string;
  rate?: string;
  seed?: string;
  format: "table" | "json";
  report?: string;
  strict?: boolean;
}

/** The numbers of the simulate flags, or exit 2 with what was expected. */
function simulateOptions(opts: SimulateFlags): { durationMs?: number; rate?: number; seed?: number } {
  const out: { durationMs?: number; rate?: number; seed?: number } = {};
  if (opts.duration !== undefined) {
    const ms = parseDuration(opts.duration.trim());
    if (Number.isNaN(ms))
      fail(`--duration: "${opts.duration}" is not a duration`, "a number and a unit (ms, s, m, h), units chained largest first: 500ms, 30s, 1.5m, 1m30s");
    if (!(ms > 0)) fail(`--duration: "${opts.duration}" is no time at all`, "simulate for at least 1ms");
    out.durationMs = ms;
  }
  if (opts.rate !== undefined) {
    const text = opts.rate.trim();
    const perSec = /^[0-9]+(?:\.[0-9]+)?$/.test(text) ? Number(text) : parseRate(text);
    if (!(perSec >= 0 && Number.isFinite(perSec))) fail(`--rate: "${opts.rate}" is not a rate`, "records per second, or N/s, N/m, N/h: 4000, 4000/s, 90000/m");
    out.rate = perSec;
  }
  if (opts.seed !== undefined) {
    const text = opts.seed.trim();
    const seed = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(seed)) fail(`--seed: "${opts.seed}" is not an integer`, "a whole number such as 1 or 42");
    out.seed = seed;
  }
  return out;
}

async function runSimulate(file: string | undefined, opts: SimulateFlags): Promise<number> {
  const numbers = simulateOptions(opts);
  // The spec's own diagnostics go to stderr: stdout is the simulation's.
  const { loaded } = await loadForCommand(file, opts.env, "simulate");
  const model = loaded.model;
  if (model === null || blocksSimulation(loaded.diagnostics)) {
    process.stderr.write("mbc: not simulated: the spec has errors\n");
    return EXIT_SPEC_ERRORS;
  }

  const durationMs = numbers.durationMs ?? model.simulation.durationMs;
  const progress =
    process.stderr.isTTY && process.env.TERM !== "dumb"
      ? createProgress(
          (text) => process.stderr.write(text),
          // Whole seconds: a number that changes less is easier to read.
          (f) => [showDuration(durationMs >= 10_000 ? Math.round((f * durationMs) / 1000) * 1000 : f * durationMs), showDuration(durationMs)],
          () => performance.now(),
        )
      : noProgress;
  const result = simulate(model, {
    ...numbers,
    onProgress: (f) => progress.update(f),
    ...(opts.report !== undefined ? { series: { buckets: seriesBuckets(durationMs) } } : {}),
  });
  progress.done();

  if (opts.format === "json") {
    // The series feeds the report only: the JSON is the same with or without --report.
    const { series: _series, ...plain } = result;
    process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
  } else process.stdout.write(renderTable(result, { color: useColor(process.stdout), file: loaded.file }));

  if (opts.report !== undefined) {
    writeAtomically(opts.report, renderReport(result, { file: loaded.file, version: VERSION }));
    process.stderr.write(`wrote ${opts.report}\n`);
  }

  if (opts.strict) {
    // As for every command, --strict makes the spec's warnings fail too.
    const warnings = loaded.diagnostics.filter((d) => d.severity !== "error").length;
    const reasons = [...(warnings > 0 ? [`the spec has ${warnings} warning${warnings === 1 ? "" : "s"}`] : []), ...strictFailures(result)];
    if (reasons.length > 0) {
      process.stderr.write(`mbc: --strict: ${reasons.join("; ")}\n`);
      return EXIT_SPEC_ERRORS;
    }
  }
  return EXIT_OK;
}

function runSchema(opts: { out?: string }): number {
  let text: string;
  try {
    text = readFileSync(schemaFile, "utf8");
  } catch {
    fail(`cannot read the schema at ${schemaFile}; is the package complete?`);
  }
  if (opts.out) {
    try {
      mkdirSync(dirname(resolve(opts.out)), { recursive: true });
      writeFileSync(opts.out, text);
    } catch (err) {
      fail(`cannot write ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    process.stderr.write(`wrote ${opts.out}\n`);
  } else process.stdout.write(text);
  return EXIT_OK;
}

function runInit(dir: string, opts: { name?: string; force?: boolean }): number {
  const target = resolve(dir);
  const name =
    opts.name ??
    (basename(target)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^[^a-z]+/, "")
      .slice(0, 40)
      .replace(/-+$/, "") ||
      "my-system");
  if (!/^[a-z][a-z0-9-]{0,39}$/.test(name))
    fail(`"${name}" is not a valid system name`, "a name is a lowercase letter, then up to 39 letters, digits or dashes");
  const specPath = join(target, DEFAULT_SPEC);
  const handlerPath = join(target, "handlers", "enrich.mjs");
  const existing = [specPath, handlerPath].filter((p) => existsSync(p));
  if (existing.length > 0 && !opts.force) {
    fail(`not overwriting ${existing.map((p) => relative(process.cwd(), p) || p).join(", ")}`, "use --force to overwrite, or choose another folder");
  }
  // The modeline names the schema by a path relative to the spec, so that it resolves in the
  // user's project: the project's own node_modules/mbc when mbc is installed there.
  const local = join(target, "node_modules", "mbc", "schema", "mbc.schema.json");
  const schemaRef = relative(target, existsSync(local) ? local : schemaFile)
    .split("\\")
    .join("/");
  try {
    mkdirSync(dirname(handlerPath), { recursive: true });
    writeFileSync(specPath, starterSpec(name, schemaRef.startsWith(".") ? schemaRef : `./${schemaRef}`));
    writeFileSync(handlerPath, starterHandler);
  } catch (err) {
    fail(`cannot write to ${target}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const rel = relative(process.cwd(), specPath) || specPath;
  // Quoted for the shell when it has to be, so that the suggested command can be pasted.
  const shown = /^[\w@%+=:,./-]+$/.test(rel) ? rel : `'${rel.replace(/'/g, "'\\''")}'`;
  process.stdout.write(`wrote ${rel} and ${relative(process.cwd(), handlerPath) || handlerPath}\nnext: mbc validate ${shown}\n`);
  return EXIT_OK;
}

/** Loads a spec for a command that needs a model: its diagnostics go to stderr, stdout stays the command's. */
async function loadForCommand(file: string | undefined, env: string | undefined, verb: string): Promise<{ loaded: ValidationResult; file: string }> {
  if (file === undefined) {
    if (!existsSync(DEFAULT_SPEC))
      fail(`no spec given, and there is no ${DEFAULT_SPEC} here`, `name a spec file: mbc ${verb} path/to/spec.yaml (or run mbc init)`);
    file = DEFAULT_SPEC;
  }
  let loaded: ValidationResult;
  try {
    loaded = await loadSpec(file, { env: env ?? null });
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    throw err;
  }
  if (loaded.diagnostics.length > 0) {
    process.stderr.write(
      formatters.stylish(loaded.diagnostics, {
        color: useColor(process.stderr),
        files: [loaded.file],
        lineText: (_, line) => loaded.parsed.lineText(line),
        version: VERSION,
      }),
    );
  }
  return { loaded, file };
}

function parseTargets(list: string | undefined): TargetId[] {
  if (list === undefined) return [...TARGET_IDS];
  const out: TargetId[] = [];
  for (const t of list
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!(TARGET_IDS as string[]).includes(t)) fail(`--target: unknown target "${t}"`, `targets: ${TARGET_IDS.join(", ")}`);
    if (!out.includes(t as TargetId)) out.push(t as TargetId);
  }
  if (out.length === 0) fail("--target: no target named", `targets: ${TARGET_IDS.join(", ")}`);
  return out;
}

async function runBuild(
  file: string | undefined,
  opts: { out: string; target?: string; env?: string; check?: boolean; templates?: string; strict?: boolean; explain?: boolean },
): Promise<number> {
  const targets = parseTargets(opts.target);
  if (opts.explain) {
    process.stdout.write(renderFidelity(Object.fromEntries(targets.map((t) => [t, generators[t].fidelity]))));
    return EXIT_OK;
  }
  const { loaded, file: specPath } = await loadForCommand(file, opts.env, "build");
  const model = loaded.model;
  if (model === null || hasErrors(loaded.diagnostics)) {
    process.stderr.write("mbc: nothing built: the spec has errors\n");
    return EXIT_SPEC_ERRORS;
  }
  // What a target approximates or ignores of what the user set is said, never silently dropped.
  const lossy = targets.flatMap((t) => (loaded.effective === null ? [] : fidelityWarnings(loaded.effective, t, generators[t].fidelity)));
  for (const w of lossy) process.stderr.write(`mbc: warning: the ${w.target} target ${w.how} ${w.at}: ${w.note}\n`);
  if (opts.strict && (loaded.diagnostics.length > 0 || lossy.length > 0)) {
    process.stderr.write("mbc: nothing built: --strict and there are warnings\n");
    return EXIT_SPEC_ERRORS;
  }
  let byTarget: Map<TargetId, import("./build/types.js").Artefact[]>;
  try {
    const inputs = gatherBuildInputs({
      specPath,
      specName: specPath,
      model,
      targets,
      packageRoot,
      version: VERSION,
      ...(opts.templates ? { templatesDir: opts.templates } : {}),
    });
    byTarget = buildArtefacts(model, inputs, targets);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    fail(err instanceof Error ? err.message : String(err));
  }
  if (opts.check) {
    let dirty = 0;
    for (const [id, artefacts] of byTarget) {
      const dir = join(opts.out, id);
      const r = checkTarget(dir, artefacts);
      for (const [what, list] of [
        ["changed", r.changed],
        ["missing", r.missing],
        ["stale", r.stale],
      ] as const) {
        for (const f of list) process.stdout.write(`${what.padEnd(8)}${join(dir, f)}\n`);
        dirty += list.length;
      }
    }
    if (dirty > 0) {
      process.stderr.write(`mbc: ${dirty} file${dirty === 1 ? "" : "s"} out of date; run mbc build to update\n`);
      return EXIT_SPEC_ERRORS;
    }
    process.stderr.write(`${opts.out}: up to date\n`);
    return EXIT_OK;
  }
  for (const [id, artefacts] of byTarget) {
    const dir = join(opts.out, id);
    try {
      writeTarget(dir, artefacts);
    } catch (err) {
      fail(
        `cannot write ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))}`,
        "the previous output, if any, is unchanged",
      );
    }
    process.stdout.write(`wrote ${dir} (${artefacts.length} files)\n`);
  }
  return EXIT_OK;
}

async function scrape(url: string): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(700) });
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

async function runRun(file: string | undefined, opts: { env?: string }): Promise<number> {
  const { loaded, file: specPath } = await loadForCommand(file, opts.env, "run");
  const model = loaded.model;
  if (model === null || hasErrors(loaded.diagnostics)) {
    process.stderr.write("mbc: not started: the spec has errors\n");
    return EXIT_SPEC_ERRORS;
  }
  // The node target, built beside the spec; relative paths of the spec resolve against its folder.
  const specDir = dirname(resolve(specPath));
  const runDir = join(specDir, ".mbc", "run", model.name);
  try {
    const inputs = gatherBuildInputs({ specPath, specName: specPath, model, targets: ["node"], packageRoot, version: VERSION });
    writeTarget(runDir, buildArtefacts(model, inputs, ["node"]).get("node") ?? []);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    fail(`cannot prepare ${runDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const live = Boolean(process.stdout.isTTY) && process.env.TERM !== "dumb";
  // On a terminal the table takes the screen and the logs go to a file; otherwise logs pass through.
  const logFile = join(runDir, "runtime.log");
  const logFd = live ? openSync(logFile, "a") : null;
  const child = childProcess().spawn(process.execPath, [join(runDir, "mbc-runtime.mjs")], {
    env: { ...process.env, MBC_DATA_DIR: specDir },
    stdio: ["ignore", logFd ?? "inherit", logFd ?? "inherit"],
    // Its own process group: Ctrl-C reaches mbc, which forwards it once (a second one stops at once).
    detached: true,
  });
  const forward = (signal: NodeJS.Signals) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGTERM", () => forward("SIGTERM"));
  const exited = new Promise<number>((done) => child.on("exit", (code, signal) => done(code ?? (signal ? 128 : 1))));
  if (!live) process.stderr.write(`mbc: running ${model.name} (supervisor pid ${child.pid}); SIGINT or SIGTERM drains and stops\n`);
  let timer: NodeJS.Timeout | undefined;
  if (live) {
    const endpoints = liveEndpoints(model);
    let before: Snapshot | null = null;
    const tick = async () => {
      const texts = await Promise.all(endpoints.map((e) => scrape(e.url)));
      const now = snapshot(endpoints, texts, Date.now());
      process.stdout.write(`\x1b[H\x1b[2J${renderLive(now, before, `mbc run ${specPath} — ${model.name} (logs: ${relative(process.cwd(), logFile)})`)}`);
      before = now;
    };
    timer = setInterval(() => void tick(), 1000);
  }
  const code = await exited;
  if (timer) clearInterval(timer);
  if (logFd !== null) closeSync(logFd);
  process.stderr.write(code === 0 ? "mbc: stopped cleanly\n" : `mbc: the runtime exited with code ${code}\n`);
  return code === 0 ? EXIT_OK : EXIT_SPEC_ERRORS;
}

export function makeProgram(setExit: (code: number) => void): Command {
  const program = new Command("mbc")
    .description("The microbatch system compiler: validate, simulate and compile one spec of a microbatch system.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mbc: ${str.replace(/^error: /, "")}`) });

  program
    .command("validate")
    .description("check specs against the schema and the semantic rules")
    .argument("[files...]", `spec files (.yaml, .yml, .json); default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .addOption(new Option("-f, --format <format>", "output format").choices(FORMAT_NAMES).default("stylish"))
    .option("--strict", "exit 1 on warnings too")
    .option("--simulate", "also run the simulation and report what it finds")
    .action(async (files: string[], opts) => setExit(await runValidate(files, opts)));

  program
    .command("simulate")
    .description("simulate the system: load, utilisation, retries and latency per service and instance")
    .argument("[spec]", `spec file; default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .option("-d, --duration <duration>", "simulated time, e.g. 30s or 5m (default: simulation.duration)")
    .option("-r, --rate <rate>", "records/s at every source, e.g. 4000 or 90000/m (default: each source's rate)")
    .option("-s, --seed <n>", "random seed, an integer (default: simulation.seed)")
    .addOption(new Option("-f, --format <format>", "output format").choices(["table", "json"]).default("table"))
    .option("--report <file>", "also write an HTML report with charts to this file")
    .option("--strict", "exit 1 on the spec's warnings, a service the simulation finds overloaded, or a retry budget that refused retries")
    .action(async (spec: string | undefined, opts) => setExit(await runSimulate(spec, opts)));

  program
    .command("build")
    .description("compile the spec into runnable artefacts, one folder per target")
    .argument("[spec]", `spec file; default ./${DEFAULT_SPEC}`)
    .option("-o, --out <dir>", "output folder", "build")
    .option("-t, --target <list>", `comma-separated targets (default: all): ${TARGET_IDS.join(", ")}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .option("--check", "write nothing; list files that would change, are missing or are stale, and exit 1 if any")
    .option("--templates <dir>", "override built-in templates by file name")
    .option("--strict", "build nothing when the spec has warnings or a target would approximate or ignore a field it sets")
    .option("--explain", "print how each target carries each field of the spec (the fidelity table), and build nothing")
    .action(async (spec: string | undefined, opts) => setExit(await runBuild(spec, opts)));

  program
    .command("run")
    .description("run the whole system on this machine, in the foreground (the node target)")
    .argument("[spec]", `spec file; default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .action(async (spec: string | undefined, opts) => setExit(await runRun(spec, opts)));

  program
    .command("schema")
    .description("print the JSON Schema of the spec (what editors load)")
    .option("-o, --out <file>", "write it to a file instead")
    .action((opts) => setExit(runSchema(opts)));

  program
    .command("init")
    .description(`write a commented starter ${DEFAULT_SPEC} and a handler`)
    .argument("[dir]", "folder to write to", ".")
    .option("-n, --name <name>", "system name (default: from the folder's name)")
    .option("--force", "overwrite existing files")
    .action((dir: string, opts) => setExit(runInit(dir, opts)));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = makeProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof Exit) return err.code;
    if (err instanceof CommanderError) {
      // --help, --version and `help COMMAND` end with exit code 0; bare `mbc` (help on stderr) does not.
      if (err.exitCode === 0) return EXIT_OK;
      return EXIT_USAGE;
    }
    process.stderr.write(
      `mbc: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nplease report this with the spec that caused it\n`,
    );
    return EXIT_USAGE;
  }
  return code;
}
