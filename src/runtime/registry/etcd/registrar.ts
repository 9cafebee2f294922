/**
 * Keeps one instance registered in etcd: a lease of `ttl` (whole seconds), the instance's key
 * created only if absent in one transaction (compare `create_revision == 0`, put with the lease),
 * and the lease kept alive every `heartbeat`. etcd deletes the key when the lease runs out, so an
 * instance that stops heartbeating (killed, cut off) leaves discovery within the ttl.
 *
 * - While etcd cannot be reached, it retries with a backoff capped at one heartbeat and never
 *   gives up; `registered()` turns false once a ttl passed without a kept-alive lease.
 * - A lease that ran out meanwhile (a keep-alive answered with no TTL) is replaced, and the key
 *   created again.
 * - The key held by another lease: a restarted instance whose previous lease is still alive, or
 *   a second copy of the instance. It waits up to the ttl (plus one heartbeat, at least a second,
 *   as etcd looks for expired leases twice a second) of etcd answering for the key to go (a failed
 *   request starts the wait again: the holder's lease is not seen meanwhile); a restarted instance then
 *   registers, while a second copy gives up: `failed` settles with a RuntimeConfigError naming
 *   the holder, and the process exits 2.
 * - `stop()` revokes the lease, which deletes the key at once.
 */
import { RuntimeConfigError } from "../../config/error.js";
import { type Clock, systemClock, type TimerHandle } from "../../core/clock.js";
import type { Logger } from "../../core/contracts.js";
import type { Registrar } from "../backend.js";
import { b64, type EtcdClient, EtcdError, fromB64, GRPC } from "./gateway.js";
import { describeHolder } from "./keys.js";

export interface EtcdRegistrarOptions {
  client: EtcdClient;
  key: string;
  /** The key's value (keys.ts's InstanceValue as JSON). */
  value: string;
  /** What registers, for messages: `service enrich instance 0`. */
  what: string;
  ttlMs: number;
  heartbeatMs: number;
  log: Logger;
  clock?: Clock;
}

export interface EtcdRegistrar extends Registrar {
  /** Settles when the registrar gives up for good (another process holds the instance); never otherwise. */
  readonly failed: Promise<RuntimeConfigError>;
}

/** First retry after a failed request to etcd; doubled each time, capped at the heartbeat. */
const RETRY_MS = 100;
/** While etcd stays unreachable, the warning is repeated this often, not every retry. */
const OUTAGE_LOG_EVERY_MS = 30_000;
/** etcd's lessor looks for expired leases every 500 ms: a holder's lease may outlive its ttl by that much. */
const EXPIRY_SLACK_MS = 1000;

/** How long a claimant waits for another lease's key before it gives up. */
export function holderWaitMs(ttlMs: number, heartbeatMs: number): number {
  return ttlMs + Math.max(heartbeatMs, EXPIRY_SLACK_MS);
}

export function startEtcdRegistrar(options: EtcdRegistrarOptions): EtcdRegistrar {
  const { client, key, value, what, ttlMs, heartbeatMs, log } = options;
  const clock = options.clock ?? systemClock;
  const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
  const waitMs = holderWaitMs(ttlMs, heartbeatMs);

  let lease: string | null = null;
  let held = false;
  let lastOk = Number.NEGATIVE_INFINITY;
  let failures = 0;
  let lastOutageLog = Number.NEGATIVE_INFINITY;
  let waitingSince: number | null = null;
  let everRegistered = false;
  let stopped = false;
  let timer: TimerHandle | null = null;
  let current: Promise<void> | null = null;
  let giveUp!: (err: RuntimeConfigError) => void;
  const failed = new Promise<RuntimeConfigError>((resolve) => {
    giveUp = resolve;
  });

  const revoke = async (id: string) => {
    await client.call("/v3/lease/revoke", { ID: id });
  };

  /** Keeps the held lease alive; false when etcd no longer knows it. */
  const keepAlive = async (id: string): Promise<boolean> => {
    try {
      const res = await client.call("/v3/lease/keepalive", { ID: id });
      const result = (res.result ?? res) as { TTL?: unknown };
      return Number(result.TTL ?? 0) > 0;
    } catch (err) {
      if (err instanceof EtcdError && err.code === GRPC.notFound) return false;
      throw err;
    }
  };

  /** One attempt to create the key; the delay before the next step. */
  const claim = async (): Promise<number> => {
    // A lease left from an attempt whose answer was lost: its transaction may have created the key.
    const previous = lease;
    const granted = await client.call("/v3/lease/grant", { TTL: ttlSeconds });
    const id = String(granted.ID ?? "");
    if (id === "" || id === "0") throw new Error("etcd granted no lease");
    lease = id;
    const k = b64(key);
    const txn = await client.call("/v3/kv/txn", {
      compare: [{ key: k, target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [{ request_put: { key: k, value: b64(value), lease: id } }],
      failure: [{ request_range: { key: k } }],
    });
    if (txn.succeeded === true) {
      held = true;
      lastOk = clock.now();
      if (waitingSince !== null) log.info("the previous holder's lease ran out: registered", { key });
      else if (!everRegistered) log.info("registered", { registry: "etcd", key, endpoint: client.endpoint });
      else log.info("registered again", { key });
      everRegistered = true;
      waitingSince = null;
      return heartbeatMs;
    }
    const responses = (txn.responses ?? []) as { response_range?: { kvs?: { value?: unknown; lease?: unknown }[] } }[];
    const kv = responses[0]?.response_range?.kvs?.[0];
    // Held by another lease: let ours go (it would only run out), and wait for theirs.
    lease = null;
    await revoke(id).catch(() => {});
    if (previous !== null && kv !== undefined && String(kv.lease ?? "") === previous) {
      // Ours after all: the lost attempt created it. Keep that lease.
      lease = previous;
      held = true;
      lastOk = clock.now();
      everRegistered = true;
      log.info("registered", { registry: "etcd", key, endpoint: client.endpoint });
      return heartbeatMs;
    }
    // Gone between the compare and the range (it cannot be, in one transaction): try again soon.
    if (kv === undefined) return Math.min(heartbeatMs, RETRY_MS);
    const holder = describeHolder(fromB64(kv.value));
    const now = clock.now();
    if (waitingSince === null) {
      waitingSince = now;
      log.warn(`${what} is held in etcd by ${holder}: waiting up to ${waitMs} ms for its lease to run out`, { key, lease: String(kv.lease ?? "") });
    }
    if (now - waitingSince >= waitMs) {
      stopped = true;
      giveUp(
        new RuntimeConfigError(
          `${what} is already registered in etcd by ${holder} (key ${key}), whose lease stayed alive for ${waitMs} ms: an instance runs once, so stop the other copy before starting this one`,
        ),
      );
      return heartbeatMs;
    }
    return Math.min(heartbeatMs, waitingSince + waitMs - now);
  };

  const step = async (): Promise<number> => {
    if (held && lease !== null) {
      if (await keepAlive(lease)) {
        lastOk = clock.now();
        return heartbeatMs;
      }
      log.warn("the etcd lease ran out: registering again", { key, lease });
      held = false;
      lease = null;
    }
    return claim();
  };

  const loop = () => {
    if (stopped) return;
    current = step()
      .then(
        (delay) => {
          if (failures > 0) log.info("etcd reachable again", { endpoint: client.endpoint, failures });
          failures = 0;
          return delay;
        },
        (err: unknown) => {
          failures++;
          // Without etcd, whether the holder keeps its lease is not seen: its wait starts again.
          waitingSince = null;
          const now = clock.now();
          if (failures === 1 || now - lastOutageLog >= OUTAGE_LOG_EVERY_MS) {
            lastOutageLog = now;
            log.warn("etcd registration failed: retrying", { key, failures, error: err instanceof Error ? err.message : String(err) });
          }
          return Math.min(heartbeatMs, RETRY_MS * 2 ** Math.min(failures - 1, 20));
        },
      )
      .then((delay) => {
        current = null;
        if (!stopped) timer = clock.setTimer(loop, delay);
      });
  };
  loop();

  return {
    failed,
    registered: () => held && clock.now() - lastOk <= ttlMs,
    async stop() {
      if (stopped && lease === null) return;
      stopped = true;
      if (timer !== null) clock.clearTimer(timer);
      // A claim in flight could create the key after the revoke.
      if (current) await current;
      const id = lease;
      lease = null;
      held = false;
      if (id === null) return;
      try {
        await revoke(id);
        log.info("deregistered: lease revoked", { key });
      } catch (err) {
        // The ttl removes the key anyway.
        log.warn("could not revoke the lease: etcd will expire this instance", { key, error: err instanceof Error ? err.message : String(err) });
      }
    },
  };
}
