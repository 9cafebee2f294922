#!/usr/bin/env node
/**
 * `npm run bench`: how fast `mbc validate` is, from a cold process.
 *
 *   1. Start-up: `mbc validate` of the example against the bare floor (`node -e 0`) and against
 *      ajv-cli validating the same file with the same schema. Runs are interleaved (a, b, c,
 *      a, b, c, …) after warm-up runs, so machine noise hits all three alike; medians are
 *      compared with the targets mbc/floor ≤ 1.5× and mbc/ajv-cli < 1×.
 *   2. Scale: `mbc validate` of generated specs with 1,000 and 10,000 services (written to a
 *      temp folder); the growth factor of the time should be about linear (≈10×).
 *
 * Benchmarks report, they do not fail: the exit status is 0 whether or not a target is met,
 * and 1 only when a command under test does not run as expected (its numbers would be wrong).
 *
 * Options: --json (results as JSON on stdout; the table goes to stderr), --json=FILE (write
 * them to FILE as well as printing the table), --runs=N (start-up runs each, default 15),
 * --large-runs=N (runs of each generated spec, default 5), --sizes=A,B (default 1000,10000).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSpec } from "./gen-spec.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLE = "examples/01-design-document/microbatch.yaml";
const SCHEMA = "schema/mbc.schema.json";
const MBC = join(root, "bin/mbc");
const AJV_CLI = join(root, "node_modules/ajv-cli/dist/index.js");
const TARGETS = { floorRatio: 1.5, ajvRatio: 1, linearGrowth: 13 };

function parseArgs(argv) {
  const opts = { json: false, jsonFile: null, runs: 15, warmup: 3, largeRuns: 5, sizes: [1000, 10000] };
  const int = (v, name) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) usage(`${name} needs a positive integer, not ${JSON.stringify(v)}`);
    return n;
  };
  for (const arg of argv) {
    const [key, value] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (key === "--json") {
      if (value === undefined) opts.json = true;
      else opts.jsonFile = value;
    } else if (key === "--runs") opts.runs = int(value, "--runs");
    else if (key === "--large-runs") opts.largeRuns = int(value, "--large-runs");
    else if (key === "--sizes") opts.sizes = (value ?? "").split(",").map((s) => int(s, "--sizes"));
    else if (key === "-h" || key === "--help") {
      process.stdout.write("usage: node bench/run.mjs [--json | --json=FILE] [--runs=N] [--large-runs=N] [--sizes=A,B]\n");
      process.exit(0);
    } else usage(`unknown option ${arg}`);
  }
  if (opts.sizes.length !== 2) usage("--sizes takes two sizes, the small one first");
  return opts;
}

function usage(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

/** Runs one command in a fresh process; returns its wall time in ms. */
function timeRun(cmd) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, cmd.args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit status ${r.status}`;
    throw new Error(`${cmd.label} did not run as expected (${why}):\n${String(r.stderr ?? "").slice(0, 2000)}${String(r.stdout ?? "").slice(0, 2000)}`);
  }
  return ms;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Warm-up runs, then `runs` rounds of every command in turn; the samples of each. */
function interleave(cmds, runs, warmup, progress) {
  for (let w = 0; w < warmup; w++) for (const c of cmds) timeRun(c);
  const samples = cmds.map(() => []);
  for (let r = 0; r < runs; r++) {
    cmds.forEach((c, i) => {
      samples[i].push(timeRun(c));
    });
    progress(r + 1, runs);
  }
  return cmds.map((c, i) => ({
    label: c.label,
    command: c.shown,
    runs: runs,
    medianMs: median(samples[i]),
    minMs: Math.min(...samples[i]),
    samplesMs: samples[i],
  }));
}

/** The diagnostics that `mbc validate --format json` reports for a file. */
function diagnosticsOf(file) {
  const r = spawnSync(process.execPath, [MBC, "validate", "--format", "json", file], { cwd: root, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.status === 2 || r.error) throw new Error(`mbc validate ${file} failed: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout).diagnostics;
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const right = rows[0].map((_, c) => rows.slice(1).every((r) => /^[0-9.,×≈<≤ -]+(ms|×)?$/.test(String(r[c])) || r[c] === ""));
  const line = (r) =>
    r
      .map((cell, c) => (right[c] ? String(cell).padStart(widths[c]) : String(cell).padEnd(widths[c])))
      .join("  ")
      .trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

const ms = (x) => `${x.toFixed(1)} ms`;
const ratio = (x) => `${x.toFixed(2)}×`;

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = opts.json ? process.stderr : process.stdout;
  const note = (s) => process.stderr.write(s);
  // Progress as "round k/n" rewritten in place, on a terminal only.
  const progress = (r, n) => {
    if (process.stderr.isTTY) note(`\r  round ${r}/${n}${r === n ? "\n" : ""}`);
  };
  for (const [what, path] of [
    ["the built CLI (run npm run build)", join(root, "dist/cli.mjs")],
    ["ajv-cli (npm install)", AJV_CLI],
  ]) {
    if (!existsSync(path)) usage(`missing ${what}: ${relative(root, path)}`);
  }

  // 1. Start-up.
  const startup = [
    { label: "mbc validate", shown: `node bin/mbc validate ${EXAMPLE}`, args: [MBC, "validate", EXAMPLE] },
    { label: "floor", shown: "node -e 0", args: ["-e", "0"] },
    {
      label: "ajv-cli validate",
      shown: `ajv validate --spec=draft2020 --strict=false -s ${SCHEMA} -d ${EXAMPLE}`,
      args: [AJV_CLI, "validate", "--spec=draft2020", "--strict=false", "-s", SCHEMA, "-d", EXAMPLE],
    },
  ];
  note(`start-up: ${opts.warmup} warm-up round(s), then ${opts.runs} interleaved round(s) of ${startup.length} commands\n`);
  const cold = interleave(startup, opts.runs, opts.warmup, progress);
  const [mbc, floor, ajv] = cold;
  const floorRatio = mbc.medianMs / floor.medianMs;
  const ajvRatio = mbc.medianMs / ajv.medianMs;

  // 2. Scale.
  const dir = mkdtempSync(join(tmpdir(), "mbc-bench-"));
  let scale;
  try {
    const specs = opts.sizes.map((n) => {
      const file = writeSpec(join(dir, `n${n}`), n);
      const diagnostics = diagnosticsOf(file);
      const errors = diagnostics.filter((d) => d.severity === "error").length;
      if (errors > 0) throw new Error(`the generated spec with ${n} services has ${errors} error(s); first: ${JSON.stringify(diagnostics[0])}`);
      return { services: n, file, diagnostics: diagnostics.length };
    });
    note(`scale: 1 warm-up round, then ${opts.largeRuns} interleaved round(s) of mbc validate on ${opts.sizes.join(" and ")} services\n`);
    const cmds = specs.map((s) => ({
      label: `mbc validate (${s.services} services)`,
      shown: `node bin/mbc validate <${s.services}-service spec>`,
      args: [MBC, "validate", s.file],
    }));
    const timed = interleave(cmds, opts.largeRuns, 1, progress);
    scale = specs.map((s, i) => ({ services: s.services, diagnostics: s.diagnostics, ...timed[i] }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const [small, large] = scale;
  const growth = large.medianMs / small.medianMs;
  const sizeFactor = large.services / small.services;
  // Start-up is paid once at either size; the work alone is the time above the floor.
  const workGrowth = (large.medianMs - floor.medianMs) / (small.medianMs - floor.medianMs);
  const linearLimit = (TARGETS.linearGrowth * sizeFactor) / 10;

  const met = (ok) => (ok ? "met" : "NOT met");
  const rows = [
    ["measure", "median", "min", "target", "result"],
    [`${mbc.label} (example)`, ms(mbc.medianMs), ms(mbc.minMs), "", ""],
    [`${floor.label} (node -e 0)`, ms(floor.medianMs), ms(floor.minMs), "", ""],
    [`${ajv.label} (example)`, ms(ajv.medianMs), ms(ajv.minMs), "", ""],
    ["mbc / floor", ratio(floorRatio), "", `≤ ${ratio(TARGETS.floorRatio)}`, met(floorRatio <= TARGETS.floorRatio)],
    ["mbc / ajv-cli", ratio(ajvRatio), "", `< ${ratio(TARGETS.ajvRatio)}`, met(ajvRatio < TARGETS.ajvRatio)],
    ...scale.map((s) => [`${s.label}`, ms(s.medianMs), ms(s.minMs), "", s.diagnostics === 0 ? "0 diagnostics" : `${s.diagnostics} diagnostics`]),
    [
      `growth ${large.services}/${small.services}`,
      ratio(growth),
      "",
      `≈ ${ratio(sizeFactor)}`,
      growth <= linearLimit ? "about linear" : "super-linear: NOT met",
    ],
    [`  above the floor`, ratio(workGrowth), "", `≈ ${ratio(sizeFactor)}`, workGrowth <= linearLimit ? "about linear" : "super-linear: NOT met"],
  ];
  out.write(`\nmbc validate benchmark — node ${process.version}, ${process.platform}/${process.arch}, ${cpus().length} cpu(s)\n\n${table(rows)}\n`);

  const results = {
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpus: cpus().length,
    startup: {
      example: EXAMPLE,
      warmup: opts.warmup,
      commands: cold,
      ratios: {
        mbcOverFloor: { value: floorRatio, target: TARGETS.floorRatio, met: floorRatio <= TARGETS.floorRatio },
        mbcOverAjvCli: { value: ajvRatio, target: TARGETS.ajvRatio, met: ajvRatio < TARGETS.ajvRatio },
      },
    },
    scale: {
      specs: scale,
      growth: { value: growth, workAboveFloor: workGrowth, sizeFactor, limit: linearLimit, aboutLinear: growth <= linearLimit },
    },
  };
  const json = `${JSON.stringify(results, null, 2)}\n`;
  if (opts.json) process.stdout.write(json);
  if (opts.jsonFile) {
    writeFileSync(opts.jsonFile, json);
    note(`wrote ${opts.jsonFile}\n`);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
