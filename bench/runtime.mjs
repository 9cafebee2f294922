/**
 * The runtime part of `npm run bench`: the node target built by `mbc build`, run as it ships
 * (`node DIR/node/mbc-runtime.mjs`: a supervisor, the registry, each source and each service
 * instance in its own process), fed over loopback by concurrent keep-alive clients in this
 * process. A run is measured end to end: from the first POST until the sink's index holds every
 * record the source acknowledged. Every run then reads the sink file back and checks each
 * acknowledged record is there exactly once: a run that loses records is reported as failed.
 *
 *   1. Throughput (system "bench-runtime": http source → processor → jsonl sink, fsync on):
 *      - batched: 500-record bodies into a source with maxRecords 500;
 *      - the bare forwarder (forwarder.mjs): the same hops and the same 500-record batches as
 *        plain node:http servers, no log, no batcher, a sink that appends without fsync;
 *      - one record per request: 1-record bodies into the same source (the pipeline still
 *        batches them, up to maxRecords 500 or maxWait): what clients gain by batching;
 *      - maxRecords 1: one 200-record body into a second source whose batches hold one record,
 *        so every hop, fsync and commit happens per record: what batching inside the
 *        pipeline gains (informative; no target).
 *      Runs are interleaved in rounds after a warm-up; medians are compared.
 *   2. Overload (system "bench-overload": the same pipeline with a processor limited to a
 *      fixed rate): its capacity is measured (closed loop), then 3× that is offered (open loop)
 *      for ~10 s; the RSS of the supervisor and of every child is sampled all along.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startForwarderChain } from "./forwarder.mjs";
import {
  alive,
  canSampleRss,
  childEnv,
  freePorts,
  httpRequest,
  keepAliveAgent,
  killPid,
  makeTempDir,
  median,
  onKill,
  removeTempDir,
  rssBytes,
  signalChild,
  sleep,
  startChild,
  waitExit,
  waitUntil,
} from "./lib.mjs";
import { closedLoop, fileSize, openLoop, SinkIndex, verifySink } from "./load.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const MBC = join(root, "bin/mbc");

export const RUNTIME_TARGETS = { forwarderShare: 0.4, batchedOverSingle: 20, peakRssMiB: 256 };

/** The processor of both systems (and the bare forwarder's middle hop): a cheap transformation. */
const PROCESS_HANDLER = "export default async (records) => records.map((r) => ({ ...r, processed: true }));\n";

/**
 * The overload system's processor: the same transformation at no more than SLOW_RATE records a
 * second (batches take their turn, each waiting records/rate), as a slow downstream would.
 */
const SLOW_HANDLER = `const rate = Number(process.env.SLOW_RATE ?? 5000);
let free = 0;
export default async (records) => {
  const now = performance.now();
  free = Math.max(free, now) + (records.length / rate) * 1000;
  await new Promise((resolve) => setTimeout(resolve, free - now));
  return records.map((r) => ({ ...r, processed: true }));
};
`;

function throughputSpec(base) {
  return `mbc: 1
name: bench-runtime
description: The runtime benchmark's pipeline, http source → processor → jsonl sink, fsync on.
registry: { port: ${base}, heartbeat: 1s, ttl: 3s }
defaults:
  timeout: 10s
  retry: { maxRetries: 2, interval: 100ms }
sources:
  batched: { type: http, port: ${base + 1}, batch: { maxRecords: 500, maxWait: 50ms }, to: process }
  single: { type: http, port: ${base + 2}, batch: { maxRecords: 1, maxWait: 50ms }, to: process }
services:
  process: { handler: ./handlers/process.mjs, port: ${base + 3}, to: store }
  store: { handler: "builtin:jsonl-sink", config: { path: ./out/records.jsonl }, port: ${base + 4}, timeout: 2s }
checkpoint: { dir: state, fsync: true }
`;
}

function overloadSpec(base, slowRate) {
  return `mbc: 1
name: bench-overload
description: The runtime benchmark's overload run, a processor limited to ${slowRate} records/s.
registry: { port: ${base}, heartbeat: 1s, ttl: 3s }
defaults:
  timeout: 10s
  retry: { maxRetries: 2, interval: 100ms }
sources:
  in: { type: http, port: ${base + 1}, batch: { maxRecords: 500, maxWait: 50ms }, to: process }
services:
  process: { handler: ./handlers/slow.mjs, port: ${base + 2}, to: store, env: { SLOW_RATE: ${slowRate} } }
  store: { handler: "builtin:jsonl-sink", config: { path: ./out/records.jsonl }, port: ${base + 3}, timeout: 2s }
checkpoint: { dir: state, fsync: true }
`;
}

/** Writes a spec and its handlers into `dir` and runs `mbc build --target node`; the folder to run. */
function buildSystem(dir, spec, files) {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(join(dir, "microbatch.yaml"), spec);
  const r = spawnSync(process.execPath, [MBC, "build", "microbatch.yaml", "--target", "node", "-o", "build"], { cwd: dir, encoding: "utf8", env: childEnv() });
  if (r.status !== 0) throw new Error(`mbc build of the benchmark's system failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  if (/warning|error/.test(r.stderr)) throw new Error(`the benchmark's system has diagnostics:\n${r.stderr}`);
  return join(dir, "build/node");
}

/**
 * Starts the built system (the supervisor with MBC_DATA_DIR and MBC_STATE_DIR in `dir`) and
 * waits until every `readyPorts` answers /readyz. `pids()`: the supervisor's and every running
 * child's, by child id, from the supervisor's "child started" logs.
 */
async function startRuntime(nodeDir, dir, readyPorts) {
  const children = new Map();
  const onLine = (line) => {
    if (!line.includes('"child started"')) return;
    try {
      const log = JSON.parse(line);
      if (typeof log.child === "string" && typeof log.pid === "number") children.set(log.child, log.pid);
    } catch {
      // Not a log line.
    }
  };
  const sup = startChild([join(nodeDir, "mbc-runtime.mjs")], {
    cwd: nodeDir,
    env: childEnv({ MBC_DATA_DIR: dir, MBC_STATE_DIR: join(dir, "state") }),
    onLine,
    keep: 400,
  });
  const pids = () => ({ supervisor: sup.pid, ...Object.fromEntries(children) });
  // Children the supervisor started: killed with their process groups, by pid, whatever happens to it.
  const killStragglers = () => {
    for (const pid of children.values()) {
      if (alive(pid)) {
        killPid(-pid);
        killPid(pid);
      }
    }
  };
  const unregister = onKill(killStragglers);
  const stop = async () => {
    if (sup.exit === null) {
      signalChild(sup, "SIGTERM");
      if ((await waitExit(sup, 30_000)) === null) signalChild(sup, "SIGKILL");
    }
    killStragglers();
    unregister();
    await waitExit(sup, 5000);
    return sup.exit;
  };
  try {
    const agent = keepAliveAgent(1);
    for (const port of readyPorts) {
      await waitUntil(
        async () => {
          if (sup.exit !== null) throw new Error("the supervisor exited");
          return (await httpRequest(agent, "GET", `http://127.0.0.1:${port}/readyz`, undefined, 1000)).status === 200;
        },
        `the runtime on port ${port} to be ready`,
        20_000,
        50,
      );
    }
    agent.destroy();
  } catch (err) {
    await stop();
    throw new Error(`the runtime did not start: ${err.message}\n${sup.lines.slice(-30).join("\n")}`);
  }
  return { sup, pids, stop, log: () => sup.lines };
}

/** Samples the RSS of every process `pids()` names every `intervalMs`; `stop()` gives the peaks. */
function sampleRss(pids, intervalMs = 100) {
  const peak = new Map();
  let peakSum = 0;
  let samples = 0;
  const tick = () => {
    let sum = 0;
    for (const [id, pid] of Object.entries(pids())) {
      const rss = rssBytes(pid);
      if (rss === null) continue;
      sum += rss;
      if (rss > (peak.get(id) ?? 0)) peak.set(id, rss);
    }
    peakSum = Math.max(peakSum, sum);
    samples++;
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      const byProcess = Object.fromEntries([...peak].sort((a, b) => b[1] - a[1]));
      const [maxId, maxBytes] = [...peak].sort((a, b) => b[1] - a[1])[0] ?? [null, 0];
      return { samples, intervalMs, byProcessBytes: byProcess, maxBytes, maxProcess: maxId, maxSumBytes: peakSum };
    },
  };
}

/**
 * One measured run: closed-loop clients for `seconds` (or until each had `maxRequests` taken),
 * then waits until the sink holds every acknowledged record (`stored()` counts what it holds),
 * then checks the sink file.
 */
async function measure({ label, url, clients, perRequest, seconds, maxRequests, sinkFile, stored, ackMeansStored = false }) {
  const agent = keepAliveAgent(clients);
  const from = await fileSize(sinkFile);
  const before = await stored();
  let run;
  try {
    run = await closedLoop({ agent, url, clients, perRequest, durationMs: seconds * 1000, maxRequests });
  } finally {
    agent.destroy();
  }
  const accepted = run.ledger.records;
  let doneAt = run.lastAckAt;
  if (!ackMeansStored) {
    const deadline = performance.now() + 60_000;
    while ((await stored()) - before < accepted && performance.now() < deadline) await sleep(5);
    doneAt = performance.now();
  }
  const check = await verifySink(sinkFile, from, run.ledger);
  const elapsedMs = Math.max(1, doneAt - run.start);
  return {
    label,
    perRequest,
    clients,
    postMs: seconds * 1000,
    elapsedMs,
    recordsPerSec: (accepted / elapsedMs) * 1000,
    requests: run.requests,
    refused: run.refused,
    errors: run.errors,
    firstError: run.firstError,
    ...check,
    ok: !check.lost && check.duplicates === 0 && run.errors === 0 && accepted > 0,
  };
}

function summarise(runs) {
  const rates = runs.map((r) => r.recordsPerSec);
  return {
    medianRecordsPerSec: median(rates),
    minRecordsPerSec: Math.min(...rates),
    maxRecordsPerSec: Math.max(...rates),
    acknowledged: runs.reduce((a, r) => a + r.acknowledged, 0),
    missing: runs.reduce((a, r) => a + r.missing, 0),
    duplicates: runs.reduce((a, r) => a + r.duplicates, 0),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    refused: runs.reduce((a, r) => a + r.refused, 0),
    ok: runs.every((r) => r.ok),
    runs,
  };
}

/**
 * Runs the runtime benchmark. `opts`: rounds, seconds (posting time of each run), clients,
 * overloadSeconds, slowRate. `note` writes progress to stderr.
 */
export async function runRuntimeBench(opts, note) {
  const dir = makeTempDir("mbc-bench-runtime-");
  const stops = [];
  try {
    const results = { throughput: null, overload: null };

    // 1. Throughput.
    const base = await freePorts(5);
    const sysDir = join(dir, "throughput");
    const nodeDir = buildSystem(sysDir, throughputSpec(base), { "handlers/process.mjs": PROCESS_HANDLER });
    note(`runtime: starting the built system (supervisor, registry, 2 sources, processor, sink) and the bare forwarder\n`);
    const rt = await startRuntime(nodeDir, sysDir, [base + 1, base + 2, base + 3, base + 4]);
    stops.push(rt.stop);
    const fwdOut = join(dir, "forwarder/records.jsonl");
    mkdirSync(dirname(fwdOut), { recursive: true });
    const fwd = await startForwarderChain({ handlerFile: join(sysDir, "handlers/process.mjs"), outFile: fwdOut });
    stops.push(fwd.stop);
    const sinkFile = join(sysDir, "out/records.jsonl");
    const index = new SinkIndex(`${sinkFile}.batches`);
    const rtStored = () => index.count();
    const fwdStored = async () => 0;
    const { clients, seconds } = opts;
    const cases = [
      { key: "batched", label: "runtime, 500-record bodies", url: `http://127.0.0.1:${base + 1}/records`, perRequest: 500, sinkFile, stored: rtStored },
      {
        key: "forwarder",
        label: "bare forwarder, 500-record bodies",
        url: fwd.url,
        perRequest: 500,
        sinkFile: fwdOut,
        stored: fwdStored,
        ackMeansStored: true,
      },
      { key: "single", label: "runtime, 1-record bodies", url: `http://127.0.0.1:${base + 1}/records`, perRequest: 1, sinkFile, stored: rtStored },
      // One 200-record body, timed until its 200 one-record batches are stored: a timed run
      // would leave a full queue (1,024 records) to drain for seconds at this pace.
      {
        key: "maxRecords1",
        label: "runtime, maxRecords 1 (one 200-record body)",
        url: `http://127.0.0.1:${base + 2}/records`,
        perRequest: 200,
        clients: 1,
        maxRequests: 1,
        warmup: { perRequest: 20 },
        sinkFile,
        stored: rtStored,
      },
    ];
    const rss = canSampleRss() ? sampleRss(rt.pids) : null;
    note(`runtime: warm-up, then ${opts.rounds} interleaved round(s) of ${cases.length} runs, ${seconds} s of posting each, ${clients} clients\n`);
    for (const c of cases) await measure({ clients, ...c, ...c.warmup, seconds: Math.min(1, seconds) });
    const runs = Object.fromEntries(cases.map((c) => [c.key, []]));
    for (let r = 0; r < opts.rounds; r++) {
      for (const c of cases) {
        runs[c.key].push(await measure({ clients, ...c, seconds: c.maxRequests === undefined ? seconds : 60 }));
        await sleep(200);
      }
      if (process.stderr.isTTY) note(`\r  round ${r + 1}/${opts.rounds}${r + 1 === opts.rounds ? "\n" : ""}`);
    }
    const throughputRss = rss?.stop() ?? null;
    await fwd.stop();
    const exit = await rt.stop();
    const sum = Object.fromEntries(cases.map((c) => [c.key, { label: c.label, ...summarise(runs[c.key]) }]));
    results.throughput = {
      clients,
      postSeconds: seconds,
      rounds: opts.rounds,
      cases: sum,
      ratios: {
        overForwarder: sum.batched.medianRecordsPerSec / sum.forwarder.medianRecordsPerSec,
        batchedOverSingle: sum.batched.medianRecordsPerSec / sum.single.medianRecordsPerSec,
        batchedOverMaxRecords1: sum.batched.medianRecordsPerSec / sum.maxRecords1.medianRecordsPerSec,
      },
      rss: throughputRss,
      runtimeExit: exit,
    };

    // 2. Overload.
    const obase = await freePorts(4);
    const oDir = join(dir, "overload");
    const oNode = buildSystem(oDir, overloadSpec(obase, opts.slowRate), { "handlers/slow.mjs": SLOW_HANDLER });
    note(`runtime: overload — a processor limited to ${opts.slowRate} records/s; capacity first, then 3× it for ${opts.overloadSeconds} s\n`);
    const ort = await startRuntime(oNode, oDir, [obase + 1, obase + 2, obase + 3]);
    stops.push(ort.stop);
    const oSink = join(oDir, "out/records.jsonl");
    const oIndex = new SinkIndex(`${oSink}.batches`);
    const oUrl = `http://127.0.0.1:${obase + 1}/records`;
    const orss = canSampleRss() ? sampleRss(ort.pids) : null;
    const capacity = await measure({
      label: "capacity",
      url: oUrl,
      clients,
      perRequest: 500,
      seconds: opts.capacitySeconds,
      sinkFile: oSink,
      stored: () => oIndex.count(),
    });
    const offered = 3 * capacity.recordsPerSec;
    const from = await fileSize(oSink);
    const before = await oIndex.count();
    const agent = keepAliveAgent(256);
    let flood;
    try {
      flood = await openLoop({ agent, url: oUrl, ratePerSec: offered, perRequest: 500, durationMs: opts.overloadSeconds * 1000 });
    } finally {
      agent.destroy();
    }
    const floodEnd = performance.now();
    const deadline = floodEnd + 60_000;
    while ((await oIndex.count()) - before < flood.ledger.records && performance.now() < deadline) await sleep(10);
    const drainMs = performance.now() - floodEnd;
    const peak = orss?.stop() ?? null;
    const check = await verifySink(oSink, from, flood.ledger);
    const oExit = await ort.stop();
    results.overload = {
      slowRate: opts.slowRate,
      capacity,
      offeredPerSec: offered,
      seconds: opts.overloadSeconds,
      offeredRecords: flood.offeredRecords,
      requests: flood.requests,
      refused: flood.refused,
      skipped: flood.skipped,
      errors: flood.errors,
      firstError: flood.firstError,
      slowestAnswerMs: flood.latestMs,
      drainMs,
      ...check,
      ok: !check.lost && check.duplicates === 0 && flood.errors === 0 && capacity.ok,
      rss: peak,
      runtimeExit: oExit,
    };
    return results;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    removeTempDir(dir);
  }
}
