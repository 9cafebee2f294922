import { describe, expect, it } from "vitest";
import { buildArtefacts } from "../../src/build/index.js";
import { TARGET_IDS } from "../../src/build/targets.js";
import { SimulationTooLarge, simulate } from "../../src/simulate/index.js";
import { validateText } from "../../src/validate/index.js";
import { simulationTooLargeFinding } from "../../src/validate/simulate-findings.js";
import { buildInputs } from "../helpers/build.js";
import { REPRODUCERS, SIMULATION_TOO_LARGE } from "../helpers/hostile.js";

const inputs = buildInputs("", { handlerSources: { "handlers/store.mjs": new TextEncoder().encode("export default async (r) => r;\n") } });

const headline = (d: { line: number; column: number; severity: string; code: string }) => `${d.line}:${d.column} ${d.severity} ${d.code}`;

describe("hostile and extreme specs: validate says what is wrong, where", () => {
  it.each(REPRODUCERS.map((r) => [r.name, r] as const))("%s", (_, r) => {
    const result = validateText(r.file, r.text, { fileExists: () => true });
    expect(result.diagnostics.map(headline)).toEqual(r.expected);
    for (const d of result.diagnostics) expect(d.message.length, d.code).toBeGreaterThan(0);
  });
});

describe("what validate passes for every target builds for every target, without NaN or Infinity", () => {
  const clean = REPRODUCERS.filter(
    (r) => !validateText(r.file, r.text, { fileExists: () => true, targets: TARGET_IDS }).diagnostics.some((d) => d.severity === "error"),
  );

  it("some of them are clean (the defaults, and the bounds themselves)", () => {
    expect(clean.map((r) => r.file)).toContain("defaults.yaml");
  });

  it.each(clean.map((r) => [r.name, r] as const))("%s", (_, r) => {
    const { model } = validateText(r.file, r.text, { fileExists: () => true, targets: TARGET_IDS });
    if (model === null) throw new Error("no model");
    for (const [, artefacts] of buildArtefacts(model, inputs, TARGET_IDS)) {
      for (const a of artefacts) {
        const text = typeof a.content === "string" ? a.content : "";
        expect(text, a.path).not.toMatch(/\bNaN|Infinity|e\+\d/);
      }
    }
  });

  it("the slowest retry policy the bounds allow keeps every wait and grace period finite", () => {
    const text = `mbc: 1
name: shop
sources:
  orders: { type: http, port: 8080, to: work }
services:
  work: { handler: builtin:passthrough, to: store, timeout: 24h }
  store:
    handler: builtin:log
    timeout: 24h
    retry: { maxRetries: 10, interval: 0ms, multiplier: 10, maxInterval: 24h }
`;
    const { model, diagnostics } = validateText("slow.yaml", text, { targets: TARGET_IDS });
    expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    if (model === null) throw new Error("no model");
    for (const [, artefacts] of buildArtefacts(model, inputs, TARGET_IDS)) {
      for (const a of artefacts) if (typeof a.content === "string") expect(a.content, a.path).not.toMatch(/\bNaN|Infinity/);
    }
  });
});

describe("a simulation too large to run is refused with a diagnostic, not run", () => {
  it("24 hours at 10⁷ records/s: sim-too-large at simulation.duration", () => {
    const result = validateText("firehose.yaml", SIMULATION_TOO_LARGE);
    expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    if (result.model === null) throw new Error("no model");
    let refused: unknown;
    try {
      simulate(result.model);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(SimulationTooLarge);
    const finding = simulationTooLargeFinding(refused as SimulationTooLarge, result.effective);
    expect(finding).toMatchObject({ code: "sim-too-large", severity: "error", path: "/simulation/duration" });
    expect(result.parsed.locate(finding.path, finding.at)).toMatchObject({ line: 8, column: 13 });
  });

  it("--rate 1e12 for 5s on a valid spec: at the busiest source's rate, unless --rate replaced it", () => {
    const { model, effective } = validateText(
      "rate.yaml",
      `mbc: 1\nname: shop\nsources:\n  orders: { type: generator, rate: 10, to: store }\nservices:\n  store: { handler: builtin:log }\n`,
    );
    if (model === null) throw new Error("no model");
    let refused: unknown;
    try {
      simulate(model, { durationMs: 5000, rate: 1e12 });
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(SimulationTooLarge);
    expect(simulationTooLargeFinding(refused as SimulationTooLarge, effective, { duration: true, rate: true }).path).toBe("/sources/orders");
    expect(simulationTooLargeFinding(refused as SimulationTooLarge, effective, { duration: true }).path).toBe("/sources/orders/rate");
  });
});
