import type { Rule } from "../rule.js";

export const nameClash: Rule = {
  code: "name-clash",
  severity: "error",
  description: "a source and a service share a name",
  check({ model }) {
    const sources = new Set(model.sources.map((s) => s.name));
    return model.services
      .filter((s) => sources.has(s.name))
      .map((s) => ({
        path: s.path,
        at: "key" as const,
        message: `"${s.name}" is both a source and a service; sources and services share one namespace`,
        hint: `rename the service or the source, e.g. "${s.name}-in" for the source`,
      }));
  },
};
