/**
 * The commands that `mbc validate` does not need: simulate, build and run, with what only they
 * use (the simulator, the report, the generators and their templates, the live figures).
 * src/cli.ts imports this module when one of them runs, which is where the CLI's bundle is split;
 * like src/cli.ts, it prints and decides exit codes, and leaves the exit itself to `main`.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fidelityWarnings, renderFidelity } from "./build/fidelity.js";
import { generators } from "./build/generators.js";
import { buildArtefacts, TARGET_IDS, type TargetId } from "./build/index.js";
import { gatherBuildInputs } from "./build/inputs.js";
import type { Artefact } from "./build/types.js";
import { checkTarget, writeTarget } from "./build/write.js";
import { childProcess, writeStdout } from "./builtins-lazy.js";
import { EXIT_OK, EXIT_SPEC_ERRORS, EXIT_USAGE, fail, loadForCommand, useColor } from "./cli.js";
import { hasErrors } from "./diagnostic.js";
import { parseDuration, parseRate } from "./model/units.js";
import { createProgress, noProgress, renderReport, renderTable, seriesBuckets } from "./report/index.js";
import { duration as showDuration } from "./report/numbers.js";
import { liveEndpoints, renderLive, type Snapshot, snapshot } from "./run/live.js";
import { resolveEnv } from "./runtime/config/index.js";
import { describeHolder } from "./runtime/core/file-lock.js";
import { findOwner, supervisorLock } from "./runtime/core/ownership.js";
import { simulate } from "./simulate/index.js";
import { UsageError } from "./usage-error.js";
import { blocksSimulation, strictFailures } from "./validate/simulate-findings.js";
import { VERSION } from "./version.js";

// `mbc validate --simulate` runs the simulation too.
export { simulate };

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

export interface SimulateFlags {
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

export async function runSimulate(file: string | undefined, opts: SimulateFlags): Promise<number> {
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
    writeStdout(`${JSON.stringify(plain, null, 2)}\n`);
  } else writeStdout(renderTable(result, { color: useColor(1), file: loaded.file }));

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

export async function runBuild(
  file: string | undefined,
  opts: { out: string; target?: string; env?: string; check?: boolean; templates?: string; strict?: boolean; explain?: boolean },
): Promise<number> {
  const targets = parseTargets(opts.target);
  if (opts.explain) {
    writeStdout(renderFidelity(Object.fromEntries(targets.map((t) => [t, generators[t].fidelity]))));
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
  let byTarget: Map<TargetId, Artefact[]>;
  try {
    const inputs = gatherBuildInputs({
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
        for (const f of list) writeStdout(`${what.padEnd(8)}${join(dir, f)}\n`);
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
    writeStdout(`wrote ${dir} (${artefacts.length} files)\n`);
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

export async function runRun(file: string | undefined, opts: { env?: string }): Promise<number> {
  const { loaded, file: specPath } = await loadForCommand(file, opts.env, "run");
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
      process.stdout.write(`\x1b[H\x1b[2J${renderLive(now, before, `mbc run ${specPath} — ${model.name} (logs: ${relative(process.cwd(), logFile)})`)}`);
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
