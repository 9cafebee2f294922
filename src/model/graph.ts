/** The stage graph: sources → services → services, in file order. */
import type { Model, ServiceModel } from "./types.js";

export interface StageGraph {
  services: Map<string, ServiceModel>;
  /** Services fed directly by each service (only names that exist). */
  next: Map<string, string[]>;
  /** Upstream services of each service (only names that exist). */
  prev: Map<string, string[]>;
  /** Sources feeding each service directly. */
  fedBy: Map<string, string[]>;
  /** Services in topological order; services on a cycle (and below one) are left out. */
  order: string[];
}

export function stageGraph(model: Model): StageGraph {
  const services = new Map(model.services.map((s) => [s.name, s]));
  const next = new Map<string, string[]>();
  const prev = new Map<string, string[]>();
  const fedBy = new Map<string, string[]>();
  for (const s of model.services) {
    next.set(s.name, []);
    prev.set(s.name, []);
    fedBy.set(s.name, []);
  }
  for (const s of model.services) {
    for (const t of s.to) {
      if (!services.has(t)) continue;
      next.get(s.name)?.push(t);
      prev.get(t)?.push(s.name);
    }
  }
  for (const src of model.sources) fedBy.get(src.to)?.push(src.name);
  // Kahn's algorithm keeps file order among ready services, so results are deterministic.
  const indegree = new Map(model.services.map((s) => [s.name, prev.get(s.name)?.length ?? 0]));
  const ready = model.services.filter((s) => indegree.get(s.name) === 0).map((s) => s.name);
  const order: string[] = [];
  for (let i = 0; i < ready.length; i++) {
    const name = ready[i] as string;
    order.push(name);
    for (const t of next.get(name) ?? []) {
      const d = (indegree.get(t) ?? 0) - 1;
      indegree.set(t, d);
      if (d === 0) ready.push(t);
    }
  }
  return { services, next, prev, fedBy, order };
}
