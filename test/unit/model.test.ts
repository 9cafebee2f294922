import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type Json, mergeOverlay } from "../../src/model/merge.js";
import { FIRST_ASSIGNED_PORT, normalise, resolveHandler } from "../../src/model/normalise.js";
import type { RawSpec } from "../../src/model/types.js";
import { validateText } from "../../src/validate/index.js";

type Obj = { [key: string]: Json };

const examplePath = new URL("../../examples/01-design-document/microbatch.yaml", import.meta.url);
const exampleText = readFileSync(examplePath, "utf8");

function minimal(extra: Record<string, unknown> = {}): RawSpec {
  return {
    mbc: 1,
    name: "shop",
    sources: { orders: { type: "http", port: 8080, to: "work" } },
    services: { work: { handler: "./work.mjs" } },
    ...extra,
  } as RawSpec;
}

const model = (raw: RawSpec) => normalise(raw).model;

describe("contract defaults", () => {
  const m = model(minimal());
  const source = m.sources[0];
  const service = m.services[0];

  it("top level", () => {
    expect(m.mbc).toBe(1);
    expect(m.name).toBe("shop");
    expect(m.description).toBeNull();
    expect(m.environment).toBeNull();
  });

  it("registry: port 7400, heartbeat 1s, ttl 3s", () => {
    expect(m.registry).toEqual({ backend: "embedded", endpoints: [], port: 7400, heartbeatMs: 1000, ttlMs: 3000 });
  });

  it("source: path /records for http, no rate, default batch, and only an http source's fields", () => {
    expect(source).toEqual({
      name: "orders",
      path: "/sources/orders",
      type: "http",
      port: 8080,
      location: "/records",
      ratePerSec: null,
      batch: { maxRecords: 500, maxWaitMs: 200, maxBytes: 1024 * 1024 },
      to: "work",
    });
  });

  it("service: one instance of weight 1, round-robin, no capacity, timeout 2s, empty config and env, a sink", () => {
    expect(service).toMatchObject({
      name: "work",
      path: "/services/work",
      handler: { kind: "module", path: "work.mjs", outside: false },
      image: null,
      config: {},
      loadBalancing: "round-robin",
      capacityPerSec: null,
      port: FIRST_ASSIGNED_PORT,
      portAssigned: true,
      timeoutMs: 2000,
      resources: { cpus: null, memoryBytes: null },
      env: {},
      to: [],
    });
    expect(service?.instances).toEqual([{ index: 0, weight: 1, capacityPerSec: null, port: 9100 }]);
  });

  it("timeout: a sink's is 2s; a stage's is the largest timeout among its `to` plus 2s, at most 60s", () => {
    const chain = model(
      minimal({
        services: {
          parse: { handler: "./p.mjs", to: "enrich" },
          enrich: { handler: "./e.mjs", to: ["store", "audit"] },
          store: { handler: "./s.mjs" },
          audit: { handler: "./a.mjs", timeout: "7s" },
        },
      }),
    );
    expect(Object.fromEntries(chain.services.map((s) => [s.name, s.timeoutMs]))).toEqual({ parse: 11_000, enrich: 9_000, store: 2_000, audit: 7_000 });
    const capped = model(minimal({ services: { work: { handler: "./w.mjs", to: "slow" }, slow: { handler: "./s.mjs", timeout: "59s" } } }));
    expect(capped.services.map((s) => s.timeoutMs)).toEqual([60_000, 59_000]);
  });

  it("timeout: defaults.timeout is used as it is, for every service that sets none", () => {
    const set = model(minimal({ defaults: { timeout: "3s" }, services: { work: { handler: "./w.mjs", to: "sink" }, sink: { handler: "./s.mjs" } } }));
    expect(set.services.map((s) => s.timeoutMs)).toEqual([3000, 3000]);
  });

  it("timeout: a chain of 50,000 default timeouts costs no stack; a cycle takes 2s", () => {
    const services: Record<string, unknown> = {};
    for (let i = 0; i < 50_000; i++) services[`s${i}`] = { handler: "./h.mjs", ...(i < 49_999 ? { to: `s${i + 1}` } : {}) };
    const long = model(minimal({ sources: { orders: { type: "http", port: 8080, to: "s0" } }, services }));
    expect(long.services[0]?.timeoutMs).toBe(60_000);
    expect(long.services[49_999 - 10]?.timeoutMs).toBe(22_000);
    const loop = model(minimal({ services: { work: { handler: "./w.mjs", to: "back" }, back: { handler: "./b.mjs", to: "work" } } }));
    expect(loop.services.map((s) => s.timeoutMs)).toEqual([2000, 2000]);
  });

  it("retry: 2 retries, 100ms, exponential ×2 capped at 5s, full jitter, on all failures, never dead-lettered while unavailable, budget 0.2 + 10/s", () => {
    expect(service?.retry).toEqual({
      maxRetries: 2,
      intervalMs: 100,
      backoff: "exponential",
      multiplier: 2,
      maxIntervalMs: 5000,
      jitter: "full",
      on: ["timeout", "5xx", "connect"],
      deadLetterAfterMs: null,
      budget: { ratio: 0.2, minPerSecond: 10 },
    });
  });

  it("checkpoint: .mbc/state/NAME with fsync", () => {
    expect(m.checkpoint).toEqual({ dir: ".mbc/state/shop", fsync: true });
  });

  it("simulation: 60s of poisson arrivals, no failures, no faults, seed 1", () => {
    expect(m.simulation).toEqual({ durationMs: 60_000, arrival: "poisson", failureRate: 0, faults: [], seed: 1 });
  });

  it("targets: compose, systemd, node and kubernetes defaults", () => {
    expect(m.targets).toEqual({
      compose: { project: "shop", image: "node:20-alpine", network: "shop" },
      systemd: { prefix: "mbc-shop", user: "mbc", installDir: "/opt/mbc/shop", node: "/usr/bin/node" },
      node: { bind: "127.0.0.1" },
      kubernetes: { namespace: "shop", image: "node:20-alpine", imageHasRuntime: false, storageClass: null, sinkAccessMode: "ReadWriteMany" },
    });
  });

  it("file and generator sources have only their own fields", () => {
    const m2 = model(
      minimal({
        sources: {
          file: { type: "file", path: "./in.jsonl", to: "work" },
          gen: { type: "generator", rate: "90000/m", count: 10, record: { id: "{{seq}}" }, to: "work" },
        },
      }),
    );
    const batch = { maxRecords: 500, maxWaitMs: 200, maxBytes: 1024 * 1024 };
    expect(m2.sources[0]).toEqual({ name: "file", path: "/sources/file", type: "file", location: "./in.jsonl", ratePerSec: null, batch, to: "work" });
    expect(m2.sources[1]).toEqual({
      name: "gen",
      path: "/sources/gen",
      type: "generator",
      ratePerSec: 1500,
      count: 10,
      record: { id: "{{seq}}" },
      batch,
      to: "work",
    });
  });

  it("keeps values that are given", () => {
    const m2 = model(
      minimal({
        description: "d",
        registry: { port: 7500, heartbeat: "2s", ttl: "10s", backend: "kubernetes" },
        checkpoint: { dir: "./state", fsync: false },
        simulation: {
          duration: "1m30s",
          arrival: "bursty",
          failureRate: 0.1,
          seed: 7,
          faults: [{ service: "work", instance: 0, at: "5s", duration: "250ms" }],
        },
        targets: {
          compose: { project: "p", image: "node:22", network: "n" },
          systemd: { prefix: "x", user: "u", installDir: "/srv/x", node: "/n" },
          node: { bind: "0.0.0.0" },
          kubernetes: { namespace: "ns", image: "node:22", imageHasRuntime: true, storageClass: "fast", sinkAccessMode: "ReadWriteOnce" },
        },
      }),
    );
    expect(m2.description).toBe("d");
    expect(m2.registry).toEqual({ backend: "kubernetes", endpoints: [], port: 7500, heartbeatMs: 2000, ttlMs: 10_000 });
    expect(m2.checkpoint).toEqual({ dir: "./state", fsync: false });
    expect(m2.simulation).toEqual({
      durationMs: 90_000,
      arrival: "bursty",
      failureRate: 0.1,
      seed: 7,
      faults: [{ service: "work", instance: 0, atMs: 5000, durationMs: 250 }],
    });
    expect(m2.targets).toEqual({
      compose: { project: "p", image: "node:22", network: "n" },
      systemd: { prefix: "x", user: "u", installDir: "/srv/x", node: "/n" },
      node: { bind: "0.0.0.0" },
      kubernetes: { namespace: "ns", image: "node:22", imageHasRuntime: true, storageClass: "fast", sinkAccessMode: "ReadWriteOnce" },
    });
  });

  it("turns env values into strings and `to` into a list", () => {
    const m2 = model(
      minimal({
        services: {
          work: { handler: "./work.mjs", env: { A: 1, B: true, C: "x" }, to: "sink" },
          sink: { handler: "builtin:log" },
        },
      }),
    );
    expect(m2.services[0]?.env).toEqual({ A: "1", B: "true", C: "x" });
    expect(m2.services[0]?.to).toEqual(["sink"]);
  });
});

describe("defaults merge key by key; the service wins", () => {
  const m = model(
    minimal({
      defaults: {
        timeout: "3s",
        retry: { maxRetries: 5, interval: "1s", on: ["timeout"], budget: { ratio: 0.5 } },
        resources: { cpus: 1, memory: "512Mi" },
        batch: { maxRecords: 100, maxBytes: "1k" },
      },
      sources: {
        a: { type: "http", port: 8080, to: "own", batch: { maxWait: "1s" } },
        b: { type: "http", port: 8081, to: "inherit" },
      },
      services: {
        own: {
          handler: "./x.mjs",
          timeout: "500ms",
          retry: { interval: "50ms", on: ["5xx"], budget: { minPerSecond: 3 } },
          resources: { cpus: 2 },
          to: "inherit",
        },
        inherit: { handler: "./y.mjs" },
      },
    }),
  );
  const [own, inherit] = m.services;

  it("timeout", () => {
    expect(own?.timeoutMs).toBe(500);
    expect(inherit?.timeoutMs).toBe(3000);
  });

  it("retry: keys merge, the list replaces, the budget merges", () => {
    expect(own?.retry).toMatchObject({ maxRetries: 5, intervalMs: 50, backoff: "exponential", maxIntervalMs: 5000, on: ["5xx"] });
    expect(own?.retry.budget).toEqual({ ratio: 0.5, minPerSecond: 3 });
    expect(inherit?.retry).toMatchObject({ maxRetries: 5, intervalMs: 1000, on: ["timeout"] });
    expect(inherit?.retry.budget).toEqual({ ratio: 0.5, minPerSecond: 10 });
  });

  it("resources", () => {
    expect(own?.resources).toEqual({ cpus: 2, memoryBytes: 512 * 1024 * 1024 });
    expect(inherit?.resources).toEqual({ cpus: 1, memoryBytes: 512 * 1024 * 1024 });
  });

  it("batch, inherited by sources", () => {
    expect(m.sources[0]?.batch).toEqual({ maxRecords: 100, maxWaitMs: 1000, maxBytes: 1000 });
    expect(m.sources[1]?.batch).toEqual({ maxRecords: 100, maxWaitMs: 200, maxBytes: 1000 });
  });

  it("does not share the retry list between services", () => {
    const m2 = model(minimal({ services: { a: { handler: "./a.mjs" }, b: { handler: "./b.mjs" } } }));
    m2.services[0]?.retry.on.pop();
    expect(m2.services[1]?.retry.on).toEqual(["timeout", "5xx", "connect"]);
  });
});

describe("instances and load balancing", () => {
  const lb = (instances: unknown, extra: Record<string, unknown> = {}) =>
    model(minimal({ services: { work: { handler: "./w.mjs", instances, ...extra } } })).services[0]?.loadBalancing;

  it("round-robin when the weights are equal", () => {
    expect(lb(3)).toBe("round-robin");
    expect(lb([{ weight: 2 }, { weight: 2 }])).toBe("round-robin");
    expect(lb([{ weight: 1 }, {}])).toBe("round-robin");
  });

  it("weighted-round-robin when any weight differs", () => {
    expect(lb([{ weight: 2 }, { weight: 1 }])).toBe("weighted-round-robin");
    expect(lb([{}, { weight: 1.5 }])).toBe("weighted-round-robin");
    expect(lb([{ weight: 1 }, { weight: 1 }, { weight: 3 }])).toBe("weighted-round-robin");
  });

  it("an explicit strategy wins", () => {
    expect(lb([{ weight: 2 }, { weight: 1 }], { loadBalancing: "least-connections" })).toBe("least-connections");
    expect(lb(2, { loadBalancing: "random" })).toBe("random");
  });

  it("an instance's capacity overrides the service's", () => {
    const s = model(minimal({ services: { work: { handler: "./w.mjs", capacity: "60/m", instances: [{ capacity: 5 }, { weight: 3 }] } } })).services[0];
    expect(s?.capacityPerSec).toBe(1);
    expect(s?.instances.map((i) => [i.weight, i.capacityPerSec])).toEqual([
      [1, 5],
      [3, 1],
    ]);
  });

  it("a count makes that many equal instances", () => {
    const s = model(minimal({ services: { work: { handler: "./w.mjs", instances: 4, capacity: 10 } } })).services[0];
    expect(s?.instances.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(s?.instances.every((i) => i.weight === 1 && i.capacityPerSec === 10)).toBe(true);
  });
});

describe("port assignment", () => {
  const ports = (raw: RawSpec) => model(raw).services.map((s) => [s.name, s.instances.map((i) => i.port), s.portAssigned]);

  it("assigns from 9100 in file order, contiguous per service", () => {
    expect(
      ports(
        minimal({
          services: { a: { handler: "./a.mjs" }, b: { handler: "./b.mjs", instances: 3 }, c: { handler: "./c.mjs" } },
        }),
      ),
    ).toEqual([
      ["a", [9100], true],
      ["b", [9101, 9102, 9103], true],
      ["c", [9104], true],
    ]);
  });

  it("skips every declared port: registry, sources and declared service ranges, even those declared later", () => {
    expect(
      ports(
        minimal({
          registry: { port: 9101 },
          sources: { in: { type: "http", port: 9103, to: "p" } },
          services: {
            p: { handler: "./p.mjs" },
            q: { handler: "./q.mjs", instances: 3 },
            r: { handler: "./r.mjs", port: 9106, instances: 2 },
            t: { handler: "./t.mjs", instances: 2 },
          },
        }),
      ),
    ).toEqual([
      ["p", [9100], true],
      // 9101 is the registry's, 9103 the source's, 9106–9107 r's: the first free range of three is 9108–9110.
      ["q", [9108, 9109, 9110], true],
      ["r", [9106, 9107], false],
      ["t", [9111, 9112], true],
    ]);
  });

  it("skips a registry on 9100", () => {
    expect(ports(minimal({ registry: { port: 9100 } }))).toEqual([["work", [9101], true]]);
  });

  it("reports a port-conflict finding when no range is left", () => {
    const { findings } = normalise(minimal({ services: { work: { handler: "./w.mjs", instances: 60_000 } } }));
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ code: "port-conflict", severity: "error", path: "/services/work", at: "key" });
  });

  it("gives the design example 9100–9101 and 9102", () => {
    const m = normalise(parse(exampleText) as RawSpec).model;
    expect(m.services.map((s) => [s.name, s.loadBalancing, s.instances.map((i) => i.port)])).toEqual([
      ["data-processing", "weighted-round-robin", [9100, 9101]],
      ["result-storage", "round-robin", [9102]],
    ]);
  });
});

describe("handler paths", () => {
  it.each([
    ["./work.mjs", "work.mjs", false],
    ["./a/./b//c.mjs", "a/b/c.mjs", false],
    ["./a/../x.mjs", "x.mjs", false],
    ["./a/../../x.mjs", "../x.mjs", true],
    ["../x.mjs", "../x.mjs", true],
    ["./..", "..", true],
    ["/abs/x.mjs", "/abs/x.mjs", true],
    [".\\a\\b.mjs", "a/b.mjs", false],
  ])("%s → %s (outside: %s)", (handler, path, outside) => {
    expect(resolveHandler(handler)).toEqual({ kind: "module", path, outside });
  });

  it("recognises builtins and absence", () => {
    expect(resolveHandler("builtin:jsonl-sink")).toEqual({ kind: "builtin", name: "jsonl-sink" });
    expect(resolveHandler(undefined)).toBeNull();
    const s = model(minimal({ services: { work: { image: "registry.example.com/w:1" } } })).services[0];
    expect(s?.handler).toBeNull();
    expect(s?.image).toBe("registry.example.com/w:1");
  });
});

describe("mergeOverlay", () => {
  const base = (): Obj => ({
    description: "base",
    registry: { port: 7400, ttl: "3s" },
    sources: { in: { type: "http", port: 8080, to: "a" } },
    services: {
      a: { handler: "./a.mjs", instances: [{ weight: 2 }, { weight: 1 }], config: { deep: { x: 1, y: 2 } }, to: ["b", "c"] },
      b: { handler: "./b.mjs" },
    },
  });
  const overlay: Obj = {
    description: "prod",
    registry: { ttl: "5s" },
    sources: { in: { port: 9090 }, ghost: { type: "http" } },
    services: {
      a: { instances: [{ weight: 1 }], config: { deep: { y: 3 } }, to: ["c"] },
      nobody: { handler: "./n.mjs" },
    },
    simulation: { seed: 9 },
  };
  const at = "/environments/prod";

  it("merges objects key by key, replaces arrays and scalars", () => {
    const { merged } = mergeOverlay(base(), overlay, at);
    expect(merged.description).toBe("prod");
    expect(merged.registry).toEqual({ port: 7400, ttl: "5s" });
    expect(merged.sources).toEqual({ in: { type: "http", port: 9090, to: "a" } });
    expect((merged.services as Obj).a).toEqual({ handler: "./a.mjs", instances: [{ weight: 1 }], config: { deep: { x: 1, y: 3 } }, to: ["c"] });
    expect(merged.simulation).toEqual({ seed: 9 });
  });

  it("does not create sources or services the base lacks", () => {
    const { merged } = mergeOverlay(base(), overlay, at);
    expect(Object.keys(merged.sources as Obj)).toEqual(["in"]);
    expect(Object.keys(merged.services as Obj)).toEqual(["a", "b"]);
  });

  it("leaves its inputs alone", () => {
    const b = base();
    const o = structuredClone(overlay);
    mergeOverlay(b, o, at);
    expect(b).toEqual(base());
    expect(o).toEqual(overlay);
  });

  it("maps merged pointers to the overlay's pointers", () => {
    const { provenance } = mergeOverlay(base(), overlay, at);
    expect(provenance.origin("/registry/ttl")).toBe("/environments/prod/registry/ttl");
    expect(provenance.origin("/sources/in/port")).toBe("/environments/prod/sources/in/port");
    expect(provenance.origin("/services/a/instances")).toBe("/environments/prod/services/a/instances");
    expect(provenance.origin("/services/a/instances/0/weight")).toBe("/environments/prod/services/a/instances/0/weight");
    expect(provenance.origin("/services/a/config/deep/y")).toBe("/environments/prod/services/a/config/deep/y");
    expect(provenance.origin("/simulation/seed")).toBe("/environments/prod/simulation/seed");
    expect(provenance.origin("/description")).toBe("/environments/prod/description");
  });

  it("keeps pointers the base file set", () => {
    const { provenance } = mergeOverlay(base(), overlay, at);
    for (const p of ["", "/registry", "/registry/port", "/sources/in", "/sources/in/type", "/services/a", "/services/a/config/deep/x", "/services/b/handler"]) {
      expect(provenance.origin(p)).toBe(p);
    }
  });

  it("is the identity for an empty overlay", () => {
    const { merged, provenance } = mergeOverlay(base(), {}, at);
    expect(merged).toEqual(base());
    expect(provenance.origin("/services/a/to/1")).toBe("/services/a/to/1");
  });

  it("points diagnostics of the merged spec at the overlay's lines", () => {
    const text = [
      "mbc: 1", // 1
      "name: s", // 2
      "registry:", // 3
      "  heartbeat: 1s", // 4
      "sources:", // 5
      "  in:", // 6
      "    type: http", // 7
      "    port: 8080", // 8
      "    to: a", // 9
      "services:", // 10
      "  a:", // 11
      "    handler: builtin:log", // 12
      "environments:", // 13
      "  prod:", // 14
      "    registry:", // 15
      "      ttl: 1s", // 16
      "    services:", // 17
      "      a:", // 18
      "        port: 8080", // 19
      "",
    ].join("\n");
    expect(validateText("s.yaml", text).diagnostics).toEqual([]);
    const r = validateText("s.yaml", text, { env: "prod" });
    expect(r.model?.environment).toBe("prod");
    const found = r.diagnostics.map((d) => [d.code, d.path, d.line, d.column]);
    expect(found).toEqual([
      ["ttl-heartbeat", "/environments/prod/registry/ttl", 16, 12],
      ["port-conflict", "/environments/prod/services/a/port", 19, 15],
    ]);
  });

  it("the design example's prod overlay evens the load", () => {
    const r = validateText("microbatch.yaml", exampleText, { env: "prod" });
    // 2400/s over two equal instances of 2000/s: s = 0.6 each, no warning left.
    expect(r.diagnostics).toEqual([]);
    expect(r.model?.services[0]?.loadBalancing).toBe("round-robin");
    expect(r.model?.services[0]?.instances.map((i) => i.capacityPerSec)).toEqual([2000, 2000]);
  });
});

describe("determinism", () => {
  it("normalising twice gives deep-equal models with identical JSON", () => {
    const raw = parse(exampleText) as RawSpec;
    const before = structuredClone(raw);
    const a = normalise(raw);
    const b = normalise(raw);
    expect(a).toEqual(b);
    expect(JSON.stringify(a.model)).toBe(JSON.stringify(b.model));
    expect(raw).toEqual(before);
  });

  it("validating the same text twice gives the same model and diagnostics", () => {
    const a = validateText("microbatch.yaml", exampleText);
    const b = validateText("microbatch.yaml", exampleText);
    expect(JSON.stringify(a.model)).toBe(JSON.stringify(b.model));
    expect(JSON.stringify(a.diagnostics)).toBe(JSON.stringify(b.diagnostics));
  });
});
