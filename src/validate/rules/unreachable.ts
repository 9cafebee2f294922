import type { Rule } from "../rule.js";

export const unreachable: Rule = {
  code: "unreachable",
  severity: "warning",
  description: "no source leads to a service",
  check({ model, graph }) {
    const reached = new Set<string>();
    const queue = model.sources.map((s) => s.to).filter((t) => graph.services.has(t));
    for (const t of queue) reached.add(t);
    for (let i = 0; i < queue.length; i++) {
      for (const t of graph.next.get(queue[i] as string) ?? []) {
        if (!reached.has(t)) {
          reached.add(t);
          queue.push(t);
        }
      }
    }
    return model.services
      .filter((s) => !reached.has(s.name))
      .map((s) => ({
        path: s.path,
        at: "key" as const,
        message: `no source leads to service "${s.name}"; it will never receive a batch`,
        hint: "name it in the `to` of a source or of a service upstream, or remove it",
      }));
  },
};
