/**
 * The registry protocol on a manual clock: heartbeats, the registry's TTL and discovery talk
 * through an in-memory client to the registry's own routes, so every verdict about time is exact
 * and none depends on how fast the machine is. The same protocol over real sockets and processes
 * is tested in the runtime tier.
 */
import { describe, expect, it } from "vitest";
import type { InstanceEndpoint } from "../../src/runtime/core/contracts.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createDiscovery } from "../../src/runtime/registry/embedded/discovery.js";
import { heartbeatDelayMs, startHeartbeat } from "../../src/runtime/registry/embedded/registrar.js";
import { InstanceTable, registryRoutes } from "../../src/runtime/registry/embedded/server.js";
import { ManualClock } from "../helpers/clock.js";
import { inMemoryHttp } from "../helpers/in-memory-http.js";

const REGISTRY = "http://registry.test:7400";
const HEARTBEAT = 100;
const TTL = 300;

function setup() {
  const clock = new ManualClock();
  const known = new Map([
    ["a", 2],
    ["b", 1],
  ]);
  const registry = () => {
    const table = new InstanceTable(TTL, clock.now());
    return { table, routes: registryRoutes({ table, known, token: null, log: silentLogger, now: () => clock.now() }) };
  };
  let current = registry();
  const http = inMemoryHttp(current.routes);
  const restart = () => {
    current = registry();
    http.serve(current.routes);
    http.up();
  };
  const listed = (service: string) => current.table.list(service, clock.now()).map((i) => i.instance);
  const beat = (service: string, instance: number, url: string) =>
    startHeartbeat({
      client: http,
      registryUrl: REGISTRY,
      token: null,
      service,
      instance,
      body: { url, weight: 1, capacityPerSec: null },
      heartbeatMs: HEARTBEAT,
      ttlMs: TTL,
      log: silentLogger,
      clock,
    });
  return { clock, http, restart, listed, beat };
}

describe("heartbeats and the registry's ttl", () => {
  it("registers at once, keeps a beating instance listed, and expires a silent one just after the ttl", async () => {
    const { clock, http, listed, beat } = setup();
    const a0 = beat("a", 0, "http://h:1000");
    await clock.advance(0);
    expect(a0.registered()).toBe(true);
    // Instance 1 registers once and then says nothing.
    await http.request("PUT", `${REGISTRY}/v1/instances/a/1`, { json: { url: "http://h:1001" } });
    expect(listed("a")).toEqual([0, 1]);
    await clock.advance(TTL);
    expect(listed("a")).toEqual([0, 1]);
    await clock.advance(1);
    expect(listed("a")).toEqual([0]);
    // However long it goes on, the beating instance stays.
    for (let t = 0; t < 20; t++) {
      await clock.advance(HEARTBEAT / 2);
      expect(listed("a")).toEqual([0]);
      expect(a0.registered()).toBe(true);
    }
    const beats = http.requests.filter((r) => r === "PUT /v1/instances/a/0").length;
    // One at the start, then one every heartbeat: 0, 100, …, 1300 over 1301 ms.
    expect(beats).toBe(1 + Math.floor((TTL + 1 + 20 * (HEARTBEAT / 2)) / HEARTBEAT));
    await a0.stop();
    expect(listed("a")).toEqual([]);
    expect(http.requests.at(-1)).toBe("DELETE /v1/instances/a/0");
    // Stopped: no beat after the deregistration.
    const count = http.requests.length;
    await clock.advance(10 * HEARTBEAT);
    expect(http.requests.length).toBe(count);
  });

  it("retries a down registry quickly at first, never slower than one heartbeat, and is back within one heartbeat", async () => {
    const { clock, http, restart, listed, beat } = setup();
    const b0 = beat("b", 0, "http://h:2000");
    await clock.advance(0);
    http.down();
    const tries: number[] = [];
    const start = clock.now();
    const count = () => http.requests.filter((r) => r === "PUT /v1/instances/b/0").length;
    let seen = count();
    for (let t = 0; t < 2000; t += 10) {
      await clock.advance(10);
      if (count() !== seen) {
        seen = count();
        tries.push(clock.now() - start);
      }
    }
    // The regular beat at 100 fails; then 100, 100 (capped at the heartbeat), …
    expect(tries.slice(0, 4)).toEqual([100, 200, 300, 400]);
    expect(new Set(tries.slice(1).map((t, k) => t - (tries[k] as number)))).toEqual(new Set([HEARTBEAT]));
    expect(b0.registered()).toBe(false);

    restart();
    expect(listed("b")).toEqual([]);
    await clock.advance(HEARTBEAT);
    expect(listed("b")).toEqual([0]);
    expect(b0.registered()).toBe(true);
    await b0.stop();
  });

  it("backs off 100, 200, 400 ms … capped at the heartbeat", () => {
    expect([0, 1, 2, 3, 4, 5].map((f) => heartbeatDelayMs(1000, f))).toEqual([1000, 100, 200, 400, 800, 1000]);
    expect(heartbeatDelayMs(150, 3)).toBe(150);
  });
});

describe("discovery on a manual clock", () => {
  const discover = (s: ReturnType<typeof setup>) =>
    createDiscovery({ registryUrl: REGISTRY, token: null, intervalMs: HEARTBEAT, log: silentLogger, client: s.http, clock: s.clock });
  const urls = (list: readonly InstanceEndpoint[]) => list.map((i) => i.url);

  it("polls every interval; waitFor resolves at the poll that sees every service, and rejects at its timeout naming what is missing", async () => {
    const s = setup();
    const discovery = discover(s);
    try {
      await s.clock.advance(0);
      expect(discovery.connected).toBe(true);
      let resolved = false;
      const waiting = discovery.waitFor(["a", "b"], 1000).then(() => {
        resolved = true;
      });
      const a0 = s.beat("a", 0, "http://h:1000");
      await s.clock.advance(HEARTBEAT - 1);
      expect(resolved).toBe(false);
      const b0 = s.beat("b", 0, "http://h:2000");
      await s.clock.advance(1);
      await waiting;
      expect(resolved).toBe(true);
      expect(urls(discovery.instances("a"))).toEqual(["http://h:1000"]);

      const failing = discovery.waitFor(["a", "nope"], 250);
      const outcome = failing.then(
        () => "resolved",
        (err: Error) => err.message,
      );
      await s.clock.advance(249);
      await s.clock.advance(1);
      expect(await outcome).toMatch(/no live instance of nope within 250 ms/);
      await a0.stop();
      await b0.stop();
    } finally {
      discovery.close();
    }
  });

  it("waitFor asks the registry at once: an instance registered since the last poll is found without waiting for the next", async () => {
    const s = setup();
    const discovery = discover(s);
    try {
      await s.clock.advance(0);
      expect(discovery.instances("a")).toEqual([]);
      // Registered just after the poll: the cached view does not list it for another interval.
      const a0 = s.beat("a", 0, "http://h:1000");
      await s.clock.advance(0);
      expect(discovery.instances("a")).toEqual([]);
      const polls = s.http.requests.filter((r) => r === "GET /v1/instances").length;
      let resolved = false;
      const waiting = discovery.waitFor(["a"], 1000).then(() => {
        resolved = true;
      });
      // No time passes: the answer comes from the poll waitFor made.
      await s.clock.advance(0);
      expect(resolved).toBe(true);
      await waiting;
      expect(urls(discovery.instances("a"))).toEqual(["http://h:1000"]);
      expect(s.http.requests.filter((r) => r === "GET /v1/instances").length).toBe(polls + 1);
      // Several waiters at once share one poll.
      const more = [discovery.waitFor(["b"], 50), discovery.waitFor(["b"], 50), discovery.waitFor(["a", "b"], 50)].map((p) => p.catch(() => "missing"));
      await s.clock.advance(0);
      expect(s.http.requests.filter((r) => r === "GET /v1/instances").length).toBe(polls + 2);
      await s.clock.advance(50);
      expect(await Promise.all(more)).toEqual(["missing", "missing", "missing"]);
      await a0.stop();
    } finally {
      discovery.close();
    }
  });

  it("keeps its last view while the registry is down and follows the restarted registry once heartbeats repopulate it", async () => {
    const s = setup();
    const discovery = discover(s);
    const b0 = s.beat("b", 0, "http://h:2000");
    try {
      await s.clock.advance(HEARTBEAT);
      expect(urls(discovery.instances("b"))).toEqual(["http://h:2000"]);
      s.http.down();
      await s.clock.advance(10 * HEARTBEAT);
      expect(discovery.connected).toBe(false);
      expect(urls(discovery.instances("b"))).toEqual(["http://h:2000"]);

      // The new registry starts empty; the heartbeat puts b back within one heartbeat, and the
      // next poll after that shows it.
      s.restart();
      await s.clock.advance(2 * HEARTBEAT);
      expect(discovery.connected).toBe(true);
      expect(urls(discovery.instances("b"))).toEqual(["http://h:2000"]);
    } finally {
      discovery.close();
      await b0.stop();
    }
  });

  it("close rejects the waiters and stops polling", async () => {
    const s = setup();
    const discovery = discover(s);
    await s.clock.advance(0);
    const pending = discovery.waitFor(["a"], 5000);
    discovery.close();
    await expect(pending).rejects.toThrow(/closed/);
    const count = s.http.requests.length;
    await s.clock.advance(10 * HEARTBEAT);
    expect(s.http.requests.length).toBe(count);
  });
});
