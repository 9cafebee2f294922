/**
 * Runs the real, built CLI (`node bin/mbc …`) as a user would, with a controlled environment,
 * and reads diagnostics back out of any output format.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const binPath = join(repoRoot, "bin", "mbc");
export const examplePath = join(repoRoot, "examples", "01-design-document", "microbatch.yaml");

export interface RunResult {
  stdout: string;
  stderr: string;
  /** The exit status; null when the process was killed by a signal. */
  status: number | null;
}

export interface RunOptions {
  /** How long the command may take before it is killed (default 240 s): a guard against a hang. */
  timeoutMs?: number;
  cwd?: string;
  /** Added to the environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  input?: string;
}

/**
 * Colour and CI variables of the test runner's own environment would leak into the child's
 * behaviour: they are removed, and a test sets what it means to test.
 */
const SCRUBBED = ["FORCE_COLOR", "NO_COLOR", "NODE_OPTIONS", "TERM", "COLORTERM", "GITHUB_ACTIONS"];

/** Fails with a clear message when dist/ has not been built. */
export function assertBuilt(): void {
  for (const file of ["dist/cli.cjs", "dist/index.mjs"]) {
    if (!existsSync(join(repoRoot, file))) throw new Error(`${file} is missing: run npm run build before these tests`);
  }
}

export function runMbc(args: readonly string[], options: RunOptions = {}): RunResult {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !SCRUBBED.includes(key)) env[key] = value;
  }
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const result = spawnSync(process.execPath, [binPath, ...args], {
    cwd: options.cwd ?? repoRoot,
    env,
    input: options.input ?? "",
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    // Only a guard against a hang: a loaded CI machine may take minutes over a large spec, and
    // no verdict rests on how long a command took. The test tier's own timeout is longer still.
    timeout: options.timeoutMs ?? 240_000,
  });
  if (result.error) throw result.error;
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

export type OutputFormat = "stylish" | "json" | "sarif" | "github";

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** The text without its colours. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, "");
}

/** Stack frames as Node prints them ("    at fn (file:1:2)"). */
export const STACK_LINE = /^\s{4}at .+/m;

const SEVERITY_OF: Record<string, string> = { error: "error", warning: "warning", info: "info", notice: "info", note: "info" };

/**
 * The diagnostics in an output as "file:line:col severity code", in output order: every
 * format must carry the same list, so one expectation serves all four.
 */
export function diagnosticsIn(stdout: string, format: OutputFormat): string[] {
  switch (format) {
    case "json": {
      const { diagnostics } = JSON.parse(stdout) as { diagnostics: { file: string; line: number; column: number; severity: string; code: string }[] };
      return diagnostics.map((d) => `${d.file}:${d.line}:${d.column} ${d.severity} ${d.code}`);
    }
    case "sarif": {
      const log = JSON.parse(stdout) as {
        runs: {
          results: {
            ruleId: string;
            level: string;
            locations: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }[];
          }[];
        }[];
      };
      return (log.runs[0]?.results ?? []).map((r) => {
        const where = r.locations[0]?.physicalLocation;
        const file = decodeURIComponent(where?.artifactLocation.uri ?? "");
        return `${file}:${where?.region.startLine}:${where?.region.startColumn} ${SEVERITY_OF[r.level] ?? r.level} ${r.ruleId}`;
      });
    }
    case "github":
      return stdout
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => {
          const m = /^::(error|warning|notice) file=([^,]*),line=(\d+),col=(\d+),title=mbc ([a-z][a-z-]*)::/.exec(line);
          if (!m) throw new Error(`not a workflow command: ${line}`);
          return `${unescapeProperty(m[2] as string)}:${m[3]}:${m[4]} ${SEVERITY_OF[m[1] as string]} ${m[5]}`;
        });
    case "stylish":
      return stdout
        .split("\n")
        .map((line) => /^(\S.*?):(\d+):(\d+) (error|warning|info) ([a-z][a-z-]*)(?: |$)/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => `${m[1]}:${m[2]}:${m[3]} ${m[4]} ${m[5]}`);
  }
}

/** Reverses GitHub's escaping of a workflow command's property value. */
export function unescapeProperty(s: string): string {
  return s.replace(/%(25|0D|0A|3A|2C)/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
