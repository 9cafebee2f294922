/**
 * One simulation in a fresh process, for bench/simulate.mjs:
 *
 *   node bench/sim-child.mjs SPEC DURATION_MS [WARMUP_MS]
 *
 * Loads and validates SPEC with the built API (dist/index.mjs), simulates WARMUP_MS first when
 * given (so the timed run finds the code compiled), then DURATION_MS, and prints one JSON line:
 * {events, simulateMs, loadMs, services, instances, maxRssBytes}. Only `simulate()` is timed.
 * Exit 1 when the spec has errors.
 */
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { loadSpec, simulate } = await import(pathToFileURL(join(root, "dist/index.mjs")).href);

const [spec, durationArg, warmupArg] = process.argv.slice(2);
const durationMs = Number(durationArg);
const warmupMs = Number(warmupArg ?? 0);
if (!spec || !(durationMs > 0)) {
  process.stderr.write("usage: node bench/sim-child.mjs SPEC DURATION_MS [WARMUP_MS]\n");
  process.exit(2);
}

let t = performance.now();
const loaded = await loadSpec(spec);
const loadMs = performance.now() - t;
const errors = loaded.diagnostics.filter((d) => d.severity === "error");
if (loaded.model === null || errors.length > 0) {
  process.stderr.write(`${spec}: ${errors.length} error(s); first: ${JSON.stringify(errors[0] ?? null)}\n`);
  process.exit(1);
}
const model = loaded.model;
if (warmupMs > 0) simulate(model, { durationMs: warmupMs });
t = performance.now();
const result = simulate(model, { durationMs });
const simulateMs = performance.now() - t;
process.stdout.write(
  `${JSON.stringify({
    events: result.events,
    simulateMs,
    loadMs,
    services: model.services.length,
    instances: model.services.reduce((n, s) => n + s.instances.length, 0),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  })}\n`,
);
