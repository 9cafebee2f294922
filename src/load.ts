/**
 * Reading a spec file: `loadSpec` of the API (src/index.ts re-exports it), which the CLI imports
 * from here, so that its bundle does not reach the simulator and the report through the API's
 * other exports.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { TargetId } from "./build/targets.js";
import { MAX_SPEC_BYTES, parseSpec } from "./parse/index.js";
import { leavesFolder } from "./real-path.js";
import { UsageError } from "./usage-error.js";
import { type ValidateOptions, type ValidationResult, validateParsed } from "./validate/index.js";

/** A file-system check for handler modules, relative to a spec's folder. */
export function handlerExistsIn(specDir: string): (relativePath: string) => boolean {
  return (relativePath) => {
    try {
      return statSync(resolve(specDir, relativePath)).isFile();
    } catch {
      return false;
    }
  };
}

/** Whether a handler path, with symbolic links followed, leads out of a spec's folder. */
export function handlerLeavesFolder(specDir: string): (relativePath: string) => boolean {
  return (relativePath) => leavesFolder(specDir, relativePath);
}

export interface LoadOptions {
  env?: string | null;
  /** The targets whose constraints are errors (ValidateOptions.targets). */
  targets?: readonly TargetId[] | null;
  /** ValidateOptions.otherTargets. */
  otherTargets?: "warning" | "ignore";
  /** The file name shown in diagnostics (default: the path as given). */
  displayName?: string;
}

/**
 * Reads, parses and validates a spec file. Problems with the spec are diagnostics in the
 * result; a file that cannot be read, or an unknown `env`, throws a UsageError.
 *
 * The file is read synchronously: parsing and validating it hold the thread far longer than
 * reading it does, and the first asynchronous read would start libuv's thread pool, a few ms of
 * the CLI's start-up.
 */
export async function loadSpec(path: string, options: LoadOptions = {}): Promise<ValidationResult> {
  let bytes: Uint8Array;
  let size: number;
  try {
    const info = statSync(path);
    if (info.isDirectory()) throw new UsageError(`${path}: is a folder, not a spec file`, "name the spec file, e.g. microbatch.yaml");
    // An oversized file is refused by its size, without reading it.
    bytes = info.size > MAX_SPEC_BYTES ? new Uint8Array(0) : readFileSync(path);
    size = info.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : `cannot read (${code ?? String(err)})`}`);
  }
  const specDir = dirname(resolve(path));
  const validateOptions: ValidateOptions = {
    env: options.env ?? null,
    fileExists: handlerExistsIn(specDir),
    leavesFolder: handlerLeavesFolder(specDir),
    ...(options.targets ? { targets: options.targets } : {}),
    ...(options.otherTargets ? { otherTargets: options.otherTargets } : {}),
  };
  return validateParsed(parseSpec(options.displayName ?? path, bytes, { size }), validateOptions);
}
