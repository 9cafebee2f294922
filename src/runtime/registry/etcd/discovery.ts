/**
 * The etcd backend's discovery: one range request over the system's prefix (`/mbc/<system>/`)
 * every heartbeat, through the polled view every backend shares (a cached view that never blocks
 * and keeps its last answer while etcd is unreachable). The view's version is etcd's revision.
 */
import type { Clock } from "../../core/clock.js";
import type { DiscoveryClient, InstanceEndpoint, Logger } from "../../core/contracts.js";
import { createPolledDiscovery, type Listing } from "../polled-discovery.js";
import { b64, type EtcdClient, fromB64, rangeEndOf } from "./gateway.js";
import { parseInstance, systemPrefix } from "./keys.js";

export interface EtcdDiscoveryOptions {
  client: EtcdClient;
  system: string;
  intervalMs: number;
  log: Logger;
  clock?: Clock;
  onClose?: () => void;
}

export function createEtcdDiscovery(options: EtcdDiscoveryOptions): DiscoveryClient {
  const { client, system, log } = options;
  const prefix = systemPrefix(system);
  const request = { key: b64(prefix), range_end: rangeEndOf(prefix) };

  const look = async (): Promise<Listing> => {
    try {
      const res = await client.call("/v3/kv/range", request);
      const kvs = Array.isArray(res.kvs) ? (res.kvs as { key?: unknown; value?: unknown }[]) : [];
      const instances: InstanceEndpoint[] = [];
      for (const kv of kvs) {
        const key = fromB64(kv.key);
        const value = fromB64(kv.value);
        const endpoint = key === null || value === null ? null : parseInstance(prefix, key, value);
        if (endpoint !== null) instances.push(endpoint);
      }
      const revision = Number((res.header as { revision?: unknown } | undefined)?.revision ?? 0);
      return { ok: true, instances, version: Number.isFinite(revision) ? revision : 0 };
    } catch (err) {
      return { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
  };

  return createPolledDiscovery({
    look,
    registry: `etcd ${client.endpoint}`,
    intervalMs: options.intervalMs,
    log,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.onClose ? { onClose: options.onClose } : {}),
  });
}
