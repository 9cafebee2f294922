/**
 * The registry role: keeps the live instances of every service, in memory.
 *
 * - `PUT /v1/instances/{service}/{instance}` `{url, weight, capacityPerSec}` registers or
 *   refreshes an instance (the heartbeat); `DELETE` removes it (sent on shutdown);
 *   `GET /v1/instances/{service}` and `GET /v1/instances` list the live ones with a `version`.
 * - An instance silent for longer than `registry.ttl` is no longer listed (and is dropped at
 *   the next sweep, every heartbeat, which logs it).
 * - `version` changes on every change of what is listed (an added, changed, removed or expired
 *   instance), not on a heartbeat that changes nothing, so a client can tell "same view" cheaply.
 *   It starts at the clock's milliseconds rather than 0 so that a restarted registry does not
 *   hand out a version a client already saw for another view.
 * - Nothing is persisted: a restarted registry is repopulated by the next heartbeat of every
 *   instance, within one heartbeat interval.
 * - With a token (MBC_TOKEN), every /v1 request needs `Authorization: Bearer TOKEN` (401
 *   otherwise); health, readiness and metrics stay open, as a load balancer probes them.
 * - Registrations must name a service of the system and an instance it declares: the
 *   dispatchers size their balancers by the model, and a typo should fail loudly, not linger.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Gauge } from "prom-client";
import type { Model } from "../../../model/types.js";
import type { TimerHandle } from "../../core/clock.js";
import type { InstanceEndpoint, Logger } from "../../core/contracts.js";
import { HttpError, type Reply, type Route, type RouteRequest } from "../../core/http.js";
import type { Role, RoleContext } from "../../core/role.js";

const NAME = /^[a-z][a-z0-9-]{0,39}$/;

export interface Registration {
  url: string;
  weight: number;
  capacityPerSec: number | null;
}

interface Entry extends InstanceEndpoint {
  lastSeen: number;
}

export type PutResult = "added" | "changed" | "refreshed";

/** The table of live instances. Pure: the caller passes the time. */
export class InstanceTable {
  private readonly entries = new Map<string, Entry>();
  private currentVersion: number;

  constructor(
    private readonly ttlMs: number,
    initialVersion = 0,
  ) {
    this.currentVersion = initialVersion;
  }

  get version(): number {
    return this.currentVersion;
  }

  get size(): number {
    return this.entries.size;
  }

  put(service: string, instance: number, registration: Registration, now: number): PutResult {
    this.expire(now);
    const key = `${service}/${instance}`;
    const old = this.entries.get(key);
    this.entries.set(key, { service, instance, ...registration, lastSeen: now });
    if (old && old.url === registration.url && old.weight === registration.weight && old.capacityPerSec === registration.capacityPerSec) return "refreshed";
    this.currentVersion++;
    return old ? "changed" : "added";
  }

  /** Removes an instance; false when it was not listed. */
  delete(service: string, instance: number, now: number): boolean {
    this.expire(now);
    const removed = this.entries.delete(`${service}/${instance}`);
    if (removed) this.currentVersion++;
    return removed;
  }

  /** Drops instances silent for longer than the TTL; returns them. */
  expire(now: number): InstanceEndpoint[] {
    const gone: InstanceEndpoint[] = [];
    for (const [key, entry] of this.entries) {
      if (now - entry.lastSeen > this.ttlMs) {
        this.entries.delete(key);
        gone.push(endpoint(entry));
      }
    }
    if (gone.length > 0) this.currentVersion++;
    return gone;
  }

  /** The live instances (of one service, or all), by service then instance. */
  list(service: string | null, now: number): InstanceEndpoint[] {
    this.expire(now);
    const out: InstanceEndpoint[] = [];
    for (const entry of this.entries.values()) if (service === null || entry.service === service) out.push(endpoint(entry));
    return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.instance - b.instance));
  }

  /** Live instances per service. */
  counts(now: number): Map<string, number> {
    this.expire(now);
    const counts = new Map<string, number>();
    for (const entry of this.entries.values()) counts.set(entry.service, (counts.get(entry.service) ?? 0) + 1);
    return counts;
  }
}

function endpoint(e: Entry): InstanceEndpoint {
  return { service: e.service, instance: e.instance, url: e.url, weight: e.weight, capacityPerSec: e.capacityPerSec };
}

/** Checks a PUT body; HttpError 400 with the reason when it is wrong. */
export function parseRegistration(body: unknown): Registration {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError(400, "expected a JSON object {url, weight, capacityPerSec}");
  const { url, weight = 1, capacityPerSec = null } = body as Record<string, unknown>;
  if (typeof url !== "string") throw new HttpError(400, "url: expected a string such as http://127.0.0.1:9100");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HttpError(400, `url: not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new HttpError(400, `url: expected http:// or https://, not ${parsed.protocol}`);
  if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0) throw new HttpError(400, "weight: expected a number > 0");
  if (capacityPerSec !== null && (typeof capacityPerSec !== "number" || !Number.isFinite(capacityPerSec) || capacityPerSec <= 0)) {
    throw new HttpError(400, "capacityPerSec: expected a number > 0 or null");
  }
  // The base URL without a trailing slash: clients append /batch.
  return { url: url.replace(/\/+$/, ""), weight, capacityPerSec };
}

/** Whether an Authorization header carries the token, compared in constant time. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!match) return false;
  // Hashing first gives equal lengths, which timingSafeEqual needs, without leaking the length.
  const a = createHash("sha256")
    .update(match[1] as string)
    .digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

export interface RegistryApiOptions {
  table: InstanceTable;
  /** Instances each service declares; a registration outside them is refused. */
  known: ReadonlyMap<string, number>;
  token: string | null;
  log: Logger;
  now?: () => number;
}

/** The /v1 routes of the registry. */
export function registryRoutes(options: RegistryApiOptions): Route[] {
  const { table, known, token, log } = options;
  const now = options.now ?? Date.now;
  const authorize = (req: RouteRequest) => {
    if (token !== null && !tokenMatches(req.headers.authorization, token)) {
      throw new HttpError(401, "missing or wrong token: send Authorization: Bearer MBC_TOKEN", { "www-authenticate": 'Bearer realm="mbc-registry"' });
    }
  };
  const target = (req: RouteRequest): { service: string; instance: number } => {
    const service = req.params.service as string;
    const text = req.params.instance as string;
    if (!NAME.test(service)) throw new HttpError(400, `not a service name: ${JSON.stringify(service)}`);
    if (!/^\d{1,6}$/.test(text)) throw new HttpError(400, `not an instance number: ${JSON.stringify(text)}`);
    const count = known.get(service);
    if (count === undefined) throw new HttpError(404, `no service ${JSON.stringify(service)} in this system`);
    const instance = Number(text);
    if (instance >= count) throw new HttpError(404, `service ${service} has ${count} instance(s), not ${instance + 1}`);
    return { service, instance };
  };
  const listing = (service: string | null): Reply => {
    const instances = table.list(service, now());
    return { status: 200, json: { instances, version: table.version } };
  };
  return [
    {
      method: "PUT",
      path: "/v1/instances/:service/:instance",
      bodyLimit: 64 * 1024,
      async handle(req) {
        authorize(req);
        const { service, instance } = target(req);
        const registration = parseRegistration(await req.json());
        const result = table.put(service, instance, registration, now());
        if (result !== "refreshed") log.info(result === "added" ? "instance registered" : "instance changed", { service, instance, url: registration.url });
        return { status: 200, json: { ok: true, version: table.version } };
      },
    },
    {
      method: "DELETE",
      path: "/v1/instances/:service/:instance",
      handle(req) {
        authorize(req);
        const { service, instance } = target(req);
        if (table.delete(service, instance, now())) log.info("instance deregistered", { service, instance });
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: "/v1/instances/:service",
      handle(req) {
        authorize(req);
        const service = req.params.service as string;
        if (!known.has(service)) throw new HttpError(404, `no service ${JSON.stringify(service)} in this system`);
        return listing(service);
      },
    },
    {
      method: "GET",
      path: "/v1/instances",
      handle(req) {
        authorize(req);
        return listing(null);
      },
    },
  ];
}

/** Instances each service of the model declares. */
export function knownInstances(model: Model): Map<string, number> {
  return new Map(model.services.map((s) => [s.name, s.instances.length]));
}

/** The registry role, for the process scaffolding. */
export function createRegistryRole(ctx: RoleContext): Role {
  const { model, log, clock } = ctx;
  const now = () => clock.now();
  const table = new InstanceTable(model.registry.ttlMs, now());
  let sweeper: TimerHandle | null = null;
  let stopped = false;

  // Expired instances are also dropped on every request; the sweep makes the expiry show in the log.
  const sweep = () => {
    if (stopped) return;
    for (const gone of table.expire(now())) {
      log.warn("instance expired: no heartbeat within the ttl", { service: gone.service, instance: gone.instance, ttlMs: model.registry.ttlMs });
    }
    sweeper = clock.setTimer(sweep, model.registry.heartbeatMs);
  };

  // Live instances per service, computed when scraped.
  const registry = ctx.metrics.registry;
  const counts = () => table.counts(now());
  new Gauge({
    name: "mbc_registry_instances",
    help: "Live (registered, not expired) instances per service.",
    labelNames: ["service"],
    registers: [registry],
    collect() {
      const live = counts();
      for (const s of model.services) this.set({ service: s.name }, live.get(s.name) ?? 0);
    },
  });

  return {
    // Look-ups keep working while the registry drains: other processes may still be finishing.
    routes: registryRoutes({ table, known: knownInstances(model), token: ctx.env.token, log, now }).map((r) => ({ ...r, whileDraining: true })),
    start() {
      sweeper = clock.setTimer(sweep, model.registry.heartbeatMs);
    },
    async drain() {
      stopped = true;
      if (sweeper !== null) clock.clearTimer(sweeper);
      sweeper = null;
    },
  };
}
