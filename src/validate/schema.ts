/**
 * The JSON Schema check: the validator is ajv standalone code compiled at build time. ajv's
 * errors are mapped to one finding per location, without the noise of oneOf branches.
 */
import type { ErrorObject } from "ajv";
import type { Finding } from "../diagnostic.js";
import validateSchema from "../generated/schema-validator.js";
import { fromPointer, joinPointer } from "../pointer.js";
import { didYouMean } from "../suggest.js";

type SchemaNode = {
  title?: string;
  description?: string;
  examples?: unknown[];
  properties?: Record<string, SchemaNode>;
  type?: string | string[];
};

/** Runs the schema and returns its findings, with pointers into the checked value. */
export function checkSchema(value: unknown): Finding[] {
  if (value === undefined || value === null) {
    return [
      {
        code: "schema",
        severity: "error",
        path: "",
        message: "the spec is empty",
        hint: "a spec is a mapping with at least `mbc: 1`, `name`, `sources` and `services`; `mbc init` writes a starter",
      },
    ];
  }
  if (validateSchema(value)) return [];
  return mapErrors(validateSchema.errors ?? []);
}

function label(pointer: string): string {
  const segments = fromPointer(pointer);
  const last = segments[segments.length - 1];
  if (last === undefined) return "the spec";
  if (/^[0-9]+$/.test(last)) {
    const parent = segments[segments.length - 2];
    return parent === undefined ? `item ${last}` : `item ${last} of "${parent}"`;
  }
  return `"${last}"`;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a number";
  if (typeof v === "string") return "a string";
  if (typeof v === "boolean") return "a boolean";
  return typeof v;
}

const typeWords: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "a boolean",
  null: "null",
};

const article = (word: string) => (/^[aeiou]/i.test(word) ? `an ${word}` : `a ${word}`);

/** For the value types (duration, size, rate, name, port …): "a duration, like "250ms" or "2s"". */
function expectedFromSchema(schema: SchemaNode | undefined): { expected: string; hint?: string } | undefined {
  if (!schema?.title || !schema.examples?.length) return undefined;
  if (schema.examples.some((e) => typeof e === "object" && e !== null)) return undefined;
  const examples = schema.examples.map((e) => JSON.stringify(e));
  const like = examples.length === 1 ? examples[0] : `${examples.slice(0, -1).join(", ")} or ${examples[examples.length - 1]}`;
  return { expected: `${article(schema.title.toLowerCase())}, like ${like}`, ...(schema.description ? { hint: schema.description } : {}) };
}

/** What a bound's message adds: where the bounds are listed, each with its reason. */
const BOUND_HINT = "docs/bounds.md lists every bound and why it is there";

function entryCount(data: unknown): number | string {
  return typeof data === "object" && data !== null ? Object.keys(data).length : "too many";
}

function comparisonWord(op: string): string {
  return op === ">=" ? "≥" : op === "<=" ? "≤" : op;
}

/** One error → one finding (or none for pure noise). */
function describe(e: ErrorObject): Finding | undefined {
  const at = e.instancePath;
  const base = { code: "schema" as const, severity: "error" as const, path: at };
  const p = e.params as Record<string, unknown>;
  const parent = e.parentSchema as SchemaNode | undefined;
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(p.additionalProperty);
      const allowed = Object.keys(parent?.properties ?? {});
      const hint =
        didYouMean(key, allowed) ??
        (allowed.length ? `allowed here: ${allowed.join(", ")} (keys starting with x- are ignored)` : (parent?.description ?? undefined));
      return { ...base, code: "unknown-key", path: joinPointer(at, key), at: "key", message: `unknown key "${key}"`, ...(hint ? { hint } : {}) };
    }
    case "required": {
      const key = String(p.missingProperty);
      const property = parent?.properties?.[key];
      const about = property?.description;
      const hint = about ? `add "${key}": ${/^[A-Z][a-z]/.test(about) ? about[0]?.toLowerCase() + about.slice(1) : about}` : `add "${key}"`;
      return { ...base, path: joinPointer(at, key), at: "key", message: `${at === "" ? "the spec" : label(at)} is missing the required key "${key}"`, hint };
    }
    case "enum": {
      const allowed = ((e.schema as unknown[]) ?? []).map(String);
      const hint = typeof e.data === "string" ? didYouMean(e.data, allowed) : undefined;
      return { ...base, message: `${label(at)} must be one of ${allowed.join(", ")}, not ${JSON.stringify(e.data)}`, ...(hint ? { hint } : {}) };
    }
    case "const":
      return { ...base, message: `${label(at)} must be ${JSON.stringify(p.allowedValue)}, not ${JSON.stringify(e.data)}` };
    case "type": {
      const described = expectedFromSchema(parent);
      if (described)
        return { ...base, message: `${label(at)} must be ${described.expected}, not ${typeName(e.data)}`, ...(described.hint ? { hint: described.hint } : {}) };
      const want = ([] as string[]).concat(p.type as string | string[]).map((t) => typeWords[t] ?? t);
      return { ...base, message: `${label(at)} must be ${want.join(" or ")}, not ${typeName(e.data)}` };
    }
    case "pattern": {
      if (typeof e.data === "string" && e.data.includes("\u0000") && String(p.pattern).includes("\\u0000"))
        return { ...base, message: `${label(at)} holds a NUL character, which no file or process environment can carry` };
      const described = expectedFromSchema(parent);
      if (described)
        return {
          ...base,
          message: `${label(at)} must be ${described.expected}, not ${JSON.stringify(e.data)}`,
          ...(described.hint ? { hint: described.hint } : {}),
        };
      return { ...base, message: `${label(at)} must match ${String(p.pattern)}, not ${JSON.stringify(e.data)}` };
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return {
        ...base,
        message: `${label(at)} must be ${comparisonWord(String(p.comparison))} ${String(p.limit)}, not ${JSON.stringify(e.data)}`,
        ...(e.keyword === "maximum" ? { hint: BOUND_HINT } : {}),
      };
    case "maxDuration":
    case "maxSize":
    case "maxRate":
    case "minDuration":
    case "minSize":
    case "minRate":
      return {
        ...base,
        message: `${label(at)} must be ${e.keyword.startsWith("max") ? "at most" : "at least"} ${String(e.schema)}, not ${JSON.stringify(e.data)}`,
        hint: BOUND_HINT,
      };
    case "minLength":
      return { ...base, message: `${label(at)} must not be empty` };
    case "maxLength":
      return {
        ...base,
        message: `${label(at)} must be at most ${String(p.limit)} characters long, not ${typeof e.data === "string" ? e.data.length : "more"}`,
        hint: BOUND_HINT,
      };
    case "maxProperties":
      return {
        ...base,
        at: "key",
        message: `${label(at)} has ${entryCount(e.data)} entries, more than the ${String(p.limit)} allowed`,
        hint: BOUND_HINT,
      };
    case "maxItems":
      return {
        ...base,
        at: "key",
        message: `${label(at)} has ${Array.isArray(e.data) ? e.data.length : "too many"} items, more than the ${String(p.limit)} allowed`,
        hint: BOUND_HINT,
      };
    case "minProperties":
      return { ...base, at: "key", message: `${label(at)} needs at least ${String(p.limit)} entr${p.limit === 1 ? "y" : "ies"}` };
    case "minItems":
      return { ...base, at: "key", message: `${label(at)} needs at least ${String(p.limit)} item${p.limit === 1 ? "" : "s"}` };
    case "uniqueItems": {
      // ajv scans from the end, so its i is the earlier item: point at the repetition.
      const first = Math.min(Number(p.i), Number(p.j));
      const again = Math.max(Number(p.i), Number(p.j));
      return {
        ...base,
        path: joinPointer(at, again),
        message: `${label(at)} lists ${JSON.stringify((e.data as unknown[])[again])} twice (items ${first} and ${again})`,
      };
    }
    case "if":
    case "propertyNames":
      return undefined;
    default:
      return { ...base, message: `${label(at)} ${e.message ?? "is not valid"}` };
  }
}

function isUnder(pointer: string, ancestor: string): boolean {
  return pointer.startsWith(`${ancestor}/`);
}

export function mapErrors(errors: readonly ErrorObject[]): Finding[] {
  const dropped = new Set<ErrorObject>();
  const replaced = new Map<ErrorObject, Finding>();

  // Invalid keys of name maps: ajv reports the key's pattern error at the map itself.
  for (const e of errors) {
    if (e.keyword !== "propertyNames") continue;
    const name = String((e.params as { propertyName?: string }).propertyName);
    const keyPath = joinPointer(e.instancePath, name);
    for (const other of errors) {
      if (other === e || other.instancePath !== e.instancePath || other.data !== name || other.keyword === "propertyNames") continue;
      dropped.add(other);
      const described = expectedFromSchema(other.parentSchema as SchemaNode | undefined);
      replaced.set(e, {
        code: "schema",
        severity: "error",
        path: keyPath,
        at: "key",
        message: described
          ? `${JSON.stringify(name)} is not a valid key of ${label(e.instancePath)}: it must be ${described.expected}`
          : `${JSON.stringify(name)} is not a valid key of ${label(e.instancePath)}: it must match ${String((other.params as { pattern?: string }).pattern)}`,
        ...(described?.hint ? { hint: described.hint } : {}),
      });
    }
  }

  // oneOf/anyOf: keep the errors of the branch that got furthest, or say what was expected.
  for (const o of errors) {
    if (o.keyword !== "oneOf" && o.keyword !== "anyOf") continue;
    const at = o.instancePath;
    const siblings = errors.filter(
      (e) => e !== o && e.instancePath === at && !dropped.has(e) && e.keyword !== "propertyNames" && e.keyword !== "oneOf" && e.keyword !== "anyOf",
    );
    const deeper = errors.some((e) => isUnder(e.instancePath, at));
    dropped.add(o);
    const branchErrors = siblings.filter((e) => e.keyword !== "required" && e.keyword !== "additionalProperties");
    if (deeper) {
      for (const s of branchErrors) dropped.add(s);
      continue;
    }
    const specific = branchErrors.find((e) => e.keyword !== "type" && e.keyword !== "pattern");
    for (const s of branchErrors) if (s !== specific) dropped.add(s);
    if (!specific) {
      // Say what was expected: the value type itself, else the branch that matched the type, else the types.
      const patternBranch = branchErrors.find((e) => e.keyword === "pattern");
      const described =
        expectedFromSchema(o.parentSchema as SchemaNode | undefined) ??
        (patternBranch ? expectedFromSchema(patternBranch.parentSchema as SchemaNode) : undefined);
      const types = [
        ...new Set(branchErrors.filter((e) => e.keyword === "type").flatMap((e) => ([] as string[]).concat((e.params as { type: string | string[] }).type))),
      ];
      const shown = typeof o.data === "string" ? JSON.stringify(o.data) : typeName(o.data);
      replaced.set(o, {
        code: "schema",
        severity: "error",
        path: at,
        message: described
          ? `${label(at)} must be ${described.expected}, not ${shown}`
          : `${label(at)} must be ${types.map((t) => typeWords[t] ?? t).join(" or ") || "valid"}, not ${shown}`,
        ...(described?.hint ? { hint: described.hint } : {}),
      });
      dropped.delete(o);
    }
  }

  const findings: Finding[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const f = replaced.get(e) ?? (dropped.has(e) ? undefined : describe(e));
    if (!f) continue;
    const key = `${f.code}\u0000${f.path}\u0000${f.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push(f);
  }
  return findings;
}
