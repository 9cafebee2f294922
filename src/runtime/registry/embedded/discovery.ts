/**
 * The embedded registry's discovery: `GET /v1/instances` (one request for every service), every
 * `intervalMs`, through the polled view every backend shares (../polled-discovery.ts: a cached
 * view that never blocks and keeps its last answer while the registry is down).
 */
import type { Clock } from "../../core/clock.js";
import type { DiscoveryClient, InstanceEndpoint, Logger } from "../../core/contracts.js";
import { bearer, createHttpClient, type HttpClient } from "../../core/http.js";
import { createPolledDiscovery, type Listing } from "../polled-discovery.js";

export type { DiscoveryClient, DiscoveryView } from "../../core/contracts.js";
export { groupByService } from "../polled-discovery.js";

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

export function createDiscovery(options: DiscoveryOptions): DiscoveryClient {
  const { registryUrl, token, intervalMs, log } = options;
  const ownClient = options.client === undefined;
  const client = options.client ?? createHttpClient({ maxSockets: 2 });
  const timeoutMs = options.timeoutMs ?? Math.max(intervalMs, 1000);
  const url = `${registryUrl}/v1/instances`;

  const look = async (): Promise<Listing> => {
    try {
      const res = await client.request("GET", url, { headers: bearer(token), timeoutMs });
      if (res.status === 401) return { ok: false, reason: "the registry refused the token (MBC_TOKEN)" };
      if (res.status !== 200) return { ok: false, reason: `HTTP ${res.status}` };
      let listing: ReturnType<typeof parseListing>;
      try {
        listing = parseListing(res.json());
      } catch {
        listing = null;
      }
      if (listing === null) return { ok: false, reason: "the answer is not a list of instances" };
      return { ok: true, ...listing };
    } catch (err) {
      return { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
  };

  return createPolledDiscovery({
    look,
    registry: registryUrl,
    intervalMs,
    log,
    ...(options.clock ? { clock: options.clock } : {}),
    onClose: () => {
      if (ownClient) client.close();
    },
  });
}
