/**
 * The static (analytic) load model of the contract's "Load" section, shared by the capacity
 * rules of `mbc validate` and by the simulator, which prints it beside its measurements.
 */
import { type StageGraph, stageGraph } from "./graph.js";
import type { LoadBalancing, Model, ServiceModel } from "./types.js";

export interface InstanceLoad {
  index: number;
  weight: number;
  capacityPerSec: number;
  /** Share of the service's attempts sent to this instance. */
  share: number;
  /** sᵢ: offered attempts per second over capacity. */
  utilisation: number;
}

export interface ServiceLoad {
  service: string;
  /** Records per second offered to the service; null when a source on the way has no rate or a cycle is in the way. */
  ratePerSec: number | null;
  /** E[r] = p + p² + … + pᵐ. */
  expectedRetries: number;
  /** rate × (1 + E[r]). */
  attemptsPerSec: number | null;
  /** Per-instance loads; null unless both the rate and every instance's capacity are known. */
  instances: InstanceLoad[] | null;
  /** L(S, W) = Σ wᵢ·sᵢ / Σ wᵢ. */
  weightedLoad: number | null;
  /** R(r, t, m) = r·t / m with r = E[r], t in seconds; 0 when m = 0. */
  retryFigure: number;
}

/** E[r] = p + p² + … + pᵐ. */
export function expectedRetries(p: number, m: number): number {
  let sum = 0;
  let term = 1;
  for (let k = 1; k <= m; k++) {
    term *= p;
    sum += term;
  }
  return sum;
}

/** The documents' retry figure R(r, t, m) = r·t/m (0 when m is 0). */
export function retryFigure(r: number, tSeconds: number, m: number): number {
  return m === 0 ? 0 : (r * tSeconds) / m;
}

/** The documents' weighted load L(S, W) = Σ wᵢ·sᵢ / Σ wᵢ. */
export function weightedLoad(loads: readonly { weight: number; utilisation: number }[]): number {
  let num = 0;
  let den = 0;
  for (const l of loads) {
    num += l.weight * l.utilisation;
    den += l.weight;
  }
  return den === 0 ? 0 : num / den;
}

/** Each instance's expected share of the attempts under a strategy. */
export function expectedShares(strategy: LoadBalancing, instances: readonly { weight: number; capacityPerSec: number }[]): number[] {
  const by = (f: (i: { weight: number; capacityPerSec: number }) => number) => {
    const total = instances.reduce((a, i) => a + f(i), 0);
    return instances.map((i) => (total === 0 ? 1 / instances.length : f(i) / total));
  };
  switch (strategy) {
    case "round-robin":
    case "random":
      return instances.map(() => 1 / instances.length);
    case "weighted-round-robin":
    case "weighted-random":
      return by((i) => i.weight);
    case "least-connections":
    case "power-of-two-choices":
      return by((i) => i.capacityPerSec);
  }
}

/** Records/s offered to every service: the sum over its inputs (a fan-out sends a full copy down each branch). */
export function offeredRates(model: Model, graph: StageGraph = stageGraph(model)): Map<string, number | null> {
  const rates = new Map<string, number | null>();
  const sourceRate = new Map(model.sources.map((s) => [s.name, s.ratePerSec]));
  for (const s of model.services) rates.set(s.name, null);
  for (const name of graph.order) {
    let total: number | null = 0;
    for (const src of graph.fedBy.get(name) ?? []) {
      const r = sourceRate.get(src) ?? null;
      total = total === null || r === null ? null : total + r;
    }
    for (const up of graph.prev.get(name) ?? []) {
      const r = rates.get(up) ?? null;
      total = total === null || r === null ? null : total + r;
    }
    rates.set(name, total);
  }
  return rates;
}

export function serviceLoad(service: ServiceModel, ratePerSec: number | null, failureRate: number): ServiceLoad {
  const m = service.retry.maxRetries;
  const er = expectedRetries(failureRate, m);
  const attempts = ratePerSec === null ? null : ratePerSec * (1 + er);
  let instances: InstanceLoad[] | null = null;
  if (attempts !== null && service.instances.every((i) => i.capacityPerSec !== null && i.capacityPerSec > 0)) {
    const known = service.instances.map((i) => ({ index: i.index, weight: i.weight, capacityPerSec: i.capacityPerSec as number }));
    const shares = expectedShares(service.loadBalancing, known);
    instances = known.map((i, k) => {
      const share = shares[k] as number;
      return { ...i, share, utilisation: (share * attempts) / i.capacityPerSec };
    });
  }
  return {
    service: service.name,
    ratePerSec,
    expectedRetries: er,
    attemptsPerSec: attempts,
    instances,
    weightedLoad: instances ? weightedLoad(instances) : null,
    retryFigure: retryFigure(er, service.retry.intervalMs / 1000, m),
  };
}

/** The static model of every service, in file order. */
export function staticModel(model: Model, graph: StageGraph = stageGraph(model)): ServiceLoad[] {
  const rates = offeredRates(model, graph);
  return model.services.map((s) => serviceLoad(s, rates.get(s.name) ?? null, model.simulation.failureRate));
}
