import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { stageGraph } from "../../src/model/graph.js";
import { normalise } from "../../src/model/normalise.js";
import { expectedRetries, expectedShares, offeredRates, retryFigure, serviceLoad, staticModel, weightedLoad } from "../../src/model/static-load.js";
import { LOAD_BALANCING, type Model, type RawSpec } from "../../src/model/types.js";

const exampleText = readFileSync(new URL("../../examples/01-design-document/microbatch.yaml", import.meta.url), "utf8");

/** A model from sources and services given in short form. */
function build(sources: Record<string, unknown>, services: Record<string, unknown>, extra: Record<string, unknown> = {}): Model {
  return normalise({ mbc: 1, name: "t", sources, services, ...extra } as RawSpec).model;
}

const svc = (to?: string | string[], more: Record<string, unknown> = {}) => ({ handler: "builtin:passthrough", ...(to === undefined ? {} : { to }), ...more });
const gen = (rate: number | string | undefined, to: string) => (rate === undefined ? { type: "http", port: 8000, to } : { type: "generator", rate, to });
const rates = (m: Model) => Object.fromEntries(offeredRates(m));

describe("expectedRetries: E[r] = p + p² + … + pᵐ", () => {
  it.each([
    [0, 2, 0],
    [0.5, 0, 0],
    [0.5, 1, 0.5],
    [0.5, 2, 0.75],
    [0.5, 3, 0.875],
    [0.1, 2, 0.11],
    [1, 3, 3],
  ])("p=%d, m=%d → %d", (p, m, er) => {
    expect(expectedRetries(p, m)).toBeCloseTo(er, 12);
  });

  it("matches the closed form p(1 − pᵐ)/(1 − p)", () => {
    for (const p of [0.01, 0.2, 0.37, 0.9]) {
      for (let m = 0; m <= 10; m++) expect(expectedRetries(p, m)).toBeCloseTo((p * (1 - p ** m)) / (1 - p), 12);
    }
  });
});

describe("retryFigure: R = r·t/m", () => {
  it("computes r·t/m", () => {
    expect(retryFigure(0.875, 0.1, 3)).toBeCloseTo(0.0291667, 6);
    expect(retryFigure(2, 0.5, 4)).toBe(0.25);
    expect(retryFigure(0, 0.1, 2)).toBe(0);
  });

  it("is 0 when m is 0", () => {
    expect(retryFigure(1.5, 0.1, 0)).toBe(0);
    expect(retryFigure(0, 0, 0)).toBe(0);
  });
});

describe("weightedLoad: L = Σ wᵢ·sᵢ / Σ wᵢ", () => {
  it("weights the loads", () => {
    expect(
      weightedLoad([
        { weight: 2, utilisation: 0.8 },
        { weight: 1, utilisation: 0.4 },
      ]),
    ).toBeCloseTo(2 / 3, 12);
    expect(
      weightedLoad([
        { weight: 1, utilisation: 0.2 },
        { weight: 3, utilisation: 0.6 },
      ]),
    ).toBeCloseTo(0.5, 12);
    expect(weightedLoad([{ weight: 5, utilisation: 0.3 }])).toBeCloseTo(0.3, 12);
  });

  it("is 0 for no instances", () => {
    expect(weightedLoad([])).toBe(0);
  });
});

describe("expectedShares", () => {
  const instances = [
    { weight: 2, capacityPerSec: 1000 },
    { weight: 1, capacityPerSec: 3000 },
  ];
  const expected: Record<(typeof LOAD_BALANCING)[number], number[]> = {
    "round-robin": [1 / 2, 1 / 2],
    random: [1 / 2, 1 / 2],
    "weighted-round-robin": [2 / 3, 1 / 3],
    "weighted-random": [2 / 3, 1 / 3],
    "least-connections": [1 / 4, 3 / 4],
    "power-of-two-choices": [1 / 4, 3 / 4],
  };

  it.each(LOAD_BALANCING.map((s) => [s]))("%s", (strategy) => {
    const shares = expectedShares(strategy, instances);
    expect(shares).toHaveLength(2);
    shares.forEach((s, i) => {
      expect(s).toBeCloseTo(expected[strategy][i] as number, 12);
    });
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it("covers every strategy", () => {
    expect(Object.keys(expected).sort()).toEqual([...LOAD_BALANCING].sort());
  });

  it("one instance takes everything", () => {
    for (const s of LOAD_BALANCING) expect(expectedShares(s, [{ weight: 3, capacityPerSec: 7 }])).toEqual([1]);
  });

  it("falls back to equal shares when the total is zero", () => {
    expect(
      expectedShares("least-connections", [
        { weight: 1, capacityPerSec: 0 },
        { weight: 1, capacityPerSec: 0 },
      ]),
    ).toEqual([0.5, 0.5]);
  });
});

describe("offeredRates", () => {
  it("carries a source's rate down a chain", () => {
    const m = build({ in: gen(100, "a") }, { a: svc("b"), b: svc("c"), c: svc() });
    expect(rates(m)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it("converts rate units", () => {
    const m = build({ in: gen("90000/m", "a") }, { a: svc() });
    expect(rates(m)).toEqual({ a: 1500 });
  });

  it("sums the sources that feed a service", () => {
    const m = build({ one: gen(100, "a"), two: gen(50, "a"), three: gen(7, "b") }, { a: svc("b"), b: svc() });
    expect(rates(m)).toEqual({ a: 150, b: 157 });
  });

  it("sends a full copy down each branch of a fan-out", () => {
    const m = build({ in: gen(100, "a") }, { a: svc(["b", "c"]), b: svc(), c: svc() });
    expect(rates(m)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it("counts a diamond twice: each path carries its own copy", () => {
    // a fans out to b and c, which both feed d: d receives both copies of every record.
    const m = build({ in: gen(100, "a") }, { a: svc(["b", "c"]), b: svc("d"), c: svc("d"), d: svc() });
    expect(rates(m)).toEqual({ a: 100, b: 100, c: 100, d: 200 });
  });

  it("is null downstream of a source without a rate", () => {
    const m = build({ known: gen(100, "a"), unknown: gen(undefined, "b") }, { a: svc("c"), b: svc("c"), c: svc(), d: svc() });
    expect(rates(m)).toEqual({ a: 100, b: null, c: null, d: 0 });
  });

  it("is null on and below a cycle", () => {
    const m = build({ in: gen(100, "a") }, { a: svc("b"), b: svc("c"), c: svc(["b", "d"]), d: svc() });
    expect(rates(m)).toEqual({ a: 100, b: null, c: null, d: null });
  });

  it("ignores `to` names that are not services", () => {
    const m = build({ in: gen(100, "a") }, { a: svc(["b", "nowhere"]), b: svc() });
    expect(rates(m)).toEqual({ a: 100, b: 100 });
  });

  it("takes a prebuilt graph", () => {
    const m = build({ in: gen(10, "a") }, { a: svc("b"), b: svc() });
    expect(offeredRates(m, stageGraph(m))).toEqual(offeredRates(m));
  });
});

describe("serviceLoad", () => {
  it("adds expected retries to the attempts", () => {
    const m = build(
      { in: gen(1000, "a") },
      { a: svc(undefined, { capacity: 5000, retry: { maxRetries: 2, interval: "200ms" } }) },
      { simulation: { failureRate: 0.5 } },
    );
    const [load] = staticModel(m);
    expect(load?.expectedRetries).toBeCloseTo(0.75, 12);
    expect(load?.attemptsPerSec).toBeCloseTo(1750, 9);
    expect(load?.instances?.[0]?.utilisation).toBeCloseTo(0.35, 12);
    expect(load?.retryFigure).toBeCloseTo((0.75 * 0.2) / 2, 12);
  });

  it("knows no per-instance load without a rate or a capacity", () => {
    const noCapacity = build({ in: gen(1000, "a") }, { a: svc() });
    expect(staticModel(noCapacity)[0]).toMatchObject({ ratePerSec: 1000, attemptsPerSec: 1000, instances: null, weightedLoad: null });
    const noRate = build({ in: gen(undefined, "a") }, { a: svc(undefined, { capacity: 10 }) });
    expect(staticModel(noRate)[0]).toMatchObject({ ratePerSec: null, attemptsPerSec: null, instances: null, weightedLoad: null });
    const oneUnknown = build({ in: gen(1000, "a") }, { a: svc(undefined, { instances: [{ capacity: 10 }, {}] }) });
    expect(staticModel(oneUnknown)[0]?.instances).toBeNull();
  });

  it("has a zero retry figure when maxRetries is 0", () => {
    const m = build({ in: gen(10, "a") }, { a: svc(undefined, { retry: { maxRetries: 0 } }) }, { simulation: { failureRate: 0.3 } });
    expect(staticModel(m)[0]).toMatchObject({ expectedRetries: 0, retryFigure: 0, attemptsPerSec: 10 });
  });

  it("spreads attempts by the strategy", () => {
    const m = build(
      { in: gen(3000, "a") },
      { a: svc(undefined, { loadBalancing: "least-connections", instances: [{ capacity: 1000 }, { capacity: 2000 }], capacity: 1 }) },
    );
    const s = m.services[0];
    if (!s) throw new Error("no service");
    const load = serviceLoad(s, 3000, 0);
    expect(load.instances?.map((i) => i.share)).toEqual([1 / 3, 2 / 3]);
    for (const i of load.instances ?? []) expect(i.utilisation).toBeCloseTo(1, 12);
    expect(load.weightedLoad).toBeCloseTo(1, 12);
  });
});

describe("the design example", () => {
  const model = normalise(parse(exampleText) as RawSpec).model;
  const [dp, rs] = staticModel(model);

  it("offers 2400 records/s to both services", () => {
    expect(rates(model)).toEqual({ "data-processing": 2400, "result-storage": 2400 });
  });

  it("data-processing: shares 2/3 and 1/3, s0 = 0.8, s1 = 0.4, L = 2/3", () => {
    expect(dp?.service).toBe("data-processing");
    expect(dp?.expectedRetries).toBe(0);
    expect(dp?.attemptsPerSec).toBe(2400);
    expect(dp?.instances?.map((i) => i.share)).toEqual([2 / 3, 1 / 3]);
    expect(dp?.instances?.[0]?.utilisation).toBeCloseTo(0.8, 12);
    expect(dp?.instances?.[1]?.utilisation).toBeCloseTo(0.4, 12);
    expect(dp?.weightedLoad).toBeCloseTo(2 / 3, 12);
    expect(dp?.retryFigure).toBe(0);
  });

  it("result-storage: s = 0.48", () => {
    expect(rs?.service).toBe("result-storage");
    expect(rs?.instances?.map((i) => i.utilisation)).toEqual([0.48]);
    expect(rs?.weightedLoad).toBeCloseTo(0.48, 12);
  });

  it("with a failure rate, R = E[r]·t/m", () => {
    const withFailures = normalise({ ...(parse(exampleText) as RawSpec), simulation: { failureRate: 0.1 } } as RawSpec).model;
    const [load] = staticModel(withFailures);
    expect(load?.expectedRetries).toBeCloseTo(0.11, 12);
    expect(load?.attemptsPerSec).toBeCloseTo(2664, 9);
    expect(load?.retryFigure).toBeCloseTo((0.11 * 0.1) / 2, 12);
    expect(load?.instances?.[0]?.utilisation).toBeCloseTo(0.888, 12);
  });
});
