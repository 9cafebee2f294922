/**
 * The etcd backend's protocol on a manual clock, against an etcd in memory that answers as the
 * JSON gateway of etcd 3.4 does (test/helpers/fake-etcd.ts): leases, keep-alives, the
 * create-if-absent transaction, a second holder, failover between endpoints, authentication and
 * a discovery view that outlives an outage. The same against a real etcd is in the runtime tier.
 */

import { describe, expect, it } from "vitest";
import { normalise } from "../../src/model/normalise.js";
import type { Model, RawSpec } from "../../src/model/types.js";
import { RuntimeConfigError } from "../../src/runtime/config/error.js";
import type { RuntimeEnv } from "../../src/runtime/core/contracts.js";
import { createHttpClient } from "../../src/runtime/core/http.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { etcdSettings } from "../../src/runtime/registry/etcd/config.js";
import { createEtcdDiscovery } from "../../src/runtime/registry/etcd/discovery.js";
import { createEtcdClient, EtcdError, rangeEndOf } from "../../src/runtime/registry/etcd/gateway.js";
import { etcdRegistry, isLoopbackUrl } from "../../src/runtime/registry/etcd/index.js";
import { describeHolder, instanceKey, parseInstance } from "../../src/runtime/registry/etcd/keys.js";
import { holderWaitMs, startEtcdRegistrar } from "../../src/runtime/registry/etcd/registrar.js";
import { registryBackend } from "../../src/runtime/registry/index.js";
import { ManualClock } from "../helpers/clock.js";
import { FakeEtcd } from "../helpers/fake-etcd.js";
import { memoryLogger } from "../helpers/pipeline.js";

const A = "http://etcd-a.test:2379";
const B = "http://etcd-b.test:2379";
const HEARTBEAT = 1000;
const TTL = 3000;
const KEY = "/mbc/shop/enrich/0";

function model(registry: Record<string, unknown> = { backend: "etcd", endpoints: [A, B], heartbeat: "1s", ttl: "3s" }): Model {
  const raw = {
    mbc: 1,
    name: "shop",
    registry,
    sources: { orders: { type: "http", port: 8080, to: "enrich" } },
    services: { enrich: { handler: "builtin:passthrough", instances: 2, to: "store" }, store: { handler: "builtin:log" } },
  } as unknown as RawSpec;
  return normalise(raw).model;
}

function setup(endpoints = [A, B]) {
  const clock = new ManualClock();
  const etcd = new FakeEtcd(clock);
  const client = (auth: { user: string; password: string } | null = null) => createEtcdClient({ endpoints, transport: etcd.transport, auth });
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (msg: string) => warnings.push(msg), child: () => log };
  const value = (url: string, pid = 100) => JSON.stringify({ url, weight: 1, capacityPerSec: null, version: "0.1.0", host: "h1", pid });
  const register = (url: string, options: { key?: string; pid?: number; client?: ReturnType<typeof client> } = {}) =>
    startEtcdRegistrar({
      client: options.client ?? client(),
      key: options.key ?? KEY,
      value: value(url, options.pid),
      what: "service enrich instance 0",
      ttlMs: TTL,
      heartbeatMs: HEARTBEAT,
      log,
      clock,
    });
  return { clock, etcd, client, register, warnings, log };
}

/** Whether a promise has settled, without waiting for it. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  return done;
}

describe("etcd registrar: lease, create-if-absent, keep-alive", () => {
  it("creates the key with a lease of the ttl, keeps it alive every heartbeat, and revokes it on stop", async () => {
    const { clock, etcd, register } = setup();
    const r = register("http://h1:9100");
    await clock.advance(0);
    expect(r.registered()).toBe(true);
    expect(JSON.parse(etcd.value(KEY) ?? "null")).toMatchObject({ url: "http://h1:9100", weight: 1, version: "0.1.0" });
    expect([...etcd.leases.values()].map((l) => l.ttl)).toEqual([3]);
    // Ten ttls later the key is still there: the keep-alives renewed the lease.
    await clock.advance(10 * TTL);
    expect(etcd.value(KEY)).toBeDefined();
    expect(r.registered()).toBe(true);
    const keepAlives = etcd.calls.filter((c) => c.path === "/v3/lease/keepalive").length;
    expect(keepAlives).toBe((10 * TTL) / HEARTBEAT);
    await r.stop();
    expect(etcd.value(KEY)).toBeUndefined();
    expect(etcd.leases.size).toBe(0);
    expect(r.registered()).toBe(false);
  });

  it("a lease that ran out while etcd was unreachable is replaced, and the key created again", async () => {
    const { clock, etcd, register } = setup();
    const r = register("http://h1:9100");
    await clock.advance(0);
    etcd.down.add(A);
    etcd.down.add(B);
    // Keep-alives fail; etcd's clock runs on, and the lease runs out just after the ttl.
    await clock.advance(TTL);
    expect(etcd.value(KEY)).toBeUndefined();
    // Registered as far as this process knows until a ttl passed without a kept-alive lease.
    await clock.advance(HEARTBEAT);
    expect(r.registered()).toBe(false);
    etcd.down.clear();
    // The next keep-alive (within a heartbeat: retries are capped at one) finds the lease gone.
    await clock.advance(HEARTBEAT);
    expect(r.registered()).toBe(true);
    expect(JSON.parse(etcd.value(KEY) ?? "null").url).toBe("http://h1:9100");
    expect(etcd.leases.size).toBe(1);
    await r.stop();
  });

  it("a second holder waits up to the ttl, then fails naming the first; the first keeps the key", async () => {
    const { clock, etcd, register, warnings } = setup();
    const first = register("http://h1:9100", { pid: 100 });
    await clock.advance(0);
    const second = register("http://h2:9100", { pid: 200 });
    await clock.advance(0);
    expect(second.registered()).toBe(false);
    expect(warnings.some((w) => w.includes("held in etcd by the instance at http://h1:9100 (pid 100 on h1)"))).toBe(true);
    const wait = holderWaitMs(TTL, HEARTBEAT);
    expect(wait).toBe(TTL + HEARTBEAT);
    await clock.advance(wait - 1);
    expect(await settled(second.failed)).toBe(false);
    await clock.advance(1);
    const err = await second.failed;
    expect(err).toBeInstanceOf(RuntimeConfigError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain("service enrich instance 0 is already registered in etcd by the instance at http://h1:9100 (pid 100 on h1)");
    expect(err.message).toContain(KEY);
    // The second copy took nothing and left no lease behind; the first is untouched.
    expect(JSON.parse(etcd.value(KEY) ?? "null").url).toBe("http://h1:9100");
    expect(first.registered()).toBe(true);
    expect(etcd.leases.size).toBe(1);
    const callsAfter = etcd.calls.length;
    await clock.advance(10 * HEARTBEAT);
    // Only the first's keep-alives: the second stopped trying.
    expect(etcd.calls.slice(callsAfter).every((c) => c.path === "/v3/lease/keepalive")).toBe(true);
    await second.stop();
    await first.stop();
  });

  it("a second holder cut off from etcd meanwhile waits out the ttl again once etcd answers, then fails", async () => {
    const { clock, etcd, register } = setup();
    const first = register("http://h1:9100", { client: createEtcdClient({ endpoints: [B], transport: etcd.transport, auth: null }) });
    await clock.advance(0);
    const second = register("http://h2:9100", { client: createEtcdClient({ endpoints: [A], transport: etcd.transport, auth: null }) });
    await clock.advance(0);
    const wait = holderWaitMs(TTL, HEARTBEAT);
    // Only the second is cut off, for longer than its wait: it saw nothing of the holder meanwhile.
    etcd.down.add(A);
    await clock.advance(2 * wait);
    etcd.down.delete(A);
    await clock.advance(HEARTBEAT);
    expect(await settled(second.failed)).toBe(false);
    await clock.advance(wait);
    expect((await second.failed).message).toContain("already registered in etcd by the instance at http://h1:9100");
    expect(first.registered()).toBe(true);
    await first.stop();
    await second.stop();
  });

  it("a restarted instance whose previous lease is still alive registers once that lease runs out", async () => {
    const { clock, etcd, register, client } = setup();
    // The first process reaches etcd only through C; it dies (C goes away for it) without revoking.
    const C = "http://etcd-c.test:2379";
    const crashed = register("http://h1:9100", { client: createEtcdClient({ endpoints: [C], transport: etcd.transport, auth: null }) });
    await clock.advance(HEARTBEAT);
    expect(crashed.registered()).toBe(true);
    etcd.down.add(C);
    await clock.advance(HEARTBEAT / 2);
    // Its replacement starts while the old lease has 2.5 s left.
    const restarted = register("http://h1:9101", { pid: 300, client: client() });
    await clock.advance(0);
    expect(restarted.registered()).toBe(false);
    await clock.advance(TTL - HEARTBEAT / 2 - 1);
    expect(restarted.registered()).toBe(false);
    // The old lease ran out; the next try, within a heartbeat, creates the key.
    await clock.advance(HEARTBEAT);
    expect(restarted.registered()).toBe(true);
    expect(await settled(restarted.failed)).toBe(false);
    expect(JSON.parse(etcd.value(KEY) ?? "null")).toMatchObject({ url: "http://h1:9101", pid: 300 });
    await restarted.stop();
    expect(etcd.value(KEY)).toBeUndefined();
  });

  it("etcd unreachable at start: retries, never gives up, registers when it comes", async () => {
    const { clock, etcd, register } = setup();
    etcd.down.add(A);
    etcd.down.add(B);
    const r = register("http://h1:9100");
    await clock.advance(60_000);
    expect(r.registered()).toBe(false);
    expect(await settled(r.failed)).toBe(false);
    etcd.down.clear();
    await clock.advance(HEARTBEAT);
    expect(r.registered()).toBe(true);
    await r.stop();
  });
});

describe("etcd client: endpoints and authentication", () => {
  it("fails over to the next endpoint, and stays with the one that answered", async () => {
    const { clock, etcd, register } = setup();
    etcd.down.add(A);
    const r = register("http://h1:9100");
    await clock.advance(0);
    expect(r.registered()).toBe(true);
    etcd.calls.length = 0;
    await clock.advance(3 * HEARTBEAT);
    expect(etcd.calls.map((c) => c.endpoint)).toEqual([B, B, B]);
    // B goes down, A comes back: the next keep-alive goes to A after one refused try of B.
    etcd.down.clear();
    etcd.down.add(B);
    etcd.calls.length = 0;
    await clock.advance(HEARTBEAT);
    expect(etcd.calls.map((c) => c.endpoint)).toEqual([B, A]);
    expect(r.registered()).toBe(true);
    await r.stop();
  });

  it("a request etcd refuses is not sent to the next endpoint", async () => {
    const { etcd, client } = setup();
    const c = client();
    await expect(c.call("/v3/lease/revoke", { ID: "1" })).rejects.toBeInstanceOf(EtcdError);
    expect(etcd.calls.map((x) => x.endpoint)).toEqual([A]);
  });

  it("no endpoint answering is one error naming the last one tried", async () => {
    const { etcd, client } = setup();
    etcd.down.add(A);
    etcd.down.add(B);
    await expect(client().call("/v3/kv/range", {})).rejects.toThrow(/no etcd endpoint answered \(http:\/\/etcd-b\.test:2379: ECONNREFUSED\)/);
  });

  it("authenticates with the user and password, and renews a token etcd no longer takes", async () => {
    const { clock, etcd, register, client } = setup();
    etcd.users = new Map([["mbc", "secret"]]);
    const r = register("http://h1:9100", { client: client({ user: "mbc", password: "secret" }) });
    await clock.advance(0);
    expect(r.registered()).toBe(true);
    expect(etcd.calls.filter((c) => c.path === "/v3/auth/authenticate")).toHaveLength(1);
    etcd.tokens.clear();
    await clock.advance(HEARTBEAT);
    expect(etcd.calls.filter((c) => c.path === "/v3/auth/authenticate")).toHaveLength(2);
    expect(r.registered()).toBe(true);
    await r.stop();
  });

  it("wrong credentials are an error that says so", async () => {
    const { etcd, client } = setup();
    etcd.users = new Map([["mbc", "secret"]]);
    await expect(client({ user: "mbc", password: "wrong" }).call("/v3/kv/range", {})).rejects.toThrow(
      /etcd refused the credentials of MBC_REGISTRY_USER "mbc"/,
    );
  });

  it("credentials against a cluster without authentication are not needed", async () => {
    const { client } = setup();
    await expect(client({ user: "mbc", password: "x" }).call("/v3/kv/range", { key: "" })).resolves.toHaveProperty("header");
  });
});

describe("etcd discovery", () => {
  it("reads the system's prefix: weight and URL from the value, other systems and foreign keys left out", async () => {
    const { clock, etcd, register, client } = setup();
    const r0 = register("http://h1:9100");
    const r1 = startEtcdRegistrar({
      client: client(),
      key: "/mbc/shop/enrich/1",
      value: JSON.stringify({ url: "http://h2:9101", weight: 2, capacityPerSec: 50, version: "0.1.0", host: "h2", pid: 2 }),
      what: "service enrich instance 1",
      ttlMs: TTL,
      heartbeatMs: HEARTBEAT,
      log: silentLogger,
      clock,
    });
    etcd.put("/mbc/shop-2/enrich/0", JSON.stringify({ url: "http://other:1", weight: 1 }));
    etcd.put("/mbc/shop/enrich/x", JSON.stringify({ url: "http://bad:1", weight: 1 }));
    etcd.put("/mbc/shop/store/0", "not json");
    await clock.advance(0);
    const d = createEtcdDiscovery({ client: client(), system: "shop", intervalMs: HEARTBEAT, log: silentLogger, clock });
    await clock.advance(0);
    expect(d.instances("enrich")).toEqual([
      { service: "enrich", instance: 0, url: "http://h1:9100", weight: 1, capacityPerSec: null },
      { service: "enrich", instance: 1, url: "http://h2:9101", weight: 2, capacityPerSec: 50 },
    ]);
    expect(d.instances("store")).toEqual([]);
    expect(d.connected).toBe(true);
    expect(d.version).toBeGreaterThan(0);
    d.close();
    await r0.stop();
    await r1.stop();
  });

  it("drops an instance within a heartbeat of its lease running out, and sees a new one within a heartbeat", async () => {
    const { clock, etcd, register } = setup();
    const d = createEtcdDiscovery({
      client: createEtcdClient({ endpoints: [A], transport: etcd.transport, auth: null }),
      system: "shop",
      intervalMs: HEARTBEAT,
      log: silentLogger,
      clock,
    });
    // Its keep-alives go to B only, which then goes down: the instance is "killed".
    const r = register("http://h1:9100", { client: createEtcdClient({ endpoints: [B], transport: etcd.transport, auth: null }) });
    await clock.advance(HEARTBEAT);
    expect(d.instances("enrich").map((i) => i.url)).toEqual(["http://h1:9100"]);
    etcd.down.add(B);
    await clock.advance(TTL - HEARTBEAT);
    expect(d.instances("enrich")).toHaveLength(1);
    await clock.advance(2 * HEARTBEAT);
    expect(d.instances("enrich")).toEqual([]);
    d.close();
    await r.stop();
  });

  it("keeps its last view while etcd is unreachable, never blocking, and follows again after", async () => {
    const { clock, etcd, register } = setup();
    const r = register("http://h1:9100");
    await clock.advance(0);
    const d = createEtcdDiscovery({
      client: createEtcdClient({ endpoints: [A, B], transport: etcd.transport, auth: null }),
      system: "shop",
      intervalMs: HEARTBEAT,
      log: silentLogger,
      clock,
    });
    await clock.advance(0);
    const before = d.instances("enrich");
    expect(before).toHaveLength(1);
    etcd.down.add(A);
    etcd.down.add(B);
    await clock.advance(10 * TTL);
    expect(d.connected).toBe(false);
    // The same array: the view did not change while etcd was away, though the lease ran out.
    expect(d.instances("enrich")).toBe(before);
    etcd.down.clear();
    await clock.advance(HEARTBEAT);
    expect(d.connected).toBe(true);
    // Meanwhile the registrar re-created its key: the view follows.
    expect(d.instances("enrich").map((i) => i.url)).toEqual(["http://h1:9100"]);
    d.close();
    await r.stop();
  });

  it("waitFor resolves as soon as an instance registers", async () => {
    const { clock, register, client } = setup();
    const d = createEtcdDiscovery({ client: client(), system: "shop", intervalMs: HEARTBEAT, log: silentLogger, clock });
    await clock.advance(0);
    const waiting = d.waitFor(["enrich"], 10_000);
    const r = register("http://h1:9100");
    await clock.advance(HEARTBEAT);
    await expect(waiting).resolves.toBeUndefined();
    d.close();
    await r.stop();
  });
});

describe("keys and values", () => {
  it("an instance is /mbc/<system>/<service>/<instance>; the prefix's range ends after it", () => {
    expect(instanceKey("shop", "enrich", 3)).toBe("/mbc/shop/enrich/3");
    expect(Buffer.from(rangeEndOf("/mbc/shop/"), "base64").toString()).toBe("/mbc/shop0");
    expect(parseInstance("/mbc/shop/", "/mbc/shop/enrich/3", '{"url":"http://h:1","weight":2}')).toEqual({
      service: "enrich",
      instance: 3,
      url: "http://h:1",
      weight: 2,
      capacityPerSec: null,
    });
    for (const [key, value] of [
      ["/mbc/shop/enrich/03", '{"url":"u","weight":1}'],
      ["/mbc/shop/enrich/3/x", '{"url":"u","weight":1}'],
      ["/mbc/shop/enrich/3", '{"url":"u","weight":0}'],
      ["/mbc/shop/enrich/3", '{"weight":1}'],
      ["/mbc/shopx/enrich/3", '{"url":"u","weight":1}'],
    ] as const)
      expect(parseInstance("/mbc/shop/", key, value), key + value).toBeNull();
    expect(describeHolder('{"url":"http://h:1","pid":7,"host":"n1"}')).toBe("the instance at http://h:1 (pid 7 on n1)");
    expect(describeHolder("garbage")).toBe("another process");
  });
});

describe("the etcd backend's settings", () => {
  const files: Record<string, Buffer> = { "/ca.pem": Buffer.from("CA"), "/c.pem": Buffer.from("C"), "/k.pem": Buffer.from("K") };
  const read = (p: string) => {
    const f = files[p];
    if (f === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    return f;
  };
  const bad = (vars: Record<string, string>, m = model()) => {
    try {
      etcdSettings(m, vars, read);
    } catch (err) {
      expect(err).toBeInstanceOf(RuntimeConfigError);
      return (err as Error).message;
    }
    throw new Error("no error");
  };

  it("endpoints from the model, or MBC_REGISTRY_ENDPOINTS (comma separated) over them", () => {
    expect(etcdSettings(model(), {}, read).endpoints).toEqual([A, B]);
    expect(etcdSettings(model(), { MBC_REGISTRY_ENDPOINTS: " http://x:1, https://y:2/ ," }, read).endpoints).toEqual(["http://x:1", "https://y:2/"]);
    expect(bad({ MBC_REGISTRY_ENDPOINTS: "x:1" })).toMatch(/^MBC_REGISTRY_ENDPOINTS: "x:1" must be an http/);
    expect(bad({ MBC_REGISTRY_ENDPOINTS: "http://u:p@x:1" })).toContain("may not carry credentials");
    expect(bad({ MBC_REGISTRY_ENDPOINTS: "http://x:1/v3" })).toContain("without a path");
    expect(bad({ MBC_REGISTRY_ENDPOINTS: "," })).toContain("has no endpoints");
  });

  it("credentials and TLS only from the environment, in pairs, read at start", () => {
    expect(etcdSettings(model(), { MBC_REGISTRY_USER: "u", MBC_REGISTRY_PASSWORD: "p" }, read).auth).toEqual({ user: "u", password: "p" });
    expect(etcdSettings(model(), {}, read).auth).toBeNull();
    expect(bad({ MBC_REGISTRY_USER: "u" })).toContain("MBC_REGISTRY_USER is set without MBC_REGISTRY_PASSWORD");
    const https = { MBC_REGISTRY_ENDPOINTS: "https://x:2379" };
    expect(etcdSettings(model(), { ...https, MBC_REGISTRY_CA: "/ca.pem", MBC_REGISTRY_CERT: "/c.pem", MBC_REGISTRY_KEY: "/k.pem" }, read).tls).toEqual({
      ca: files["/ca.pem"],
      cert: files["/c.pem"],
      key: files["/k.pem"],
    });
    expect(bad({ ...https, MBC_REGISTRY_CA: "/missing.pem" })).toBe(
      'MBC_REGISTRY_CA: cannot read "/missing.pem" (ENOENT): give the path of a PEM file this process may read',
    );
    expect(bad({ ...https, MBC_REGISTRY_CERT: "/c.pem" })).toContain("MBC_REGISTRY_CERT is set without MBC_REGISTRY_KEY");
    expect(bad({ MBC_REGISTRY_CA: "/ca.pem" })).toContain("no etcd endpoint is https://");
  });
});

describe("the backend", () => {
  it("registryBackend chooses by registry.backend; etcd and kubernetes run no registry process", () => {
    expect(registryBackend(model({}), {}).name).toBe("embedded");
    expect(registryBackend(model({}), {}).role).not.toBeNull();
    const etcd = registryBackend(model(), {});
    expect(etcd.name).toBe("etcd");
    expect(etcd.role).toBeNull();
    const cluster = registryBackend(model({ backend: "kubernetes" }), {});
    expect([cluster.name, cluster.role]).toEqual(["kubernetes", null]);
    expect(() => registryBackend(model(), { MBC_REGISTRY_ENDPOINTS: "nope" })).toThrow(RuntimeConfigError);
  });

  it("warns when an instance advertises a loopback address in an etcd on another host, not when etcd is local too", async () => {
    expect(["http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9", "http://127.1.2.3:9"].map(isLoopbackUrl)).toEqual([true, true, true, true]);
    expect(["http://10.0.0.5:9", "http://enrich-0.shop:9", "http://[fe80::1]:9", "not a url"].map(isLoopbackUrl)).toEqual([false, false, false, false]);
    for (const [endpoints, warned] of [
      [[A, B], true],
      [["http://127.0.0.1:2379"], false],
    ] as const) {
      const clock = new ManualClock();
      const fake = new FakeEtcd(clock);
      const m = model({ backend: "etcd", endpoints, heartbeat: "1s", ttl: "3s" });
      const log = memoryLogger();
      const client = createHttpClient();
      const ctx = { env: {} as RuntimeEnv, model: m, log, clock, client };
      const backend = etcdRegistry(m, { vars: {}, transport: fake.transport });
      const local = backend.register(ctx, { service: "enrich", instance: 0, url: "http://127.0.0.1:9100", weight: 1, capacityPerSec: null });
      const reachable = backend.register(ctx, { service: "enrich", instance: 1, url: "http://10.0.0.5:9101", weight: 1, capacityPerSec: null });
      const warnings = log.lines.filter((l) => l.level === "warn" && l.msg.includes("loopback"));
      expect(
        warnings.map((w) => w.fields?.url),
        String(endpoints),
      ).toEqual(warned ? ["http://127.0.0.1:9100"] : []);
      await local.stop();
      await reachable.stop();
      client.close();
    }
  });

  it("registers what the process scaffolding gives it, under the system's name", async () => {
    const clock = new ManualClock();
    const fake = new FakeEtcd(clock);
    const m = model();
    const backend = etcdRegistry(m, { vars: {}, transport: fake.transport });
    const client = createHttpClient();
    const ctx = { env: {} as RuntimeEnv, model: m, log: silentLogger, clock, client };
    const r = backend.register(ctx, { service: "enrich", instance: 1, url: "http://10.0.0.5:9101", weight: 2, capacityPerSec: 40 });
    const d = backend.discover(ctx);
    await clock.advance(0);
    expect(r.registered()).toBe(true);
    expect(JSON.parse(fake.value("/mbc/shop/enrich/1") ?? "null")).toMatchObject({
      url: "http://10.0.0.5:9101",
      weight: 2,
      capacityPerSec: 40,
      pid: process.pid,
    });
    await d.refresh();
    expect(d.instances("enrich")).toEqual([{ service: "enrich", instance: 1, url: "http://10.0.0.5:9101", weight: 2, capacityPerSec: 40 }]);
    await r.stop();
    expect(fake.value("/mbc/shop/enrich/1")).toBeUndefined();
    d.close();
    client.close();
  });
});
