/**
 * A discovery client over any registry that can be listed: a cached view that follows changes
 * by looking at the registry every `intervalMs` (the heartbeat, so a change is seen within about
 * one heartbeat), shared by the backends (embedded/, etcd/), which differ only in how they look.
 *
 * `instances(service)` answers from the cache and never blocks. While the registry is down or
 * answers garbage, the last good view is kept: instances that were live most likely still are,
 * and the dispatcher's timeouts, retries and circuit breakers deal with one that is not.
 *
 * `instances(service)` returns the same (frozen) array until that service's view changes, so a
 * caller can tell a change by identity. `onChange` is told after each change of the view.
 * `waitFor` looks at once when the view lacks a service (then at the interval), so a caller
 * waiting for an instance that has just registered does not wait a whole interval.
 */
import { type Clock, systemClock, type TimerHandle } from "../core/clock.js";
import type { DiscoveryClient, DiscoveryView, InstanceEndpoint, Logger } from "../core/contracts.js";

/** What one look at the registry found: every live instance and the registry's version of them, or why not. */
export type Listing = { ok: true; instances: InstanceEndpoint[]; version: number } | { ok: false; reason: string };

export interface PolledDiscoveryOptions {
  /** Looks at the registry once; never throws (a failure is `{ok: false}`). */
  look(): Promise<Listing>;
  /** Names the registry in log lines. */
  registry: string;
  /** Look interval: the registry's heartbeat. */
  intervalMs: number;
  log: Logger;
  clock?: Clock;
  /** Called once by close(), after the last look was stopped. */
  onClose?: () => void;
}

const EMPTY: readonly InstanceEndpoint[] = Object.freeze([]);

/** Groups endpoints by service, each list ordered by instance. */
export function groupByService(instances: readonly InstanceEndpoint[]): Map<string, InstanceEndpoint[]> {
  const byService = new Map<string, InstanceEndpoint[]>();
  for (const i of instances) {
    const list = byService.get(i.service);
    if (list) list.push(i);
    else byService.set(i.service, [i]);
  }
  for (const list of byService.values()) list.sort((a, b) => a.instance - b.instance);
  return byService;
}

function sameList(a: readonly InstanceEndpoint[], b: readonly InstanceEndpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) {
    const x = a[k] as InstanceEndpoint;
    const y = b[k] as InstanceEndpoint;
    if (x.instance !== y.instance || x.url !== y.url || x.weight !== y.weight || x.capacityPerSec !== y.capacityPerSec) return false;
  }
  return true;
}

interface Waiter {
  services: readonly string[];
  resolve(): void;
  reject(err: Error): void;
  timer: TimerHandle;
}

export function createPolledDiscovery(options: PolledDiscoveryOptions): DiscoveryClient {
  const { look, registry, intervalMs, log } = options;
  const clock = options.clock ?? systemClock;

  let view = new Map<string, readonly InstanceEndpoint[]>();
  let version: number | null = null;
  let connected = false;
  let closed = false;
  let inFlight: Promise<boolean> | null = null;
  let timer: TimerHandle | null = null;
  // An outage is logged when it starts and when it ends, not on every look.
  let failing = false;
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

  const apply = (instances: InstanceEndpoint[], newVersion: number) => {
    version = newVersion;
    const grouped = groupByService(instances);
    let changed = grouped.size !== view.size;
    const next = new Map<string, readonly InstanceEndpoint[]>();
    for (const [service, list] of grouped) {
      const old = view.get(service);
      if (old && sameList(old, list)) next.set(service, old);
      else {
        next.set(service, Object.freeze(list));
        changed = true;
      }
    }
    if (!changed) return;
    view = next;
    for (const listener of listeners) {
      try {
        listener(view);
      } catch (err) {
        log.error("a discovery listener failed", { error: err });
      }
    }
    settleWaiters();
  };

  const once = async (): Promise<boolean> => {
    const listing = await look();
    if (!listing.ok) {
      connected = false;
      if (!failing) log.warn("registry unreachable: keeping the last view of the instances", { registry, reason: listing.reason });
      failing = true;
      return false;
    }
    if (failing) log.info("registry reachable again", { registry });
    failing = false;
    connected = true;
    if (!closed) apply(listing.instances, listing.version);
    return true;
  };

  const refresh = (): Promise<boolean> => {
    if (closed) return Promise.resolve(false);
    if (inFlight === null) {
      inFlight = once().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };

  // Looks are chained rather than on an interval, so a slow registry never sees them pile up.
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
    instances: (service) => view.get(service) ?? EMPTY,
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitFor(services, waitMs) {
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
            reject(new Error(`no live instance of ${missing.join(", ")} within ${waitMs} ms`));
          }, waitMs),
        };
        waiters.add(waiter);
      });
      // Ask now rather than at the next look: an instance that registered since the last one
      // is seen at once (a look in progress is joined, so waiters do not multiply requests).
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
      options.onClose?.();
    },
  };
}
