/**
 * The one bound that the schema cannot state: every listener of a system (the registry, each
 * `http` source, each service instance) takes a port of its own on one host under the node and
 * systemd targets, so all of them together must fit in the 65,535 ports there are. The schema
 * bounds each service's instances (1,000) and the services (50,000); their product is far more
 * than there are ports, and building the model of such a spec (an object an instance, a port
 * each) would exhaust memory before any rule could say so. This check runs on the schema-valid
 * spec, before the model is built, and stops validation when it fails.
 */
import type { Finding } from "../diagnostic.js";
import type { Json } from "../model/merge.js";
import { MAX_PORT } from "../model/normalise.js";
import { joinPointer } from "../pointer.js";

type Entries = Record<string, Record<string, Json> | undefined>;

function instanceCount(instances: Json | undefined): number {
  if (instances === undefined) return 1;
  if (typeof instances === "number") return instances;
  return Array.isArray(instances) ? instances.length : 1;
}

/**
 * A `port-conflict` finding when the listeners need more ports than exist, at the `instances` of
 * the service with the most (the likeliest slip), else at `services`.
 */
export function checkListenerCount(spec: Json): Finding[] {
  const top = spec as { sources?: Entries; services?: Entries; registry?: { backend?: unknown } };
  // The embedded registry (the default) listens too; another backend's registry is outside the system.
  const backend = top.registry?.backend ?? "embedded";
  let listeners = backend === "embedded" ? 1 : 0;
  for (const source of Object.values(top.sources ?? {})) if (source?.type === "http") listeners++;
  let instances = 0;
  let largest: { name: string; count: number } | null = null;
  for (const [name, service] of Object.entries(top.services ?? {})) {
    const count = instanceCount(service?.instances);
    instances += count;
    if (service?.instances !== undefined && (largest === null || count > largest.count)) largest = { name, count };
  }
  listeners += instances;
  if (listeners <= MAX_PORT) return [];
  return [
    {
      code: "port-conflict",
      severity: "error",
      ...(largest === null ? { path: "/services", at: "key" as const } : { path: joinPointer("/services", largest.name, "instances") }),
      message: `the system needs ${listeners} ports (the registry, each http source and ${instances} service instances, one port each), more than the ${MAX_PORT} there are`,
      hint: "every instance listens on a port of its own: lower `instances`, or split the system into several specs",
    },
  ];
}
