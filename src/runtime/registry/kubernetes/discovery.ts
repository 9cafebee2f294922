/**
 * Discovery from the cluster's DNS. Instance K of service NAME is pod K of the StatefulSet NAME
 * behind the headless Service NAME, so it has the name `NAME-K.NAME.NAMESPACE.svc`, which the
 * cluster's DNS answers only while the pod is ready (`publishNotReadyAddresses: false`). Every
 * `intervalMs` (the registry's heartbeat) the client looks up each instance the model gives the
 * services it has been asked about, and keeps the ones that resolve. Weights and capacities come
 * from the model by ordinal: a StatefulSet's ordinals are stable, so instance K is always the one
 * the spec weighs.
 *
 * A name that does not exist (NXDOMAIN, no address) means the pod is not ready or not there; any
 * other failure (a timeout, SERVFAIL) says nothing about the pod, so that instance keeps its last
 * state: a DNS outage never empties the view.
 */

import type { Model, ServiceModel } from "../../../model/types.js";
import { configuredPort } from "../../../policy/index.js";
import { instanceHost } from "../../../policy/kubernetes.js";
import type { Clock } from "../../core/clock.js";
import type { DiscoveryClient, InstanceEndpoint, Logger } from "../../core/contracts.js";
import { createPolledDiscovery } from "../polled-discovery.js";

/** What a look-up of one host name says: it resolves, or it does not exist. It throws when the answer says neither. */
export type HostResolver = (host: string) => Promise<"found" | "absent">;

/** Error codes of a look-up that mean "no such name" rather than "no answer". */
const ABSENT_CODES = new Set(["ENOTFOUND", "ENODATA", "EAI_NONAME", "EAI_NODATA"]);

/** The system's resolver (getaddrinfo, with the pod's search list). */
export const dnsResolver: HostResolver = async (host) => {
  const { lookup } = await import("node:dns/promises");
  try {
    await lookup(host);
    return "found";
  } catch (err) {
    if (ABSENT_CODES.has((err as NodeJS.ErrnoException).code ?? "")) return "absent";
    throw err;
  }
};

export interface KubernetesDiscoveryOptions {
  model: Model;
  namespace: string;
  /** Poll interval: the registry's heartbeat. */
  intervalMs: number;
  log: Logger;
  clock?: Clock;
  resolver?: HostResolver;
}

/** The endpoint of instance `k` of `service`, as the cluster names it. */
export function endpointOf(model: Model, service: ServiceModel, k: number, namespace: string): InstanceEndpoint {
  const inst = service.instances[k];
  const port = configuredPort(model, { kind: "service", name: service.name, instance: k, service });
  return {
    service: service.name,
    instance: k,
    url: `http://${instanceHost(service.name, k, namespace)}:${port}`,
    weight: inst?.weight ?? 1,
    capacityPerSec: inst?.capacityPerSec ?? service.capacityPerSec,
  };
}

export function createKubernetesDiscovery(options: KubernetesDiscoveryOptions): DiscoveryClient {
  const { model, namespace, intervalMs, log } = options;
  const resolver = options.resolver ?? dnsResolver;
  const byName = new Map(model.services.map((s) => [s.name, s]));
  return createPolledDiscovery({
    // Only the services asked about, each instance by its own name.
    perService: true,
    async look(watched, view) {
      const services = [...watched].filter((name) => byName.has(name)).sort();
      const answers = await Promise.all(
        services.flatMap((name) => {
          const service = byName.get(name) as ServiceModel;
          return service.instances.map((_, k) => {
            const endpoint = endpointOf(model, service, k, namespace);
            return resolver(instanceHost(name, k, namespace)).then(
              (answer) => ({ endpoint, answer }) as const,
              (err: unknown) => ({ endpoint, answer: "failed", error: err instanceof Error ? err.message : String(err) }) as const,
            );
          });
        }),
      );
      // An instance whose look-up failed keeps its last state: a DNS outage never empties the view.
      const wasLive = (e: InstanceEndpoint) => (view.get(e.service) ?? []).some((old) => old.instance === e.instance);
      const instances = answers.filter((a) => a.answer === "found" || (a.answer === "failed" && wasLive(a.endpoint))).map((a) => a.endpoint);
      const failed = answers.filter((a) => a.answer === "failed");
      return failed.length === 0 ? { ok: true, instances } : { ok: true, instances, partial: `${failed.length} look-up(s) failed: ${failed[0]?.error}` };
    },
    registry: `the cluster's DNS (namespace ${namespace})`,
    words: {
      outage: "DNS look-ups failed: keeping the last view of those instances",
      back: "DNS look-ups answer again",
      missing: "no ready pod of",
    },
    intervalMs,
    log,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
}
