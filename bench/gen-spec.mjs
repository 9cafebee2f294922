/**
 * Generates a large, realistic, valid spec with N services, for the benchmark and its test.
 *
 * The shape: several sources, each feeding a pipeline. A pipeline is a chain with fan-out:
 * each stage sends to 1–3 later stages (mostly 1, so chains are long), a few stages also send
 * to a later stage of another branch (diamonds, so rates add up), and the leaves are sinks or
 * feed one of a few shared archive sinks at the end of the file (wide fan-in). Every edge goes
 * to a later service, so the graph is a DAG. Rates sit on the sources; capacities are computed
 * from the rates that reach each service so that every instance runs at 30–70 % (the capacity
 * rules run on every service, and none fires). About one service in eight has an explicit
 * port; the others take assigned ones. The output is deterministic for a given N and seed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";

/** A small seeded PRNG (mulberry32), so the same N gives the same spec. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAILURE_RATE = 0.01;
const SINK_RETRIES = 2;
/** The spec's handler modules, relative to its folder: written beside the spec by writeSpec. */
export const HANDLER_FILES = {
  "handlers/enrich.mjs": "export default async (records) => records.map((r) => ({ ...r, enriched: true }));\n",
};

/** E[r] = p + p² + … + pᵐ (the contract's Load section). */
function expectedRetries(p, m) {
  let sum = 0;
  let term = 1;
  for (let k = 1; k <= m; k++) {
    term *= p;
    sum += term;
  }
  return sum;
}

/** A rate in one of the forms the contract allows, chosen by `k`. */
function rateText(perSec, k) {
  switch (k % 3) {
    case 0:
      return `${perSec}/s`;
    case 1:
      return perSec;
    default:
      return `${perSec * 60}/m`;
  }
}

/**
 * The spec with `n` services (n ≥ 2), as YAML text.
 * @param {number} n
 * @param {{ seed?: number }} [options]
 * @returns {string}
 */
export function generateSpec(n, options = {}) {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`generateSpec needs an integer n ≥ 2, got ${n}`);
  const random = prng(options.seed ?? 1);
  const pick = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

  // About 40 services a pipeline, and one shared archive for every ten pipelines.
  const pipelineCount = Math.min(Math.max(2, Math.ceil(n / 40)), n - 1);
  const archiveCount = Math.max(1, Math.floor(pipelineCount / 10));
  const stageCount = n - archiveCount;

  /** Service i: its name, edges (indices of later services), whether it is an archive. */
  const names = [];
  const edges = [];
  const isArchive = [];
  const pipelineOf = [];
  const archiveNames = Array.from({ length: archiveCount }, (_, a) => `archive-${a}`);

  // Pipelines: consecutive index ranges, children assigned breadth-first so edges go forward.
  const sources = [];
  const pipelineEnds = [];
  let next = 0;
  for (let p = 0; p < pipelineCount; p++) {
    const size = Math.floor(stageCount / pipelineCount) + (p < stageCount % pipelineCount ? 1 : 0);
    const first = next;
    const end = first + size;
    let assigned = first + 1;
    for (let i = first; i < end; i++) {
      const local = i - first;
      names.push(local === 0 ? `p${p}-ingest` : `p${p}-stage-${local}`);
      isArchive.push(false);
      pipelineOf.push(p);
      const out = [];
      const r = random();
      const fanOut = r < 0.55 ? 1 : r < 0.85 ? 2 : 3;
      for (let c = 0; c < fanOut && assigned < end; c++) out.push(assigned++);
      edges.push(out);
    }
    // Diamonds: a few stages also feed a later stage of the same pipeline (not already a child).
    for (let i = first; i < end - 2; i++) {
      if (random() >= 0.08 || edges[i].length === 0) continue;
      const target = pick(Math.max(...edges[i]) + 1, end - 1);
      if (target < end && target > i && !edges[i].includes(target)) edges[i].push(target);
    }
    sources.push({ name: `src-${p}`, to: first, kind: p % 3 });
    pipelineEnds.push(end);
    next = end;
  }
  for (let a = 0; a < archiveCount; a++) {
    names.push(archiveNames[a]);
    isArchive.push(true);
    pipelineOf.push(-1);
    edges.push([]);
  }
  // A third of the leaves also hand their batches on to a shared archive.
  for (let i = 0; i < stageCount; i++) {
    if (edges[i].length === 0 && random() < 0.35) edges[i].push(stageCount + (pipelineOf[i] % archiveCount));
  }
  // Every archive is fed: if chance left one out, the last stage of a pipeline (a leaf) feeds it.
  for (let a = 0; a < archiveCount; a++) {
    const archive = stageCount + a;
    if (edges.some((out) => out.includes(archive))) continue;
    edges[pipelineEnds[a % pipelineCount] - 1].push(archive);
  }

  // Offered rates, in index order (a topological order, as every edge goes forward).
  const rate = new Array(n).fill(0);
  const specSources = {};
  sources.forEach((s, k) => {
    const perSec = pick(2, 50) * 100;
    rate[s.to] += perSec;
    const base = { to: names[s.to], rate: rateText(perSec, k) };
    if (s.kind === 0) specSources[s.name] = { type: "http", port: 8000 + k, ...base };
    else if (s.kind === 1) specSources[s.name] = { type: "generator", record: { id: "{{seq}}", at: "{{now}}" }, batch: { maxRecords: 1000 }, ...base };
    else specSources[s.name] = { type: "file", path: `./data/${s.name}.jsonl`, ...base };
  });
  for (let i = 0; i < n; i++) for (const t of edges[i]) rate[t] += rate[i];

  const services = {};
  let explicitPort = 20000;
  for (let i = 0; i < n; i++) {
    const name = names[i];
    const sink = edges[i].length === 0;
    const retries = sink ? SINK_RETRIES : 0;
    const attempts = rate[i] * (1 + expectedRetries(FAILURE_RATE, retries));
    const target = 0.3 + random() * 0.4;
    const count = isArchive[i] ? 3 : pick(1, 3);
    const svc = {};
    if (sink) svc.handler = "builtin:jsonl-sink";
    else svc.handler = i % 5 === 0 ? "./handlers/enrich.mjs" : i % 5 === 1 ? "builtin:log" : "builtin:passthrough";
    if (sink) svc.config = { path: `./data/${name}.jsonl` };
    if (count > 1 && random() < 0.4) {
      // Weighted instances with capacities in proportion to their weights: an even load.
      const weights = Array.from({ length: count }, () => pick(1, 3));
      const total = weights.reduce((a, b) => a + b, 0);
      svc.instances = weights.map((w, k) => ({ weight: w, capacity: rateText(Math.ceil((attempts * w) / total / target), k + i) }));
    } else {
      svc.instances = count;
      svc.capacity = rateText(Math.ceil(attempts / count / target), i);
      if (count > 1 && random() < 0.3) svc.loadBalancing = random() < 0.5 ? "least-connections" : "random";
    }
    if (i % 8 === 3) {
      svc.port = explicitPort;
      explicitPort += 4;
    }
    if (sink) {
      svc.timeout = "500ms";
      svc.retry = { maxRetries: retries, interval: "50ms" };
    }
    if (i % 7 === 0) svc.resources = { cpus: 0.5, memory: "256Mi" };
    if (i % 11 === 0) svc.env = { LOG_LEVEL: "info", SHARD: i % 4 };
    if (edges[i].length === 1) svc.to = names[edges[i][0]];
    else if (edges[i].length > 1) svc.to = edges[i].map((t) => names[t]);
    services[name] = svc;
  }

  const spec = {
    mbc: 1,
    name: `bench-${n}`,
    description: `A generated system of ${n} services in ${pipelineCount} pipelines, for the benchmark.`,
    registry: { port: 7400, heartbeat: "1s", ttl: "3s" },
    defaults: { retry: { maxRetries: 0, interval: "100ms" }, batch: { maxRecords: 500, maxWait: "200ms" } },
    sources: specSources,
    services,
    checkpoint: { dir: `.mbc/state/bench-${n}` },
    simulation: { duration: "60s", arrival: "poisson", failureRate: FAILURE_RATE, seed: 1 },
    environments: { prod: { services: { [names[0]]: { resources: { cpus: 2, memory: "1Gi" } } } } },
  };
  return `# Generated by bench/gen-spec.mjs: ${n} services.\n${stringify(spec, { lineWidth: 0 })}`;
}

/**
 * Writes the spec with `n` services as `microbatch.yaml` in `dir`, with its handler modules.
 * @param {string} dir
 * @param {number} n
 * @param {{ seed?: number, fileName?: string }} [options]
 * @returns {string} the spec's path
 */
export function writeSpec(dir, n, options = {}) {
  for (const [path, text] of Object.entries(HANDLER_FILES)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const file = join(dir, options.fileName ?? "microbatch.yaml");
  writeFileSync(file, generateSpec(n, options));
  return file;
}
