/**
 * Type-level checks of the raw spec type generated from the schema, and of the model's types
 * generated from system.json's: `tsc --noEmit` checks the assignments and `expectTypeOf` calls
 * here; the runtime assertions tie them to the real files.
 */
import { readFileSync } from "node:fs";
import { describe, expect, expectTypeOf, it } from "vitest";
import { parse } from "yaml";
import type {
  Arrival,
  Backoff,
  FileSourceModel,
  GeneratorSourceModel,
  HandlerServiceModel,
  HttpSourceModel,
  ImageServiceModel,
  Jitter,
  LoadBalancing,
  Model,
  RawSpec,
  RetryModel,
  RetryOn,
  ServiceModel,
  SourceModel,
  SourceModelOf,
  SourceType,
} from "../../src/model/types.js";
import { checkSchema } from "../../src/validate/schema.js";

/** The contract's top-level keys, in its order. */
const CONTRACT_TOP_LEVEL = [
  "mbc",
  "name",
  "description",
  "defaults",
  "registry",
  "sources",
  "services",
  "checkpoint",
  "environments",
  "simulation",
  "targets",
] as const;
type ContractKey = (typeof CONTRACT_TOP_LEVEL)[number];

/** The named keys of a type, without its index signature (the schema's `x-` keys). */
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };
type RequiredKnownKeys<T> = { [K in KnownKeys<T>]-?: object extends Pick<T, K> ? never : K }[KnownKeys<T>];

/** The design example, written out; the test below checks that it is what the YAML file holds. */
const example = {
  mbc: 1,
  name: "design-example",
  description: "The design documents' example — data processing with two weighted instances, then result storage.",
  registry: { port: 7400, heartbeat: "1s", ttl: "3s" },
  defaults: { retry: { maxRetries: 2, interval: "100ms" } },
  sources: {
    input: { type: "http", port: 8080, rate: "2400/s", batch: { maxRecords: 200, maxWait: "100ms" }, to: "data-processing" },
  },
  services: {
    "data-processing": {
      handler: "./handlers/process.mjs",
      instances: [{ weight: 2 }, { weight: 1 }],
      capacity: "2000/s",
      timeout: "5s",
      to: "result-storage",
    },
    "result-storage": { handler: "builtin:jsonl-sink", config: { path: "./data/results.jsonl" }, capacity: "5000/s", timeout: "1s" },
  },
  checkpoint: { dir: ".mbc/state/design-example" },
  simulation: { duration: "60s", arrival: "poisson", seed: 1 },
  environments: {
    prod: {
      services: {
        "data-processing": {
          instances: [
            { weight: 1, capacity: "2000/s" },
            { weight: 1, capacity: "2000/s" },
          ],
        },
      },
    },
  },
} satisfies RawSpec;

describe("RawSpec, the type generated from the schema", () => {
  it("accepts the design example's parsed value", () => {
    const fromFile: unknown = parse(readFileSync(new URL("../../examples/01-design-document/microbatch.yaml", import.meta.url), "utf8"));
    expect(fromFile).toEqual(example);
    expect(checkSchema(fromFile)).toEqual([]);
    const typed: RawSpec = example;
    expectTypeOf(typed).toExtend<RawSpec>();
  });

  it("has exactly the contract's top-level keys", () => {
    expectTypeOf<KnownKeys<RawSpec>>().toEqualTypeOf<ContractKey>();
    expectTypeOf<RequiredKnownKeys<RawSpec>>().toEqualTypeOf<"mbc" | "name" | "sources" | "services">();
  });

  it("types the values of the contract", () => {
    expectTypeOf<RawSpec["mbc"]>().toEqualTypeOf<1>();
    expectTypeOf<RawSpec["name"]>().toEqualTypeOf<string>();
    type Service = NonNullable<RawSpec["services"][string]>;
    type Source = NonNullable<RawSpec["sources"][string]>;
    expectTypeOf<NonNullable<Source["type"]>>().toEqualTypeOf<"http" | "file" | "generator">();
    expectTypeOf<NonNullable<Service["to"]>>().toExtend<string | readonly string[]>();
    expectTypeOf<NonNullable<Service["loadBalancing"]>>().toEqualTypeOf<
      "round-robin" | "weighted-round-robin" | "random" | "weighted-random" | "least-connections" | "power-of-two-choices"
    >();
    expectTypeOf<NonNullable<Service["capacity"]>>().toEqualTypeOf<number | string>();
  });

  it("refuses shapes the schema refuses", () => {
    // @ts-expect-error the version is the constant 1
    const wrongVersion: RawSpec = { ...example, mbc: 2 };
    // @ts-expect-error a name is required
    const noName: RawSpec = { mbc: 1, sources: example.sources, services: example.services };
    // @ts-expect-error a source's type is one of three
    const badType: RawSpec = { ...example, sources: { input: { type: "kafka", to: "data-processing" } } };
    // @ts-expect-error instances is a count or a non-empty list
    const noInstances: RawSpec = { ...example, services: { a: { handler: "./a.mjs", instances: [] } } };
    expect([wrongVersion, noName, badType, noInstances]).toHaveLength(4);
  });
});

describe("the schema's top level", () => {
  const schema = JSON.parse(readFileSync(new URL("../../schema/mbc.schema.json", import.meta.url), "utf8")) as {
    properties: Record<string, unknown>;
    required: string[];
    additionalProperties: boolean;
    patternProperties: Record<string, unknown>;
  };

  it("names exactly the contract's top-level keys, in its order", () => {
    expect(Object.keys(schema.properties)).toEqual([...CONTRACT_TOP_LEVEL]);
  });

  it("requires mbc, name, sources and services", () => {
    expect([...schema.required].sort()).toEqual(["mbc", "name", "services", "sources"]);
  });

  it("refuses other keys except x- keys", () => {
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.patternProperties)).toEqual(["^x-"]);
  });
});

describe("the model's types, generated from system.json's schema", () => {
  it("a source is a union on `type`, each variant with only its own fields", () => {
    expectTypeOf<SourceModel["type"]>().toEqualTypeOf<SourceType>();
    type Shared = "name" | "path" | "type" | "ratePerSec" | "batch" | "to";
    expectTypeOf<keyof HttpSourceModel>().toEqualTypeOf<Shared | "port" | "location">();
    expectTypeOf<keyof FileSourceModel>().toEqualTypeOf<Shared | "location">();
    expectTypeOf<keyof GeneratorSourceModel>().toEqualTypeOf<Shared | "count" | "record">();
    // A generator's rate is its own, not the optional rate of the others.
    expectTypeOf<GeneratorSourceModel["ratePerSec"]>().toEqualTypeOf<number>();
    expectTypeOf<SourceModelOf<"file">>().toEqualTypeOf<FileSourceModel>();
    const source = {} as SourceModel;
    if (source.type === "http") expectTypeOf(source.port).toEqualTypeOf<number>();
    // @ts-expect-error a file source has no port
    expect(() => (source as FileSourceModel).port).not.toThrow();
  });

  it("a service runs a handler, or (handler null) only an image", () => {
    expectTypeOf<ServiceModel>().toEqualTypeOf<HandlerServiceModel | ImageServiceModel>();
    expectTypeOf<ImageServiceModel["handler"]>().toEqualTypeOf<null>();
    expectTypeOf<ImageServiceModel["image"]>().toEqualTypeOf<string>();
    expectTypeOf<HandlerServiceModel["image"]>().toEqualTypeOf<string | null>();
    const service = {} as ServiceModel;
    if (service.handler === null) expectTypeOf(service.image).toEqualTypeOf<string>();
  });

  it("the model's enums are the spec's", () => {
    expectTypeOf<RetryModel["backoff"]>().toEqualTypeOf<Backoff>();
    expectTypeOf<RetryModel["jitter"]>().toEqualTypeOf<Jitter>();
    expectTypeOf<RetryModel["on"]>().toEqualTypeOf<RetryOn[]>();
    expectTypeOf<Model["simulation"]["arrival"]>().toEqualTypeOf<Arrival>();
    expectTypeOf<ServiceModel["loadBalancing"]>().toEqualTypeOf<LoadBalancing>();
  });
});
