/**
 * End-to-end tests of `mbc simulate` and `mbc validate --simulate` through the built binary.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulationResult } from "../../src/simulate/index.js";
import { assertBuilt, binPath, diagnosticsIn, examplePath, repoRoot, runMbc, STACK_LINE, stripAnsi } from "../helpers/cli.js";
import { assertTool, tool } from "../helpers/tools.js";

const EXAMPLE_REL = "examples/01-design-document/microbatch.yaml";
const ESC = "\u001b[";

beforeAll(() => {
  assertBuilt();
});

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mbc-simulate-"));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** Two instances of 1000 records/s behind round-robin, fed `rate` records/s; `extra` is appended YAML. */
function pairSpec(rate: number, extra = "", service = ""): string {
  return `mbc: 1
name: pair
sources:
  in:
    type: generator
    rate: ${rate}
    batch:
      maxRecords: 20
    to: work
services:
  work:
    handler: builtin:passthrough
    instances: 2
    capacity: 1000/s
    timeout: 1h
${service}simulation:
  duration: 20s
  arrival: constant
${extra}`;
}

/** Instance 0 is down the whole run: instance 1 gets 1200 records/s against 1000 of capacity. */
const FAULTY = pairSpec(1200, "  faults:\n    - service: work\n      instance: 0\n      at: 0s\n      duration: 1h\n");
/** A fifth of the attempts fail, and the budget allows retries of only 10 % of the first attempts. */
const STINGY = pairSpec(500, "  failureRate: 0.2\n", "    retry:\n      maxRetries: 5\n      budget:\n        ratio: 0.1\n        minPerSecond: 0\n");

function write(text: string, name = "microbatch.yaml"): { dir: string; file: string } {
  const dir = tempDir();
  writeFileSync(join(dir, name), text);
  return { dir, file: name };
}

describe("mbc simulate: the table", () => {
  it("is the default output, without colour when stdout is not a terminal", () => {
    const r = runMbc(["simulate", EXAMPLE_REL]);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stdout).toMatch(/^design-example · seed 1 · 1m simulated · poisson arrivals/);
    expect(r.stdout).toMatch(/^ {2}#0 w2 2,000\/s +66\.7% +66\.7% +80\.0% +80\.0% +80\.0% .* low headroom$/m);
    expect(r.stdout).toMatch(/^end to end +719 +227 +240 +240$/m);
    expect(r.stdout).toContain("✔ no service overloaded, no retry refused by a budget, no record refused or dead-lettered");
    expect(r.stdout).toMatch(/^input +2,400\/s +144,192 +0 +720 +200\.0 /m);
    // The spec's own warnings go to stderr, in the stylish format.
    expect(diagnosticsIn(r.stderr, "stylish")).toEqual([`${EXAMPLE_REL}:35:3 warning low-headroom`, `${EXAMPLE_REL}:35:3 warning weight-capacity-mismatch`]);
    // Not a terminal: no progress bar.
    expect(r.stderr).not.toContain("\r");
  });

  it("honours FORCE_COLOR and NO_COLOR as validate does", () => {
    const forced = runMbc(["simulate", EXAMPLE_REL], { env: { FORCE_COLOR: "1" } });
    expect(forced.stdout).toContain(ESC);
    expect(stripAnsi(forced.stdout)).toBe(runMbc(["simulate", EXAMPLE_REL]).stdout);
    expect(runMbc(["simulate", EXAMPLE_REL], { env: { NO_COLOR: "1" } }).stdout).not.toContain(ESC);
  });

  it("reads ./microbatch.yaml without a spec argument, and says so when there is none", () => {
    const { dir } = write(readFileSync(examplePath, "utf8").replace(/handler: \.\/handlers\/process\.mjs/, "handler: builtin:passthrough"));
    const r = runMbc(["simulate", "--duration", "5s"], { cwd: dir });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("design-example");
    const empty = runMbc(["simulate"], { cwd: tempDir() });
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain("no spec given, and there is no microbatch.yaml here");
  });
});

describe("mbc simulate --format json", () => {
  it("prints the SimulationResult, byte-identical for the same seed", () => {
    const a = runMbc(["simulate", EXAMPLE_REL, "--format", "json"]);
    const b = runMbc(["simulate", EXAMPLE_REL, "-f", "json"]);
    expect(a.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const result = JSON.parse(a.stdout) as SimulationResult;
    expect(result.system).toBe("design-example");
    expect(result.seed).toBe(1);
    expect(result.durationMs).toBe(60_000);
    expect(result.services.map((s) => s.name)).toEqual(["data-processing", "result-storage"]);
    expect("series" in result).toBe(false);
    expect(a.stdout.endsWith("}\n")).toBe(true);
  });

  it("--seed, --duration, --rate and --env change what is simulated", () => {
    const base = runMbc(["simulate", EXAMPLE_REL, "-f", "json"]).stdout;
    const seeded = runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--seed", "7"]).stdout;
    expect(seeded).not.toBe(base);
    expect(JSON.parse(seeded).seed).toBe(7);
    expect(runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--seed", "7"]).stdout).toBe(seeded);

    const r = JSON.parse(
      runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--duration", "1m30s", "--rate", "90000/m", "--seed", "-3"]).stdout,
    ) as SimulationResult;
    expect(r.durationMs).toBe(90_000);
    expect(r.seed).toBe(-3);
    expect(r.sources[0]?.ratePerSec).toBe(1500);
    expect(r.services[0]?.predicted.ratePerSec).toBe(1500);
    expect(JSON.parse(runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--rate", "1200"]).stdout).sources[0].ratePerSec).toBe(1200);

    const prod = JSON.parse(runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--env", "prod"]).stdout) as SimulationResult;
    expect(prod.environment).toBe("prod");
    expect(prod.services[0]?.instances.map((i) => i.weight)).toEqual([1, 1]);
  });

  it("is the same with --report as without", () => {
    const { dir } = write("");
    const plain = runMbc(["simulate", EXAMPLE_REL, "-f", "json"]).stdout;
    const withReport = runMbc(["simulate", EXAMPLE_REL, "-f", "json", "--report", join(dir, "r.html")]);
    expect(withReport.stdout).toBe(plain);
  });
});

describe("mbc simulate: flags and exit codes", () => {
  it.each([
    [["--duration", "5"], /--duration: "5" is not a duration/],
    [["--duration", "0s"], /--duration: "0s" is no time at all/],
    [["--duration", "soon"], /--duration: "soon" is not a duration/],
    [["--rate", "fast"], /--rate: "fast" is not a rate/],
    [["--rate", "-5"], /--rate: "-5" is not a rate/],
    [["--rate", "10/d"], /--rate: "10\/d" is not a rate/],
    [["--seed", "1.5"], /--seed: "1.5" is not an integer/],
    [["--seed", "99999999999999999999"], /--seed: "99999999999999999999" is not an integer/],
    [["--format", "xml"], /argument 'xml' is invalid/],
    [["--bogus"], /unknown option '--bogus'/],
  ])("%j is a usage error: exit 2, a clear message, nothing on stdout", (args, message) => {
    const r = runMbc(["simulate", EXAMPLE_REL, ...args]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it("a missing file or an unknown environment is exit 2", () => {
    expect(runMbc(["simulate", "nope.yaml"]).status).toBe(2);
    const r = runMbc(["simulate", EXAMPLE_REL, "--env", "staging"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no environment "staging"');
  });

  it("a spec with errors is not simulated: its diagnostics on stderr, exit 1", () => {
    const { dir, file } = write(pairSpec(100).replace("capacity: 1000/s", "capacity: 1000/s\n    capacty: 3"));
    const r = runMbc(["simulate", file], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(diagnosticsIn(r.stderr, "stylish")).toEqual(["microbatch.yaml:15:5 error unknown-key"]);
    expect(r.stderr).toContain("not simulated: the spec has errors");
  });

  it("a statically overloaded spec is still simulated (that is what simulating is for); --strict fails on it", () => {
    const { dir, file } = write(pairSpec(2400));
    const r = runMbc(["simulate", file], { cwd: dir });
    expect(diagnosticsIn(r.stderr, "stylish")).toEqual(["microbatch.yaml:11:3 error overloaded"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/OVERLOADED, queue grows/);
    // Each instance is sent its capacity and what the source's queue held beyond it; the rest is refused.
    expect(r.stdout).toMatch(/✖ instance 0 of service "work" is overloaded \(offered 10\d\.\d% of its capacity, its queue grows\)/);
    expect(r.stdout).toMatch(/✖ source "in" refused [\d,]+ records: its queue was full/);
    expect(r.stdout).toMatch(/^BACK-PRESSURE/m);
    const strict = runMbc(["simulate", file, "--strict", "-f", "json"], { cwd: dir });
    expect(strict.status).toBe(1);
    expect(JSON.parse(strict.stdout).system).toBe("pair");
    expect(strict.stderr).toContain('mbc: --strict: instance 0 of service "work" is overloaded');
  });

  it("--strict fails on an overload only the simulation sees, and on a budget that refused retries", () => {
    const faulty = write(FAULTY);
    expect(runMbc(["simulate", faulty.file], { cwd: faulty.dir }).status).toBe(0);
    const f = runMbc(["simulate", faulty.file, "--strict"], { cwd: faulty.dir });
    expect(f.status).toBe(1);
    expect(f.stderr).toMatch(/mbc: --strict: instance 1 of service "work" is overloaded \(offered 10\d\.\d% of its capacity, its queue grows\)/);

    const stingy = write(STINGY);
    const s = runMbc(["simulate", stingy.file, "--strict"], { cwd: stingy.dir });
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/mbc: --strict: the retry budget of service "work" refused \d+ retries/);
  });

  it("--strict makes the spec's warnings fail, as for every command", () => {
    // The example has two static warnings (low-headroom, weight-capacity-mismatch).
    const r = runMbc(["simulate", EXAMPLE_REL, "--strict"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--strict: the spec has 2 warnings/);
  });

  it("--strict passes a healthy run of a spec without warnings", () => {
    const dir = tempDir();
    runMbc(["init", dir]);
    expect(runMbc(["simulate", join(dir, "microbatch.yaml"), "--strict", "--duration", "10s"]).status).toBe(0);
  });
});

describe("mbc simulate --report", () => {
  it("writes one HTML file atomically, and says so on stderr", () => {
    const dir = tempDir();
    const target = join(dir, "reports", "sim.html");
    const r = runMbc(["simulate", EXAMPLE_REL, "--report", target]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`wrote ${target}`);
    const html = readFileSync(target, "utf8");
    expect(html.startsWith("<!doctype html>")).toBe(true);
    for (const chart of ["load", "utilisation", "latency"]) expect(html).toContain(`data-chart="${chart}"`);
    expect(html).toContain(EXAMPLE_REL);
    // No temporary file is left beside it.
    expect(readdirSync(join(dir, "reports"))).toEqual(["sim.html"]);
    // The same run, the same bytes.
    runMbc(["simulate", EXAMPLE_REL, "--report", join(dir, "again.html")]);
    expect(readFileSync(join(dir, "again.html"), "utf8")).toBe(html);
  });

  it("a report that cannot be written is exit 2, and leaves nothing behind", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "taken.html"));
    const r = runMbc(["simulate", EXAMPLE_REL, "--report", join(dir, "taken.html")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/mbc: cannot write .*taken\.html: EISDIR/);
    expect(readdirSync(dir)).toEqual(["taken.html"]);
    const under = runMbc(["simulate", EXAMPLE_REL, "--report", join(examplePath, "r.html")]);
    expect(under.status).toBe(2);
    expect(existsSync(join(examplePath, "r.html"))).toBe(false);
  });
});

const script = tool("script (a pseudo-terminal)", () =>
  spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0 ? null : "the `script` command of util-linux is not installed",
);

describe.skipIf(script.skip)("mbc simulate on a terminal", () => {
  beforeAll(() => assertTool(script));

  it("draws a progress bar on stderr for a run longer than a second, then erases it", { timeout: 90_000 }, () => {
    // Four simulated hours of the example take a few seconds.
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(binPath)} simulate ${EXAMPLE_REL} --duration 4h -f json`;
    const r = spawnSync("script", ["-qec", command, "/dev/null"], {
      cwd: repoRoot,
      encoding: "utf8",
      env: { ...process.env, TERM: "xterm", NO_COLOR: undefined, FORCE_COLOR: undefined },
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\r\[█*░*\] +\d+% {2}\S+ of 4h simulated/);
    expect(r.stdout).toContain("\r\u001b[K");
  });
});

describe("mbc validate --simulate", () => {
  it("adds nothing where the simulation agrees with the static rules", () => {
    const r = runMbc(["validate", EXAMPLE_REL, "--simulate"]);
    expect(r.status).toBe(0);
    expect(diagnosticsIn(r.stdout, "stylish")).toEqual([`${EXAMPLE_REL}:35:3 warning low-headroom`, `${EXAMPLE_REL}:35:3 warning weight-capacity-mismatch`]);
  });

  it("reports an overload only the simulation sees as `sim-overloaded` at the service's key", () => {
    const { dir, file } = write(FAULTY);
    expect(runMbc(["validate", file], { cwd: dir }).status).toBe(0);
    const r = runMbc(["validate", file, "--simulate"], { cwd: dir });
    expect(r.status).toBe(1);
    expect(diagnosticsIn(r.stdout, "stylish")).toEqual(["microbatch.yaml:4:3 warning sim-records-refused", "microbatch.yaml:11:3 error sim-overloaded"]);
    expect(r.stdout).toContain('simulation: instance 1 of service "work" is overloaded: its queue grows');
    const json = JSON.parse(runMbc(["validate", file, "--simulate", "-f", "json"], { cwd: dir }).stdout);
    expect(json.diagnostics).toHaveLength(2);
    expect(json.diagnostics[0]).toMatchObject({ code: "sim-records-refused", severity: "warning", path: "/sources/in", line: 4, column: 3 });
    expect(json.diagnostics[1]).toMatchObject({ code: "sim-overloaded", severity: "error", path: "/services/work", line: 11, column: 3 });
  });

  it("reports retries the budget refused as a `sim-retries-refused` warning", () => {
    const { dir, file } = write(STINGY);
    const r = runMbc(["validate", file, "--simulate"], { cwd: dir });
    expect(r.status).toBe(0);
    expect(diagnosticsIn(r.stdout, "stylish")).toEqual(["microbatch.yaml:11:3 warning sim-retries-refused"]);
    expect(r.stdout).toMatch(/simulation: the retry budget of service "work" refused \d+ retries/);
    expect(runMbc(["validate", file, "--simulate", "--strict"], { cwd: dir }).status).toBe(1);
  });

  it("does not simulate a spec with errors", () => {
    const { dir, file } = write(`${FAULTY.replace("capacity: 1000/s", "capacity: 1000/s\n    to: nowhere")}`);
    const r = runMbc(["validate", file, "--simulate", "-f", "json"], { cwd: dir });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout).diagnostics.map((d: { code: string }) => d.code)).toEqual(["unknown-reference"]);
  });
});

describe("docs/simulate.md", () => {
  const page = readFileSync(join(repoRoot, "docs", "simulate.md"), "utf8");

  it("shows the table mbc simulate prints for the design example", () => {
    const m = /```text\n\$ (mbc simulate [^\n]*)\n((?:(?!```)[\s\S])*)```/.exec(page);
    if (!m) throw new Error("no `$ mbc simulate` example");
    const r = runMbc((m[1] as string).split(" ").slice(1));
    expect(r.stdout).toBe(m[2]);
  });

  it("shows the table mbc simulate prints for its unavailable stage", () => {
    const m = /## An unavailable stage\n[\s\S]*?```yaml\n((?:(?!```)[\s\S])*)```[\s\S]*?```text\n\$ (mbc simulate outage\.yaml)\n((?:(?!```)[\s\S])*)```/.exec(
      page,
    );
    if (!m) throw new Error("no unavailable-stage example");
    const { dir } = write(m[1] as string, "outage.yaml");
    const r = runMbc((m[2] as string).split(" ").slice(1), { cwd: dir });
    expect(r.stdout).toBe(m[3]);
    // Back-pressure, not loss: batches sent again, none refused or dead-lettered.
    const json = JSON.parse(runMbc(["simulate", "outage.yaml", "-f", "json"], { cwd: dir }).stdout) as SimulationResult;
    const input = json.sources[0];
    expect(input?.resends).toBeGreaterThan(0);
    expect(input).toMatchObject({ recordsRefused: 0, batchesDeadLettered: 0 });
    expect(json.services[1]?.batchesUnavailable).toBeGreaterThan(0);
  });

  it("shows what mbc validate --simulate reports for its YAML example", () => {
    const yaml = /```yaml\n((?:(?!```)[\s\S])*)```/.exec(page)?.[1];
    const m = /```text\n\$ (mbc validate [^\n]*)\n((?:(?!```)[\s\S])*)```/.exec(page);
    if (!yaml || !m) throw new Error("no `$ mbc validate` example");
    const args = (m[1] as string).split(" ").slice(1);
    const { dir } = write(yaml, args[1]);
    expect(runMbc(args, { cwd: dir }).stdout).toBe(m[2]);
  });
});
