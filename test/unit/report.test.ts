/**
 * The outputs of `mbc simulate` as pure functions: the engine's optional series, the
 * simulation's findings (validate --simulate, --strict), the text table, the HTML report and
 * the progress bar.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Model } from "../../src/model/types.js";
import { escapeHtml, renderReport } from "../../src/report/html.js";
import { createProgress, renderProgress, renderTable, seriesBuckets } from "../../src/report/index.js";
import { count, duration, ms, pct } from "../../src/report/numbers.js";
import { SERIES_QUANTILES, type SimulationResult, simulate } from "../../src/simulate/index.js";
import { validateText } from "../../src/validate/index.js";
import { assessService, blocksSimulation, offeredLoad, simulationFindings, strictFailures } from "../../src/validate/simulate-findings.js";
import { stripAnsi } from "../helpers/cli.js";

const exampleText = readFileSync(new URL("../../examples/01-design-document/microbatch.yaml", import.meta.url), "utf8");
const handler = "builtin:passthrough";

function modelOf(spec: Record<string, unknown>): Model {
  const { diagnostics, model } = validateText("spec.json", JSON.stringify({ mbc: 1, name: "t", ...spec }));
  expect(blocksSimulation(diagnostics)).toBe(false);
  if (model === null) throw new Error("no model");
  return model;
}

function exampleModel(): Model {
  const { model } = validateText("microbatch.yaml", exampleText);
  if (model === null) throw new Error("the example has errors");
  return model;
}

/** Two instances of 1000 records/s behind round-robin, at `rate`: static sᵢ = rate / 2000. */
const pairSpec = (rate: number, simulation: Record<string, unknown> = {}, retry: Record<string, unknown> = {}) => ({
  sources: { in: { type: "generator", rate, batch: { maxRecords: 20 }, to: "work" } },
  services: { work: { handler, instances: 2, capacity: 1000, timeout: "1h", retry: { jitter: "none", ...retry } } },
  simulation: { duration: "20s", arrival: "constant", ...simulation },
});

const withSeries = (model: Model, buckets = 40) => simulate(model, { series: { buckets } });

describe("engine: the optional series", () => {
  it("is off by default, and turning it on changes no other figure", () => {
    const model = exampleModel();
    const plain = simulate(model);
    expect("series" in plain).toBe(false);
    const { series, ...rest } = withSeries(model);
    expect(series).toBeDefined();
    expect(JSON.stringify(rest)).toBe(JSON.stringify(plain));
  });

  it("cuts the run into equal buckets whose busy time adds up to each instance's utilisation", () => {
    const r = withSeries(exampleModel(), 60);
    const series = r.series as NonNullable<SimulationResult["series"]>;
    expect(series.bucketMs).toBe(1000);
    r.services.forEach((svc, s) => {
      svc.instances.forEach((inst, i) => {
        const busy = series.services[s]?.instances[i]?.utilisation as number[];
        expect(busy).toHaveLength(60);
        for (const b of busy) expect(b >= 0 && b <= 1).toBe(true);
        const mean = busy.reduce((a, b) => a + b, 0) / busy.length;
        expect(mean).toBeCloseTo(inst.utilisation as number, 9);
      });
    });
  });

  it("takes out the work a fault drops, and shows the down time as idle", () => {
    const model = modelOf(pairSpec(1000, { faults: [{ service: "work", instance: 1, at: "5s", duration: "5s" }] }));
    const r = withSeries(model, 20);
    const busy = r.series?.services[0]?.instances[1]?.utilisation as number[];
    for (let b = 5; b < 10; b++) expect(busy[b]).toBe(0);
    expect(busy[2]).toBeCloseTo(0.5, 1);
    expect(busy.reduce((a, b) => a + b, 0) / busy.length).toBeCloseTo(r.services[0]?.instances[1]?.utilisation as number, 9);
    // Meanwhile instance 0 takes everything: fully busy.
    const other = r.series?.services[0]?.instances[0]?.utilisation as number[];
    for (let b = 6; b < 10; b++) expect(other[b]).toBeCloseTo(1, 6);
  });

  it("gives mean queue waits per bucket and latency quantiles from the histograms", () => {
    const r = withSeries(exampleModel(), 30);
    const series = r.series as NonNullable<SimulationResult["series"]>;
    expect(series.quantiles).toEqual([...SERIES_QUANTILES]);
    expect(series.quantiles).toHaveLength(101);
    const e2e = series.endToEndMs as number[];
    for (let k = 1; k < e2e.length; k++) expect(e2e[k]).toBeGreaterThanOrEqual(e2e[k - 1] as number);
    expect(e2e[50]).toBe(r.endToEndMs.p50);
    expect(e2e[95]).toBe(r.endToEndMs.p95);
    expect(e2e[100]).toBe(r.endToEndMs.max);
    const waits = series.services[0]?.instances[0]?.queueWaitMs as (number | null)[];
    expect(waits).toHaveLength(30);
    expect(waits.some((w) => w !== null && w > 0)).toBe(true);
    // Instance 1 of data-processing never queues.
    expect(series.services[0]?.instances[1]?.queueWaitMs.every((w) => w === null || w === 0)).toBe(true);
  });

  it("refuses a bucket count that is not an integer from 1 to 10000", () => {
    const model = exampleModel();
    for (const buckets of [0, -1, 1.5, 10_001, Number.NaN]) expect(() => simulate(model, { series: { buckets } })).toThrow(RangeError);
  });

  it("reports about one bucket a second, from 20 to 120", () => {
    expect(seriesBuckets(60_000)).toBe(60);
    expect(seriesBuckets(1000)).toBe(20);
    expect(seriesBuckets(3_600_000)).toBe(120);
  });
});

describe("the simulation's findings", () => {
  it("the example: the simulation agrees with the static rules, so it adds nothing", () => {
    const r = simulate(exampleModel());
    const a = assessService(r.services[0] as NonNullable<(typeof r.services)[0]>, r.durationMs);
    expect(a.level).toBe("low-headroom");
    expect(a.staticLevel).toBe("low-headroom");
    expect(simulationFindings(r)).toEqual([]);
    expect(strictFailures(r)).toEqual([]);
  });

  it("offered load is the work sent over the time up; it passes 100 % where utilisation cannot", () => {
    // Instance 0 is down the whole run: instance 1 is sent 1.2 × its capacity, until the
    // source's queue is full and refuses the rest.
    const r = simulate(modelOf(pairSpec(1200, { faults: [{ service: "work", instance: 0, at: "0s", duration: "1h" }] })));
    const [down, up] = r.services[0]?.instances ?? [];
    const input = r.sources[0];
    if (!down || !up || !input) throw new Error("two instances, one source");
    expect(offeredLoad(down, r.durationMs)).toBe(0);
    expect(offeredLoad(up, r.durationMs)).toBeCloseTo(up.records / 1000 / 20, 12);
    expect(offeredLoad(up, r.durationMs)).toBeGreaterThan(1);
    // What it was sent beyond its 20 s of work is at most what the source's queue holds.
    expect(up.records - 20 * 1000).toBeLessThanOrEqual(input.queueLimitRecords);
    expect(input.recordsRefused).toBeGreaterThan(0);
    expect(up.utilisation).toBeLessThanOrEqual(1);
    expect(offeredLoad({ ...up, capacityPerSec: null }, r.durationMs)).toBeNull();
  });

  it("an overload only the simulation sees (a fault) is a `sim-overloaded` error at the service's key, and the records its source refused a warning at the source's", () => {
    const r = simulate(modelOf(pairSpec(1200, { faults: [{ service: "work", instance: 0, at: "0s", duration: "1h" }] })));
    expect(assessService(r.services[0] as never, r.durationMs).staticLevel).toBe("ok");
    const findings = simulationFindings(r);
    expect(findings.map((f) => [f.code, f.severity, f.path, f.at])).toEqual([
      ["sim-overloaded", "error", "/services/work", "key"],
      ["sim-records-refused", "warning", "/sources/in", "key"],
    ]);
    expect(findings[0]?.message).toMatch(/^simulation: instance 1 of service "work" is overloaded: its queue grows/);
    expect(findings[0]?.message).toContain("the static model predicts 60%");
    const refused = count(r.sources[0]?.recordsRefused as number);
    expect(findings[1]?.message).toBe(
      `simulation: source "in" refused ${refused} of its 24,000 records (${pct((r.sources[0]?.recordsRefused as number) / 24_000, 1)}): its queue of 1,280 records accepted and not committed yet was full`,
    );
    expect(strictFailures(r)).toEqual([
      `instance 1 of service "work" is overloaded (offered ${pct(offeredLoad(r.services[0]?.instances[1] as never, r.durationMs), 1)} of its capacity, its queue grows)`,
      `source "in" refused ${refused} records: its queue was full`,
    ]);
  });

  it("a simulated load between 80 % and 100 % that the static model puts lower is `sim-low-headroom`", () => {
    // 1400 records/s on two instances of 1000/s is 70 % each; with one down for a quarter of
    // the run, the other one carries 82 % on average (its backlog, while alone, fills the queue).
    const r = simulate(modelOf(pairSpec(1400, { faults: [{ service: "work", instance: 0, at: "0s", duration: "5s" }] })));
    const findings = simulationFindings(r);
    expect(findings.map((f) => [f.code, f.severity, f.path])).toEqual([
      ["sim-low-headroom", "warning", "/services/work"],
      ["sim-records-refused", "warning", "/sources/in"],
    ]);
    expect(strictFailures(r)).toEqual([`source "in" refused ${count(r.sources[0]?.recordsRefused as number)} records: its queue was full`]);
  });

  it("says nothing the static rules said already: an overload in both", () => {
    const r = simulate(modelOf(pairSpec(2400)));
    expect(assessService(r.services[0] as never, r.durationMs).staticLevel).toBe("overloaded");
    expect(simulationFindings(r).filter((f) => f.code === "sim-overloaded")).toEqual([]);
    // …but --strict still fails on it: the simulation shows it.
    expect(strictFailures(r).filter((f) => f.includes("is overloaded"))).toHaveLength(1);
  });

  it("retries refused by the budget, and a service unavailable after its quick retries, are warnings of their own: `sim-retries-refused`, `sim-unavailable`", () => {
    const refusing = simulate(modelOf(pairSpec(500, { failureRate: 0.5 }, { maxRetries: 5, budget: { ratio: 0.1, minPerSecond: 0 } })));
    const svc = refusing.services[0];
    expect(svc?.retriesRefused).toBeGreaterThan(0);
    const [finding] = simulationFindings(refusing);
    expect(finding).toMatchObject({ code: "sim-retries-refused", severity: "warning", path: "/services/work", at: "key" });
    expect(finding?.message).toContain(
      `the retry budget of service "work" refused ${svc?.retriesRefused} retries; it was unavailable to ${svc?.batchesUnavailable} batches`,
    );
    expect(strictFailures(refusing)).toContain(`the retry budget of service "work" refused ${svc?.retriesRefused} retries`);

    // Unavailable without any refusal: warned about, not a --strict failure in itself.
    const exhausted = simulate(modelOf(pairSpec(500, { failureRate: 0.5 }, { maxRetries: 0 })));
    const work = exhausted.services[0];
    expect(work?.retriesRefused).toBe(0);
    const [lost] = simulationFindings(exhausted);
    expect(lost).toMatchObject({ code: "sim-unavailable", severity: "warning", path: "/services/work", at: "key" });
    expect(lost?.message).toBe(
      `simulation: service "work" was unavailable to ${work?.batchesUnavailable} batches after its quick retries (failed attempts: 0 timeout, ${work?.failures["5xx"]} 5xx, 0 connect): back-pressure, they were sent again from above (its callers' quick retries, then their source after a back-off)`,
    );
    expect(strictFailures(exhausted).some((f) => f.includes('service "work"'))).toBe(false);
  });

  it("a stage unavailable only because the stage below it was is left to that stage's finding", () => {
    const r = simulate(
      modelOf({
        sources: { in: { type: "generator", rate: 200, batch: { maxRecords: 20 }, to: "front" } },
        services: {
          front: { handler, capacity: 10_000, to: "store", retry: { budget: { ratio: 1, minPerSecond: 1000 } } },
          store: { handler, capacity: 10_000, retry: { budget: { ratio: 1, minPerSecond: 1000 } } },
        },
        simulation: { duration: "20s", arrival: "constant", faults: [{ service: "store", instance: 0, at: "5s", duration: "5s" }] },
      }),
    );
    expect(r.services[0]?.batchesUnavailable).toBeGreaterThan(0);
    expect(simulationFindings(r).map((f) => [f.code, f.path])).toEqual([["sim-unavailable", "/services/store"]]);
    const text = renderTable(r, { color: false });
    expect(text).toMatch(/^BACK-PRESSURE +queue \(records\) +sent again/m);
    expect(text).toContain(`⚠ service "store" was unavailable to ${count(r.services[1]?.batchesUnavailable as number)} batches after its quick retries`);
    expect(text).toMatch(/⚠ source "in" sent batches again \d+ times after a stage was unavailable; a batch waited up to /);
    expect(text).not.toContain('⚠ service "front"');
    expect(text).toContain("✔ no service overloaded, no retry refused by a budget, no record refused or dead-lettered");
  });

  it("batches dead-lettered after retry.deadLetterAfter are `sim-dead-lettered` at the source's key, and fail --strict", () => {
    const r = simulate(
      modelOf({
        sources: { in: { type: "generator", rate: 100, batch: { maxRecords: 20 }, to: "front" } },
        services: { front: { handler, retry: { maxRetries: 0 }, to: "store" }, store: { handler, retry: { maxRetries: 0, deadLetterAfter: "2s" } } },
        simulation: { duration: "20s", arrival: "constant", faults: [{ service: "store", instance: 0, at: "0s", duration: "1h" }] },
      }),
    );
    const input = r.sources[0];
    const dead = simulationFindings(r).find((f) => f.code === "sim-dead-lettered");
    expect(dead).toMatchObject({ severity: "warning", path: "/sources/in", at: "key" });
    expect(dead?.message).toBe(
      `simulation: source "in" dead-lettered ${input?.batchesDeadLettered} batches that waited on unavailable stages longer than retry.deadLetterAfter (2s)`,
    );
    expect(strictFailures(r)).toContain(`source "in" dead-lettered ${input?.batchesDeadLettered} batches after retry.deadLetterAfter`);
  });

  it("only an error other than `overloaded` keeps a spec from being simulated", () => {
    const d = (code: string, severity: string) => ({ code, severity }) as never;
    expect(blocksSimulation([d("overloaded", "error"), d("low-headroom", "warning")])).toBe(false);
    expect(blocksSimulation([d("cycle", "error")])).toBe(true);
  });
});

describe("numbers", () => {
  it("read the same in the table and the report", () => {
    expect([pct(0.8), pct(null), pct(1.2345, 0)]).toEqual(["80.0%", "–", "123%"]);
    expect([ms(0), ms(0.25), ms(22.6875), ms(186.5), ms(null)]).toEqual(["0", "0.25", "22.7", "187", "–"]);
    expect([duration(250), duration(1500), duration(60_000), duration(90_000), duration(5_400_000)]).toEqual(["250ms", "1.5s", "1m", "1m30s", "1h30m"]);
    expect([count(146350), count(12), count(1234567.5)]).toEqual(["146,350", "12", "1,234,567.5"]);
  });
});

describe("the table", () => {
  const r = simulate(exampleModel());
  const text = renderTable(r, { color: false, file: "microbatch.yaml" });

  it("has every service and instance, the contract's figures by name, and the verdict", () => {
    for (const s of ["design-example", "seed 1", "1m simulated", "input", "data-processing", "result-storage", "end to end"]) expect(text).toContain(s);
    for (const s of [
      "share",
      "sᵢ utilisation",
      "offered",
      "L(S,W)",
      "r (retries/request)",
      "R(r,t,m)",
      "refused",
      "unavailable",
      "queue wait (ms)",
      "latency (ms)",
    ])
      expect(text).toContain(s);
    expect(text).toMatch(/^ {2}#0 w2 2,000\/s +66\.7% +66\.7% +80\.0% +80\.0% +80\.0% +0 +23\.7 +28\.8 +low headroom$/m);
    expect(text).toContain('⚠ instance 0 of service "data-processing" has little headroom (80.0% of its capacity)');
    expect(text).toContain("✔ no service overloaded, no retry refused by a budget, no record refused or dead-lettered");
    // Nothing pushed back: no back-pressure table.
    expect(text).not.toContain("BACK-PRESSURE");
  });

  it("aligns its columns: numbers end where their header ends", () => {
    const lines = text.split("\n");
    const head = lines.find((l) => l.startsWith("service / instance")) as string;
    const row = lines.find((l) => l.startsWith("  #1 w1")) as string;
    let from = 0;
    for (const h of ["sim", "static", "sim", "static", "sim"]) {
      const end = head.indexOf(h, from) + h.length;
      from = end;
      expect(row[end - 1], `column ending at ${end}`).not.toBe(" ");
      expect(row[end], `column ending at ${end}`).toBe(" ");
    }
  });

  it("is plain text without colour, and coloured with it", () => {
    expect(text).not.toContain("\u001b[");
    const coloured = renderTable(r, { color: true, file: "microbatch.yaml" });
    expect(coloured).toContain("\u001b[");
    expect(stripAnsi(coloured)).toBe(text);
  });
});

describe("the HTML report", () => {
  const r = withSeries(exampleModel(), 60);
  const html = renderReport(r, { file: "examples/microbatch.yaml", version: "9.9.9" });

  it("is one self-contained document: no scripts, no external resources", () => {
    expect(html.startsWith("<!doctype html>\n")).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import/i);
    // The only URL is the SVG namespace, which is a name, not a request.
    expect([...html.matchAll(/https?:\/\/[^"\s]+/g)].map((m) => m[0]).every((u) => u === "http://www.w3.org/2000/svg")).toBe(true);
  });

  it("has the three charts, with a bar and a line for every instance and a latency line for every service", () => {
    for (const chart of ["load", "utilisation", "latency"]) expect(html).toContain(`data-chart="${chart}"`);
    expect(html.match(/<rect class="bar /g)).toHaveLength(3);
    expect(html.match(/<path class="predicted"/g)).toHaveLength(3);
    expect(html.match(/<line class="capacity"/g)).toHaveLength(1);
    const utilisation = html.slice(html.indexOf('data-chart="utilisation"'), html.indexOf('data-chart="queue-wait"'));
    expect(utilisation.match(/<polyline class="line"/g)).toHaveLength(3);
    const latency = html.slice(html.indexOf('data-chart="latency"'));
    expect(latency.match(/<polyline class="line"/g)).toHaveLength(3);
    expect(html).toContain("design-example");
    expect(html).toContain("seed <b>1</b>");
    expect(html).toContain("simulated <b>1m</b>");
  });

  it("is the same bytes for the same result", () => {
    expect(renderReport(withSeries(exampleModel(), 60), { file: "examples/microbatch.yaml", version: "9.9.9" })).toBe(html);
  });

  it("escapes every name and text, so nothing in a spec can inject markup", () => {
    const evil = `<img src=x onerror="alert(1)">&'`;
    const forged: SimulationResult = JSON.parse(JSON.stringify(r));
    forged.system = evil;
    forged.environment = evil;
    forged.warnings = [evil];
    const first = forged.services[0];
    if (!first) throw new Error("a service");
    first.name = evil;
    (forged.sources[0] as { name: string }).name = evil;
    const out = renderReport(forged, { file: evil, version: evil });
    expect(out).not.toContain("<img");
    expect(out).not.toContain('"alert(1)"');
    expect(out).toContain(escapeHtml(evil));
    expect(escapeHtml(`<a href="x">&'`)).toBe("&#60;a href=&#34;x&#34;&#62;&#38;&#39;");
  });

  it("says so instead of charting when the result has no series", () => {
    const out = renderReport(simulate(exampleModel()));
    expect(out).toContain('data-chart="load"');
    expect(out).toContain("has no series");
    expect(out).not.toContain("<polyline");
  });

  it("shows an overload in red, beyond the capacity line, with the verdict", () => {
    const over = withSeries(modelOf(pairSpec(1200, { faults: [{ service: "work", instance: 0, at: "0s", duration: "1h" }] })), 20);
    const out = renderReport(over);
    expect(out).toContain('data-verdict="bad"');
    expect(out).toMatch(/<rect class="bar bad" data-instance="work#1" data-load="1\.06/);
    // The source's queue filled: the records tile and the back-pressure table say so.
    expect(out).toMatch(/refused: a queue was full/);
    expect(out).toContain('data-table="back-pressure"');
    // An instance without work is still a bar (of 0 %); one without capacity is not.
    expect(out).toMatch(/<rect class="bar ok" data-instance="work#0" data-load="0"/);
  });
});

describe("the progress bar", () => {
  it("draws a bar, a percentage and the simulated time", () => {
    expect(renderProgress(0.5, "30s", "1m")).toBe(`[${"█".repeat(15)}${"░".repeat(15)}]  50%  30s of 1m simulated`);
    expect(renderProgress(2, "x", "y")).toContain("100%");
  });

  it("stays hidden for the first second, redraws at most every 100 ms, and erases itself", () => {
    let t = 0;
    const out: string[] = [];
    const p = createProgress(
      (s) => out.push(s),
      (f) => [`${f}`, "1"],
      () => t,
    );
    p.update(0.1);
    t = 999;
    p.update(0.2);
    expect(out).toEqual([]);
    t = 1000;
    p.update(0.3);
    t = 1050;
    p.update(0.4);
    t = 1100;
    p.update(0.5);
    expect(out).toHaveLength(2);
    expect(out[0]?.startsWith("\r[")).toBe(true);
    p.done();
    expect(out[2]).toBe("\r\u001b[K");
  });

  it("prints nothing at all for a run shorter than a second", () => {
    const out: string[] = [];
    const p = createProgress(
      (s) => out.push(s),
      () => ["", ""],
      () => 0,
    );
    p.update(1);
    p.done();
    expect(out).toEqual([]);
  });
});
