/**
 * ajv's errors for system.json in words: the field (`model.services[0].retry.maxRetries`) and
 * what was expected there. The standalone validator carries no messages of its own
 * (scripts/gen-schema-code.mjs compiles it with `messages: false`): they are made here from each
 * error's keyword and params, for the keywords schema/system.schema.json uses.
 */
import type { ErrorObject } from "ajv";

const A_TYPE: Readonly<Record<string, string>> = {
  object: "an object",
  array: "an array",
  string: "a string",
  number: "a number",
  integer: "an integer",
  boolean: "a boolean",
  null: "null",
};

const COMPARISON: Readonly<Record<string, string>> = { ">=": "≥", "<=": "≤", ">": ">", "<": "<" };

/** A JSON Pointer as a field: `/model/services/0/to` → `model.services[0].to`. */
export function fieldOf(pointer: string, child?: string): string {
  const segments = pointer === "" ? [] : pointer.slice(1).split("/");
  if (child !== undefined) segments.push(child);
  let out = "";
  for (const raw of segments) {
    const segment = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^(0|[1-9][0-9]*)$/.test(segment)) out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === "" ? "(the file)" : out;
}

/** What one error says: the field, and what is wrong with it; null when another error says it better. */
function problemOf(e: ErrorObject): { field: string; what: string } | null {
  const p = e.params as Record<string, unknown>;
  const at = (what: string) => ({ field: fieldOf(e.instancePath), what });
  switch (e.keyword) {
    // if/then/else: the branch's own errors say what is wrong.
    case "if":
      return null;
    case "required":
      return { field: fieldOf(e.instancePath, String(p.missingProperty)), what: "missing" };
    case "additionalProperties":
      return { field: fieldOf(e.instancePath, String(p.additionalProperty)), what: "unknown field" };
    case "unevaluatedProperties":
      return { field: fieldOf(e.instancePath, String(p.unevaluatedProperty)), what: "unknown field" };
    case "type": {
      const types = Array.isArray(p.type) ? p.type : String(p.type).split(",");
      return at(`expected ${types.map((t) => A_TYPE[String(t)] ?? String(t)).join(" or ")}`);
    }
    case "const":
      return at(`expected ${JSON.stringify(p.allowedValue)}`);
    case "enum":
      return at(`expected one of ${(p.allowedValues as unknown[]).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ")}`);
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return at(`expected a number ${COMPARISON[String(p.comparison)] ?? String(p.comparison)} ${String(p.limit)}`);
    case "minLength":
      return at(p.limit === 1 ? "expected a non-empty string" : `expected at least ${String(p.limit)} characters`);
    case "minItems":
      return at(p.limit === 1 ? "expected a non-empty array" : `expected at least ${String(p.limit)} items`);
    case "maxProperties":
      return at(p.limit === 0 ? "expected an empty object" : `expected at most ${String(p.limit)} fields`);
    case "discriminator":
      return {
        field: fieldOf(e.instancePath, String(p.tag)),
        what: p.error === "mapping" ? `${JSON.stringify(p.tagValue)} is not one of its kinds` : "expected a string",
      };
    default:
      return at(`does not match the schema (${e.keyword})`);
  }
}

/** Each problem once, as `field: what`, in ajv's order (the file's, mostly). */
export function describeSchemaErrors(errors: readonly ErrorObject[]): string[] {
  const problems: { field: string; what: string; tag: boolean }[] = [];
  for (const e of errors) {
    const problem = problemOf(e);
    if (problem !== null) problems.push({ ...problem, tag: e.keyword === "discriminator" });
  }
  // A union's tag that another error names already (`type: expected one of …`) needs no second word.
  const named = new Set(problems.filter((p) => !p.tag).map((p) => p.field));
  const lines = problems.filter((p) => !(p.tag && named.has(p.field))).map((p) => `${p.field}: ${p.what}`);
  return [...new Set(lines)];
}
