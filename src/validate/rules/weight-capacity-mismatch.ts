import type { Rule } from "../rule.js";
import { round } from "../rule.js";
import { EPSILON, instanceLabel, loadedServices, percent } from "./load.js";

/** An instance's sᵢ may differ from the weighted load L by at most this share of L. */
export const MISMATCH_TOLERANCE = 0.25;

export const weightCapacityMismatch: Rule = {
  code: "weight-capacity-mismatch",
  severity: "warning",
  description: "some instance's sᵢ differs from the weighted load L by more than 25 % of L",
  check(ctx) {
    return loadedServices(ctx).flatMap((l) => {
      const L = l.load.weightedLoad;
      // Exactly 25 % is allowed, also when floating point lands a hair above it.
      const off = l.load.instances.filter((i) => Math.abs(i.utilisation - L) > MISMATCH_TOLERANCE * L + EPSILON);
      if (off.length === 0) return [];
      const worst = off.reduce((a, b) => (Math.abs(b.utilisation - L) > Math.abs(a.utilisation - L) ? b : a));
      const list = l.load.instances.map((i) => `s${i.index}=${round(i.utilisation, 3)} (w=${round(i.weight, 3)})`).join(", ");
      return [
        {
          path: l.service.path,
          at: "key" as const,
          message: `the load of service "${l.service.name}" is uneven: ${instanceLabel(l, worst)} runs at ${percent(worst.utilisation)} against a weighted load L=${round(L, 3)} (${list})`,
          hint:
            l.service.loadBalancing === "weighted-round-robin" || l.service.loadBalancing === "weighted-random"
              ? "make each instance's `weight` proportional to its `capacity`, or use least-connections"
              : "give the instances capacities that match how the strategy spreads load, or use a weighted strategy",
        },
      ];
    });
  },
};
