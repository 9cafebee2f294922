import type { Rule } from "../rule.js";
import { EPSILON, instanceLabel, loadedServices, loadFigures, percent } from "./load.js";

export const overloaded: Rule = {
  code: "overloaded",
  severity: "error",
  description: "the most loaded instance of a service has utilisation sᵢ ≥ 1",
  check(ctx) {
    return loadedServices(ctx)
      .filter((l) => l.peak.utilisation >= 1 - EPSILON)
      .map((l) => ({
        path: l.service.path,
        at: "key" as const,
        message: `${instanceLabel(l, l.peak)} is overloaded: utilisation ${percent(l.peak.utilisation)} (${loadFigures(l)})`,
        hint: "add instances, raise `capacity`, or shift `weight` towards the instances with room",
      }));
  },
};
