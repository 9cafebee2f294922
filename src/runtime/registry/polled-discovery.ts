/**
 * What every backend's discovery shares (embedded/, etcd/, kubernetes/): a cached view of the
 * live instances, refreshed by looking at the registry every `intervalMs` (the heartbeat, so a
 * change is seen within about one heartbeat; looks are chained, so a slow registry never sees
 * them pile up), answered without ever blocking, and kept while the registry cannot be reached:
 * instances that were live most likely still are, and the dispatcher's timeouts, retries and
 * circuit breakers deal with one that is not. A backend says only how to look (`look`): an HTTP
 * listing, a key range, DNS names.
 *
 * `instances(service)` returns the same frozen array until that service's list changes, so a
 * caller can tell a change by identity. `waitFor` looks at once when the view lacks a service,
 * so a caller waiting for an instance that has just registered does not wait a whole interval.
 */
import { type Clock, systemClock, type TimerHandle } from "../core/clock.js";
import type { DiscoveryClient, DiscoveryView, InstanceEndpoint, Logger } from "../core/contracts.js";

/** What one look at the registry found. */
export type Listing =
  /** The instances of every service looked at; `version` is the registry's, where it has one. */
  | { ok: true; instances: readonly InstanceEndpoint[]; version?: number; partial?: string }
  /** Nothing usable: the view stays as it was. */
  | { ok: false; reason: string };

export interface PolledDiscoveryOptions {
  /**
   * Looks at the registry. `watched` holds the services asked about so far (a backend that lists
   * everything at once may ignore it); `view` is the view as it stands, for a backend that keeps
   * what a partial answer does not cover. `partial` in the answer: it is used, but the registry
   * was not fully reachable (logged as an outage, `connected` false).
   */
  look(watched: ReadonlySet<string>, view: DiscoveryView): Promise<Listing>;
  /** Whether `look` reads only the watched services: a service asked about for the first time is then looked up at once. */
  perService?: boolean;
  intervalMs: number;
  log: Logger;
  clock?: Clock;
  /** Names the registry in log lines. */
  registry: string;
  /** How the log names an outage and its end, and `waitFor` a service it did not see (default: a registry's words). */
  words?: { outage: string; back: string; missing: string };
  /** Called once by close(): what the backend holds (a client of its own). */
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

const REGISTRY_WORDS = {
  outage: "registry unreachable: keeping the last view of the instances",
  back: "registry reachable again",
  missing: "no live instance of",
};

export function createPolledDiscovery(options: PolledDiscoveryOptions): DiscoveryClient {
  const { intervalMs, log } = options;
  const words = options.words ?? REGISTRY_WORDS;
  const fields = { registry: options.registry };
  const clock = options.clock ?? systemClock;
  const perService = options.perService ?? false;

  const watched = new Set<string>();
  let view = new Map<string, readonly InstanceEndpoint[]>();
  let version: number | null = null;
  let connected = false;
  let closed = false;
  // An outage is logged when it starts and when it ends, not on every look.
  let failing = false;
  let inFlight: Promise<boolean> | null = null;
  /** A service was first asked about after the look in flight began: look again after it. */
  let newlyWatched = false;
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

  /** Starts watching services not watched yet; true when one was new. */
  const watch = (services: readonly string[]): boolean => {
    let added = false;
    for (const s of services) {
      if (!watched.has(s)) {
        watched.add(s);
        added = true;
      }
    }
    if (added) newlyWatched = true;
    return added;
  };

  const outage = (reason: string) => {
    connected = false;
    if (!failing) log.warn(words.outage, { ...fields, reason });
    failing = true;
  };

  const apply = (instances: readonly InstanceEndpoint[], newVersion: number | undefined) => {
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
    version = newVersion ?? (version ?? 0) + (changed ? 1 : 0);
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

  const lookOnce = async (): Promise<boolean> => {
    newlyWatched = false;
    let found: Listing;
    try {
      found = await options.look(watched, view);
    } catch (err) {
      found = { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
    if (closed) return false;
    if (!found.ok) {
      outage(found.reason);
      return false;
    }
    if (found.partial !== undefined) outage(found.partial);
    else {
      if (failing) log.info(words.back, fields);
      failing = false;
      connected = true;
    }
    apply(found.instances, found.version);
    return found.partial === undefined;
  };

  const refresh = (): Promise<boolean> => {
    if (closed) return Promise.resolve(false);
    // A look in flight began before a service was asked about: look again once it ends.
    if (perService && inFlight !== null && newlyWatched) return inFlight.then(() => refresh());
    if (inFlight === null) {
      inFlight = lookOnce().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };

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
      // A service asked about for the first time is looked up at once, not at the next look.
      if (watch([service]) && perService) void refresh();
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
            reject(new Error(`${words.missing} ${missing.join(", ")} within ${waitMs} ms`));
          }, waitMs),
        };
        waiters.add(waiter);
      });
      // Look now rather than at the next interval (a look in progress is joined, so waiters do
      // not multiply requests).
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
