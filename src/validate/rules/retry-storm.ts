import type { StageGraph } from "../../model/graph.js";
import type { ServiceLoad } from "../../model/static-load.js";
import type { ServiceModel } from "../../model/types.js";
import type { Rule, RuleFinding } from "../rule.js";
import { round } from "../rule.js";

/** Π of the stages' retry factors along a path above this warns. */
export const RETRY_STORM_LIMIT = 10;

/**
 * How many attempts one record can make at a stage, at most, with the stage's retry budget (the
 * contract's v1.1 "retry-storm with budgets"): 1 + min(maxRetries, ratio + k·minPerSecond /
 * offered), where `offered` is the attempts/s reaching the stage and k the processes that call
 * it (each source feeding it, each instance of each service above it: the budget is per calling
 * process). Where `offered` is unknown: 1 + min(maxRetries, ratio), as storms are a high-load
 * effect, where the reserve is negligible.
 */
export function retryFactor(service: ServiceModel, load: ServiceLoad | undefined, callers: number): number {
  const { maxRetries, budget } = service.retry;
  const offered = load?.attemptsPerSec ?? null;
  const share = offered !== null && offered > 0 ? budget.ratio + (callers * budget.minPerSecond) / offered : budget.ratio;
  return 1 + Math.min(maxRetries, share);
}

/** The processes that call each service: the sources feeding it and every instance of each service above it. */
export function callerCounts(graph: StageGraph): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of graph.services.keys()) {
    let k = graph.fedBy.get(name)?.length ?? 0;
    for (const up of new Set(graph.prev.get(name) ?? [])) k += graph.services.get(up)?.instances.length ?? 0;
    out.set(name, Math.max(1, k));
  }
  return out;
}

export const retryStorm: Rule = {
  code: "retry-storm",
  severity: "warning",
  description: "along some path from a source, Π (1 + min(maxRetriesᵢ, the budget's share)) exceeds 10",
  check({ model, graph, loads }) {
    const loadOf = new Map(model.services.map((s, i) => [s.name, loads[i]]));
    const callers = callerCounts(graph);
    const factor = new Map(model.services.map((s) => [s.name, retryFactor(s, loadOf.get(s.name), callers.get(s.name) ?? 1)]));
    // The largest product over paths from a source, by dynamic programming in topological order.
    const best = new Map<string, { product: number; via: string | null }>();
    const fedBySource = new Set(model.sources.map((s) => s.to));
    for (const name of graph.order) {
      const svc = graph.services.get(name);
      if (!svc) continue;
      let product = fedBySource.has(name) ? 1 : 0;
      let via: string | null = null;
      for (const up of graph.prev.get(name) ?? []) {
        const p = best.get(up)?.product ?? 0;
        if (p > product) {
          product = p;
          via = up;
        }
      }
      if (product === 0) continue; // unreachable: reported by its own rule
      best.set(name, { product: product * (factor.get(name) ?? 1), via });
    }
    const out: RuleFinding[] = [];
    for (const name of graph.order) {
      const here = best.get(name);
      if (!here || here.product <= RETRY_STORM_LIMIT) continue;
      // Report where the product first crosses the limit, not at every service below.
      if (here.via !== null && (best.get(here.via)?.product ?? 0) > RETRY_STORM_LIMIT) continue;
      const chain: string[] = [];
      for (let n: string | null = name; n !== null; n = best.get(n)?.via ?? null) chain.unshift(n);
      const factors = chain.map((n) => round(factor.get(n) ?? 1));
      const svc = graph.services.get(name);
      if (!svc) continue;
      out.push({
        path: svc.path,
        at: "key",
        message: `retries may multiply to ${round(here.product, 1)} attempts per record along ${chain.join(" → ")} (${factors.join(" × ")})`,
        hint: "a failure deep in the pipeline is retried at every stage above it, as far as each stage's retry budget allows: lower `maxRetries` or `retry.budget` upstream",
      });
    }
    return out;
  },
};
