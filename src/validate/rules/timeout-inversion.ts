import { formatMs } from "../../model/units.js";
import type { Rule, RuleFinding } from "../rule.js";
import { definedAt } from "../rule.js";

/**
 * The room a stage needs above the largest timeout below it (the contract's v1.1 definition):
 * one attempt below must be able to finish inside one attempt of its own, with a little left
 * for the hop. Retries below are cut by the deadline the batch carries, not wasted.
 */
export const TIMEOUT_MARGIN_MS = 100;

export const timeoutInversion: Rule = {
  code: "timeout-inversion",
  severity: "warning",
  description: "a service's `timeout` is shorter than the largest `timeout` among its `to` plus 100ms",
  check({ model, graph, spec }) {
    const out: RuleFinding[] = [];
    // A default timeout on a cycle is no default of the stages below (there is no below): the
    // cycle is an error of its own.
    const ordered = new Set(graph.order);
    for (const s of model.services) {
      let slowest: { name: string; timeoutMs: number } | null = null;
      for (const t of s.to) {
        const down = graph.services.get(t);
        if (down && (slowest === null || down.timeoutMs > slowest.timeoutMs)) slowest = { name: down.name, timeoutMs: down.timeoutMs };
      }
      if (slowest === null) continue;
      const needed = slowest.timeoutMs + TIMEOUT_MARGIN_MS;
      if (s.timeoutMs >= needed) continue;
      const path = definedAt(spec, `${s.path}/timeout`, "/defaults/timeout", s.path);
      if (path === s.path && !ordered.has(s.name)) continue;
      out.push({
        path,
        at: path === s.path ? "key" : "value",
        message: `service "${s.name}" times out after ${formatMs(s.timeoutMs)}, but one attempt of "${slowest.name}" may take ${formatMs(slowest.timeoutMs)}: it could not finish inside one attempt of "${s.name}"`,
        hint:
          path === s.path
            ? `a default timeout is at most 60s: give "${s.name}" a timeout of at least ${formatMs(needed)}, or lower the timeout of "${slowest.name}"`
            : path === "/defaults/timeout"
              ? `give "${s.name}" a timeout of at least ${formatMs(needed)}, or lower the timeout of "${slowest.name}" (without \`defaults.timeout\`, each stage's default is the largest timeout below it plus 2s)`
              : `raise it to at least ${formatMs(needed)}, or remove it (the default is the largest timeout below plus 2s), or lower the timeout of "${slowest.name}"`,
      });
    }
    return out;
  },
};
