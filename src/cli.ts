/**
 * argv → pipeline → print → exit code. With src/cli-commands.ts (simulate, build and run, loaded
 * when one of them runs), the only modules that print or decide an exit code.
 * Exit codes: 0 success (warnings allowed; --strict makes them fail), 1 the spec has errors,
 * 2 usage or I/O trouble.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { TARGET_IDS } from "./build/targets.js";
import { writeStdout } from "./builtins-lazy.js";
import { DEFAULT_SPEC, EXIT_OK, EXIT_SPEC_ERRORS, EXIT_USAGE, Exit, fail, parseMaxEvents, parseTargetList, say, useColor } from "./cli-common.js";
import { hasErrors, sortDiagnostics } from "./diagnostic.js";
import { FORMAT_NAMES, type FormatName, formatters } from "./format/index.js";
import { escapeControls, escapeControlsExceptLineBreaks } from "./format/terminal.js";
import { starterHandler, starterSpec } from "./init/templates.js";
import { loadSpec } from "./load.js";
import { PACKAGE_FILES, PACKAGE_NAME, packageFilePath, readPackageText } from "./package-files.js";
import { UsageError } from "./usage-error.js";
import type { ValidationResult } from "./validate/index.js";
import { blocksSimulation, findingDiagnostics, simulationDiagnostics, simulationTooLargeFinding } from "./validate/simulate-findings.js";
import { VERSION } from "./version.js";

/**
 * simulate, build and run, with the simulator, the report and the generators: loaded when one of
 * them runs, or validate --simulate. The CLI's bundle is split here (scripts/build.mjs), so that
 * start-up reads and compiles only what validate, schema and init need.
 */
const commands = () => import("./cli-commands.js");

async function runValidate(
  files: string[],
  opts: { env?: string; format: FormatName; strict?: boolean; simulate?: boolean; target?: string; maxEvents?: string },
): Promise<number> {
  const targets = parseTargetList(opts.target);
  const maxEvents = parseMaxEvents(opts.maxEvents);
  if (files.length === 0) {
    if (!existsSync(DEFAULT_SPEC))
      fail(`no spec given, and there is no ${DEFAULT_SPEC} here`, "name a spec file: mbc validate path/to/spec.yaml (or run mbc init)");
    files = [DEFAULT_SPEC];
  }
  const results: ValidationResult[] = [];
  for (const file of files) {
    try {
      results.push(await loadSpec(file, { env: opts.env ?? null, ...(targets ? { targets } : {}) }));
    } catch (err) {
      if (err instanceof UsageError) fail(err.message, err.hint);
      throw err;
    }
  }
  // --simulate: each spec that can be simulated is, with its own `simulation` settings, unless
  // it would take more events than allowed (sim-too-large).
  const lazy = opts.simulate ? await commands() : null;
  const simulated = results.map((r) => {
    if (lazy === null || r.model === null || blocksSimulation(r.diagnostics)) return [];
    try {
      return simulationDiagnostics(r, lazy.simulate(r.model, maxEvents === undefined ? {} : { maxEvents }));
    } catch (err) {
      if (err instanceof lazy.SimulationTooLarge) return findingDiagnostics(r, [simulationTooLargeFinding(err, r.effective)]);
      throw err;
    }
  });
  // One list for all files, in the one order of every output: file, line, column, code.
  const diagnostics = sortDiagnostics(results.flatMap((r, k) => [...r.diagnostics, ...(simulated[k] ?? [])]));
  const byFile = new Map(results.map((r) => [r.file, r.parsed]));
  const text = formatters[opts.format](diagnostics, {
    color: opts.format === "stylish" && useColor(1),
    files: results.map((r) => r.file),
    lineText: (file, line) => byFile.get(file)?.lineText(line) ?? "",
    version: VERSION,
  });
  writeStdout(text);
  if (hasErrors(diagnostics)) return EXIT_SPEC_ERRORS;
  if (opts.strict && diagnostics.length > 0) return EXIT_SPEC_ERRORS;
  return EXIT_OK;
}

function runSchema(opts: { out?: string }): number {
  let text: string;
  try {
    text = readPackageText(PACKAGE_FILES.schema);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    throw err;
  }
  if (opts.out) {
    try {
      mkdirSync(dirname(resolve(opts.out)), { recursive: true });
      writeFileSync(opts.out, text);
    } catch (err) {
      fail(`cannot write ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    say(`wrote ${opts.out}`);
  } else writeStdout(text);
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
  const local = packageFilePath(PACKAGE_FILES.schema, join(target, "node_modules", PACKAGE_NAME));
  const schemaRef = relative(target, existsSync(local) ? local : packageFilePath(PACKAGE_FILES.schema))
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
  writeStdout(
    `wrote ${escapeControls(rel)} and ${escapeControls(relative(process.cwd(), handlerPath) || handlerPath)}\nnext: mbc validate ${escapeControls(shown)}\n`,
  );
  return EXIT_OK;
}

export function makeProgram(setExit: (code: number) => void): Command {
  const program = new Command("mbc")
    .description("The microbatch system compiler: validate, simulate and compile one spec of a microbatch system.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mbc: ${escapeControlsExceptLineBreaks(str.replace(/^error: /, ""))}`) });

  program
    .command("validate")
    .description("check specs against the schema and the semantic rules")
    .argument("[files...]", `spec files (.yaml, .yml, .json); default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .addOption(new Option("-f, --format <format>", "output format").choices(FORMAT_NAMES).default("stylish"))
    .option("--strict", "exit 1 on warnings too")
    .option("-t, --target <list>", `comma-separated targets whose constraints are errors (default: those under \`targets:\`): ${TARGET_IDS.join(", ")}`)
    .option("--simulate", "also run the simulation and report what it finds")
    .option("--max-events <n>", "with --simulate: simulate a spec only if it takes at most this many events (default 200000000)")
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
    .option("--max-events <n>", "refuse a run that would take more events than this (default 200000000, about a minute)")
    .option("--strict", "exit 1 on the spec's warnings, a service the simulation finds overloaded, or a retry budget that refused retries")
    .action(async (spec: string | undefined, opts) => setExit(await (await commands()).runSimulate(spec, opts)));

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
    .action(async (spec: string | undefined, opts) => setExit(await (await commands()).runBuild(spec, opts)));

  program
    .command("run")
    .description("run the whole system on this machine, in the foreground (the node target)")
    .argument("[spec]", `spec file; default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .action(async (spec: string | undefined, opts) => setExit(await (await commands()).runRun(spec, opts)));

  program
    .command("dead-letter")
    .description("list the dead letters of `mbc run`'s state folder, or replay them: their sources send them again")
    .argument("<action>", "list, or replay")
    .argument("[ids...]", "replay: the ids to replay (see list)")
    .option("-s, --spec <file>", `spec file; default ./${DEFAULT_SPEC}`)
    .option("-e, --env <name>", "merge this environment overlay first")
    .option("--all", "replay: every dead letter")
    .option("--json", "list: as JSON")
    .action(async (action: string, ids: string[], opts) => setExit(await (await commands()).runDeadLetter(action, ids, opts)));

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
    // A chunk of the CLI's bundle missing from the install (bin/mbc names it).
    const incomplete = err as { code?: unknown; message?: unknown; hint?: unknown };
    if (incomplete.code === "MBC_PACKAGE_INCOMPLETE") {
      process.stderr.write(`mbc: ${String(incomplete.message)}\n  hint: ${String(incomplete.hint)}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(
      `mbc: internal error: ${escapeControlsExceptLineBreaks(err instanceof Error ? (err.stack ?? err.message) : String(err))}\nplease report this with the spec that caused it\n`,
    );
    return EXIT_USAGE;
  }
  return code;
}
