#!/usr/bin/env node
/**
 * `npm run bench`: how fast mbc validates, simulates and runs. Three parts, each with a table:
 *
 *   validate  1. Start-up: `mbc validate` of the example against the bare floor (`node -e 0`)
 *               and against ajv-cli validating the same file with the same schema. Runs are
 *               interleaved (a, b, c, a, b, c, …) after warm-up runs, so machine noise hits all
 *               three alike; medians are compared with the targets mbc/floor ≤ 1.5× and
 *               mbc/ajv-cli < 1×.
 *             2. Scale: `mbc validate` of generated specs with 1,000 and 10,000 services
 *               (written to a temp folder); the growth factor should be about linear (≈10×).
 *   simulate  Simulated events per second (target ≥ 2 million) on the example simulated for
 *             1 h and on a heavy spec (fan-out, failures, power-of-two-choices) for 5 min, in
 *             interleaved rounds; and the time to simulate the 10,000-service spec for 10 s
 *             (simulate.mjs).
 *   runtime   The node target as built and run: records/s of the durable pipeline (http source
 *             → processor → jsonl sink, fsync on) from POST until stored, against a bare
 *             loopback forwarder doing the same hops in the same run (target ≥ 40 %); 500-record
 *             bodies against 1-record bodies (target ≥ 20×); the peak RSS of every runtime
 *             process under 3× overload (target ≤ 256 MiB) (runtime.mjs).
 *   package   The tarball `npm pack` makes of the build (lifecycle scripts off): its size against
 *             the budget that test/tools/package.test.ts enforces, its unpacked size, and what
 *             takes the room, by kind of file (package.mjs).
 *
 * Benchmarks report, they do not fail: the exit status is 0 whether or not a target is met,
 * and 1 only when a command under test does not run as expected (its numbers would be wrong)
 * — which includes a runtime run that loses an acknowledged record.
 *
 * Options: --only=PART[,PART] (validate, simulate, runtime, package; default all), --json (results as
 * JSON on stdout; the tables go to stderr), --json=FILE (write them to FILE as well as printing
 * the tables), --runs=N (start-up runs each, default 15), --large-runs=N (runs of each
 * generated spec, default 5), --sizes=A,B (default 1000,10000), --sim-rounds=N (default 3),
 * --sim-services=N (default 10000), --rt-rounds=N (default 5), --rt-seconds=N (posting time of
 * each runtime run, default 3), --rt-clients=N (default 16), --overload-seconds=N (default 10),
 * --slow-rate=N (records/s of the overload run's processor, default 10000).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { writeSpec } from "./gen-spec.mjs";
import { grouped, killChildren, makeTempDir, median, met, removeTempDir, table } from "./lib.mjs";
import { fileKind, PACKAGE_BUDGET, packPackage } from "./package.mjs";
import { RUNTIME_TARGETS, runRuntimeBench } from "./runtime.mjs";
import { runSimulateBench, SIMULATE_TARGETS } from "./simulate.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLE = "examples/01-design-document/microbatch.yaml";
const SCHEMA = "schema/mbc.schema.json";
const MBC = join(root, "bin/mbc");
const AJV_CLI = join(root, "node_modules/ajv-cli/dist/index.js");
const TARGETS = { floorRatio: 1.5, ajvRatio: 1, linearGrowth: 13 };
const PARTS = ["validate", "simulate", "runtime", "package"];

const USAGE = `usage: node bench/run.mjs [--only=validate,simulate,runtime,package] [--json | --json=FILE]
  validate: [--runs=N] [--large-runs=N] [--sizes=A,B]
  simulate: [--sim-rounds=N] [--sim-services=N]
  runtime:  [--rt-rounds=N] [--rt-seconds=N] [--rt-clients=N] [--overload-seconds=N] [--slow-rate=N]
`;

function parseArgs(argv) {
  const opts = {
    only: PARTS,
    json: false,
    jsonFile: null,
    runs: 15,
    warmup: 3,
    largeRuns: 5,
    sizes: [1000, 10000],
    simRounds: 3,
    simServices: 10000,
    rtRounds: 5,
    rtSeconds: 3,
    rtClients: 16,
    overloadSeconds: 10,
    slowRate: 10000,
  };
  const int = (v, name) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) usage(`${name} needs a positive integer, not ${JSON.stringify(v)}`);
    return n;
  };
  const ints = {
    "--runs": "runs",
    "--large-runs": "largeRuns",
    "--sim-rounds": "simRounds",
    "--sim-services": "simServices",
    "--rt-rounds": "rtRounds",
    "--rt-seconds": "rtSeconds",
    "--rt-clients": "rtClients",
    "--overload-seconds": "overloadSeconds",
    "--slow-rate": "slowRate",
  };
  for (const arg of argv) {
    const [key, value] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (key === "--json") {
      if (value === undefined) opts.json = true;
      else opts.jsonFile = value;
    } else if (key in ints) opts[ints[key]] = int(value, key);
    else if (key === "--sizes") opts.sizes = (value ?? "").split(",").map((s) => int(s, "--sizes"));
    else if (key === "--only") {
      const only = (value ?? "").split(",").filter((s) => s !== "");
      const bad = only.filter((p) => !PARTS.includes(p));
      if (only.length === 0 || bad.length > 0) usage(`--only takes ${PARTS.join(", ")} (comma-separated), not ${JSON.stringify(value ?? "")}`);
      opts.only = PARTS.filter((p) => only.includes(p));
    } else if (key === "-h" || key === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else usage(`unknown option ${arg}`);
  }
  if (opts.sizes.length !== 2) usage("--sizes takes two sizes, the small one first");
  if (opts.simServices < 2) usage("--sim-services needs at least 2");
  return opts;
}

function usage(message) {
  process.stderr.write(`bench: ${message}\n${USAGE}`);
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

const ms = (x) => `${grouped(x, 1)} ms`;
const ratio = (x) => `${x.toFixed(2)}×`;
const mib = (bytes) => `${grouped(bytes / (1024 * 1024))} MiB`;
const perSec = (x) => `${grouped(x)}/s`;
const mega = (x) => `${(x / 1e6).toFixed(2)} M/s`;
const kB = (bytes) => `${grouped(bytes / 1000, 1)} kB`;

// ---------------------------------------------------------------------------------------------

function validatePart(opts, note, progress) {
  for (const [what, path] of [
    ["the built CLI (run npm run build)", join(root, "dist/cli.cjs")],
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
  const dir = makeTempDir("mbc-bench-");
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
    removeTempDir(dir);
  }
  const [small, large] = scale;
  const growth = large.medianMs / small.medianMs;
  const sizeFactor = large.services / small.services;
  // Start-up is paid once at either size; the work alone is the time above the floor.
  const workGrowth = (large.medianMs - floor.medianMs) / (small.medianMs - floor.medianMs);
  const linearLimit = (TARGETS.linearGrowth * sizeFactor) / 10;

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
  const results = {
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
  return { title: "mbc validate", rows, results, failed: false };
}

function simulatePart(opts, note) {
  const sim = runSimulateBench({ rounds: opts.simRounds, largeServices: opts.simServices, largeDurationMs: 10_000 }, note);
  const target = `≥ ${mega(SIMULATE_TARGETS.eventsPerSec)}`;
  const rows = [
    ["simulation", "events", "simulate()", "events/s", "target", "result"],
    ...[sim.example, sim.heavy].map((s) => [
      `${s.label} (median of ${s.runs.length})`,
      grouped(s.events),
      ms(s.medianMs),
      mega(s.eventsPerSec),
      target,
      met(s.met),
    ]),
    [
      `${sim.large.label} (once, cold)`,
      grouped(sim.large.events),
      ms(sim.large.simulateMs),
      mega(sim.large.eventsPerSec),
      "",
      `${sim.large.instances} instances; peak RSS ${mib(sim.large.maxRssBytes)}; spec loaded in ${ms(sim.large.loadMs)}`,
    ],
  ];
  return { title: "mbc simulate (the API's simulate())", rows, results: { targets: SIMULATE_TARGETS, ...sim }, failed: false };
}

/** "ok", or what went wrong with the records of a set of runs. */
function recordCheck(c) {
  if (c.missing > 0) return `FAILED: lost ${grouped(c.missing)} of ${grouped(c.acknowledged)} acknowledged records`;
  if (c.duplicates > 0) return `FAILED: ${grouped(c.duplicates)} records stored twice`;
  if (c.errors > 0) return `FAILED: ${grouped(c.errors)} requests failed`;
  return `all ${grouped(c.acknowledged)} stored once`;
}

async function runtimePart(opts, note) {
  const rt = await runRuntimeBench(
    {
      rounds: opts.rtRounds,
      seconds: opts.rtSeconds,
      clients: opts.rtClients,
      overloadSeconds: opts.overloadSeconds,
      capacitySeconds: 3,
      slowRate: opts.slowRate,
    },
    note,
  );
  const { cases, ratios } = rt.throughput;
  const o = rt.overload;
  const share = ratios.overForwarder;
  const range = (c) => `${grouped(c.minRecordsPerSec)}–${grouped(c.maxRecordsPerSec)}`;
  const caseRow = (c) => [`${c.label}`, perSec(c.medianRecordsPerSec), range(c), "", "", recordCheck(c)];
  const rss = o.rss;
  const rssMax = rss?.maxBytes ?? null;
  const rows = [
    ["measure", "median", "min–max", "target", "result", "records"],
    caseRow(cases.batched),
    caseRow(cases.forwarder),
    [
      "durable / bare forwarder",
      `${(share * 100).toFixed(1)} %`,
      "",
      `≥ ${RUNTIME_TARGETS.forwarderShare * 100} %`,
      met(share >= RUNTIME_TARGETS.forwarderShare),
      "",
    ],
    caseRow(cases.single),
    [
      "500-record / 1-record bodies",
      ratio(ratios.batchedOverSingle),
      "",
      `≥ ${ratio(RUNTIME_TARGETS.batchedOverSingle)}`,
      met(ratios.batchedOverSingle >= RUNTIME_TARGETS.batchedOverSingle),
      "",
    ],
    caseRow(cases.maxRecords1),
    ["maxRecords 500 / maxRecords 1", ratio(ratios.batchedOverMaxRecords1), "", "(info)", "", ""],
    [`overload: capacity (${grouped(o.slowRate)}/s processor)`, perSec(o.capacity.recordsPerSec), "", "", "", recordCheck({ ...o.capacity })],
    [
      `overload: 3× offered for ${o.seconds} s`,
      perSec(o.offeredPerSec),
      "",
      "",
      `${grouped(o.requests - o.refused - o.errors)} of ${grouped(o.requests)} requests taken, ${grouped(o.refused)} refused (503)`,
      recordCheck(o),
    ],
    [
      "overload: peak RSS, largest process",
      rssMax === null ? "n/a" : mib(rssMax),
      "",
      `≤ ${RUNTIME_TARGETS.peakRssMiB} MiB`,
      rssMax === null ? "not measured (no /proc)" : `${met(rssMax <= RUNTIME_TARGETS.peakRssMiB * 1024 * 1024)} (${rss.maxProcess})`,
      "",
    ],
    [
      "overload: peak RSS, all processes",
      rss === null ? "n/a" : mib(rss.maxSumBytes),
      "",
      "",
      rss === null ? "" : `${Object.keys(rss.byProcessBytes).length} processes`,
      "",
    ],
  ];
  const failed = !Object.values(cases).every((c) => c.ok) || !o.ok || (rt.throughput.runtimeExit?.code ?? 1) !== 0 || (o.runtimeExit?.code ?? 1) !== 0;
  const results = {
    targets: RUNTIME_TARGETS,
    ...rt,
    ratios: {
      durableOverForwarder: { value: share, target: RUNTIME_TARGETS.forwarderShare, met: share >= RUNTIME_TARGETS.forwarderShare },
      batchedOverSingleRecordBodies: {
        value: ratios.batchedOverSingle,
        target: RUNTIME_TARGETS.batchedOverSingle,
        met: ratios.batchedOverSingle >= RUNTIME_TARGETS.batchedOverSingle,
      },
      batchedOverMaxRecords1: { value: ratios.batchedOverMaxRecords1 },
      peakRssMiB: {
        value: rssMax === null ? null : rssMax / (1024 * 1024),
        target: RUNTIME_TARGETS.peakRssMiB,
        met: rssMax !== null && rssMax <= RUNTIME_TARGETS.peakRssMiB * 1024 * 1024,
      },
    },
  };
  const notes = [
    `${opts.rtClients} keep-alive clients; ${opts.rtSeconds} s of posting a run, ${opts.rtRounds} interleaved round(s) after a warm-up; records/s from the first POST until the sink holds every acknowledged record.`,
    "1-record bodies go to the same source (maxRecords 500, maxWait 50ms): the pipeline still batches them, so this is what clients gain by batching their requests.",
  ];
  if (failed) notes.push("A run lost, duplicated or failed records, or the runtime did not stop cleanly: see the records column and the JSON.");
  return { title: "mbc runtime (node target, fsync on)", rows, results, failed, notes };
}

function packagePart(note) {
  const dir = makeTempDir("mbc-bench-pack-");
  let packed;
  try {
    note("package: npm pack --ignore-scripts\n");
    packed = packPackage(dir);
  } finally {
    removeTempDir(dir);
  }
  // What takes the room, by kind: the bytes of each kind of file, and gzip's size of them one by
  // one (the tarball compresses them together, so the sum only approximates its size).
  const kinds = new Map();
  for (const f of packed.files) {
    const kind = fileKind(f.path);
    const k = kinds.get(kind) ?? { kind, files: 0, bytes: 0, gzipBytes: 0 };
    k.files++;
    k.bytes += f.size;
    k.gzipBytes += gzipSync(readFileSync(join(root, f.path)), { level: 9 }).length;
    kinds.set(kind, k);
  }
  const byKind = [...kinds.values()].sort((a, b) => b.gzipBytes - a.gzipBytes);
  const gzipTotal = byKind.reduce((n, k) => n + k.gzipBytes, 0);
  const withinBudget = packed.size <= PACKAGE_BUDGET.tarballBytes;
  const rows = [
    ["measure", "size", "files", "target", "result"],
    [`tarball (${packed.name}@${packed.version})`, kB(packed.size), String(packed.files.length), `≤ ${kB(PACKAGE_BUDGET.tarballBytes)}`, met(withinBudget)],
    ["unpacked", kB(packed.unpackedSize), "", "", ""],
    ...byKind.map((k) => [
      `  ${k.kind}`,
      `${kB(k.bytes)} (≈ ${kB(k.gzipBytes)} gzip)`,
      String(k.files),
      "",
      `${((k.gzipBytes / gzipTotal) * 100).toFixed(0)} % of the tarball`,
    ]),
  ];
  const results = {
    budget: PACKAGE_BUDGET,
    tarballBytes: packed.size,
    unpackedBytes: packed.unpackedSize,
    files: packed.files.length,
    withinBudget,
    byKind,
  };
  const notes = ["The budget is enforced by test/tools/package.test.ts; the bench only reports it (PACKAGE_BUDGET in bench/package.mjs)."];
  return { title: "the npm package", rows, results, failed: false, notes };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = opts.json ? process.stderr : process.stdout;
  const note = (s) => process.stderr.write(s);
  // Progress as "round k/n" rewritten in place, on a terminal only.
  const progress = (r, n) => {
    if (process.stderr.isTTY) note(`\r  round ${r}/${n}${r === n ? "\n" : ""}`);
  };
  if (!existsSync(join(root, "dist/index.mjs")) || !existsSync(join(root, "dist/runtime/mbc-runtime.mjs"))) usage("missing the build: run npm run build");
  const [load1] = loadavg();
  const results = { node: process.version, platform: `${process.platform}/${process.arch}`, cpus: cpus().length, loadAverageAtStart: load1 };
  const parts = [];
  let failed = false;
  for (const part of opts.only) {
    const started = Date.now();
    let p;
    if (part === "validate") p = validatePart(opts, note, progress);
    else if (part === "simulate") p = simulatePart(opts, note);
    else if (part === "package") p = packagePart(note);
    else p = await runtimePart(opts, note);
    p.seconds = (Date.now() - started) / 1000;
    results[part] = { seconds: p.seconds, ...p.results };
    failed ||= p.failed;
    parts.push(p);
    note(`${part}: ${p.seconds.toFixed(0)} s\n`);
  }

  out.write(
    `\nmbc benchmark — node ${process.version}, ${process.platform}/${process.arch}, ${cpus().length} cpu(s), load average ${load1.toFixed(2)} at start\n`,
  );
  for (const p of parts) {
    out.write(`\n${p.title} (${p.seconds.toFixed(0)} s)\n\n${table(p.rows)}\n`);
    for (const n of p.notes ?? []) out.write(`  ${n}\n`);
  }

  const json = `${JSON.stringify(results, null, 2)}\n`;
  if (opts.json) process.stdout.write(json);
  if (opts.jsonFile) {
    writeFileSync(opts.jsonFile, json);
    note(`wrote ${opts.jsonFile}\n`);
  }
  if (failed) process.exitCode = 1;
}

const onSignal = () => {
  killChildren().finally(() => process.exit(130));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await killChildren();
}
