/**
 * What the CLI's two modules share: exit codes, colours, the messages on stderr, the option
 * parsers, and loading a spec for a command. src/cli.ts (validate, schema, init, the program)
 * and src/cli-commands.ts (simulate, build, run: loaded only when one of them runs) both import
 * it, and neither imports the other's values.
 */
import { existsSync } from "node:fs";
import { TARGET_IDS, type TargetId } from "./build/targets.js";
import { isTerminal } from "./builtins-lazy.js";
import { formatters } from "./format/index.js";
import { escapeControls } from "./format/terminal.js";
import { loadSpec } from "./load.js";
import { UsageError } from "./usage-error.js";
import type { ValidationResult } from "./validate/index.js";
import { VERSION } from "./version.js";

export const EXIT_OK = 0;
export const EXIT_SPEC_ERRORS = 1;
export const EXIT_USAGE = 2;
export const DEFAULT_SPEC = "microbatch.yaml";

/** Whether output to stdout (1) or stderr (2) gets colours. */
export function useColor(fd: 1 | 2): boolean {
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== "" && force !== "0" && force !== "false") return true;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (force === "0" || force === "false") return false;
  return isTerminal(fd) && process.env.TERM !== "dumb";
}

/** Ends the command with an exit code once its messages are written; `main` returns the code. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Writes a message to stderr, with the control characters of names and values in it escaped. */
export function say(message: string): void {
  process.stderr.write(`${escapeControls(message)}\n`);
}

export function fail(message: string, hint?: string): never {
  say(`mbc: ${message}`);
  if (hint) say(`  hint: ${hint}`);
  throw new Exit(EXIT_USAGE);
}

/** `--target a,b`: the targets named, each once; exit 2 for an unknown one. Absent: undefined. */
export function parseTargetList(list: string | undefined): TargetId[] | undefined {
  if (list === undefined) return undefined;
  const out: TargetId[] = [];
  for (const t of list
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!(TARGET_IDS as string[]).includes(t)) fail(`--target: unknown target "${t}"`, `targets: ${TARGET_IDS.join(", ")}`);
    if (!out.includes(t as TargetId)) out.push(t as TargetId);
  }
  if (out.length === 0) fail("--target: no target named", `targets: ${TARGET_IDS.join(", ")}`);
  return out;
}

/** `--max-events N`: a whole number ≥ 1 (`500000000` or `5e8`); exit 2 otherwise. Absent: undefined. */
export function parseMaxEvents(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^[0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?$/i.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!(Number.isInteger(n) && n >= 1)) fail(`--max-events: "${text}" is not a whole number of events`, "for example 500000000 or 5e8");
  return n;
}

/** Loads a spec for a command that needs a model: its diagnostics go to stderr, stdout stays the command's. */
export async function loadForCommand(
  file: string | undefined,
  env: string | undefined,
  verb: string,
  targets?: readonly TargetId[],
): Promise<{ loaded: ValidationResult; file: string }> {
  if (file === undefined) {
    if (!existsSync(DEFAULT_SPEC))
      fail(`no spec given, and there is no ${DEFAULT_SPEC} here`, `name a spec file: mbc ${verb} path/to/spec.yaml (or run mbc init)`);
    file = DEFAULT_SPEC;
  }
  let loaded: ValidationResult;
  try {
    // A command that builds targets checks theirs only (as errors); simulate checks as validate does.
    loaded = await loadSpec(file, { env: env ?? null, ...(targets ? { targets, otherTargets: "ignore" as const } : {}) });
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, err.hint);
    throw err;
  }
  if (loaded.diagnostics.length > 0) {
    process.stderr.write(
      formatters.stylish(loaded.diagnostics, {
        color: useColor(2),
        files: [loaded.file],
        lineText: (_, line) => loaded.parsed.lineText(line),
        version: VERSION,
      }),
    );
  }
  return { loaded, file };
}
