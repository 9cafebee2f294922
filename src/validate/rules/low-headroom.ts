import type { Rule } from "../rule.js";
import { EPSILON, instanceLabel, loadedServices, loadFigures, percent } from "./load.js";

export const LOW_HEADROOM = 0.8;

export const lowHeadroom: Rule = {
  code: "low-headroom",
  severity: "warning",
  description: "the most loaded instance of a service has utilisation sᵢ ≥ 0.8",
  check(ctx) {
    return loadedServices(ctx)
      .filter((l) => l.peak.utilisation >= LOW_HEADROOM - EPSILON && l.peak.utilisation < 1 - EPSILON)
      .map((l) => ({
        path: l.service.path,
        at: "key" as const,
        message: `${instanceLabel(l, l.peak)} has little headroom: utilisation ${percent(l.peak.utilisation)} (${loadFigures(l)})`,
        hint: "queues grow sharply above 80% utilisation; add an instance or raise `capacity`",
      }));
  },
};
