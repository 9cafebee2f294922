/**
 * The simulator part of `npm run bench`: simulated events per second on large runs, each in a
 * fresh process (sim-child.mjs) that loads the spec, warms up with a short simulation and
 * then times one long one; only `simulate()` is timed.
 *
 *   - the design example simulated for 1 h (two weighted instances, one sink);
 *   - the heavy spec (specs/heavy.yaml) for 5 min: fan-out, power-of-two-choices, 2 % failures,
 *     retries and budgets, faults;
 *   - the 10,000-service spec of gen-spec.mjs for 10 s, once and cold (no warm-up): the time it
 *     takes, its events per second and its peak RSS.
 *
 * The first two are run in interleaved rounds and their medians compared with the target.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSpec } from "./gen-spec.mjs";
import { childEnv, makeTempDir, median, removeTempDir } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const CHILD = join(here, "sim-child.mjs");

export const SIMULATE_TARGETS = { eventsPerSec: 2_000_000 };

/** Runs one simulation in a child; its JSON line. */
function simulateOnce(spec, durationMs, warmupMs) {
  const r = spawnSync(process.execPath, [CHILD, spec, String(durationMs), String(warmupMs)], {
    cwd: root,
    encoding: "utf8",
    env: childEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) throw new Error(`simulating ${spec} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop());
}

/** opts: rounds, largeServices, largeDurationMs. */
export function runSimulateBench(opts, note) {
  const cases = [
    { key: "example", label: "example, 1 h", spec: join(root, "examples/01-design-document/microbatch.yaml"), durationMs: 3_600_000, warmupMs: 60_000 },
    { key: "heavy", label: "heavy spec, 5 min", spec: join(here, "specs/heavy.yaml"), durationMs: 300_000, warmupMs: 10_000 },
  ];
  note(`simulate: ${opts.rounds} interleaved round(s) of ${cases.length} simulations, each in a fresh process after a warm-up run\n`);
  const samples = Object.fromEntries(cases.map((c) => [c.key, []]));
  for (let r = 0; r < opts.rounds; r++) {
    for (const c of cases) samples[c.key].push(simulateOnce(c.spec, c.durationMs, c.warmupMs));
    if (process.stderr.isTTY) note(`\r  round ${r + 1}/${opts.rounds}${r + 1 === opts.rounds ? "\n" : ""}`);
  }
  const summary = {};
  for (const c of cases) {
    const runs = samples[c.key];
    const rates = runs.map((s) => (s.events / s.simulateMs) * 1000);
    summary[c.key] = {
      label: c.label,
      spec: c.spec.slice(root.length + 1),
      durationMs: c.durationMs,
      events: runs[0].events,
      medianMs: median(runs.map((s) => s.simulateMs)),
      eventsPerSec: median(rates),
      minEventsPerSec: Math.min(...rates),
      maxRssBytes: Math.max(...runs.map((s) => s.maxRssBytes)),
      runs,
      met: median(rates) >= SIMULATE_TARGETS.eventsPerSec,
    };
  }

  const dir = makeTempDir("mbc-bench-sim-");
  try {
    note(`simulate: the ${opts.largeServices}-service spec for ${opts.largeDurationMs / 1000} s, once, cold\n`);
    const spec = writeSpec(dir, opts.largeServices);
    const s = simulateOnce(spec, opts.largeDurationMs, 0);
    summary.large = {
      label: `${opts.largeServices} services, ${opts.largeDurationMs / 1000} s`,
      services: s.services,
      instances: s.instances,
      durationMs: opts.largeDurationMs,
      events: s.events,
      loadMs: s.loadMs,
      simulateMs: s.simulateMs,
      eventsPerSec: (s.events / s.simulateMs) * 1000,
      maxRssBytes: s.maxRssBytes,
    };
  } finally {
    removeTempDir(dir);
  }
  return summary;
}
