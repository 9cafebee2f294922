import type { RetryModel, ServiceModel } from "../../model/types.js";
import { formatMs } from "../../model/units.js";
import type { Rule, RuleFinding } from "../rule.js";
import { definedAt, plural } from "../rule.js";

/** The largest wait before retry k (1-based): jitter can only shorten it. */
export function largestWait(retry: RetryModel, k: number): number {
  const raw = retry.backoff === "constant" ? retry.intervalMs : retry.intervalMs * retry.multiplier ** (k - 1);
  return Math.min(raw, retry.maxIntervalMs);
}

/** timeout × (maxRetries + 1) + the sum of the largest waits. */
export function worstCaseMs(service: ServiceModel): number {
  let waits = 0;
  for (let k = 1; k <= service.retry.maxRetries; k++) waits += largestWait(service.retry, k);
  return service.timeoutMs * (service.retry.maxRetries + 1) + waits;
}

export const timeoutInversion: Rule = {
  code: "timeout-inversion",
  severity: "warning",
  description: "a service's `timeout` is shorter than the worst case of a service in its `to`",
  check({ model, graph, spec }) {
    const out: RuleFinding[] = [];
    for (const s of model.services) {
      for (const t of new Set(s.to)) {
        const down = graph.services.get(t);
        if (!down) continue;
        const worst = worstCaseMs(down);
        if (s.timeoutMs >= worst) continue;
        const path = definedAt(spec, `${s.path}/timeout`, "/defaults/timeout", s.path);
        out.push({
          path,
          at: path === s.path ? "key" : "value",
          message: `service "${s.name}" times out after ${formatMs(s.timeoutMs)}, but "${t}" may take ${formatMs(worst)} (${formatMs(down.timeoutMs)} × ${plural(down.retry.maxRetries + 1, "attempt")} + ${formatMs(worst - down.timeoutMs * (down.retry.maxRetries + 1))} of waits)`,
          hint: `raise the timeout of "${s.name}" to at least ${formatMs(worst)}, or lower the timeout or retries of "${t}"`,
        });
      }
    }
    return out;
  },
};
