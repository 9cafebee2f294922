/**
 * The etcd registry (registry.backend `etcd`): no registry process of the system; each instance
 * registers itself in an etcd cluster under `/mbc/<system>/<service>/<instance>`, held by a lease
 * of `registry.ttl` kept alive every `registry.heartbeat` (registrar.ts), and every process reads
 * the system's prefix every heartbeat (discovery.ts). It speaks etcd's JSON gateway over Node's
 * own HTTP (gateway.ts, transport.ts): the runtime stays one file that needs nothing but Node.
 * See docs/runtime.md, "The etcd backend", and docs/dependencies.md for why no etcd library.
 */
import { hostname } from "node:os";
import type { Model } from "../../../model/types.js";
import { VERSION } from "../../../version.js";
import type { RegistryBackend } from "../backend.js";
import { etcdSettings } from "./config.js";
import { createEtcdDiscovery } from "./discovery.js";
import { createEtcdClient, type Transport } from "./gateway.js";
import { type InstanceValue, instanceKey } from "./keys.js";
import { startEtcdRegistrar } from "./registrar.js";
import { nodeTransport } from "./transport.js";

/** Whether a URL's host is this machine only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "").toLowerCase();
  } catch {
    return false;
  }
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Longest one exchange with etcd may take before the next endpoint is asked. */
const EXCHANGE_TIMEOUT_MS = 2000;

export interface EtcdRegistryOptions {
  /** The environment its settings come from (MBC_REGISTRY_*). */
  vars: Readonly<Record<string, string | undefined>>;
  /** Talks to etcd (default: node:http/node:https); tests give a fake cluster. */
  transport?: Transport;
}

/** The backend for `model`; throws a RuntimeConfigError (exit 2) for bad settings, at the process's start. */
export function etcdRegistry(model: Model, options: EtcdRegistryOptions): RegistryBackend {
  const settings = etcdSettings(model, options.vars);
  const timeoutMs = Math.min(EXCHANGE_TIMEOUT_MS, Math.max(model.registry.heartbeatMs, 500));
  // One connection pool a process, opened when first used and closed with the last user.
  let pool: { transport: Transport; close(): void } | null = null;
  let users = 0;
  const open = () => {
    users++;
    if (options.transport) return createEtcdClient({ endpoints: settings.endpoints, transport: options.transport, auth: settings.auth });
    pool ??= nodeTransport(settings.tls, timeoutMs);
    return createEtcdClient({ endpoints: settings.endpoints, transport: pool.transport, auth: settings.auth });
  };
  const release = () => {
    users--;
    if (users === 0 && pool !== null) {
      pool.close();
      pool = null;
    }
  };
  return {
    name: "etcd",
    role: null,
    register(ctx, registration) {
      // etcd elsewhere means peers elsewhere: a loopback URL in it reaches nobody but this host.
      if (isLoopbackUrl(registration.url) && settings.endpoints.some((e) => !isLoopbackUrl(e)))
        ctx.log.warn("this instance advertises a loopback address in a shared registry: processes on other hosts cannot reach it", {
          url: registration.url,
          hint: "set MBC_ADVERTISE_HOST to an address the other hosts reach (and MBC_BIND to listen on it, or 0.0.0.0)",
        });
      const client = open();
      const value: InstanceValue = {
        url: registration.url,
        weight: registration.weight,
        capacityPerSec: registration.capacityPerSec,
        version: VERSION,
        host: hostname(),
        pid: process.pid,
      };
      const registrar = startEtcdRegistrar({
        client,
        key: instanceKey(ctx.model.name, registration.service, registration.instance),
        value: JSON.stringify(value),
        what: `service ${registration.service} instance ${registration.instance}`,
        ttlMs: ctx.model.registry.ttlMs,
        heartbeatMs: ctx.model.registry.heartbeatMs,
        log: ctx.log,
        clock: ctx.clock,
      });
      let released = false;
      return {
        failed: registrar.failed,
        registered: registrar.registered,
        async stop() {
          await registrar.stop();
          if (!released) {
            released = true;
            release();
          }
        },
      };
    },
    discover(ctx) {
      return createEtcdDiscovery({
        client: open(),
        system: ctx.model.name,
        intervalMs: ctx.model.registry.heartbeatMs,
        log: ctx.log,
        clock: ctx.clock,
        onClose: release,
      });
    },
  };
}
