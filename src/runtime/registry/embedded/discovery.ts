/**
 * The discovery client: a cached view of the registry that follows changes.
 *
 * It polls `GET /v1/instances` (one request for every service) every `intervalMs` — the
 * registry's heartbeat, so a change is seen within about one heartbeat — and answers
 * `instances(service)` from the cache without ever blocking. While the registry is down or
 * answers garbage, the last good view is kept: instances that were live most likely still are,
 * and the dispatcher's timeouts, retries and circuit breakers deal with one that is not.
 *
 * `instances(service)` returns the same (frozen) array until that service's view changes, so a
 * caller can tell a change by identity. `onChange` is told after each change of the view.
 * `waitFor` polls at once when the view lacks a service (then at the interval), so a caller
 * waiting for an instance that has just registered does not wait a whole interval.
 */
import { type Clock, systemClock, type TimerHandle } from "../../core/clock.js";
import type { Discovery, InstanceEndpoint, Logger } from "../../core/contracts.js";
import { bearer, createHttpClient, type HttpClient } from "../../core/http.js";

export interface DiscoveryOptions {
  /** Base URL of the registry, e.g. http://127.0.0.1:7400 */
  registryUrl: string;
  token: string | null;
  /** Poll interval: the registry's heartbeat. */
  intervalMs: number;
  log: Logger;
  /** A shared keep-alive client; by default one of its own, closed by close(). */
  client?: HttpClient;
  /** Timeout of one poll (default: the interval, at least 1 s). */
  timeoutMs?: number;
  clock?: Clock;
}

export type DiscoveryView = ReadonlyMap<string, readonly InstanceEndpoint[]>;

export interface DiscoveryClient extends Discovery {
  /** The registry's version of the cached view; null before the first answer. */
  readonly version: number | null;
  /** Whether the last poll got an answer. */
  readonly connected: boolean;
  /** Polls now (joining a poll in progress); true when the registry answered. */
  refresh(): Promise<boolean>;
  /** Calls `listener` after every change of the view; returns the unsubscribe function. */
  onChange(listener: (view: DiscoveryView) => void): () => void;
}

const EMPTY: readonly InstanceEndpoint[] = Object.freeze([]);

/** Checks the registry's answer; null when it is not the expected shape. */
export function parseListing(body: unknown): { instances: InstanceEndpoint[]; version: number } | null {
  if (typeof body !== "object" || body === null) return null;
  const { instances, version } = body as { instances?: unknown; version?: unknown };
  if (!Array.isArray(instances) || typeof version !== "number") return null;
  const out: InstanceEndpoint[] = [];
  for (const i of instances) {
    if (typeof i !== "object" || i === null) return null;
    const e = i as Record<string, unknown>;
    if (typeof e.service !== "string" || typeof e.instance !== "number" || typeof e.url !== "string" || typeof e.weight !== "number") return null;
    const capacityPerSec = typeof e.capacityPerSec === "number" ? e.capacityPerSec : null;
    out.push({ service: e.service, instance: e.instance, url: e.url, weight: e.weight, capacityPerSec });
  }
  return { instances: out, version };
}

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

export function createDiscovery(options: DiscoveryOptions): DiscoveryClient {
  const { registryUrl, token, intervalMs, log } = options;
  const clock = options.clock ?? systemClock;
  const ownClient = options.client === undefined;
  const client = options.client ?? createHttpClient({ maxSockets: 2 });
  const timeoutMs = options.timeoutMs ?? Math.max(intervalMs, 1000);
  const url = `${registryUrl}/v1/instances`;

  let view = new Map<string, readonly InstanceEndpoint[]>();
  let version: number | null = null;
  let connected = false;
  let closed = false;
  let inFlight: Promise<boolean> | null = null;
  let timer: TimerHandle | null = null;
  // An outage is logged when it starts and when it ends, not on every poll.
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

  const fail = (why: string, fields: Record<string, unknown> = {}) => {
    connected = false;
    if (!failing) log.warn("registry unreachable: keeping the last view of the instances", { registry: registryUrl, reason: why, ...fields });
    failing = true;
  };

  const poll = async (): Promise<boolean> => {
    try {
      const res = await client.request("GET", url, { headers: bearer(token), timeoutMs });
      if (res.status === 401) {
        fail("the registry refused the token (MBC_TOKEN)");
        return false;
      }
      if (res.status !== 200) {
        fail(`HTTP ${res.status}`);
        return false;
      }
      let listing: ReturnType<typeof parseListing>;
      try {
        listing = parseListing(res.json());
      } catch {
        listing = null;
      }
      if (listing === null) {
        fail("the answer is not a list of instances");
        return false;
      }
      if (failing) log.info("registry reachable again", { registry: registryUrl });
      failing = false;
      connected = true;
      if (!closed) apply(listing.instances, listing.version);
      return true;
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err));
      return false;
    }
  };

  const refresh = (): Promise<boolean> => {
    if (closed) return Promise.resolve(false);
    if (inFlight === null) {
      inFlight = poll().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };

  // Polls are chained rather than on an interval, so a slow registry never sees them pile up.
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
      // Ask now rather than at the next poll: an instance that registered since the last one
      // is seen at once (a poll in progress is joined, so waiters do not multiply requests).
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
      if (ownClient) client.close();
    },
  };
}
