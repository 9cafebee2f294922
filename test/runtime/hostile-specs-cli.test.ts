/**
 * The hostile and extreme specs of test/helpers/hostile.ts through the built CLI: exit 0, 1 or 2
 * as documented, no stack trace, every diagnostic at its line and column; what validate refuses
 * for a target, build refuses with the same diagnostic (exit 1, nothing written); and a
 * simulation too large to run is refused at once, not run.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, binPath, diagnosticsIn, examplePath, runMbc, STACK_LINE } from "../helpers/cli.js";
import { REPRODUCERS, SIMULATION_TOO_LARGE } from "../helpers/hostile.js";

let dir: string;
beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), "mbc-hostile-"));
  mkdirSync(join(dir, "handlers"));
  writeFileSync(join(dir, "handlers", "store.mjs"), "export default async (records) => records;\n");
  for (const r of REPRODUCERS) writeFileSync(join(dir, r.file), r.text);
  writeFileSync(join(dir, "firehose.yaml"), SIMULATION_TOO_LARGE);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function noCrash(r: { stderr: string; status: number | null }): void {
  expect(r.stderr).not.toMatch(STACK_LINE);
  expect(r.stderr).not.toContain("internal error");
  expect([0, 1, 2]).toContain(r.status);
}

describe("mbc validate on every reproducer at once", () => {
  it("reports each file's diagnostics at their positions, and exits 1", () => {
    const r = runMbc(["validate", "-f", "json", ...REPRODUCERS.map((x) => x.file)], { cwd: dir });
    noCrash(r);
    expect(r.status).toBe(1);
    const expected = REPRODUCERS.flatMap((x) => x.expected.map((d) => `${x.file}:${d}`));
    expect(diagnosticsIn(r.stdout, "json").sort()).toEqual(expected.sort());
  });

  it("one at a time, stylish: exit 1 with errors, 0 with warnings only", () => {
    for (const x of REPRODUCERS) {
      const r = runMbc(["validate", x.file], { cwd: dir });
      noCrash(r);
      expect(r.status, x.file).toBe(x.expected.some((d) => d.includes(" error ")) ? 1 : 0);
      expect(diagnosticsIn(r.stdout, "stylish"), x.file).toEqual(x.expected.map((d) => `${x.file}:${d}`));
    }
  });
});

describe("validate --target and build --target agree", () => {
  it("checkpoint.dir outside the data folder: a warning, an error with --target systemd, and build refuses it with the position", () => {
    expect(runMbc(["validate", "checkpoint-absolute.yaml"], { cwd: dir }).status).toBe(0);
    const v = runMbc(["validate", "checkpoint-absolute.yaml", "--target", "systemd"], { cwd: dir });
    expect(v.status).toBe(1);
    expect(diagnosticsIn(v.stdout, "stylish")).toEqual(["checkpoint-absolute.yaml:3:20 error target-constraint"]);

    const out = join(dir, "out-systemd");
    const b = runMbc(["build", "checkpoint-absolute.yaml", "--target", "systemd", "-o", out], { cwd: dir });
    noCrash(b);
    expect(b.status).toBe(1);
    expect(diagnosticsIn(b.stderr, "stylish")).toEqual(["checkpoint-absolute.yaml:3:20 error target-constraint"]);
    expect(existsSync(out)).toBe(false);

    // The node target carries it; a build for node alone checks no other target, so --strict passes too.
    const node = runMbc(["build", "checkpoint-absolute.yaml", "--target", "node", "--strict", "-o", join(dir, "out-node")], { cwd: dir });
    noCrash(node);
    expect(node.status).toBe(0);
    expect(node.stderr).not.toContain("target-constraint");
  });

  it("installDir / and a tab in node: build exits 1 (the spec), not 2 (usage)", () => {
    for (const file of ["install-dir-root.yaml", "node-tab.yaml"]) {
      const b = runMbc(["build", file, "-o", join(dir, `out-${file}`)], { cwd: dir });
      noCrash(b);
      expect(b.status, file).toBe(1);
      expect(
        diagnosticsIn(b.stderr, "stylish").some((d) => d.includes("error target-constraint")),
        file,
      ).toBe(true);
    }
  });

  it("an unknown --target is usage trouble: exit 2", () => {
    const r = runMbc(["validate", "defaults.yaml", "--target", "openshift"], { cwd: dir });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
  });
});

describe("a simulation too large to run is refused, not run", () => {
  it("simulate --rate 1e12 --duration 5s: sim-too-large on stderr, exit 1", () => {
    const r = runMbc(["simulate", "defaults.yaml", "--rate", "1000000000000", "--duration", "5s"], { cwd: dir });
    noCrash(r);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(diagnosticsIn(r.stderr, "stylish")).toEqual(["defaults.yaml:4:3 error sim-too-large"]);
  });

  it("validate --simulate on 24h at 10⁷ records/s: sim-too-large at simulation.duration, exit 1", () => {
    const r = runMbc(["validate", "firehose.yaml", "--simulate"], { cwd: dir });
    noCrash(r);
    expect(r.status).toBe(1);
    expect(diagnosticsIn(r.stdout, "stylish")).toEqual(["firehose.yaml:8:13 error sim-too-large"]);
  });

  it("a long run within the bound still stops at once on Ctrl-C (SIGINT)", async () => {
    // 15 simulated hours of the example: about 140 million events, under the bound, a minute of work or more.
    const child = spawn(process.execPath, [binPath, "simulate", examplePath, "--duration", "15h", "-f", "json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on("exit", (code, signal) => done({ code, signal })));
    await new Promise((r) => setTimeout(r, 1000));
    child.kill("SIGINT");
    const { code, signal } = await exited;
    expect(stderr).not.toContain("sim-too-large");
    expect(signal === "SIGINT" || code === 130).toBe(true);
  });

  it("--max-events lowers the bound for a small run, and a bad value is exit 2", () => {
    const refused = runMbc(["simulate", "defaults.yaml", "--duration", "1s", "--max-events", "10"], { cwd: dir });
    expect(refused.status).toBe(1);
    expect(diagnosticsIn(refused.stderr, "stylish")).toEqual(["defaults.yaml:4:43 error sim-too-large"]);
    const ran = runMbc(["simulate", "defaults.yaml", "--duration", "1s", "--max-events", "5e8", "-f", "json"], { cwd: dir });
    expect(ran.status).toBe(0);
    expect(JSON.parse(ran.stdout).events).toBeGreaterThan(0);
    for (const bad of ["0", "-5", "many", "1.5"]) expect(runMbc(["simulate", "defaults.yaml", "--max-events", bad], { cwd: dir }).status, bad).toBe(2);
  });
});
