import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { Finding } from "../../src/diagnostic.js";
import validateSchema from "../../src/generated/schema-validator.js";
import { checkSchema, mapErrors } from "../../src/validate/schema.js";

// biome-ignore lint/suspicious/noExplicitAny: the tests reach into specs and break them on purpose
type Spec = Record<string, any>;

const example = parse(readFileSync(new URL("../../examples/01-design-document/microbatch.yaml", import.meta.url), "utf8")) as Spec;

function base(): Spec {
  return {
    mbc: 1,
    name: "shop",
    sources: { orders: { type: "http", port: 8080, rate: "100/s", to: "enrich" } },
    services: {
      enrich: { handler: "./h.mjs", instances: [{ weight: 2 }, { weight: 1 }], capacity: 500, to: ["store"] },
      store: { handler: "builtin:jsonl-sink", config: { path: "./out.jsonl" } },
    },
  };
}

/** The base spec with one change applied. */
function spec(change: (s: Spec) => void): Spec {
  const s = base();
  change(s);
  return s;
}

function only(findings: Finding[]): Finding {
  expect(findings, JSON.stringify(findings, null, 2)).toHaveLength(1);
  return findings[0] as Finding;
}

describe("valid specs", () => {
  it("accepts the base spec and the design example", () => {
    expect(checkSchema(base())).toEqual([]);
    expect(checkSchema(example)).toEqual([]);
  });

  it("keeps x- keys everywhere without complaint", () => {
    const s = spec((s) => {
      s["x-team"] = { owner: "ops" };
      s.sources.orders["x-note"] = 1;
      s.services.enrich["x-anything"] = [1, 2];
    });
    expect(checkSchema(s)).toEqual([]);
  });

  it("maps no errors to no findings", () => {
    expect(mapErrors([])).toEqual([]);
  });
});

describe("one finding per location, without oneOf/anyOf/if noise", () => {
  it("a negative instance weight", () => {
    const f = only(checkSchema(spec((s) => (s.services.enrich.instances = [{ weight: -1 }]))));
    expect(f).toMatchObject({ code: "schema", severity: "error", path: "/services/enrich/instances/0/weight" });
  });

  it("a rate with an unknown unit", () => {
    const f = only(checkSchema(spec((s) => (s.sources.orders.rate = "12/x"))));
    expect(f).toMatchObject({ code: "schema", severity: "error", path: "/sources/orders/rate" });
  });

  it("a zero rate", () => {
    expect(only(checkSchema(spec((s) => (s.sources.orders.rate = 0)))).path).toBe("/sources/orders/rate");
  });

  it("a bad name in a `to` list", () => {
    const f = only(checkSchema(spec((s) => (s.services.enrich.to = ["Bad"]))));
    expect(f).toMatchObject({ code: "schema", severity: "error", path: "/services/enrich/to/0" });
  });

  it("a bad name as a single `to`", () => {
    expect(only(checkSchema(spec((s) => (s.services.enrich.to = "Bad")))).path).toBe("/services/enrich/to");
  });

  it("a bad size", () => {
    expect(only(checkSchema(spec((s) => (s.services.enrich.resources = { memory: "1Gb" })))).path).toBe("/services/enrich/resources/memory");
  });

  it("instances of the wrong type", () => {
    expect(only(checkSchema(spec((s) => (s.services.enrich.instances = "two")))).path).toBe("/services/enrich/instances");
    expect(only(checkSchema(spec((s) => (s.services.enrich.instances = 0)))).path).toBe("/services/enrich/instances");
    expect(only(checkSchema(spec((s) => (s.services.enrich.instances = [])))).path).toBe("/services/enrich/instances");
  });

  it("a duration of the wrong form or type", () => {
    expect(only(checkSchema(spec((s) => (s.services.enrich.timeout = "5 s")))).path).toBe("/services/enrich/timeout");
    expect(only(checkSchema(spec((s) => (s.services.enrich.timeout = 5)))).path).toBe("/services/enrich/timeout");
  });

  it("a source type that fails its if/then branch: only the missing key", () => {
    const f = only(checkSchema(spec((s) => delete s.sources.orders.port)));
    expect(f).toMatchObject({ code: "schema", path: "/sources/orders/port", at: "key" });
    const g = only(checkSchema(spec((s) => (s.sources.orders = { type: "generator", to: "enrich" }))));
    expect(g).toMatchObject({ code: "schema", path: "/sources/orders/rate", at: "key" });
    const h = only(checkSchema(spec((s) => (s.sources.orders = { type: "file", to: "enrich" }))));
    expect(h).toMatchObject({ code: "schema", path: "/sources/orders/path", at: "key" });
  });

  it("a service with neither handler nor image", () => {
    const f = only(checkSchema(spec((s) => delete s.services.store.handler)));
    expect(f).toMatchObject({ code: "schema", path: "/services/store/handler", at: "key" });
  });

  it("a repeated item in a unique list, at the repetition", () => {
    const f = only(checkSchema(spec((s) => (s.services.enrich.retry = { on: ["timeout", "5xx", "timeout"] }))));
    expect(f).toMatchObject({ code: "schema", path: "/services/enrich/retry/on/2" });
  });

  it("independent problems give one finding each", () => {
    const findings = checkSchema(
      spec((s) => {
        s.services.enrich.retry = { maxRetries: 11 };
        s.sources.orders.rate = "fast";
        s.services.store.timout = "1s";
      }),
    );
    expect(findings.map((f) => f.path).sort()).toEqual(["/services/enrich/retry/maxRetries", "/services/store/timout", "/sources/orders/rate"]);
  });

  it("never reports two findings for one location across many single mutations", () => {
    const mutations: ((s: Spec) => void)[] = [
      (s) => (s.mbc = 2),
      (s) => (s.name = "Bad Name"),
      (s) => (s.name = 7),
      (s) => (s.sources = []),
      (s) => (s.sources.orders.type = "kafka"),
      (s) => (s.sources.orders.port = 70000),
      (s) => (s.sources.orders.count = -1),
      (s) => (s.sources.orders.batch = { maxRecords: 0 }),
      (s) => (s.services.enrich.capacity = "lots"),
      (s) => (s.services.enrich.instances = [{ weight: 1, capacity: "x" }]),
      (s) => (s.services.enrich.handler = "handler.mjs"),
      (s) => (s.services.enrich.env = { "bad-name": "1" }),
      (s) => (s.services.enrich.env = { OK: { nested: 1 } }),
      (s) => (s.services.enrich.to = []),
      (s) => (s.services.enrich.to = ["store", "store"]),
      (s) => (s.registry = { ttl: "soon" }),
      (s) => (s.simulation = { failureRate: 2 }),
      (s) => (s.simulation = { faults: [{ service: "enrich" }] }),
      (s) => (s.targets = { systemd: { installDir: "relative" } }),
      (s) => (s.checkpoint = { fsync: "yes" }),
    ];
    for (const m of mutations) {
      const findings = checkSchema(spec(m));
      expect(findings.length, `${m.toString()}: ${JSON.stringify(findings)}`).toBeGreaterThan(0);
      const paths = findings.map((f) => f.path);
      expect(new Set(paths).size, `${m.toString()}: ${JSON.stringify(findings)}`).toBe(paths.length);
      for (const f of findings) {
        expect(["schema", "unknown-key"]).toContain(f.code);
        expect(f.severity).toBe("error");
        expect(f.message.length).toBeGreaterThan(0);
      }
    }
  });
});

describe("unknown keys", () => {
  it("reports the key with a did-you-mean when one is close", () => {
    const f = only(checkSchema(spec((s) => (s.services.store.timout = "1s"))));
    expect(f).toMatchObject({ code: "unknown-key", severity: "error", path: "/services/store/timout", at: "key" });
    expect(f.hint).toContain('"timeout"');
  });

  it("suggests at the top level too", () => {
    const f = only(
      checkSchema(
        spec((s) => {
          s.servces = s.services;
        }),
      ),
    );
    expect(f).toMatchObject({ code: "unknown-key", path: "/servces" });
    expect(f.hint).toContain('"services"');
  });

  it("lists the allowed keys when nothing is close", () => {
    const f = only(checkSchema(spec((s) => (s.services.store.zzzzzzzz = 1))));
    expect(f.code).toBe("unknown-key");
    expect(f.hint).not.toContain("did you mean");
    expect(f.hint).toContain("handler");
  });

  it("encodes keys with / and ~ in the pointer", () => {
    const f = only(checkSchema(spec((s) => (s.services.store["a/b~c"] = 1))));
    expect(f.path).toBe("/services/store/a~1b~0c");
  });
});

describe("enum values", () => {
  it("hints at the close value", () => {
    const f = only(checkSchema(spec((s) => (s.services.enrich.loadBalancing = "round-robbin"))));
    expect(f).toMatchObject({ code: "schema", path: "/services/enrich/loadBalancing" });
    expect(f.hint).toContain('"round-robin"');
  });

  it("gives no hint for a value far from all", () => {
    const f = only(checkSchema(spec((s) => (s.sources.orders.type = "zzzzzzzzzzzz"))));
    expect(f.path).toBe("/sources/orders/type");
    expect(f.hint ?? "").not.toContain("did you mean");
  });
});

describe("required keys", () => {
  it.each(["mbc", "name", "sources", "services"])("reports a missing top-level %s at its own path", (key) => {
    const f = only(checkSchema(spec((s) => delete s[key])));
    expect(f).toMatchObject({ code: "schema", severity: "error", path: `/${key}`, at: "key" });
  });

  it("reports a missing nested key at its own path", () => {
    const f = only(checkSchema(spec((s) => delete s.sources.orders.to)));
    expect(f).toMatchObject({ path: "/sources/orders/to", at: "key" });
  });

  it("reports every missing key of a fault", () => {
    const findings = checkSchema(spec((s) => (s.simulation = { faults: [{ service: "enrich" }] })));
    expect(findings.map((f) => f.path).sort()).toEqual(["/simulation/faults/0/at", "/simulation/faults/0/duration", "/simulation/faults/0/instance"]);
  });

  it("reports an empty spec once, at the root", () => {
    for (const value of [undefined, null]) {
      expect(only(checkSchema(value))).toMatchObject({ code: "schema", path: "" });
    }
    expect(only(checkSchema([1]))).toMatchObject({ code: "schema", path: "" });
    expect(only(checkSchema("text"))).toMatchObject({ code: "schema", path: "" });
  });

  it("reports an empty map of sources at its key", () => {
    expect(only(checkSchema(spec((s) => (s.sources = {}))))).toMatchObject({ path: "/sources", at: "key" });
  });
});

describe("invalid names as map keys", () => {
  it.each(["sources", "services", "environments"])("reports a bad key of %s at the key", (map) => {
    const s = base();
    s[map] = {
      ...(s[map] ?? {}),
      Bad_Name: map === "environments" ? {} : map === "sources" ? { type: "http", port: 9000, to: "enrich" } : { handler: "./x.mjs" },
    };
    const f = only(checkSchema(s));
    expect(f).toMatchObject({ code: "schema", severity: "error", path: `/${map}/Bad_Name`, at: "key" });
  });

  it("reports a bad environment variable name at the key", () => {
    const f = only(checkSchema(spec((s) => (s.services.enrich.env = { "not-valid": "1", GOOD: 2 }))));
    expect(f).toMatchObject({ path: "/services/enrich/env/not-valid", at: "key" });
  });
});

describe("mapErrors", () => {
  it("gives the same findings as checkSchema for the validator's errors", () => {
    const bad = spec((s) => (s.services.enrich.instances = [{ weight: -1 }]));
    expect(validateSchema(bad)).toBe(false);
    expect(mapErrors(validateSchema.errors ?? [])).toEqual(checkSchema(bad));
  });

  it("keeps the branch that got furthest and drops the oneOf itself", () => {
    const bad = spec((s) => (s.services.enrich.instances = [{ weight: -1 }]));
    validateSchema(bad);
    const errors = validateSchema.errors ?? [];
    expect(errors.some((e) => e.keyword === "oneOf")).toBe(true);
    const findings = mapErrors(errors);
    expect(findings.map((f) => f.path)).toEqual(["/services/enrich/instances/0/weight"]);
  });
});
