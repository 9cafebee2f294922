import { afterAll, afterEach, describe, expect, it } from "vitest";
import { resolveEnv } from "../../src/runtime/config/index.js";
import type { InstanceEndpoint } from "../../src/runtime/core/contracts.js";
import { createHttpClient } from "../../src/runtime/core/http.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { type RunningRole, startRole } from "../../src/runtime/process/index.js";
import { createDiscovery } from "../../src/runtime/registry/embedded/discovery.js";
import { startHeartbeat } from "../../src/runtime/registry/embedded/registrar.js";
import { createRegistryRole } from "../../src/runtime/registry/embedded/server.js";
import { cleanupAll, freePorts, httpJson, makeSystem, type SystemDir, waitUntil } from "../helpers/runtime.js";

// A ttl far longer than any test: an instance registered once by a test's own PUT must not expire
// while a loaded machine gets round to the next step. Tests of expiry give their own.
function spec(registryPort: number, heartbeat = "100ms", ttl = "60s"): string {
  return `mbc: 1
name: reg-test
registry:
  port: ${registryPort}
  heartbeat: ${heartbeat}
  ttl: ${ttl}
sources:
  in:
    type: generator
    rate: 10/s
    to: a
services:
  a:
    handler: builtin:passthrough
    instances: 2
    port: ${registryPort + 1}
    to: b
  b:
    handler: builtin:log
    port: ${registryPort + 3}
`;
}

const roles: RunningRole[] = [];

async function startRegistry(system: SystemDir, vars: Record<string, string> = {}): Promise<RunningRole> {
  const env = resolveEnv(system.systemPath, system.model, vars);
  const running = await startRole({
    env,
    system: system.system,
    spec: { kind: "registry" },
    factory: createRegistryRole,
    log: silentLogger,
    metrics: createMetrics({ role: "registry" }, { defaultMetrics: false }),
  });
  roles.push(running);
  return running;
}

afterEach(async () => {
  for (const r of roles.splice(0)) await r.shutdown("test over");
});
afterAll(() => cleanupAll());

describe("the registry over HTTP", () => {
  it("registers, refreshes, lists, deregisters and refuses what is not in the system", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port));
    const registry = await startRegistry(system);
    const base = `http://127.0.0.1:${registry.port}`;
    expect(registry.port).toBe(port);

    const empty = await httpJson("GET", `${base}/v1/instances`);
    expect(empty.status).toBe(200);
    const v0 = (empty.json as { version: number }).version;
    expect(empty.json).toEqual({ instances: [], version: v0 });

    expect((await httpJson("PUT", `${base}/v1/instances/a/1`, { url: "http://127.0.0.1:1001", weight: 2, capacityPerSec: null })).status).toBe(200);
    expect((await httpJson("PUT", `${base}/v1/instances/a/0`, { url: "http://127.0.0.1:1000", weight: 1, capacityPerSec: 50 })).status).toBe(200);
    expect((await httpJson("PUT", `${base}/v1/instances/b/0`, { url: "http://127.0.0.1:1003" })).status).toBe(200);
    const all = await httpJson("GET", `${base}/v1/instances`);
    const v1 = (all.json as { version: number }).version;
    expect(v1).toBe(v0 + 3);
    expect((all.json as { instances: InstanceEndpoint[] }).instances).toEqual([
      { service: "a", instance: 0, url: "http://127.0.0.1:1000", weight: 1, capacityPerSec: 50 },
      { service: "a", instance: 1, url: "http://127.0.0.1:1001", weight: 2, capacityPerSec: null },
      { service: "b", instance: 0, url: "http://127.0.0.1:1003", weight: 1, capacityPerSec: null },
    ]);

    // A heartbeat that changes nothing keeps the version.
    await httpJson("PUT", `${base}/v1/instances/a/1`, { url: "http://127.0.0.1:1001", weight: 2, capacityPerSec: null });
    const one = await httpJson("GET", `${base}/v1/instances/a`);
    expect((one.json as { version: number }).version).toBe(v1);
    expect((one.json as { instances: InstanceEndpoint[] }).instances.map((i) => i.instance)).toEqual([0, 1]);

    expect((await httpJson("DELETE", `${base}/v1/instances/a/0`)).status).toBe(204);
    const after = await httpJson("GET", `${base}/v1/instances/a`);
    expect((after.json as { instances: InstanceEndpoint[] }).instances.map((i) => i.instance)).toEqual([1]);
    expect((after.json as { version: number }).version).toBe(v1 + 1);

    expect((await httpJson("PUT", `${base}/v1/instances/zzz/0`, { url: "http://x:1" })).status).toBe(404);
    expect((await httpJson("PUT", `${base}/v1/instances/a/2`, { url: "http://x:1" })).status).toBe(404);
    expect((await httpJson("PUT", `${base}/v1/instances/a/x`, { url: "http://x:1" })).status).toBe(400);
    expect((await httpJson("PUT", `${base}/v1/instances/a/0`, "{not json")).status).toBe(400);
    expect((await httpJson("PUT", `${base}/v1/instances/a/0`, { url: 7 })).json).toEqual({ error: expect.stringMatching(/url/) });
    expect((await httpJson("GET", `${base}/v1/instances/zzz`)).status).toBe(404);
    expect((await httpJson("POST", `${base}/v1/instances/a/0`, {})).status).toBe(405);
    expect((await httpJson("GET", `${base}/nope`)).status).toBe(404);

    const metrics = await httpJson("GET", `${base}/metrics`);
    expect(metrics.text).toMatch(/mbc_registry_instances\{service="a"\} 1/);
    expect(metrics.text).toMatch(/mbc_registry_instances\{service="b"\} 1/);
  });

  it("expires an instance that stops heartbeating, and keeps one that does not", async () => {
    // Exact timings are the unit tier's (a manual clock); here the bounds are the ttl × 2 + 1 s,
    // with a ttl long enough that a loaded machine does not miss heartbeats for that long.
    const ttlMs = 3000;
    const port = await freePorts(5);
    const system = makeSystem(spec(port, "100ms", `${ttlMs}ms`));
    const registry = await startRegistry(system);
    const base = `http://127.0.0.1:${registry.port}`;
    const client = createHttpClient();
    const beating = startHeartbeat({
      client,
      registryUrl: base,
      token: null,
      service: "a",
      instance: 0,
      body: { url: "http://127.0.0.1:1000", weight: 1, capacityPerSec: null },
      heartbeatMs: 100,
      ttlMs,
      log: silentLogger,
    });
    try {
      const listed = async () => ((await httpJson("GET", `${base}/v1/instances/a`)).json as { instances: InstanceEndpoint[] }).instances.map((i) => i.instance);
      await waitUntil(async () => (await listed()).includes(0), "the heartbeat to register instance 0", 30_000);
      const silentSince = Date.now();
      await httpJson("PUT", `${base}/v1/instances/a/1`, { url: "http://127.0.0.1:1001" });
      expect(await listed()).toEqual([0, 1]);
      await waitUntil(async () => (await listed()).join() === "0", "instance 1 to expire", ttlMs * 2 + 1000);
      expect(Date.now() - silentSince).toBeGreaterThan(ttlMs);
      expect(beating.registered()).toBe(true);
      await beating.stop();
      expect(await listed()).toEqual([]);
    } finally {
      await beating.stop();
      client.close();
    }
  });

  it("refuses requests without the token when MBC_TOKEN is set; health stays open", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port));
    const registry = await startRegistry(system, { MBC_TOKEN: "s3cret" });
    const base = `http://127.0.0.1:${registry.port}`;
    const body = { url: "http://127.0.0.1:1000" };
    const none = await httpJson("PUT", `${base}/v1/instances/a/0`, body);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/Bearer/);
    expect((await httpJson("PUT", `${base}/v1/instances/a/0`, body, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await httpJson("GET", `${base}/v1/instances`)).status).toBe(401);
    expect((await httpJson("DELETE", `${base}/v1/instances/a/0`)).status).toBe(401);
    expect((await httpJson("PUT", `${base}/v1/instances/a/0`, body, { authorization: "Bearer s3cret" })).status).toBe(200);
    const listed = await httpJson("GET", `${base}/v1/instances`, undefined, { authorization: "Bearer s3cret" });
    expect((listed.json as { instances: unknown[] }).instances.length).toBe(1);
    expect((await httpJson("GET", `${base}/healthz`)).status).toBe(200);
    expect((await httpJson("GET", `${base}/readyz`)).status).toBe(200);
  });
});

describe("discovery", () => {
  it("follows registrations, changes and removals, and waitFor resolves when instances appear", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port));
    const registry = await startRegistry(system);
    const base = `http://127.0.0.1:${registry.port}`;
    const discovery = createDiscovery({ registryUrl: base, token: null, intervalMs: 100, log: silentLogger });
    const changes: number[] = [];
    discovery.onChange((view) => changes.push(view.get("a")?.length ?? 0));
    try {
      await waitUntil(() => discovery.connected, "discovery to reach the registry");
      expect(discovery.instances("a")).toEqual([]);
      const waiting = discovery.waitFor(["a", "b"], 5000);
      await httpJson("PUT", `${base}/v1/instances/a/0`, { url: "http://127.0.0.1:1000" });
      await httpJson("PUT", `${base}/v1/instances/b/0`, { url: "http://127.0.0.1:1003" });
      await waiting;
      const first = discovery.instances("a");
      expect(first.map((i) => i.url)).toEqual(["http://127.0.0.1:1000"]);

      // Unchanged: the same array, so a caller can compare by identity.
      const version = discovery.version;
      await discovery.refresh();
      expect(discovery.instances("a")).toBe(first);
      expect(discovery.version).toBe(version);

      await httpJson("PUT", `${base}/v1/instances/a/1`, { url: "http://127.0.0.1:1001", weight: 3 });
      await waitUntil(() => discovery.instances("a").length === 2, "the second instance");
      expect(discovery.instances("a")[1]).toMatchObject({ instance: 1, weight: 3 });
      await httpJson("DELETE", `${base}/v1/instances/a/0`);
      await waitUntil(
        () =>
          discovery
            .instances("a")
            .map((i) => i.instance)
            .join() === "1",
        "instance 0 gone",
      );
      expect(changes).toContain(2);
      expect(changes.at(-1)).toBe(1);
    } finally {
      discovery.close();
    }
  });

  it("waitFor rejects after its timeout naming what is missing; close rejects waiters", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port));
    const registry = await startRegistry(system);
    const discovery = createDiscovery({ registryUrl: `http://127.0.0.1:${registry.port}`, token: null, intervalMs: 50, log: silentLogger });
    try {
      await expect(discovery.waitFor(["a", "b"], 200)).rejects.toThrow(/no live instance of a, b within 200 ms/);
      const pending = discovery.waitFor(["a"], 5000);
      discovery.close();
      await expect(pending).rejects.toThrow(/closed/);
    } finally {
      discovery.close();
    }
  });

  it("keeps its last view while the registry is down and follows the restarted registry, repopulated by heartbeats", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port, "100ms", "400ms"));
    let registry = await startRegistry(system);
    const base = `http://127.0.0.1:${registry.port}`;
    const client = createHttpClient();
    const heartbeat = startHeartbeat({
      client,
      registryUrl: base,
      token: null,
      service: "b",
      instance: 0,
      body: { url: "http://127.0.0.1:1003", weight: 1, capacityPerSec: null },
      heartbeatMs: 100,
      ttlMs: 400,
      log: silentLogger,
    });
    const discovery = createDiscovery({ registryUrl: base, token: null, intervalMs: 100, log: silentLogger });
    try {
      await discovery.waitFor(["b"], 5000);
      const before = discovery.version;
      await registry.shutdown("simulated crash");
      roles.splice(roles.indexOf(registry), 1);
      await waitUntil(() => !discovery.connected, "discovery to notice the registry is down");
      // The last view is kept: the instance is most likely still there.
      expect(discovery.instances("b").map((i) => i.url)).toEqual(["http://127.0.0.1:1003"]);
      await waitUntil(() => !heartbeat.registered(), "the heartbeat to notice", 5000);

      registry = await startRegistry(system);
      // How soon it is back is the unit tier's to say (a manual clock); here: that it comes back.
      await waitUntil(() => heartbeat.registered(), "the heartbeat to register again", 30_000);
      // The restarted registry starts empty: wait for the poll that shows b registered again.
      await waitUntil(
        () => discovery.connected && discovery.version !== before && discovery.instances("b").length > 0,
        "discovery to see b in the new registry",
        30_000,
      );
      expect(discovery.instances("b").map((i) => i.url)).toEqual(["http://127.0.0.1:1003"]);
    } finally {
      discovery.close();
      await heartbeat.stop();
      client.close();
    }
  });

  it("sends the token, and with a wrong one keeps an empty view", async () => {
    const port = await freePorts(5);
    const system = makeSystem(spec(port));
    const registry = await startRegistry(system, { MBC_TOKEN: "t0k" });
    const base = `http://127.0.0.1:${registry.port}`;
    await httpJson("PUT", `${base}/v1/instances/a/0`, { url: "http://127.0.0.1:1000" }, { authorization: "Bearer t0k" });
    const good = createDiscovery({ registryUrl: base, token: "t0k", intervalMs: 50, log: silentLogger });
    const bad = createDiscovery({ registryUrl: base, token: "nope", intervalMs: 50, log: silentLogger });
    try {
      await good.waitFor(["a"], 5000);
      await bad.refresh();
      expect(bad.connected).toBe(false);
      expect(bad.instances("a")).toEqual([]);
    } finally {
      good.close();
      bad.close();
    }
  });
});
