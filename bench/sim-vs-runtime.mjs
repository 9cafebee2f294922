// Runs the design documents' example for real at a fixed rate and compares each instance's
// measured share and utilisation with what `mbc simulate` predicts for the same spec.
//
//   node bench/sim-vs-runtime.mjs [--seconds 20] [--json]
//
// The example's handler does no real work, so this copy gives data-processing a handler that
// behaves like a server of the spec's capacity: one batch at a time, records/capacity seconds
// each. A generator source offers the spec's rate. Measured utilisation is the handler's busy
// time over the wall time of the measuring window; share is the instance's records over all.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf("--seconds") + 1] ?? 20) || 20;
const asJson = args.includes("--json");
const mbc = join(root, "bin", "mbc");

async function freePort() {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function freeRange(n) {
  for (let tries = 0; tries < 50; tries++) {
    const base = await freePort();
    let ok = true;
    for (let k = 1; k < n && ok; k++) {
      ok = await new Promise((resolve) => {
        const s = createServer();
        s.once("error", () => resolve(false));
        s.listen(base + k, "127.0.0.1", () => s.close(() => resolve(true)));
      });
    }
    if (ok) return base;
  }
  throw new Error("no free port range");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const HANDLER = `import { writeFileSync } from "node:fs";
// A server of config.capacity records/s: one batch at a time, records/capacity seconds each.
let queue = Promise.resolve();
let busyMs = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default async function process(records, ctx) {
  const turn = queue.then(async () => {
    const start = performance.now();
    await sleep((records.length / ctx.config.capacity) * 1000);
    busyMs += performance.now() - start;
    writeFileSync(\`\${ctx.config.out}/busy-\${ctx.instance}\`, String(busyMs));
  });
  queue = turn.catch(() => {});
  await turn;
  return records;
}
`;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "mbc-sim-vs-run-"));
  const children = [];
  try {
    cpSync(join(root, "examples", "01-design-document"), join(dir, "spec"), { recursive: true });
    const specPath = join(dir, "spec", "microbatch.yaml");
    const doc = parseDocument(readFileSync(specPath, "utf8"));
    const rate = doc.getIn(["sources", "input", "rate"]);
    const batch = doc.getIn(["sources", "input", "batch"]).toJSON();
    const capacity = 2000;
    doc.setIn(["sources", "input"], doc.createNode({ type: "generator", rate, batch, record: { seq: "{{seq}}" }, to: "data-processing" }));
    doc.setIn(["registry", "port"], await freePort());
    doc.setIn(["services", "data-processing", "port"], await freeRange(2));
    doc.setIn(["services", "result-storage", "port"], await freePort());
    doc.setIn(["services", "data-processing", "config"], doc.createNode({ capacity, out: join(dir, "busy") }));
    doc.deleteIn(["environments"]);
    writeFileSync(specPath, doc.toString());
    writeFileSync(join(dir, "spec", "handlers", "process.mjs"), HANDLER);
    mkdirSync(join(dir, "busy"), { recursive: true });

    // The prediction: mbc simulate, long enough for steady state.
    const sim = spawnSync(process.execPath, [mbc, "simulate", specPath, "--format", "json", "--duration", "120s"], { encoding: "utf8" });
    if (sim.status !== 0) throw new Error(`mbc simulate failed: ${sim.stderr}`);
    const predicted = JSON.parse(sim.stdout).services.find((s) => s.name === "data-processing");

    const build = spawnSync(process.execPath, [mbc, "build", specPath, "--target", "node", "-o", join(dir, "build")], { encoding: "utf8" });
    if (build.status !== 0) throw new Error(`mbc build failed: ${build.stderr}`);
    const runtime = spawn(process.execPath, [join(dir, "build", "node", "mbc-runtime.mjs")], {
      env: { ...process.env, MBC_DATA_DIR: join(dir, "data"), MBC_STATE_DIR: join(dir, "state") },
      stdio: ["ignore", "ignore", "ignore"],
      detached: true,
    });
    children.push(runtime);
    const model = JSON.parse(readFileSync(join(dir, "build", "node", "system.json"), "utf8")).model;
    const instances = model.services.find((s) => s.name === "data-processing").instances;

    const sample = async () => {
      const out = [];
      for (const i of instances) {
        let records = 0;
        try {
          const text = await (await fetch(`http://127.0.0.1:${i.port}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
          const m = /^mbc_records_in_total\{[^}]*\} (\S+)$/m.exec(text);
          records = m ? Number(m[1]) : 0;
        } catch {}
        let busy = 0;
        try {
          busy = Number(readFileSync(join(dir, "busy", `busy-${i.index}`), "utf8"));
        } catch {}
        out.push({ records, busy });
      }
      return { at: performance.now(), out };
    };
    // Warm up until both instances have taken batches, then measure a window.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const s = await sample();
      if (s.out.every((x) => x.records > 0)) break;
      await sleep(250);
    }
    await sleep(2000);
    const a = await sample();
    await sleep(seconds * 1000);
    const b = await sample();
    const wall = b.at - a.at;
    const total = b.out.reduce((sum, x, k) => sum + (x.records - (a.out[k]?.records ?? 0)), 0);
    const rows = instances.map((inst, k) => {
      const records = (b.out[k]?.records ?? 0) - (a.out[k]?.records ?? 0);
      const busy = (b.out[k]?.busy ?? 0) - (a.out[k]?.busy ?? 0);
      const p = predicted.instances[k];
      return {
        instance: k,
        weight: inst.weight,
        measuredShare: total ? records / total : 0,
        simulatedShare: p.share,
        staticShare: p.predicted?.share ?? null,
        measuredUtilisation: busy / wall,
        simulatedUtilisation: p.utilisation,
        staticUtilisation: p.predicted?.utilisation ?? null,
      };
    });
    const result = { service: "data-processing", seconds: wall / 1000, recordsPerSec: (total / wall) * 1000, offeredPerSec: model.sources[0].ratePerSec, rows };
    if (asJson) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const pct = (x) => (x === null ? "—" : `${(x * 100).toFixed(1)}%`);
      const pp = (a2, b2) => `${((a2 - b2) * 100).toFixed(1)} pp`;
      console.log(
        `design example, data-processing: ${result.recordsPerSec.toFixed(0)} records/s measured over ${result.seconds.toFixed(1)} s (offered ${result.offeredPerSec}/s)`,
      );
      console.log("instance  weight  share: measured  simulated  static   gap  | utilisation: measured  simulated  static   gap");
      for (const r of rows) {
        console.log(
          `${String(r.instance).padEnd(9)} ${String(r.weight).padEnd(7)} ${pct(r.measuredShare).padStart(15)} ${pct(r.simulatedShare).padStart(10)} ${pct(r.staticShare).padStart(7)} ${pp(r.measuredShare, r.simulatedShare).padStart(8)} | ${pct(r.measuredUtilisation).padStart(21)} ${pct(r.simulatedUtilisation).padStart(10)} ${pct(r.staticUtilisation).padStart(7)} ${pp(r.measuredUtilisation, r.simulatedUtilisation).padStart(8)}`,
        );
      }
    }
  } finally {
    for (const c of children) {
      try {
        process.kill(-c.pid, "SIGTERM");
      } catch {}
    }
    await sleep(1500);
    for (const c of children) {
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
