/**
 * The fuzz suite: thousands of mutated specs (test/helpers/fuzz.ts) through the API and a few
 * hundred through the CLI, and the hostile reproducers (test/helpers/hostile.ts) as they are
 * through both, holding mbc to what `mbc validate` promises:
 *
 * - nothing throws, and the CLI exits 0, 1 or 2 only, without a stack trace;
 * - every diagnostic has a known code, a message, and a line and column ≥ 1;
 * - a spec that validates clean with every target's constraints as errors builds for every
 *   target, with no NaN or Infinity in what it writes, and simulates for 5 s, or is refused
 *   with the `sim-too-large` diagnostic (never runs for ever).
 *
 * Each run draws new specs (the seed is printed; MBC_FUZZ_SEED=N makes a run again), and
 * MBC_FUZZ_RUNS sets how many go through the API (default 5000). A failure names the seed, the
 * mutant's index and its text.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildArtefacts } from "../../src/build/index.js";
import { TARGET_IDS } from "../../src/build/targets.js";
import type { BuildInputs } from "../../src/build/types.js";
import type { Diagnostic } from "../../src/diagnostic.js";
import type { Model } from "../../src/model/types.js";
import { SimulationTooLarge, simulate } from "../../src/simulate/index.js";
import { CODES } from "../../src/validate/codes.js";
import { validateText } from "../../src/validate/index.js";
import { assertBuilt, runMbc, STACK_LINE } from "../helpers/cli.js";
import { type Mutant, mutant, seedSpecs } from "../helpers/fuzz.js";
import { REPRODUCERS } from "../helpers/hostile.js";

const SEED = process.env.MBC_FUZZ_SEED ? Number(process.env.MBC_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const API_RUNS = process.env.MBC_FUZZ_RUNS ? Number(process.env.MBC_FUZZ_RUNS) : 5000;
const CLI_RUNS = 300;
/** A 5 s simulation of a mutant may take at most this many events (a few ms of work); a larger one must be refused. */
const FUZZ_MAX_EVENTS = 50_000;
process.stderr.write(`fuzz: seed ${SEED} (MBC_FUZZ_SEED=${SEED} makes this run again), ${API_RUNS} specs through the API, ${CLI_RUNS} through the CLI\n`);

const root = join(import.meta.dirname, "..", "..");
const seeds = seedSpecs();
const templates: Record<string, string> = {};
for (const id of TARGET_IDS) {
  const dir = join(root, "generators", id, "templates");
  for (const name of readdirSync(dir)) templates[name] = readFileSync(join(dir, name), "utf8");
}
const HANDLER = new TextEncoder().encode("export default async (records) => records;\n");

function inputsFor(model: Model): BuildInputs {
  const handlerSources: Record<string, Uint8Array> = {};
  for (const s of model.services) if (s.handler?.kind === "module") handlerSources[s.handler.path] = HANDLER;
  return {
    specName: "microbatch.yaml",
    specSha256: "0".repeat(64),
    handlerSources,
    runtime: new TextEncoder().encode("// the runtime\n"),
    templates,
    version: "0.0.0-fuzz",
  };
}

const where = (index: number, m: Mutant) => `seed ${SEED}, mutant ${index} (${m.file}):\n${m.text.length > 4000 ? `${m.text.slice(0, 4000)}…` : m.text}`;

function checkDiagnostic(d: Diagnostic, file: string, context: string): void {
  expect(Object.hasOwn(CODES, d.code), `unknown code ${d.code}; ${context}`).toBe(true);
  expect(d.file, context).toBe(file);
  expect(Number.isInteger(d.line) && d.line >= 1, `line ${d.line} of ${d.code}; ${context}`).toBe(true);
  expect(Number.isInteger(d.column) && d.column >= 1, `column ${d.column} of ${d.code}; ${context}`).toBe(true);
  expect(typeof d.message === "string" && d.message.length > 0, `empty message of ${d.code}; ${context}`).toBe(true);
  expect(typeof d.path, context).toBe("string");
}

describe("fuzz: mutated specs through the API", () => {
  const tally = { specs: 0, clean: 0, built: 0, simulated: 0, refused: 0 };

  afterAll(() => {
    process.stderr.write(
      `fuzz: ${tally.specs} specs, ${tally.clean} clean for every target, ${tally.built} built, ${tally.simulated} simulated for 5 s, ${tally.refused} simulations refused as too large\n`,
    );
  });

  it(`validate, build and simulate the reproducers and ${API_RUNS} mutants without a throw, each diagnostic at a line and column`, () => {
    // The reproducers as they are first (index −1 and below), then the mutants.
    const originals: Mutant[] = REPRODUCERS.map((r) => ({ file: r.file, text: r.text }));
    for (let i = -originals.length; i < API_RUNS; i++) {
      const m = i < 0 ? (originals[originals.length + i] as Mutant) : mutant(seeds, SEED, i);
      const context = where(i, m);
      let result: ReturnType<typeof validateText>;
      try {
        result = validateText(m.file, m.text, { fileExists: () => true, targets: TARGET_IDS });
      } catch (err) {
        throw new Error(`validate threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${context}`);
      }
      tally.specs++;
      for (const d of result.diagnostics) checkDiagnostic(d, m.file, context);
      if (result.diagnostics.some((d) => d.severity === "error")) continue;
      const model = result.model;
      expect(model, context).not.toBeNull();
      if (model === null) continue;
      tally.clean++;
      try {
        for (const [, artefacts] of buildArtefacts(model, inputsFor(model), TARGET_IDS)) {
          for (const a of artefacts) {
            if (typeof a.content !== "string") continue;
            expect(a.content, `${a.path}; ${context}`).not.toMatch(/\bNaN\b|\bInfinity\b/);
          }
        }
        tally.built++;
      } catch (err) {
        throw new Error(`build threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${context}`);
      }
      try {
        const run = simulate(model, { durationMs: 5000, maxEvents: FUZZ_MAX_EVENTS });
        expect(run.events, context).toBeLessThanOrEqual(FUZZ_MAX_EVENTS);
        expect(() => JSON.stringify(run), context).not.toThrow();
        tally.simulated++;
      } catch (err) {
        if (err instanceof SimulationTooLarge) {
          tally.refused++;
          continue;
        }
        throw new Error(`simulate threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${context}`);
      }
    }
    // The mutations must leave enough specs clean for the build and simulate checks to mean something.
    expect(tally.clean).toBeGreaterThan(API_RUNS / 10);
  });
});

describe("fuzz: mutated specs through the CLI", () => {
  let dir: string;
  const mutants: Mutant[] = [];
  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), "mbc-fuzz-"));
    mkdirSync(join(dir, "handlers"));
    for (const name of ["process.mjs", "enrich.mjs", "h.mjs", "missing.mjs", "store.mjs"]) writeFileSync(join(dir, "handlers", name), HANDLER);
    writeFileSync(join(dir, "h.mjs"), HANDLER);
    for (let i = 0; i < CLI_RUNS; i++) {
      // Indexes past the API's: other specs.
      const m = mutant(seeds, SEED, API_RUNS + i);
      mutants.push(m);
      writeFileSync(join(dir, m.file), m.text);
    }
    // And the reproducers, as they are.
    for (const r of REPRODUCERS) {
      mutants.push({ file: r.file, text: r.text });
      writeFileSync(join(dir, r.file), r.text);
    }
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const clean: Mutant[] = [];

  it(`validate ${CLI_RUNS} mutants in batches: exit 0 or 1, JSON on stdout, no stack trace, each diagnostic at a line and column`, () => {
    for (let from = 0; from < mutants.length; from += 100) {
      const batch = mutants.slice(from, from + 100);
      const r = runMbc(["validate", "-f", "json", "--target", TARGET_IDS.join(","), ...batch.map((m) => m.file)], { cwd: dir });
      const context = `seed ${SEED}, mutants ${API_RUNS + from}–${API_RUNS + from + batch.length - 1}; stderr: ${r.stderr.slice(0, 2000)}`;
      expect(r.stderr, context).not.toMatch(STACK_LINE);
      expect(r.stderr, context).not.toContain("internal error");
      expect([0, 1], context).toContain(r.status);
      const { diagnostics } = JSON.parse(r.stdout) as { diagnostics: Diagnostic[] };
      for (const d of diagnostics) {
        const m = batch.find((x) => x.file === d.file);
        expect(m, `a diagnostic for ${d.file}; ${context}`).toBeDefined();
        checkDiagnostic(d, d.file, `${context}; ${m ? where(mutants.indexOf(m) + API_RUNS, m) : ""}`);
      }
      const failing = new Set(diagnostics.filter((d) => d.severity === "error").map((d) => d.file));
      for (const m of batch) if (!failing.has(m.file)) clean.push(m);
    }
  });

  it("the clean ones build for every target and simulate for 5 s, or are refused as too large, with exit 0, 1 or 2", () => {
    // A process each: a sample keeps the suite to seconds.
    for (const [k, m] of clean.slice(0, 12).entries()) {
      const context = where(mutants.indexOf(m) + API_RUNS, m);
      const b = runMbc(["build", m.file, "-o", join(dir, `out-${k}`)], { cwd: dir });
      expect(b.stderr, context).not.toMatch(STACK_LINE);
      expect(b.status, `${b.stderr}; ${context}`).toBe(0);
      const s = runMbc(["simulate", m.file, "--duration", "5s", "--max-events", String(FUZZ_MAX_EVENTS), "-f", "json"], { cwd: dir });
      expect(s.stderr, context).not.toMatch(STACK_LINE);
      expect([0, 1], `${s.stderr}; ${context}`).toContain(s.status);
      if (s.status === 0) expect(JSON.parse(s.stdout).durationMs, context).toBe(5000);
      else expect(s.stderr, context).toContain("sim-too-large");
    }
  });
});
