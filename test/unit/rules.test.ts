import { describe, expect, it } from "vitest";
import type { Diagnostic, DiagnosticCode } from "../../src/diagnostic.js";
import { type ValidateOptions, validateText } from "../../src/validate/index.js";
import { rules } from "../../src/validate/rules/index.js";
import { CONTRACT_CODES } from "../helpers/contract.js";

/** A spec from lines; the first line is line 1. */
const lines = (...l: string[]) => `${l.join("\n")}\n`;

function run(text: string, options: ValidateOptions = {}): Diagnostic[] {
  return validateText("spec.yaml", text, options).diagnostics;
}

function ofCode(text: string, code: DiagnosticCode, options: ValidateOptions = {}): Diagnostic[] {
  return run(text, options).filter((d) => d.code === code);
}

const where = (d: Diagnostic | undefined) => (d ? [d.line, d.column] : undefined);

/** One http source `in` (rate optional) feeding `first`, then the services given as YAML lines. */
function pipeline(rate: string | number | null, services: string[], extra: string[] = []): string {
  return lines(
    "mbc: 1",
    "name: t",
    "sources:",
    "  in:",
    "    type: http",
    "    port: 8080",
    ...(rate === null ? [] : [`    rate: ${rate}`]),
    "    to: first",
    "services:",
    ...services,
    ...extra,
  );
}

/** A single service `first` with the given extra lines (indented under it). */
function single(rate: string | number | null, body: string[], extra: string[] = []): string {
  return pipeline(rate, ["  first:", "    handler: builtin:log", ...body.map((l) => `    ${l}`)], extra);
}

describe("every semantic rule is covered here", () => {
  const covered: DiagnosticCode[] = [
    "unknown-reference",
    "name-clash",
    "cycle",
    "unreachable",
    "port-conflict",
    "handler-not-found",
    "handler-outside",
    "unknown-builtin",
    "overloaded",
    "low-headroom",
    "weight-capacity-mismatch",
    "retry-storm",
    "timeout-inversion",
    "ttl-heartbeat",
    "registry-setting-unused",
  ];
  it("lists the same codes as the rule registry", () => {
    expect([...covered].sort()).toEqual(Object.keys(rules).sort());
  });

  it("gives each rule of the contract its contract severity", () => {
    const warnings = ["unreachable", "low-headroom", "weight-capacity-mismatch", "retry-storm", "timeout-inversion"];
    for (const [code, rule] of Object.entries(rules)) {
      expect(rule.code).toBe(code);
      // A rule of mbc's own (not in the contract's table) chooses its severity.
      if ((CONTRACT_CODES as readonly string[]).includes(code)) expect(rule.severity, code).toBe(warnings.includes(code) ? "warning" : "error");
    }
  });
});

describe("unknown-reference", () => {
  it("a source's `to`", () => {
    const text = lines(
      "mbc: 1",
      "name: t",
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    to: frist",
      "services:",
      "  first:",
      "    handler: builtin:log",
    );
    const found = ofCode(text, "unknown-reference");
    expect(found.map(where)).toEqual([[7, 9]]);
    expect(found[0]?.severity).toBe("error");
    expect(found[0]?.hint).toContain('"first"');
  });

  it("an item of a service's `to` list, and a single `to`", () => {
    const list = pipeline(null, ["  first:", "    handler: builtin:log", "    to: [second, ghost]", "  second:", "    handler: builtin:log"]);
    expect(ofCode(list, "unknown-reference").map(where)).toEqual([[11, 18]]);
    const one = pipeline(null, ["  first:", "    handler: builtin:log", "    to: ghost"]);
    expect(ofCode(one, "unknown-reference").map(where)).toEqual([[11, 9]]);
  });

  it("a source named as a `to`", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "    to: in"]);
    const found = ofCode(text, "unknown-reference");
    expect(found).toHaveLength(1);
    expect(found[0]?.hint).toContain("source");
  });

  it("an overlay naming a service that does not exist, selected or not", () => {
    const text = single(null, [], ["environments:", "  prod:", "    services:", "      ghost:", "        timeout: 1s"]);
    expect(ofCode(text, "unknown-reference").map(where)).toEqual([[14, 7]]);
  });

  it("a fault naming no such service, or no such instance", () => {
    const text = single(
      null,
      ["instances: 2"],
      [
        "simulation:",
        "  faults:",
        "    - {service: ghost, instance: 0, at: 1s, duration: 1s}",
        "    - {service: first, instance: 2, at: 1s, duration: 1s}",
        "    - {service: first, instance: 1, at: 1s, duration: 1s}",
      ],
    );
    expect(ofCode(text, "unknown-reference").map(where)).toEqual([
      [14, 17],
      [15, 34],
    ]);
  });
});

describe("name-clash", () => {
  it("a service named like a source, at the service's key", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "    to: in", "  in:", "    handler: builtin:log"]);
    const found = ofCode(text, "name-clash");
    expect(found.map(where)).toEqual([[12, 3]]);
    expect(found[0]?.severity).toBe("error");
  });
});

describe("cycle", () => {
  it("lists the cycle and is reported once", () => {
    const text = pipeline(null, [
      "  first:", // 9
      "    handler: builtin:log",
      "    to: b", // 11
      "  b:",
      "    handler: builtin:log",
      "    to: [c]", // 14
      "  c:",
      "    handler: builtin:log",
      "    to: [b, d]", // 17
      "  d:",
      "    handler: builtin:log",
    ]);
    const found = ofCode(text, "cycle");
    expect(found).toHaveLength(1);
    expect(found[0]?.severity).toBe("error");
    expect(where(found[0])).toEqual([17, 10]);
    expect(found[0]?.message).toContain("b → c → b");
  });

  it("a longer cycle, entered from the source, closed by a single `to`", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    to: second",
      "  second:",
      "    handler: builtin:log",
      "    to: third",
      "  third:",
      "    handler: builtin:log",
      "    to: first", // 17
    ]);
    const found = ofCode(text, "cycle");
    expect(found).toHaveLength(1);
    expect(where(found[0])).toEqual([17, 9]);
    expect(found[0]?.message).toContain("first → second → third → first");
  });

  it("a service that sends to itself", () => {
    const text = single(null, ["to: first"]);
    const found = ofCode(text, "cycle");
    expect(found).toHaveLength(1);
    expect(found[0]?.message).toContain("first → first");
  });

  it("two separate cycles are two findings", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    to: [a, c]",
      "  a:",
      "    handler: builtin:log",
      "    to: b",
      "  b:",
      "    handler: builtin:log",
      "    to: a",
      "  c:",
      "    handler: builtin:log",
      "    to: d",
      "  d:",
      "    handler: builtin:log",
      "    to: c",
    ]);
    expect(ofCode(text, "cycle")).toHaveLength(2);
  });

  it("a diamond is not a cycle", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    to: [a, b]",
      "  a:",
      "    handler: builtin:log",
      "    to: c",
      "  b:",
      "    handler: builtin:log",
      "    to: c",
      "  c:",
      "    handler: builtin:log",
    ]);
    expect(ofCode(text, "cycle")).toEqual([]);
  });
});

describe("unreachable", () => {
  it("a service that no source leads to, at its key", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "  lonely:", "    handler: builtin:log", "    to: first"]);
    const found = ofCode(text, "unreachable");
    expect(found.map(where)).toEqual([[11, 3]]);
    expect(found[0]?.severity).toBe("warning");
  });

  it("everything below an unreachable service too, and not what a source reaches", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "  a:", "    handler: builtin:log", "    to: b", "  b:", "    handler: builtin:log"]);
    expect(ofCode(text, "unreachable").map(where)).toEqual([
      [11, 3],
      [14, 3],
    ]);
  });
});

describe("port-conflict", () => {
  it("overlapping instance ranges", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    port: 9000",
      "    instances: 3", // 9000–9002
      "    to: second",
      "  second:",
      "    handler: builtin:log",
      "    port: 9002", // 16
    ]);
    const found = ofCode(text, "port-conflict");
    expect(found.map(where)).toEqual([[16, 11]]);
    expect(found[0]?.severity).toBe("error");
    expect(found[0]?.message).toContain("9002");
  });

  it("adjacent ranges are fine", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    port: 9000",
      "    instances: 3",
      "    to: second",
      "  second:",
      "    handler: builtin:log",
      "    port: 9003",
    ]);
    expect(ofCode(text, "port-conflict")).toEqual([]);
  });

  it("a range that covers the port of a source", () => {
    const text = single(null, ["port: 8079", "instances: 2"]);
    expect(ofCode(text, "port-conflict").map(where)).toEqual([[11, 11]]);
  });

  it("the registry's default port", () => {
    const text = single(null, ["port: 7400"]);
    expect(ofCode(text, "port-conflict").map(where)).toEqual([[11, 11]]);
  });

  it("a source on the registry's declared port", () => {
    const text = lines(
      "mbc: 1",
      "name: t",
      "registry:",
      "  port: 8080",
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080", // 8
      "    to: first",
      "services:",
      "  first:",
      "    handler: builtin:log",
    );
    expect(ofCode(text, "port-conflict").map(where)).toEqual([[8, 11]]);
  });

  it("assigned ports never conflict", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    instances: 4",
      "    to: b",
      "  b:",
      "    handler: builtin:log",
      "    port: 9102",
    ]);
    expect(ofCode(text, "port-conflict")).toEqual([]);
  });
});

describe("handler-not-found", () => {
  const text = pipeline(null, ["  first:", "    handler: ./handlers/there.mjs", "    to: second", "  second:", "    handler: ./handlers/../missing.mjs"]);

  it("is skipped without a file system", () => {
    expect(ofCode(text, "handler-not-found")).toEqual([]);
  });

  it("asks for the normalised path and reports at the handler", () => {
    const asked: string[] = [];
    const fileExists = (p: string) => {
      asked.push(p);
      return p === "handlers/there.mjs";
    };
    const found = ofCode(text, "handler-not-found", { fileExists });
    expect(asked.sort()).toEqual(["handlers/there.mjs", "missing.mjs"]);
    expect(found.map(where)).toEqual([[13, 14]]);
    expect(found[0]?.severity).toBe("error");
  });

  it("does not ask about builtins or handlers outside the folder", () => {
    const asked: string[] = [];
    const t = pipeline(null, ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: ../outside.mjs"]);
    ofCode(t, "handler-not-found", {
      fileExists: (p) => {
        asked.push(p);
        return false;
      },
    });
    expect(asked).toEqual([]);
  });
});

describe("handler-outside", () => {
  it.each(["../x.mjs", "./a/../../x.mjs"])("%s leaves the spec's folder", (handler) => {
    const text = pipeline(null, ["  first:", `    handler: ${handler}`]);
    const found = ofCode(text, "handler-outside");
    expect(found.map(where)).toEqual([[10, 14]]);
    expect(found[0]?.severity).toBe("error");
  });

  it("./a/../x.mjs stays inside", () => {
    expect(ofCode(pipeline(null, ["  first:", "    handler: ./a/../x.mjs"]), "handler-outside")).toEqual([]);
  });
});

describe("unknown-builtin", () => {
  it("reports the handler with a did-you-mean", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:jsonl-snk"]);
    const found = ofCode(text, "unknown-builtin");
    expect(found.map(where)).toEqual([[10, 14]]);
    expect(found[0]?.hint).toContain("builtin:jsonl-sink");
  });

  it.each(["passthrough", "jsonl-sink", "log"])("builtin:%s is known", (name) => {
    expect(ofCode(pipeline(null, ["  first:", `    handler: builtin:${name}`]), "unknown-builtin")).toEqual([]);
  });
});

describe("capacity rules", () => {
  const capacityCodes = ["overloaded", "low-headroom", "weight-capacity-mismatch"];
  const capacity = (text: string) => run(text).filter((d) => capacityCodes.includes(d.code));
  const summary = (text: string) => capacity(text).map((d) => [d.code, d.severity, d.line, d.column]);

  describe("overloaded and low-headroom", () => {
    it("utilisation exactly 1.0 is overloaded (and not low-headroom)", () => {
      expect(summary(single(1000, ["capacity: 1000"]))).toEqual([["overloaded", "error", 10, 3]]);
    });

    it("above 1.0 is overloaded", () => {
      expect(summary(single(1500, ["capacity: 1000"]))).toEqual([["overloaded", "error", 10, 3]]);
    });

    it("just below 1.0 is low-headroom", () => {
      expect(summary(single(999, ["capacity: 1000"]))).toEqual([["low-headroom", "warning", 10, 3]]);
    });

    it("exactly 0.8 is low-headroom", () => {
      expect(summary(single(800, ["capacity: 1000"]))).toEqual([["low-headroom", "warning", 10, 3]]);
    });

    it("0.8 is low-headroom even where floating point gives 0.7999…", () => {
      expect(2.4 / 3).toBeLessThan(0.8);
      expect(summary(single(2.4, ["capacity: 3"]))).toEqual([["low-headroom", "warning", 10, 3]]);
      // The design example's instance 0: 2/3 of 2400/s against 2000/s.
      const example = capacity(single(2400, ["capacity: 2000", "instances: [{weight: 2}, {weight: 1}]"]));
      expect(example.filter((d) => d.code === "low-headroom")).toHaveLength(1);
    });

    it("1.0 is overloaded even where floating point gives 0.999…", () => {
      // Three equal instances: a share of 1/3 of 3000/s against 1000/s.
      expect(summary(single(3000, ["capacity: 1000", "instances: 3"]))).toEqual([["overloaded", "error", 10, 3]]);
      expect(summary(single(0.3, ["capacity: 0.3"]))).toEqual([["overloaded", "error", 10, 3]]);
    });

    it("below 0.8 says nothing", () => {
      expect(summary(single(799, ["capacity: 1000"]))).toEqual([]);
    });

    it("takes expected retries into account", () => {
      // 700/s × (1 + 0.2 + 0.04) = 868 attempts/s against 1000/s.
      expect(summary(single(700, ["capacity: 1000"], ["simulation:", "  failureRate: 0.2"]))).toEqual([["low-headroom", "warning", 10, 3]]);
    });

    it("reports the most loaded instance once per service", () => {
      const found = capacity(single(1800, ["instances: [{capacity: 1000}, {capacity: 1000}, {capacity: 5000}]"]));
      expect(found.filter((d) => d.code === "overloaded")).toHaveLength(0);
      expect(found.filter((d) => d.code === "low-headroom")).toHaveLength(0);
      const heavy = capacity(single(3000, ["instances: [{capacity: 1000}, {capacity: 1000}, {capacity: 5000}]"]));
      expect(heavy.filter((d) => d.code === "overloaded")).toHaveLength(1);
    });
  });

  describe("weight-capacity-mismatch", () => {
    // Round-robin over capacities a and b: |sᵢ − L| = 25 % of L exactly when b/a = 5/3.
    it("exactly 25 % is fine", () => {
      expect(summary(single(200, ["instances: [{capacity: 300}, {capacity: 500}]"]))).toEqual([]);
      expect(summary(single(2, ["instances: [{capacity: 3}, {capacity: 5}]"]))).toEqual([]);
    });

    it("exactly 25 % is fine where floating point lands above it", () => {
      const s0 = 0.1 / 0.3;
      const s1 = 0.1 / 0.5;
      const L = (s0 + s1) / 2;
      expect(Math.abs(s1 - L)).toBeGreaterThan(0.25 * L);
      expect(summary(single(0.2, ["instances: [{capacity: 0.3}, {capacity: 0.5}]"]))).toEqual([]);
    });

    it("just above 25 % warns, once, at the service's key", () => {
      expect(summary(single(200, ["instances: [{capacity: 300}, {capacity: 501}]"]))).toEqual([["weight-capacity-mismatch", "warning", 10, 3]]);
    });

    it("weights proportional to capacities are fine", () => {
      expect(summary(single(300, ["instances: [{weight: 1, capacity: 500}, {weight: 2, capacity: 1000}]"]))).toEqual([]);
    });

    it("the design example's 2:1 weights on equal capacities", () => {
      expect(summary(single("2400/s", ["capacity: 2000/s", "instances: [{weight: 2}, {weight: 1}]"]))).toEqual([
        ["low-headroom", "warning", 10, 3],
        ["weight-capacity-mismatch", "warning", 10, 3],
      ]);
    });
  });

  describe("silence where rate or capacity is unknown", () => {
    it("no rate at the source", () => {
      expect(summary(single(null, ["capacity: 1"]))).toEqual([]);
    });

    it("no capacity at the service", () => {
      expect(summary(single(1_000_000, []))).toEqual([]);
    });

    it("an instance without capacity", () => {
      expect(summary(single(1_000_000, ["instances: [{capacity: 1}, {weight: 1}]"]))).toEqual([]);
    });

    it("a second source without rate makes the total unknown", () => {
      const text = lines(
        "mbc: 1",
        "name: t",
        "sources:",
        "  fast:",
        "    type: generator",
        "    rate: 1000000",
        "    to: first",
        "  unknown:",
        "    type: http",
        "    port: 8080",
        "    to: first",
        "services:",
        "  first:",
        "    handler: builtin:log",
        "    capacity: 1",
      );
      expect(summary(text)).toEqual([]);
    });

    it("below a cycle", () => {
      const text = pipeline(1_000_000, [
        "  first:",
        "    handler: builtin:log",
        "    to: loop",
        "  loop:",
        "    handler: builtin:log",
        "    capacity: 1",
        "    to: first",
      ]);
      expect(summary(text)).toEqual([]);
    });
  });
});

describe("retry-storm (with budgets)", () => {
  /** n stages in a chain behind a source (rate optional), each with its own retry settings. */
  const stages = (n: number, retry: string[] = Array(n).fill("{maxRetries: 2}"), rate: string | null = null) => {
    const names = Array.from({ length: n }, (_, i) => (i === 0 ? "first" : `s${i}`));
    return pipeline(
      rate,
      names.flatMap((name, i) => [`  ${name}:`, "    handler: builtin:log", `    retry: ${retry[i]}`, ...(i + 1 < n ? [`    to: ${names[i + 1]}`] : [])]),
    );
  };
  const generous = "{maxRetries: 2, budget: {ratio: 1}}";

  it("without rates, a stage's factor is 1 + min(maxRetries, ratio): the defaults warn only past 12 stages", () => {
    // 1.2¹² = 8.9, 1.2¹³ = 10.7.
    expect(ofCode(stages(12), "retry-storm")).toEqual([]);
    const found = ofCode(stages(13), "retry-storm");
    expect(found).toHaveLength(1);
    expect(found[0]?.message).toContain("10.7");
  });

  it("a budget that allows every retry multiplies as maxRetries did: 2 × 2 × 2 × 2 = 16 warns once, where it crosses 10", () => {
    expect(ofCode(stages(3, Array(3).fill(generous)), "retry-storm")).toEqual([]);
    const found = ofCode(stages(4, Array(4).fill(generous)), "retry-storm");
    expect(found).toHaveLength(1);
    expect(found[0]?.severity).toBe("warning");
    // first at line 9, s1 at 13, s2 at 17, s3 at 21.
    expect(where(found[0])).toEqual([21, 3]);
    expect(found[0]?.message).toContain("16");
  });

  it("is not repeated further down", () => {
    expect(ofCode(stages(6, Array(6).fill(generous)), "retry-storm")).toHaveLength(1);
  });

  it("with rates, the reserve counts: 1 + min(maxRetries, ratio + minPerSecond / offered)", () => {
    // 100 records/s: 1 + min(2, 0.2 + 10/100) = 1.3 a stage; 1.3⁸ = 8.2, 1.3⁹ = 10.6.
    expect(ofCode(stages(8, undefined, "100/s"), "retry-storm")).toEqual([]);
    expect(ofCode(stages(9, undefined, "100/s"), "retry-storm")).toHaveLength(1);
    // 10 records/s: 2.2 a stage; 2.2² = 4.8, 2.2³ = 10.6.
    expect(ofCode(stages(2, undefined, "10/s"), "retry-storm")).toEqual([]);
    expect(ofCode(stages(3, undefined, "10/s"), "retry-storm").map(where)).toEqual([[18, 3]]);
  });

  it("k callers allow k × minPerSecond: two instances above double the reserve", () => {
    const text = (instances: number) =>
      pipeline("40/s", [
        "  first:",
        "    handler: builtin:log",
        `    instances: ${instances}`,
        "    retry: {maxRetries: 5, budget: {ratio: 0}}",
        "    to: second",
        "  second:",
        "    handler: builtin:log",
        "    retry: {maxRetries: 10, budget: {ratio: 0, minPerSecond: 200}}",
      ]);
    // first: 1 + min(5, 10/40) = 1.25; second: 1 + min(10, k·200/40) = 6 (k = 1) or 11 (k = 2).
    expect(ofCode(text(1), "retry-storm")).toEqual([]);
    expect(ofCode(text(2), "retry-storm").map(where)).toEqual([[15, 3]]);
  });

  it("budget.ratio 0 and minPerSecond 0 mean no retries: no factor at all", () => {
    expect(ofCode(stages(30, Array(30).fill("{maxRetries: 10, budget: {ratio: 0, minPerSecond: 0}}"), "10/s"), "retry-storm")).toEqual([]);
  });

  it("uses the defaults' retry", () => {
    const text = pipeline(
      null,
      ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: builtin:log"],
      ["defaults:", "  retry:", "    maxRetries: 10", "    budget: {ratio: 1, minPerSecond: 0}"],
    );
    // 2 × 2 = 4: the budget, not maxRetries, bounds each stage.
    expect(ofCode(text, "retry-storm")).toEqual([]);
    const wide = pipeline(
      "1/s",
      ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: builtin:log"],
      ["defaults:", "  retry:", "    maxRetries: 3"],
    );
    // At 1 record/s: 1 + min(3, 0.2 + 10) = 4 a stage, 16 for two.
    expect(ofCode(wide, "retry-storm").map(where)).toEqual([[13, 3]]);
  });

  it("follows the worst branch of a fan-out", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      `    retry: ${generous}`,
      "    to: [calm, stormy]",
      "  calm:",
      "    handler: builtin:log",
      "    retry: {maxRetries: 0}",
      "  stormy:",
      "    handler: builtin:log",
      "    retry: {maxRetries: 10, budget: {ratio: 1, minPerSecond: 0}}",
      "    to: deep",
      "  deep:",
      "    handler: builtin:log",
      `    retry: ${generous}`,
      "    to: deeper",
      "  deeper:",
      "    handler: builtin:log",
      `    retry: ${generous}`,
    ]);
    // 2 × 2 × 2 × 2 = 16 at deeper.
    expect(ofCode(text, "retry-storm").map(where)).toEqual([[24, 3]]);
  });
});

describe("timeout-inversion (v1.1: against the largest timeout below, plus 100ms)", () => {
  const chain = (upstream: string, downstream = "1s") =>
    pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      `    timeout: ${upstream}`, // 11
      "    to: second",
      "  second:",
      "    handler: builtin:log",
      `    timeout: ${downstream}`,
      "    retry: {maxRetries: 2, interval: 100ms}",
    ]);

  it("the largest timeout below plus 100ms is fine; the callee's retries do not count", () => {
    expect(ofCode(chain("1100ms"), "timeout-inversion")).toEqual([]);
    expect(ofCode(chain("1.1s"), "timeout-inversion")).toEqual([]);
  });

  it("one millisecond shorter warns, at the upstream timeout", () => {
    const found = ofCode(chain("1099ms"), "timeout-inversion");
    expect(found.map(where)).toEqual([[11, 14]]);
    expect(found[0]?.severity).toBe("warning");
  });

  it("compares against the slowest of a fan-out, once per service", () => {
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    timeout: 2s", // 11
      "    to: [quick, slow]",
      "  quick:",
      "    handler: builtin:log",
      "    timeout: 500ms",
      "  slow:",
      "    handler: builtin:log",
      "    timeout: 2s",
    ]);
    const found = ofCode(text, "timeout-inversion");
    expect(found.map(where)).toEqual([[11, 14]]);
    expect(found[0]?.message).toContain('"slow"');
  });

  it("points at the default timeout when the upstream inherits it", () => {
    const text = pipeline(
      null,
      ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: builtin:log", "    timeout: 2s"],
      ["defaults:", "  timeout: 2s"],
    );
    expect(ofCode(text, "timeout-inversion").map(where)).toEqual([[16, 12]]);
  });

  it("timeouts nothing sets never warn: each is the largest below plus 2s", () => {
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const text = pipeline(null, [
      "  first:",
      "    handler: builtin:log",
      "    to: s0",
      ...names.flatMap((n, i) => [`  ${n}:`, "    handler: builtin:log", ...(i < 19 ? [`    to: s${i + 1}`] : [])]),
    ]);
    expect(ofCode(text, "timeout-inversion")).toEqual([]);
  });

  it("points at the service's key when the 60s cap of a default is not enough", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: builtin:log", "    timeout: 59950ms"]);
    // The default of first is min(60s, 59.95s + 2s) = 60s < 59.95s + 100ms.
    expect(ofCode(text, "timeout-inversion").map(where)).toEqual([[9, 3]]);
  });

  it("says nothing of the default timeouts of services on a cycle (the cycle is the error)", () => {
    const text = pipeline(null, ["  first:", "    handler: builtin:log", "    to: second", "  second:", "    handler: builtin:log", "    to: first"]);
    expect(ofCode(text, "timeout-inversion")).toEqual([]);
    expect(ofCode(text, "cycle")).toHaveLength(1);
  });
});

describe("ttl-heartbeat", () => {
  const registry = (heartbeat: string, ttl: string | null) =>
    lines(
      "mbc: 1",
      "name: t",
      "registry:",
      `  heartbeat: ${heartbeat}`,
      ...(ttl === null ? [] : [`  ttl: ${ttl}`]),
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    to: first",
      "services:",
      "  first:",
      "    handler: builtin:log",
    );

  it("equal is an error, at the ttl", () => {
    const found = ofCode(registry("1s", "1000ms"), "ttl-heartbeat");
    expect(found.map(where)).toEqual([[5, 8]]);
    expect(found[0]?.severity).toBe("error");
  });

  it("shorter is an error", () => {
    expect(ofCode(registry("2s", "1s"), "ttl-heartbeat")).toHaveLength(1);
  });

  it("longer is fine", () => {
    expect(ofCode(registry("1s", "1001ms"), "ttl-heartbeat")).toEqual([]);
  });

  it("a heartbeat above the default ttl is reported at the heartbeat", () => {
    expect(ofCode(registry("3s", null), "ttl-heartbeat").map(where)).toEqual([[4, 14]]);
  });

  const etcd = (ttl: string | null, heartbeat = "500ms") =>
    lines(
      "mbc: 1",
      "name: t",
      "registry:",
      "  backend: etcd",
      "  endpoints: [http://127.0.0.1:2379]",
      `  heartbeat: ${heartbeat}`,
      ...(ttl === null ? [] : [`  ttl: ${ttl}`]),
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    to: first",
      "services:",
      "  first:",
      "    handler: builtin:log",
    );

  it("etcd: the lease TTL must be whole seconds, at the ttl", () => {
    const found = ofCode(etcd("2500ms"), "ttl-heartbeat");
    expect(found.map(where)).toEqual([[7, 8]]);
    expect(found[0]?.severity).toBe("error");
    expect(found[0]?.hint).toContain("ttl: 3s");
  });

  it("etcd: the lease TTL must be at least 2s", () => {
    expect(ofCode(etcd("1s", "200ms"), "ttl-heartbeat").map(where)).toEqual([[7, 8]]);
  });

  it("etcd: whole seconds of 2s and more are fine, and the default 3s too", () => {
    expect(ofCode(etcd("2s"), "ttl-heartbeat")).toEqual([]);
    expect(ofCode(etcd("1m"), "ttl-heartbeat")).toEqual([]);
    expect(ofCode(etcd(null), "ttl-heartbeat")).toEqual([]);
  });

  it("a fractional ttl is fine with the embedded registry", () => {
    expect(ofCode(registry("500ms", "1500ms"), "ttl-heartbeat")).toEqual([]);
  });
});

describe("registry backends", () => {
  const spec = (...registry: string[]) =>
    lines(
      "mbc: 1",
      "name: t",
      "registry:",
      ...registry.map((l) => `  ${l}`),
      "sources:",
      "  in:",
      "    type: http",
      "    port: 8080",
      "    to: first",
      "services:",
      "  first:",
      "    handler: builtin:log",
    );

  it("etcd without endpoints is a schema error at the registry, saying what to add", () => {
    const found = run(spec("backend: etcd"));
    expect(found.map((d) => [d.code, d.severity, d.line, d.column])).toEqual([["schema", "error", 3, 1]]);
    expect(found[0]?.message).toContain('"endpoints"');
    expect(found[0]?.hint).toContain("backend etcd needs them");
  });

  it("an overlay that turns etcd on must bring endpoints, or the base must have them", () => {
    const base = (...env: string[]) => `${spec("backend: embedded")}environments:\n  prod:\n    registry:\n${env.map((l) => `      ${l}\n`).join("")}`;
    expect(run(base("backend: etcd"), { env: "prod" }).map((d) => d.code)).toEqual(["schema"]);
    expect(run(base("backend: etcd", "endpoints: [http://10.0.0.1:2379]"), { env: "prod" })).toEqual([]);
    // Without --env the base is checked alone: the overlay's backend is not in force.
    expect(run(base("backend: etcd"))).toEqual([]);
  });

  it("endpoints are http(s) URLs without credentials, paths or queries", () => {
    for (const bad of ["ftp://h:2379", "http://user:pw@h:2379", "http://h:2379/v3", "h:2379", "http://h:2379?x=1", "http://"])
      expect(ofCode(spec("backend: etcd", `endpoints: ["${bad}"]`), "schema").map(where), bad).toEqual([[5, 15]]);
    for (const good of ["http://h:2379", "https://10.0.0.1:2379/", "http://[::1]:2379"])
      expect(run(spec("backend: etcd", `endpoints: ["${good}"]`)), good).toEqual([]);
    const [said] = ofCode(spec("backend: etcd", 'endpoints: ["http://user:pw@h:2379"]'), "schema");
    expect(said?.message).toContain('must be an etcd endpoint, like "http://10.0.0.1:2379"');
    expect(said?.hint).toContain("no credentials");
  });

  it("at most 32 endpoints", () => {
    const many = Array.from({ length: 33 }, (_, k) => `"http://h${k}:2379"`).join(", ");
    expect(ofCode(spec("backend: etcd", `endpoints: [${many}]`), "schema")).toHaveLength(1);
  });

  it("registry.port with etcd: a warning that it does not apply, at the port", () => {
    const found = ofCode(spec("backend: etcd", "endpoints: [http://127.0.0.1:2379]", "port: 7400"), "registry-setting-unused");
    expect(found.map((d) => [d.severity, d.line, d.column])).toEqual([["warning", 6, 9]]);
  });

  it("endpoints without etcd: a warning, at the endpoints", () => {
    const found = ofCode(spec("endpoints: [http://127.0.0.1:2379]"), "registry-setting-unused");
    expect(found.map((d) => [d.severity, d.line])).toEqual([["warning", 4]]);
  });

  it("without the embedded registry, its port is no listener: a source may take it", () => {
    const text = spec("backend: etcd", "endpoints: [http://127.0.0.1:2379]").replace("port: 8080", "port: 7400");
    expect(ofCode(text, "port-conflict")).toEqual([]);
    expect(ofCode(spec("backend: embedded").replace("port: 8080", "port: 7400"), "port-conflict")).toHaveLength(1);
  });
});

describe("a clean spec", () => {
  it("has no diagnostics at all", () => {
    const text = pipeline("100/s", [
      "  first:",
      "    handler: builtin:passthrough",
      "    capacity: 1000/s",
      "    timeout: 10s",
      "    to: [a, b]",
      "  a:",
      "    handler: builtin:jsonl-sink",
      "    config: { path: ./out.jsonl }",
      "    capacity: 1000",
      "  b:",
      "    handler: builtin:log",
      "    capacity: 1000",
    ]);
    expect(run(text)).toEqual([]);
  });
});
