/**
 * The commands that `mbc validate` does not need: simulate, build and run, with what only they
 * use (the simulator, the report, the generators and their templates, the live figures).
 * src/cli.ts imports this module when one of them runs, which is where the CLI's bundle is split;
 * like src/cli.ts, it prints and decides exit codes, and leaves the exit itself to `main`.
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fidelityWarnings, renderFidelity } from "./build/fidelity.js";
import { generators } from "./build/generators.js";
import { buildArtefacts, TARGET_IDS, type TargetId } from "./build/index.js";
import { gatherBuildInputs } from "./build/inputs.js";
import type { Artefact } from "./build/types.js";
import { BuildFailed, BuildRefused, buildRefusals, checkTarget, type Refusal, writeTarget, writeTargets } from "./build/write.js";
import { childProcess, writeStdout } from "./builtins-lazy.js";
import { EXIT_OK, EXIT_SPEC_ERRORS, EXIT_USAGE, Exit, fail, loadForCommand, parseMaxEvents, parseTargetList, say, useColor } from "./cli-common.js";
import { hasErrors } from "./diagnostic.js";
import { formatters } from "./format/index.js";
import { escapeControls } from "./format/terminal.js";
import { loadSpec } from "./load.js";
import type { Model } from "./model/types.js";
import { parseDuration, parseRate } from "./model/units.js";
import { createProgress, noProgress, renderReport, renderTable, seriesBuckets } from "./report/index.js";
import { duration as showDuration } from "./report/numbers.js";
import { liveEndpoints, renderLive, type Snapshot, snapshot } from "./run/live.js";
import { resolveEnv } from "./runtime/config/env.js";
import { describeHolder } from "./runtime/core/file-lock.js";
import { findOwner, supervisorLock } from "./runtime/core/ownership.js";
import { runDeadLetterCommand } from "./runtime/dead-letter-command.js";
import { writeFileAtomicSync } from "./shared/atomic-write.js";
import { type SimulationResult, SimulationTooLarge, simulate } from "./simulate/index.js";
import { UsageError } from "./usage-error.js";
import { environmentNames } from "./validate/index.js";
import { blocksSimulation, findingDiagnostics, simulationTooLargeFinding, strictFailures } from "./validate/simulate-findings.js";
import { VERSION } from "./version.js";

// `mbc validate --simulate` runs the simulation too.
export { SimulationTooLarge, simulate };

/** Names every path that stops a build, and what to do about it; then exits 2. */
function refuse(refusals: readonly Refusal[], what: string): never {
  const only = refusals.length === 1 ? refusals[0] : undefined;
  if (only) say(`mbc: ${what}: ${only.path} ${only.reason}`);
  else {
    say(`mbc: ${what}: ${refusals.length} paths stop the build`);
    for (const r of refusals) say(`  ${r.path} ${r.reason}`);
  }
  const hints: string[] = [];
  if (refusals.some((r) => r.kind === "foreign"))
    hints.push("a build replaces or deletes only the files it wrote (each target folder's .mbc-manifest.json lists them): move what is in the way elsewhere");
  if (refusals.some((r) => r.kind === "locked")) hints.push("let this user change what is named");
  say(`  hint: ${hints.join("; ")}; or build into another folder with --out`);
  throw new Exit(EXIT_USAGE);
}

/** Writes through a temporary file in the same folder and a rename: a reader never sees half a file. */
function writeAtomically(file: string, text: string): void {
  try {
    const target = resolve(file);
    mkdirSync(dirname(target), { recursive: true });
    writeFileAtomicSync(target, text, { durable: false });
  } catch (err) {
    fail(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export interface SimulateFlags {
  env?: string;
  duration?: string;
  rate?: string;
  seed?: string;
  format: "table" | "json";
  report?: string;
  strict?: boolean;
  maxEvents?: string;
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

export async function runSimulate(file: string | undefined, opts: SimulateFlags): Promise<number> {
  const numbers = simulateOptions(opts);
  const maxEvents = parseMaxEvents(opts.maxEvents);
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
  let result: SimulationResult;
  try {
    result = simulate(model, {
      ...numbers,
      ...(maxEvents !== undefined ? { maxEvents } : {}),
      onProgress: (f) => progress.update(f),
      ...(opts.report !== undefined ? { series: { buckets: seriesBuckets(durationMs) } } : {}),
    });
  } catch (err) {
    if (!(err instanceof SimulationTooLarge)) throw err;
    progress.done();
    // Refused before it started: the reason is a diagnostic of the spec, on stderr as the spec's others.
    const finding = simulationTooLargeFinding(err, loaded.effective, { duration: numbers.durationMs !== undefined, rate: numbers.rate !== undefined });
    process.stderr.write(
      formatters.stylish(findingDiagnostics(loaded, [finding]), {
        color: useColor(2),
        files: [loaded.file],
        lineText: (_, line) => loaded.parsed.lineText(line),
        version: VERSION,
      }),
    );
    process.stderr.write("mbc: not simulated: it would take too many events\n");
    return EXIT_SPEC_ERRORS;
  }
  progress.done();

  if (opts.format === "json") {
    // The series feeds the report only: the JSON is the same with or without --report.
    const { series: _series, ...plain } = result;
    writeStdout(`${JSON.stringify(plain, null, 2)}\n`);
  } else writeStdout(renderTable(result, { color: useColor(1), file: escapeControls(loaded.file) }));

  if (opts.report !== undefined) {
    writeAtomically(opts.report, renderReport(result, { file: loaded.file, version: VERSION }));
    say(`wrote ${opts.report}`);
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

export async function runBuild(
  file: string | undefined,
  opts: { out: string; target?: string; env?: string; check?: boolean; templates?: string; strict?: boolean; explain?: boolean },
): Promise<number> {
  const targets = parseTargetList(opts.target) ?? [...TARGET_IDS];
  if (opts.explain) {
    writeStdout(renderFidelity(Object.fromEntries(targets.map((t) => [t, generators[t].fidelity]))));
    return EXIT_OK;
  }
  // The constraints of every target built are errors, as `validate --target` would say.
  const { loaded, file: specPath } = await loadForCommand(file, opts.env, "build", targets);
  const model = loaded.model;
  if (model === null || hasErrors(loaded.diagnostics)) {
    process.stderr.write("mbc: nothing built: the spec has errors\n");
    return EXIT_SPEC_ERRORS;
  }
  // What a target approximates or ignores of what the user set is said, never silently dropped.
  const lossy = targets.flatMap((t) => (loaded.effective === null ? [] : fidelityWarnings(loaded.effective, t, generators[t].fidelity)));
  for (const w of lossy) say(`mbc: warning: the ${w.target} target ${w.how} ${w.at}: ${w.note}`);
  if (opts.strict && (loaded.diagnostics.length > 0 || lossy.length > 0)) {
    process.stderr.write("mbc: nothing built: --strict and there are warnings\n");
    return EXIT_SPEC_ERRORS;
  }
  // The kubernetes target writes an overlay for each environment: each is the spec under `--env NAME`.
  const environments: Record<string, Model> = {};
  if (targets.includes("kubernetes")) {
    for (const name of environmentNames(loaded.parsed.value)) {
      const env = await loadSpec(specPath, { env: name, targets: ["kubernetes"], otherTargets: "ignore" });
      const errors = env.diagnostics.filter((d) => d.severity === "error");
      if (env.model === null || errors.length > 0) {
        process.stderr.write(
          formatters.stylish(errors, { color: useColor(2), files: [env.file], lineText: (_, line) => env.parsed.lineText(line), version: VERSION }),
        );
        process.stderr.write(`mbc: nothing built: the spec has errors in environment ${name}, which the kubernetes target writes an overlay for\n`);
        return EXIT_SPEC_ERRORS;
      }
      environments[name] = env.model;
    }
  }
  for (const t of targets) for (const note of generators[t].notes?.(model) ?? []) say(`mbc: warning: the ${t} target: ${note}`);
  let byTarget: Map<TargetId, Artefact[]>;
  try {
    const inputs = gatherBuildInputs({
      environments,
      specPath,
      specName: specPath,
      model,
      targets,
      version: VERSION,
      ...(opts.templates ? { templatesDir: opts.templates } : {}),
    });
    byTarget = buildArtefacts(model, inputs, targets);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    fail(err instanceof Error ? err.message : String(err));
  }
  const outputs = [...byTarget].map(([id, artefacts]) => ({ dir: join(opts.out, id), artefacts }));
  if (opts.check) {
    let dirty = 0;
    for (const { dir, artefacts } of outputs) {
      const r = checkTarget(dir, artefacts);
      for (const [what, list] of [
        ["changed", r.changed],
        ["missing", r.missing],
        ["stale", r.stale],
      ] as const) {
        for (const f of list) writeStdout(`${what.padEnd(8)}${escapeControls(join(dir, f))}\n`);
        dirty += list.length;
      }
    }
    // What would stop the build stops --check too: it answers "would mbc build succeed and change nothing".
    const refusals = buildRefusals(outputs);
    if (refusals.length > 0) refuse(refusals, "mbc build would write nothing");
    if (dirty > 0) {
      process.stderr.write(`mbc: ${dirty} file${dirty === 1 ? "" : "s"} out of date; run mbc build to update\n`);
      return EXIT_SPEC_ERRORS;
    }
    say(`${opts.out}: up to date`);
    return EXIT_OK;
  }
  let leftovers: string[];
  try {
    leftovers = writeTargets(outputs);
  } catch (err) {
    if (err instanceof BuildRefused) refuse(err.refusals, "nothing written");
    if (err instanceof BuildFailed) {
      if (err.stuck.length === 0) fail(err.message, `nothing was changed: ${opts.out} is as it was before this build`);
      fail(err.message, `the previous output could not be put back whole; not where they were: ${err.stuck.join(", ")}`);
    }
    throw err;
  }
  for (const { dir, artefacts } of outputs) writeStdout(`wrote ${escapeControls(dir)} (${artefacts.length} files)\n`);
  if (leftovers.length > 0)
    fail(`the previous output could not be removed: ${leftovers.join(", ")}`, "the new output is in place; delete those folders by hand");
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

/** The state folder `mbc run` gives a spec's runtime (its checkpoint.dir, against the spec's folder). */
function runStateDir(specPath: string, model: Model): string {
  const specDir = dirname(resolve(specPath));
  const runDir = join(specDir, ".mbc", "run", model.name);
  try {
    return resolveEnv(join(runDir, "system.json"), model, { ...process.env, MBC_DATA_DIR: specDir }).stateDir;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
}

/** `mbc dead-letter list|replay [ID…|--all] [--spec FILE]`: the runtime's command, on `mbc run`'s state folder. */
export async function runDeadLetter(action: string, ids: string[], opts: { spec?: string; env?: string; all?: boolean; json?: boolean }): Promise<number> {
  const { loaded, file: specPath } = await loadForCommand(opts.spec, opts.env, "dead-letter");
  const model = loaded.model;
  if (model === null || hasErrors(loaded.diagnostics)) {
    say("mbc: the spec has errors: its state folder is not known");
    return EXIT_SPEC_ERRORS;
  }
  const argv = [action, ...ids, ...(opts.all ? ["--all"] : []), ...(opts.json ? ["--json"] : [])];
  return runDeadLetterCommand(argv, runStateDir(specPath, model), {
    out: (text) => writeStdout(text),
    err: (text) => process.stderr.write(text),
  });
}

export async function runRun(file: string | undefined, opts: { env?: string }): Promise<number> {
  const { loaded, file: specPath } = await loadForCommand(file, opts.env, "run", ["node"]);
  const model = loaded.model;
  if (model === null || hasErrors(loaded.diagnostics)) {
    process.stderr.write("mbc: not started: the spec has errors\n");
    return EXIT_SPEC_ERRORS;
  }
  // The node target, built beside the spec; relative paths of the spec resolve against its folder.
  const specDir = dirname(resolve(specPath));
  const runDir = join(specDir, ".mbc", "run", model.name);
  const runtimeEnv = { ...process.env, MBC_DATA_DIR: specDir };
  // One runtime per state folder: say which one runs rather than start a second (whose sources
  // would wait for the first's and give up), and before rewriting the files it runs from.
  let stateDir: string;
  try {
    stateDir = resolveEnv(join(runDir, "system.json"), model, runtimeEnv).stateDir;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const owner = await findOwner(supervisorLock(stateDir));
  if (owner !== null) {
    const { holder, state } = owner;
    const where = relative(process.cwd(), stateDir) || ".";
    fail(
      `not started: a runtime of ${model.name} already runs on its state folder ${where}: ${describeHolder(holder)}`,
      state === "alive" && holder.pid !== null
        ? `stop it first: \`kill ${holder.pid}\` drains and stops it (as Ctrl-C does in its terminal); then run mbc run again`
        : `stop it first${holder.host === null ? "" : ` (on ${holder.host})`}; then run mbc run again`,
    );
  }
  try {
    const inputs = gatherBuildInputs({ specPath, specName: specPath, model, targets: ["node"], version: VERSION });
    writeTarget(runDir, buildArtefacts(model, inputs, ["node"]).get("node") ?? []);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    if (err instanceof BuildRefused) refuse(err.refusals, `cannot prepare ${runDir}`);
    fail(`cannot prepare ${runDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const live = Boolean(process.stdout.isTTY) && process.env.TERM !== "dumb";
  // On a terminal the table takes the screen and the logs go to a file; otherwise logs pass through.
  const logFile = join(runDir, "runtime.log");
  const logFd = live ? openSync(logFile, "a") : null;
  const child = childProcess().spawn(process.execPath, [join(runDir, "mbc-runtime.mjs")], {
    env: runtimeEnv,
    // The IPC channel ties the runtime to mbc: if mbc dies, even by SIGKILL, the channel closes
    // and the runtime stops (it drains, as on SIGTERM). Nothing is sent over it.
    stdio: ["ignore", logFd ?? "inherit", logFd ?? "inherit", "ipc"],
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
      process.stdout.write(
        `\x1b[H\x1b[2J${renderLive(now, before, `mbc run ${escapeControls(specPath)} — ${model.name} (logs: ${relative(process.cwd(), logFile)})`)}`,
      );
      before = now;
    };
    timer = setInterval(() => void tick(), 1000);
  }
  const code = await exited;
  if (timer) clearInterval(timer);
  if (logFd !== null) closeSync(logFd);
  process.stderr.write(code === 0 ? "mbc: stopped cleanly\n" : `mbc: the runtime exited with code ${code}\n`);
  // 2: the runtime's setup was refused (another runtime took the state folder meanwhile).
  return code === 0 ? EXIT_OK : code === EXIT_USAGE ? EXIT_USAGE : EXIT_SPEC_ERRORS;
}
