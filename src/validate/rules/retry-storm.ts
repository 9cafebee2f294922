import type { Rule, RuleFinding } from "../rule.js";

/** Π (1 + maxRetriesᵢ) along a path above this warns. */
export const RETRY_STORM_LIMIT = 10;

export const retryStorm: Rule = {
  code: "retry-storm",
  severity: "warning",
  description: "along some path from a source, Π (1 + maxRetriesᵢ) exceeds 10",
  check({ model, graph }) {
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
      best.set(name, { product: product * (1 + svc.retry.maxRetries), via });
    }
    const out: RuleFinding[] = [];
    for (const name of graph.order) {
      const here = best.get(name);
      if (!here || here.product <= RETRY_STORM_LIMIT) continue;
      // Report where the product first crosses the limit, not at every service below.
      if (here.via !== null && (best.get(here.via)?.product ?? 0) > RETRY_STORM_LIMIT) continue;
      const chain: string[] = [];
      for (let n: string | null = name; n !== null; n = best.get(n)?.via ?? null) chain.unshift(n);
      const factors = chain.map((n) => 1 + (graph.services.get(n)?.retry.maxRetries ?? 0));
      const svc = graph.services.get(name);
      if (!svc) continue;
      out.push({
        path: svc.path,
        at: "key",
        message: `retries multiply to ${here.product} attempts per record along ${chain.join(" → ")} (${factors.join(" × ")})`,
        hint: "a failure deep in the pipeline is retried at every stage above it; lower `maxRetries` upstream or rely on the retry budget",
      });
    }
    return out;
  },
};
