/** The benchmark's spec generator makes large specs that are valid and exercise every stage of validate. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generateSpec, writeSpec } from "../../bench/gen-spec.mjs";
import { loadSpec } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "mbc-bench-spec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bench/gen-spec.mjs", () => {
  it("writes a 50-service spec that validates with zero errors (and no warnings)", async () => {
    const file = writeSpec(join(dir, "n50"), 50);
    const result = await loadSpec(file);
    expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(result.diagnostics).toEqual([]);

    const model = result.model;
    if (!model) throw new Error("no model");
    expect(model.services).toHaveLength(50);
    expect(model.sources.length).toBeGreaterThanOrEqual(2);
    for (const s of model.services) {
      expect(s.instances.length).toBeGreaterThanOrEqual(1);
      expect(s.instances.length).toBeLessThanOrEqual(3);
    }
    // Fan-out, explicit and assigned ports, and a module handler are all present.
    expect(model.services.some((s) => s.to.length > 1)).toBe(true);
    expect(model.services.some((s) => !s.portAssigned)).toBe(true);
    expect(model.services.some((s) => s.portAssigned)).toBe(true);
    expect(model.services.some((s) => s.handler?.kind === "module")).toBe(true);
    // The capacity rules run: every service has a known rate and capacity.
    expect(model.sources.every((s) => s.ratePerSec !== null)).toBe(true);
    expect(model.services.every((s) => s.instances.every((i) => i.capacityPerSec !== null))).toBe(true);
  });

  it("is deterministic and changes with the seed", () => {
    expect(generateSpec(50)).toBe(generateSpec(50));
    expect(generateSpec(50, { seed: 2 })).not.toBe(generateSpec(50));
  });

  it("stays valid for other sizes and seeds", async () => {
    for (const [n, seed] of [
      [2, 1],
      [200, 7],
    ] as const) {
      const result = await loadSpec(writeSpec(join(dir, `n${n}-s${seed}`), n, { seed }));
      expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    }
  });
});
