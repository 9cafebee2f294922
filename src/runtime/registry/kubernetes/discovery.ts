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
import { type Clock, systemClock, type TimerHandle } from "../../core/clock.js";
import type { DiscoveryClient, DiscoveryView, InstanceEndpoint, Logger } from "../../core/contracts.js";

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

const EMPTY: readonly InstanceEndpoint[] = Object.freeze([]);

interface Waiter {
  services: readonly string[];
  resolve(): void;
  reject(err: Error): void;
  timer: TimerHandle;
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
  const clock = options.clock ?? systemClock;
  const resolver = options.resolver ?? dnsResolver;
  const byName = new Map(model.services.map((s) => [s.name, s]));

  /** The services asked about: only their instances are looked up. */
  const watched = new Set<string>();
  let view = new Map<string, readonly InstanceEndpoint[]>();
  let version: number | null = null;
  let connected = false;
  let closed = false;
  let failing = false;
  let inFlight: Promise<boolean> | null = null;
  let timer: TimerHandle | null = null;
  const listeners = new Set<(view: DiscoveryView) => void>();
  const waiters = new Set<Waiter>();

  const hasAll = (services: readonly string[]) => services.every((s) => (view.get(s)?.length ?? 0) > 0);

  const settleWaiters = () => {
    for (const w of waiters) {
      if (hasAll(w.services)) {
        waiters.delete(w);
        clock.clearTimer(w.timer);
        w.resolve();
      }
    }
  };

  /** A service was added since the poll in flight began: it must be looked up after it. */
  let newlyWatched = false;
  /** Starts watching services it does not know yet; true when one was new. */
  const watch = (services: readonly string[]): boolean => {
    let added = false;
    for (const s of services) {
      if (byName.has(s) && !watched.has(s)) {
        watched.add(s);
        added = true;
      }
    }
    if (added) newlyWatched = true;
    return added;
  };

  const poll = async (): Promise<boolean> => {
    newlyWatched = false;
    const services = [...watched].sort();
    const lookups = services.flatMap((name) => {
      const service = byName.get(name) as ServiceModel;
      return service.instances.map((_, k) => {
        const endpoint = endpointOf(model, service, k, namespace);
        return resolver(instanceHost(name, k, namespace)).then(
          (answer) => ({ endpoint, answer }) as const,
          (err: unknown) => ({ endpoint, answer: "failed", error: err instanceof Error ? err.message : String(err) }) as const,
        );
      });
    });
    const answers = await Promise.all(lookups);
    if (closed) return false;
    const failed = answers.filter((a) => a.answer === "failed");
    const next = new Map<string, readonly InstanceEndpoint[]>();
    let changed = false;
    for (const name of services) {
      const old = view.get(name) ?? EMPTY;
      const list = answers
        .filter((a) => a.endpoint.service === name)
        .filter((a) => a.answer === "found" || (a.answer === "failed" && old.some((e) => e.instance === a.endpoint.instance)))
        .map((a) => a.endpoint);
      const same = list.length === old.length && list.every((e, i) => e.instance === old[i]?.instance);
      next.set(name, same ? old : Object.freeze(list));
      if (!same) changed = true;
    }
    if (failed.length > 0) {
      connected = false;
      if (!failing) log.warn("DNS look-ups failed: keeping the last view of those instances", { failed: failed.length, error: failed[0]?.error });
      failing = true;
    } else {
      if (failing) log.info("DNS look-ups answer again");
      failing = false;
      connected = true;
    }
    if (version === null || changed) {
      view = next;
      version = (version ?? 0) + (changed ? 1 : 0);
    }
    if (changed) {
      for (const listener of listeners) {
        try {
          listener(view);
        } catch (err) {
          log.error("a discovery listener failed", { error: err });
        }
      }
    }
    settleWaiters();
    return failed.length === 0;
  };

  const refresh = (): Promise<boolean> => {
    if (closed) return Promise.resolve(false);
    // A poll in flight began before a service was asked about: look again once it ends.
    if (inFlight !== null && newlyWatched) return inFlight.then(() => refresh());
    if (inFlight === null) {
      inFlight = poll().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };

  // Chained rather than on an interval, so slow look-ups never pile up.
  const loop = () => {
    if (closed) return;
    refresh().finally(() => {
      if (closed) return;
      timer = clock.setTimer(loop, intervalMs);
    });
  };
  loop();

  return {
    get version() {
      return version;
    },
    get connected() {
      return connected;
    },
    instances(service) {
      // A service asked about for the first time is looked up at once, not at the next poll.
      if (watch([service])) void refresh();
      return view.get(service) ?? EMPTY;
    },
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitFor(services, waitMs) {
      watch(services);
      if (hasAll(services)) return Promise.resolve();
      if (closed) return Promise.reject(new Error("discovery is closed"));
      const waiting = new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          services,
          resolve,
          reject,
          timer: clock.setTimer(() => {
            waiters.delete(waiter);
            const missing = services.filter((s) => (view.get(s)?.length ?? 0) === 0);
            reject(new Error(`no ready pod of ${missing.join(", ")} within ${waitMs} ms`));
          }, waitMs),
        };
        waiters.add(waiter);
      });
      void refresh();
      return waiting;
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== null) clock.clearTimer(timer);
      for (const w of waiters) {
        clock.clearTimer(w.timer);
        w.reject(new Error("discovery is closed"));
      }
      waiters.clear();
      listeners.clear();
    },
  };
}
