/**
 * The bounds of the schema (docs/bounds.md): each admits its bound and refuses the next value,
 * at the value's position, naming the bound; the bound keywords' parsers read durations, sizes
 * and rates exactly as the model does.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a build script without type declarations
import { boundParsers } from "../../scripts/schema-keywords.mjs";
import { parseDuration, parseRate, parseSize } from "../../src/model/units.js";
import { validateText } from "../../src/validate/index.js";

const parsers = boundParsers as { durationMs(v: unknown): number; sizeBytes(v: unknown): number; ratePerSec(v: unknown): number };

const base = (service: string, extra = "") => `mbc: 1
name: shop
${extra}sources:
  orders:
    type: http
    port: 8080
    to: store
services:
  store:
    handler: builtin:log
${service}`;

function schemaErrors(text: string) {
  return validateText("microbatch.yaml", text).diagnostics.filter((d) => d.severity === "error");
}

describe("the bound keywords read values as the model does", () => {
  const decimal = fc.tuple(fc.nat(99999), fc.option(fc.nat(999), { nil: undefined })).map(([i, f]) => (f === undefined ? `${i}` : `${i}.${f}`));
  it("durations", () => {
    const duration = fc
      .tuple(
        ...(["h", "m", "s", "ms"] as const).map((u) =>
          fc.option(
            decimal.map((d) => `${d}${u}`),
            { nil: "" },
          ),
        ),
      )
      .map((parts) => parts.join(""))
      .filter((s) => s !== "");
    fc.assert(fc.property(duration, (d) => Object.is(parsers.durationMs(d), parseDuration(d))));
  });
  it("sizes", () => {
    const size = fc.oneof(
      fc.nat(),
      fc.tuple(decimal, fc.constantFrom("", "k", "M", "G", "Ki", "Mi", "Gi")).map(([n, u]) => `${n}${u}`),
    );
    fc.assert(fc.property(size, (s) => Object.is(parsers.sizeBytes(s), parseSize(s))));
  });
  it("rates", () => {
    const rate = fc.oneof(
      fc.double({ min: 0, max: 1e9, noNaN: true }),
      fc.tuple(decimal, fc.constantFrom("s", "m", "h")).map(([n, u]) => `${n}/${u}`),
    );
    fc.assert(fc.property(rate, (r) => Object.is(parsers.ratePerSec(r), parseRate(r))));
  });
  it("leave what does not parse to the pattern", () => {
    expect(parsers.durationMs("2 s")).toBeNaN();
    expect(parsers.sizeBytes("1Ti")).toBeNaN();
    expect(parsers.ratePerSec("5/d")).toBeNaN();
  });
});

describe("each bound admits its value and refuses the next one, at the value, naming the bound", () => {
  const cases: [string, string, string, string, string][] = [
    // [what, at the bound, past it, the extra lines, the pointer]
    ["instances", "1000", "1001", "    instances: %\n", "/services/store/instances"],
    ["a timeout", "24h", "24h0m0.001s", "    timeout: %\n", "/services/store/timeout"],
    ["a short timeout", "1ms", "0ms", "    timeout: %\n", "/services/store/timeout"],
    ["cpus", "1024", "1024.5", "    resources: { cpus: % }\n", "/services/store/resources/cpus"],
    ["few cpus", "0.01", "0.001", "    resources: { cpus: % }\n", "/services/store/resources/cpus"],
    ["memory", "1024Gi", "1099511627777", "    resources: { memory: % }\n", "/services/store/resources/memory"],
    ["little memory", "64Mi", "67108863", "    resources: { memory: % }\n", "/services/store/resources/memory"],
    ["a capacity", "10000000/s", "10000001", "    capacity: %\n", "/services/store/capacity"],
    ["a small capacity", "1/h", "0.9/h", "    capacity: %\n", "/services/store/capacity"],
    ["a multiplier", "10", "1e308", "    retry: { multiplier: % }\n", "/services/store/retry/multiplier"],
    ["an env value", "x", `"a\\0b"`, "    env: { A: % }\n", "/services/store/env/A"],
  ];
  it.each(cases)("%s", (_, ok, bad, lines, pointer) => {
    expect(schemaErrors(base(lines.replace("%", ok)))).toEqual([]);
    const errors = schemaErrors(base(lines.replace("%", bad)));
    expect(errors.map((d) => [d.code, d.path])).toEqual([["schema", pointer]]);
    const d = errors[0] as (typeof errors)[number];
    expect(d.line).toBeGreaterThan(9);
    expect(d.column).toBeGreaterThan(1);
  });

  it("names the bound in the message", () => {
    const [d] = schemaErrors(base("    timeout: 99999999h\n"));
    expect(d?.message).toContain("24h");
    const [e] = schemaErrors(base("    instances: 4294967296\n"));
    expect(e?.message).toContain("1000");
  });

  it("simulation.duration and rates from the contract's Bounds: 24h and 10⁷ records/s pass", () => {
    const spec = base("    capacity: 10000000\n    instances: 2\n", "simulation: { duration: 24h }\n").replace(
      "    port: 8080\n",
      "    port: 8080\n    rate: 10000000/s\n",
    );
    expect(schemaErrors(spec)).toEqual([]);
  });

  it("50,000 services pass the schema; 50,001 do not, and the error is at `services`", () => {
    const many = (n: number) => {
      const lines = ["mbc: 1", "name: big", "sources:", "  s: { type: generator, rate: 1, to: a0 }", "services:"];
      for (let i = 0; i < n; i++) lines.push(`  a${i}: { handler: builtin:passthrough${i + 1 < n ? `, to: a${i + 1}` : ""} }`);
      return `${lines.join("\n")}\n`;
    };
    const ok = validateText("big.yaml", many(50_000));
    expect(ok.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const over = schemaErrors(many(50_001));
    expect(over.map((d) => [d.code, d.path, d.line, d.column])).toEqual([["schema", "/services", 5, 1]]);
  }, 60_000);
});

describe("listeners and ports", () => {
  it("more instances than there are ports: port-conflict at the largest service's instances, and no model", () => {
    const lines = ["mbc: 1", "name: big", "sources:", "  s: { type: generator, rate: 1, to: a0 }", "services:"];
    for (let i = 0; i < 70; i++) lines.push(`  a${i}: { handler: builtin:log, instances: ${i === 3 ? 1000 : 999} }`);
    const r = validateText("big.yaml", `${lines.join("\n")}\n`);
    expect(r.model).toBeNull();
    expect(r.diagnostics.map((d) => [d.code, d.path, d.line])).toEqual([["port-conflict", "/services/a3/instances", 9]]);
  });

  it("a port range past 65535 is a port-conflict at the port", () => {
    const r = validateText("microbatch.yaml", base("    instances: 3\n    port: 65535\n"));
    expect(r.diagnostics.map((d) => [d.code, d.severity, d.path, d.line, d.column])).toEqual([["port-conflict", "error", "/services/store/port", 12, 11]]);
  });
});
