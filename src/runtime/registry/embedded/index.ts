/**
 * The embedded registry (registry.backend `embedded`, the default): a process of the system
 * keeps a table of instances in memory (server.ts); instances register and heartbeat over HTTP
 * (registrar.ts); every process polls the table (discovery.ts). See docs/runtime.md, "Protocol".
 */
import type { RegistryBackend } from "../backend.js";
import { createDiscovery } from "./discovery.js";
import { startHeartbeat } from "./registrar.js";
import { createRegistryRole } from "./server.js";

export const embeddedRegistry: RegistryBackend = {
  name: "embedded",
  role: createRegistryRole,
  register(ctx, registration) {
    const { service, instance, ...body } = registration;
    return startHeartbeat({
      client: ctx.client,
      registryUrl: ctx.env.registryUrl,
      token: ctx.env.token,
      service,
      instance,
      body,
      heartbeatMs: ctx.model.registry.heartbeatMs,
      ttlMs: ctx.model.registry.ttlMs,
      log: ctx.log,
      clock: ctx.clock,
    });
  },
  discover(ctx) {
    return createDiscovery({
      registryUrl: ctx.env.registryUrl,
      token: ctx.env.token,
      intervalMs: ctx.model.registry.heartbeatMs,
      log: ctx.log,
      client: ctx.client,
      clock: ctx.clock,
    });
  },
};
