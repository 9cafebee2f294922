import { afterAll, describe, expect, it } from "vitest";
import { heapLimitMiB, restartDelayMs, restartPolicyOf } from "../../src/policy/index.js";
import { planChildren } from "../../src/runtime/supervisor/index.js";
import { cleanupAll, makeSystem } from "../helpers/runtime.js";
import { supervisedSpec } from "../helpers/specs.js";

afterAll(() => cleanupAll());

describe("the supervisor's plan", () => {
  it("starts the registry, then services sinks first, then sources; stops in the reverse direction of the flow", () => {
    const { model } = makeSystem(supervisedSpec(7400));
    const plans = planChildren(model);
    expect(plans.map((p) => p.id)).toEqual(["registry", "service:sink/0", "service:work/0", "service:work/1", "source:in"]);
    // Each stage starts once the one below is ready: the registry, the sink, work, the source.
    expect(Object.fromEntries(plans.map((p) => [p.id, p.startStage]))).toEqual({
      registry: 0,
      "service:sink/0": 1,
      "service:work/0": 2,
      "service:work/1": 2,
      "source:in": 3,
    });
    expect(Object.fromEntries(plans.map((p) => [p.id, p.stopStage]))).toEqual({
      "source:in": 0,
      "service:work/0": 1,
      "service:work/1": 1,
      "service:sink/0": 2,
      registry: 3,
    });
    const sink = plans.find((p) => p.id === "service:sink/0");
    expect(sink).toMatchObject({
      args: ["--role", "service", "--name", "sink", "--instance", "0"],
      env: { GREETING: "hello" },
      execArgv: ["--max-old-space-size=192"],
    });
    expect(plans.find((p) => p.id === "source:in")?.args).toEqual(["--role", "source", "--name", "in"]);
    expect(plans.find((p) => p.id === "registry")?.args).toEqual(["--role", "registry"]);
  });

  it("starts a service one stage above the highest of its next stages, whatever the file order", () => {
    const { model } = makeSystem(`mbc: 1
name: diamond
sources:
  a:
    type: http
    port: 7501
    to: top
  b:
    type: generator
    rate: 10/s
    to: store
services:
  store:
    handler: builtin:jsonl-sink
    config:
      path: ./out.jsonl
  top:
    handler: builtin:passthrough
    to: [left, store]
  left:
    handler: builtin:passthrough
    to: mid
  mid:
    handler: builtin:passthrough
    to: store
`);
    const stages = Object.fromEntries(planChildren(model).map((p) => [p.id, p.startStage]));
    // store ← mid ← left ← top, and top → store directly too: top waits for the longest path.
    expect(stages).toEqual({ registry: 0, "service:store/0": 1, "service:mid/0": 2, "service:left/0": 3, "service:top/0": 4, "source:a": 5, "source:b": 5 });
  });

  it("backs restarts off as the service's retry says, capped, never below 50 ms", () => {
    const { model } = makeSystem(supervisedSpec(7400));
    const work = restartPolicyOf(model.services[0] as never);
    expect(work).toEqual({ intervalMs: 100, multiplier: 3, maxIntervalMs: 1000 });
    expect([0, 1, 2, 3, 4].map((k) => restartDelayMs(work, k))).toEqual([100, 300, 900, 1000, 1000]);
    const sink = restartPolicyOf(model.services[1] as never);
    expect([0, 1, 5].map((k) => restartDelayMs(sink, k))).toEqual([150, 150, 150]);
    expect(restartDelayMs({ intervalMs: 0, multiplier: 2, maxIntervalMs: 5000 }, 0)).toBe(50);
    expect(restartDelayMs({ intervalMs: 100, multiplier: 10, maxIntervalMs: 5000 }, 10_000)).toBe(5000);
    expect(heapLimitMiB(1024 * 1024 * 1024)).toBe(768);
    expect(heapLimitMiB(1000)).toBe(16);
  });
});
