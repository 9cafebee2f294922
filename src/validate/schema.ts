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
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
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
  return mapErrors(validateSchema.errors ?? [], value);
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

/** The key a pointer ends in, for hints that quote the spec back. */
function keyOf(pointer: string): string | undefined {
  const last = fromPointer(pointer).at(-1);
  return last === undefined || /^[0-9]+$/.test(last) ? undefined : last;
}

/** Whether a property's own schema (not a $ref) takes the value as it is. */
function takes(schema: SchemaNode, value: unknown, exact: boolean): boolean {
  const types = ([] as string[]).concat(schema.type ?? []);
  const type = typeof value === "number" ? (Number.isInteger(value) ? "integer" : "number") : typeof value;
  const typed = types.includes(type) || (!exact && type === "integer" && types.includes("number"));
  if (!typed) return false;
  if (schema.enum && !schema.enum.includes(value)) return false;
  if (typeof value === "number" && ((schema.minimum !== undefined && value < schema.minimum) || (schema.maximum !== undefined && value > schema.maximum)))
    return false;
  return true;
}

/**
 * A single value where a mapping of settings goes (`retry: 3`): the setting it most likely
 * meant, found from the mapping's schema (the properties whose type and range take the value,
 * exact types first), or else the settings there are.
 */
function settingsHint(key: string, schema: SchemaNode | undefined, value: unknown): string | undefined {
  const properties = Object.entries(schema?.properties ?? {});
  if (properties.length === 0) return undefined;
  const shown = typeof value === "string" ? (/^[\w./-]+$/.test(value) ? value : JSON.stringify(value)) : JSON.stringify(value);
  for (const exact of [true, false]) {
    // A text fits only a setting that lists it: any name or path would fit every text setting.
    const fits = properties
      .filter(([, p]) => takes(p, value, exact) && (typeof value !== "string" || p.enum !== undefined))
      .map(([name]) => `${key}: {${name}: ${shown}}`);
    if (fits.length > 0) return `"${key}" holds settings by name, not a single value: did you mean ${fits.slice(0, 3).join(" or ")}?`;
  }
  return `"${key}" holds settings by name, not a single value: ${properties.map(([name]) => name).join(", ")}`;
}

/**
 * `work:` with nothing after it, then the lines meant for it, indented as its siblings: the
 * sibling before the key at `at` is empty. Needs the checked value (`root`).
 */
function emptyAboveHint(root: unknown, at: string): string | undefined {
  if (root === undefined) return undefined;
  const segments = fromPointer(at);
  const key = segments.pop();
  let parent: unknown = root;
  for (const seg of segments) parent = parent !== null && typeof parent === "object" ? (parent as Record<string, unknown>)[seg] : undefined;
  if (key === undefined || parent === null || typeof parent !== "object" || Array.isArray(parent)) return undefined;
  const before = keyBefore(parent as Record<string, unknown>).get(key);
  if (before === undefined || (parent as Record<string, unknown>)[before] !== null) return undefined;
  return `if it belongs to "${before}" above it, which is empty, indent it more than "${before}"`;
}

/**
 * Each key of a mapping → the key before it, made once per mapping: a mapping of 20,000 unknown
 * keys asks for each of them, and a search of its keys each time would be quadratic.
 */
const keysBefore = new WeakMap<object, Map<string, string>>();
function keyBefore(map: Record<string, unknown>): Map<string, string> {
  let index = keysBefore.get(map);
  if (index === undefined) {
    index = new Map();
    const keys = Object.keys(map);
    for (let k = 1; k < keys.length; k++) index.set(keys[k] as string, keys[k - 1] as string);
    keysBefore.set(map, index);
  }
  return index;
}

/** Hints that depend on where a value is, for shapes users reach for by analogy with a neighbour. */
const PLACE_HINTS: readonly { at: RegExp; when: (value: unknown) => boolean; hint: string }[] = [
  {
    // A service's `to` takes a list; a source's does not.
    at: /^(?:\/environments\/[^/]+)?\/sources\/[^/]+\/to$/,
    when: Array.isArray,
    hint: "a source feeds one service; to fan out, send the source to one service (builtin:passthrough does nothing else) and give that service the list: `to: [a, b]` sends each of them a copy of every batch",
  },
];

function placeHint(at: string, value: unknown): string | undefined {
  return PLACE_HINTS.find((h) => h.at.test(at) && h.when(value))?.hint;
}

/** `type: http port:8080` once YAML folds the lines: a key without a space after its colon, read as part of the value above. */
function gluedKeyHint(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const m = /\s([A-Za-z_][\w-]*):([^\s/:]\S*)/.exec(value);
  return m
    ? `"${m[1]}:${m[2]}" needs a space after the colon to be a key and a value (${m[1]}: ${m[2]}); without it, YAML reads it as more of the value above`
    : undefined;
}

/** One error → one finding (or none for pure noise). */
function describe(e: ErrorObject, root?: unknown): Finding | undefined {
  const at = e.instancePath;
  const base = { code: "schema" as const, severity: "error" as const, path: at };
  const p = e.params as Record<string, unknown>;
  const parent = e.parentSchema as SchemaNode | undefined;
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(p.additionalProperty);
      const allowed = Object.keys(parent?.properties ?? {});
      // Right after a key with nothing after its colon: most likely a line of it, indented too little.
      const hint =
        didYouMean(key, allowed) ??
        emptyAboveHint(root, joinPointer(at, key)) ??
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
      const hint = gluedKeyHint(e.data) ?? (typeof e.data === "string" ? didYouMean(e.data, allowed) : undefined);
      return { ...base, message: `${label(at)} must be one of ${allowed.join(", ")}, not ${JSON.stringify(e.data)}`, ...(hint ? { hint } : {}) };
    }
    case "const":
      return { ...base, message: `${label(at)} must be ${JSON.stringify(p.allowedValue)}, not ${JSON.stringify(e.data)}` };
    case "type": {
      const described = expectedFromSchema(parent);
      const key = keyOf(at);
      const special = placeHint(at, e.data);
      if (described) {
        const hint = special ?? described.hint;
        return { ...base, message: `${label(at)} must be ${described.expected}, not ${typeName(e.data)}`, ...(hint ? { hint } : {}) };
      }
      const types = ([] as string[]).concat(p.type as string | string[]);
      const want = types.map((t) => typeWords[t] ?? t);
      let hint = special ?? emptyAboveHint(root, at);
      if (hint === undefined && types.includes("object") && key !== undefined) {
        hint =
          e.data === null
            ? `nothing follows "${key}:"; write its keys on the lines below it, indented more than "${key}"`
            : typeof e.data !== "object"
              ? settingsHint(key, parent, e.data)
              : undefined;
      }
      return { ...base, message: `${label(at)} must be ${want.join(" or ")}, not ${typeName(e.data)}`, ...(hint ? { hint } : {}) };
    }
    case "pattern": {
      if (typeof e.data === "string" && e.data.includes("\u0000") && String(p.pattern).includes("\\u0000"))
        return { ...base, message: `${label(at)} holds a NUL character, which no file or process environment can carry` };
      const described = expectedFromSchema(parent);
      const glued = gluedKeyHint(e.data);
      if (described)
        return {
          ...base,
          message: `${label(at)} must be ${described.expected}, not ${JSON.stringify(e.data)}`,
          ...((glued ?? described.hint) ? { hint: glued ?? described.hint } : {}),
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

/** ajv's errors as findings; `root`, the checked value, lets hints look at a value's neighbours. */
export function mapErrors(errors: readonly ErrorObject[], root?: unknown): Finding[] {
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
    const f = replaced.get(e) ?? (dropped.has(e) ? undefined : describe(e, root));
    if (!f) continue;
    const key = `${f.code}\u0000${f.path}\u0000${f.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push(f);
  }
  return findings;
}
