/**
 * The kubernetes registry backend on a manual clock with a fake resolver: discovery looks up each
 * instance's per-pod DNS name every heartbeat, keeps the ready ones (the names that resolve), takes
 * weights and capacities from the model by ordinal, and keeps its last view of an instance whose
 * look-up fails for another reason than "no such name". Registration is readiness.
 */
import { describe, expect, it } from "vitest";
import type { Model } from "../../src/model/types.js";
import { instanceHost } from "../../src/policy/kubernetes.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { registryBackend } from "../../src/runtime/registry/index.js";
import {
  createKubernetesDiscovery,
  dnsResolver,
  type HostResolver,
  kubernetesRegistry,
  readinessRegistrar,
} from "../../src/runtime/registry/kubernetes/index.js";
import { validateText } from "../../src/validate/index.js";
import { ManualClock, settle } from "../helpers/clock.js";

const HEARTBEAT = 1000;

function modelOf(extra = ""): Model {
  const { model, diagnostics } = validateText(
    "microbatch.yaml",
    `mbc: 1
name: shop
registry: { heartbeat: 1s, ttl: 3s${extra} }
sources:
  orders: { type: http, port: 8080, to: enrich }
services:
  enrich:
    handler: builtin:passthrough
    instances: [{ weight: 3, capacity: 100/s }, { weight: 1 }]
    capacity: 50/s
    port: 9200
    to: store
  store:
    handler: builtin:log
`,
  );
  if (!model) throw new Error(JSON.stringify(diagnostics));
  return model;
}

/** A resolver whose answers the test sets: ready names resolve, a failing one throws. */
function fakeDns() {
  const ready = new Set<string>();
  let failing = false;
  const asked: string[] = [];
  const resolver: HostResolver = async (host) => {
    asked.push(host);
    if (failing) throw Object.assign(new Error("queryA ETIMEOUT"), { code: "ETIMEOUT" });
    return ready.has(host) ? "found" : "absent";
  };
  return {
    resolver,
    asked,
    ready: (service: string, k: number) => ready.add(instanceHost(service, k, "shop")),
    unready: (service: string, k: number) => ready.delete(instanceHost(service, k, "shop")),
    fail: (on: boolean) => {
      failing = on;
    },
  };
}

function discovery(dns: ReturnType<typeof fakeDns>, clock = new ManualClock()) {
  const d = createKubernetesDiscovery({ model: modelOf(), namespace: "shop", intervalMs: HEARTBEAT, log: silentLogger, clock, resolver: dns.resolver });
  return { d, clock };
}

const instancesOf = (d: ReturnType<typeof createKubernetesDiscovery>, s: string) => d.instances(s).map((i) => i.instance);

describe("kubernetes discovery", () => {
  it("lists the ready pods of a service asked about, with the model's weights and capacities by ordinal", async () => {
    const dns = fakeDns();
    dns.ready("enrich", 1);
    const { d, clock } = discovery(dns);
    expect(d.instances("enrich")).toEqual([]);
    await settle();
    await clock.advance(0);
    expect(d.instances("enrich")).toEqual([{ service: "enrich", instance: 1, url: "http://enrich-1.enrich.shop.svc:9201", weight: 1, capacityPerSec: 50 }]);
    // Only the services asked about are looked up.
    expect(dns.asked.every((h) => h.startsWith("enrich-"))).toBe(true);
    dns.ready("enrich", 0);
    await clock.advance(HEARTBEAT - 1);
    expect(instancesOf(d, "enrich")).toEqual([1]);
    await clock.advance(1);
    expect(d.instances("enrich")[0]).toEqual({ service: "enrich", instance: 0, url: "http://enrich-0.enrich.shop.svc:9200", weight: 3, capacityPerSec: 100 });
    d.close();
  });

  it("drops a pod that turns unready at the next poll, and tells the listeners once a change", async () => {
    const dns = fakeDns();
    dns.ready("enrich", 0);
    dns.ready("enrich", 1);
    const { d, clock } = discovery(dns);
    d.instances("enrich");
    await settle();
    await clock.advance(0);
    expect(instancesOf(d, "enrich")).toEqual([0, 1]);
    const seen: number[][] = [];
    d.onChange((view) => seen.push((view.get("enrich") ?? []).map((i) => i.instance)));
    const before = d.instances("enrich");
    await clock.advance(HEARTBEAT);
    expect(d.instances("enrich")).toBe(before);
    dns.unready("enrich", 0);
    await clock.advance(HEARTBEAT);
    expect(instancesOf(d, "enrich")).toEqual([1]);
    expect(seen).toEqual([[1]]);
    d.close();
  });

  it("keeps its last view while DNS fails, and follows again once it answers", async () => {
    const dns = fakeDns();
    dns.ready("enrich", 0);
    const { d, clock } = discovery(dns);
    d.instances("enrich");
    await settle();
    await clock.advance(0);
    expect(d.connected).toBe(true);
    dns.fail(true);
    dns.unready("enrich", 0);
    dns.ready("enrich", 1);
    await clock.advance(HEARTBEAT * 5);
    expect(d.connected).toBe(false);
    expect(instancesOf(d, "enrich")).toEqual([0]);
    expect(await d.refresh()).toBe(false);
    dns.fail(false);
    await clock.advance(HEARTBEAT);
    expect(d.connected).toBe(true);
    expect(instancesOf(d, "enrich")).toEqual([1]);
    d.close();
  });

  it("waitFor resolves as soon as a pod of every service is ready, and rejects after its time", async () => {
    const dns = fakeDns();
    const { d, clock } = discovery(dns);
    const waiting = d.waitFor(["enrich", "store"], 5000);
    let done = false;
    void waiting.then(() => {
      done = true;
    });
    dns.ready("enrich", 0);
    await clock.advance(HEARTBEAT);
    expect(done).toBe(false);
    dns.ready("store", 0);
    await clock.advance(HEARTBEAT);
    await settle();
    expect(done).toBe(true);
    const late = expect(d.waitFor(["orders-not-a-service"], 2000)).rejects.toThrow(/no ready pod of orders-not-a-service within 2000 ms/);
    await clock.advance(2000);
    await late;
    d.close();
  });

  it("stops polling when closed", async () => {
    const dns = fakeDns();
    const { d, clock } = discovery(dns);
    d.instances("enrich");
    await settle();
    await clock.advance(0);
    d.close();
    const asked = dns.asked.length;
    await clock.advance(HEARTBEAT * 3);
    expect(dns.asked.length).toBe(asked);
    expect(clock.pending).toBe(0);
  });
});

describe("the kubernetes backend", () => {
  it("is chosen by registry.backend, runs no registry process, and registers by readiness", async () => {
    expect(registryBackend(modelOf()).name).toBe("embedded");
    expect(registryBackend(modelOf(", backend: kubernetes"))).toBe(kubernetesRegistry);
    expect(kubernetesRegistry.role).toBeNull();
    const r = readinessRegistrar();
    expect(r.registered()).toBe(true);
    await r.stop();
    expect(r.registered()).toBe(false);
  });

  it("the system's resolver says a name that does not exist is absent", async () => {
    // `.invalid` never resolves (RFC 6761), with or without a network.
    await expect(dnsResolver("enrich-0.enrich.shop.svc.invalid")).resolves.toBe("absent");
  });
});
