/**
 * system.json: read, checked against its schema (schema/system.schema.json, compiled at build
 * time into src/generated/system-validator.js), then checked for what a schema does not say:
 * that references between services name services, that handler modules stay inside the
 * system's folder, that instance k is the k-th. It is written by `mbc build` from a validated
 * model, so a failure means a hand-edited, truncated or mismatched file: better a clear message
 * at start than a TypeError in the middle of a batch.
 */
import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import validateSystem from "../../generated/system-validator.js";
import { BUILTIN_HANDLERS } from "../../model/types.js";
import type { SystemFile } from "../core/contracts.js";
import { RuntimeConfigError } from "./error.js";
import { describeSchemaErrors } from "./schema-errors.js";

/** Reads and checks system.json. */
export function loadSystem(path: string): SystemFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String((err as Error).message);
    throw new RuntimeConfigError(`cannot read system file ${path}: ${why} (set MBC_SYSTEM to its path)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RuntimeConfigError(`system file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return checkSystem(value, path);
}

/** Checks a parsed system.json: its schema first, then what the schema cannot say. Pure. */
export function checkSystem(value: unknown, path: string): SystemFile {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new RuntimeConfigError(`system file ${path} is not a JSON object`);
  // Another version's file is not this runtime's to judge field by field.
  if ((value as { mbc?: unknown }).mbc !== 1) invalid(path, ["mbc: expected 1 (this runtime reads system files of version 1)"]);
  if (!validateSystem(value)) invalid(path, describeSchemaErrors(validateSystem.errors ?? []));
  const problems = beyondSchema(value);
  if (problems.length > 0) invalid(path, problems);
  return value;
}

function invalid(path: string, problems: readonly string[]): never {
  const shown = problems.slice(0, 10).join("; ");
  const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : "";
  throw new RuntimeConfigError(`system file ${path} is invalid: ${shown}${more}`);
}

/** What the schema cannot say, on a file of the right shape. */
function beyondSchema(system: SystemFile): string[] {
  const problems: string[] = [];
  const { model, handlers } = system;
  const services = new Set(model.services.map((s) => s.name));
  const reference = (where: string, name: string) => {
    if (!services.has(name)) problems.push(`${where}: no service ${JSON.stringify(name)}`);
  };
  model.sources.forEach((s, i) => {
    reference(`model.sources[${i}].to`, s.to);
  });
  model.services.forEach((s, i) => {
    const where = `model.services[${i}]`;
    for (const t of s.to) reference(`${where}.to`, t);
    // An instance is addressed by its place (`--instance K`, port + K).
    s.instances.forEach((inst, k) => {
      if (inst.index !== k) problems.push(`${where}.instances[${k}].index: expected ${k}`);
    });
    if (s.handler?.kind === "builtin" && !(BUILTIN_HANDLERS as readonly string[]).includes(s.handler.name)) {
      problems.push(`${where}.handler.name: expected one of ${BUILTIN_HANDLERS.join(", ")}`);
    }
    if (s.handler?.kind === "module" && handlers[s.name] === undefined) problems.push(`handlers.${s.name}: missing: the service has a module handler`);
  });
  for (const [service, file] of Object.entries(handlers)) {
    // Handlers are loaded from the system's folder only: a path that is absolute or climbs out
    // of it would run code the build did not copy there.
    if (isAbsolute(file) || /^[a-zA-Z]:/.test(file) || file.split(/[\\/]/).includes("..")) {
      problems.push(`handlers.${service}: must be a path inside the system's folder`);
    }
  }
  return problems;
}
