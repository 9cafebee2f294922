/**
 * The embedded registry's registrar: an instance registers with `PUT /v1/instances/{service}/{K}`
 * and heartbeats every `registry.heartbeat`. While the registry is down it retries with a
 * backoff capped at one heartbeat, so a restarted registry is repopulated within one heartbeat;
 * it never gives up and never crashes. `stop()` deregisters (DELETE).
 */
import { type Clock, systemClock, type TimerHandle } from "../../core/clock.js";
import type { Logger } from "../../core/contracts.js";
import { bearer, type HttpClient } from "../../core/http.js";

export interface HeartbeatOptions {
  client: HttpClient;
  registryUrl: string;
  token: string | null;
  service: string;
  instance: number;
  body: { url: string; weight: number; capacityPerSec: number | null };
  heartbeatMs: number;
  ttlMs: number;
  log: Logger;
  clock?: Clock;
}

export interface Heartbeat {
  /** A heartbeat was accepted within the last ttl. */
  registered(): boolean;
  /** Stops heartbeating and deregisters (DELETE); never throws. */
  stop(): Promise<void>;
}

/** First retry after a failed heartbeat; doubled each time, capped at the heartbeat interval. */
const HEARTBEAT_RETRY_MS = 100;
/** While the registry stays unreachable, the warning is repeated this often, not every retry. */
const OUTAGE_LOG_EVERY_MS = 30_000;

/** Delay before the next heartbeat after `failures` consecutive failures (0: all is well). */
export function heartbeatDelayMs(heartbeatMs: number, failures: number): number {
  if (failures === 0) return heartbeatMs;
  return Math.min(heartbeatMs, HEARTBEAT_RETRY_MS * 2 ** Math.min(failures - 1, 20));
}

export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { client, registryUrl, token, service, instance, body, heartbeatMs, ttlMs, log } = options;
  const clock = options.clock ?? systemClock;
  const url = `${registryUrl}/v1/instances/${encodeURIComponent(service)}/${instance}`;
  // Long enough for a busy registry, short enough that the next beat is not delayed much.
  const timeoutMs = Math.max(heartbeatMs, 1000);
  let lastOk = Number.NEGATIVE_INFINITY;
  let failures = 0;
  let everRegistered = false;
  let lastOutageLog = Number.NEGATIVE_INFINITY;
  let stopped = false;
  let timer: TimerHandle | null = null;
  let current: Promise<void> | null = null;

  const beat = async () => {
    try {
      const res = await client.request("PUT", url, { json: body, headers: bearer(token), timeoutMs });
      if (res.status !== 200)
        throw new Error(res.status === 401 ? "the registry refused the token (MBC_TOKEN)" : `HTTP ${res.status} ${res.body.toString("utf8").slice(0, 200)}`);
      lastOk = clock.now();
      if (!everRegistered) log.info("registered", { registry: registryUrl, url: body.url });
      else if (failures > 0) log.info("registry reachable again: registered", { registry: registryUrl, failures });
      everRegistered = true;
      failures = 0;
    } catch (err) {
      failures++;
      const now = clock.now();
      if (failures === 1 || now - lastOutageLog >= OUTAGE_LOG_EVERY_MS) {
        lastOutageLog = now;
        log.warn("heartbeat failed: retrying", { registry: registryUrl, failures, error: err instanceof Error ? err.message : String(err) });
      }
    }
  };

  const loop = () => {
    if (stopped) return;
    current = beat().finally(() => {
      current = null;
      if (stopped) return;
      timer = clock.setTimer(loop, heartbeatDelayMs(heartbeatMs, failures));
    });
  };
  loop();

  return {
    registered: () => clock.now() - lastOk <= ttlMs,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== null) clock.clearTimer(timer);
      // A PUT still in flight could land after the DELETE and register us again.
      if (current) await current;
      try {
        const res = await client.request("DELETE", url, { headers: bearer(token), timeoutMs: Math.min(timeoutMs, 2000) });
        if (res.status !== 204 && res.status !== 200) log.warn("deregistration refused", { status: res.status });
        else log.info("deregistered", { registry: registryUrl });
      } catch (err) {
        // The ttl removes us anyway.
        log.warn("could not deregister: the registry will expire this instance", { error: err instanceof Error ? err.message : String(err) });
      }
    },
  };
}
