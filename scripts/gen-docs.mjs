// Generates docs/spec.md, the spec reference, from schema/mbc.schema.json (the one source of
// truth). The output depends on nothing but the schema, so it is byte-identical run to run.
//
//   node scripts/gen-docs.mjs            write docs/spec.md
//   node scripts/gen-docs.mjs --check    exit 1 when docs/spec.md is stale
//   node scripts/gen-docs.mjs --stdout   print what docs/spec.md should hold
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const SCHEMA_FILE = "schema/mbc.schema.json";
const OUT_FILE = "docs/spec.md";

/** Object sections, in reading order, and their headings. $defs not listed here still get a section, after these. */
const OBJECT_SECTIONS = [
  ["", "Top level"],
  ["defaults", "Defaults"],
  ["retry", "Retry"],
  ["resources", "Resources"],
  ["batch", "Batch"],
  ["registry", "Registry"],
  ["source", "Source"],
  ["instance", "Instance"],
  ["service", "Service"],
  ["checkpoint", "Checkpoint"],
  ["overlay", "Overlay"],
  ["sourcePatch", "Source overlay"],
  ["servicePatch", "Service overlay"],
  ["simulation", "Simulation"],
  ["fault", "Fault"],
  ["targets", "Targets"],
];

/** Value types, in reading order. */
const VALUE_TYPES = ["name", "duration", "size", "rate", "port"];

/** How mbc reads each value type: what the schema's pattern cannot say. */
const VALUE_NOTES = {
  name: "Source and service names share one namespace. A key of `sources`, `services` or `environments` is always a name, even when it starts with `x-`.",
  duration:
    "`h`, `m`, `s`, `ms`, each at most once and in that order: `1h30m`, `1m30s`, `1.5s`, `250ms`. A bare number (`timeout: 2`) is not a duration: YAML reads it as an integer and the schema rejects it. Fractions of a millisecond are rounded.",
  size: "`k`, `M`, `G` are powers of 1000 and `Ki`, `Mi`, `Gi` powers of 1024 (so `1Mi` = 1048576). Case matters: `1m` and `1K` are errors. Fractions (`1.5Gi`) are rounded to whole bytes.",
  rate: "Always records per second after parsing: `90000/m` = 1500/s, `3600/h` = 1/s.",
  port: "Instance k of a service listens on `port + k`; see [model.md](model.md#ports) for assigned ports.",
};

const PREAMBLE = `<!-- Generated from ${SCHEMA_FILE} by scripts/gen-docs.mjs. Do not edit: change the schema and run \`npm run docs\`. -->

# Spec reference

A spec is one YAML (1.2) or JSON file that describes one microbatch system. This page lists every
key the JSON Schema (\`${SCHEMA_FILE}\`, printed by \`mbc schema\`) accepts, with its type,
whether it is required, its default and what it means. What a schema cannot check (references,
cycles, ports, load, retries, timeouts) is in [diagnostics.md](diagnostics.md); how defaults,
overlays and ports are resolved is in [model.md](model.md).

How to read the tables:

- **type** links to a [value type](#value-types) (\`duration\`, \`size\`, \`rate\`, \`name\`, \`port\`)
  or to the section of an object; the allowed values of an enumeration are separated by \`|\`.
- **required**: \`yes\`, a condition (\`if type: http\`), or empty for optional.
- **default**: what an absent key means. Where the default is computed (from \`name\`, from the
  weights, from \`defaults\`), the column is empty and the description says how.
- A key written \`budget.ratio\` is \`ratio\` inside the \`budget\` object.
- In every object with fixed keys, a key that is not listed is an \`unknown-key\` error, except
  keys that start with \`x-\`, which mbc keeps and ignores (as in Compose).
- A service's own value wins over \`defaults\`; objects merge key by key, lists and scalars replace.
`;

function main() {
  const schema = JSON.parse(readFileSync(join(root, SCHEMA_FILE), "utf8"));
  const text = renderSpec(schema);
  const outPath = join(root, OUT_FILE);
  const args = process.argv.slice(2);
  if (args.includes("--stdout")) {
    process.stdout.write(text);
    return;
  }
  if (args.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(outPath, "utf8");
    } catch {}
    if (current !== text) {
      process.stderr.write(`${OUT_FILE} is stale: run npm run docs\n`);
      process.exitCode = 1;
    }
    return;
  }
  writeFileSync(outPath, text);
  process.stdout.write(`wrote ${OUT_FILE}\n`);
}

/** The whole page. Exported for tests that render a schema of their own. */
export function renderSpec(schema) {
  const defs = schema.$defs ?? {};
  const isObjectDef = (name) => defs[name]?.type === "object" || defs[name]?.properties !== undefined;
  const objectSections = [...OBJECT_SECTIONS.filter(([name]) => name === "" || defs[name] !== undefined)];
  for (const name of Object.keys(defs)) {
    if (isObjectDef(name) && !objectSections.some(([n]) => n === name)) objectSections.push([name, defs[name].title ?? name]);
  }
  const valueTypes = VALUE_TYPES.filter((n) => defs[n] !== undefined);
  for (const name of Object.keys(defs)) if (!isObjectDef(name) && !valueTypes.includes(name)) valueTypes.push(name);

  const slugs = new Set();
  const slug = (heading) => {
    const s = heading
      .toLowerCase()
      .replace(/[^a-z0-9 _-]/g, "")
      .replace(/ /g, "-");
    if (slugs.has(s)) throw new Error(`two headings give the anchor #${s}`);
    slugs.add(s);
    return s;
  };
  const anchors = new Map();
  for (const [name, heading] of objectSections) anchors.set(name, { heading, anchor: slug(heading) });
  slug("Contents");
  slug("Value types");
  for (const name of valueTypes) anchors.set(name, { heading: name, anchor: slug(name) });

  const ctx = { schema, defs, anchors, valueTypes };
  const usedAt = referencePaths(schema);
  const out = [PREAMBLE];
  out.push("## Contents\n");
  for (const [name] of objectSections) {
    const a = anchors.get(name);
    out.push(`- [${a.heading}](#${a.anchor})`);
  }
  out.push(`- [Value types](#value-types): ${valueTypes.map((n) => `[${n}](#${anchors.get(n).anchor})`).join(", ")}`);
  out.push("");

  for (const [name, heading] of objectSections) {
    const node = name === "" ? schema : defs[name];
    out.push(`## ${heading}\n`);
    const intro = node.markdownDescription ?? node.description;
    if (intro) out.push(`${intro.trim()}\n`);
    const where = usedAt.get(name);
    if (where?.length) out.push(`Appears at: ${where.map((p) => `\`${p}\``).join(", ")}.\n`);
    out.push(...objectTable(node, ctx));
  }

  out.push("## Value types\n");
  out.push("The forms that several keys share. A value of the wrong form is a `schema` error at its exact line and column, never a silent default.\n");
  for (const name of valueTypes) {
    const node = defs[name];
    out.push(`### ${name}\n`);
    const intro = node.description ?? node.markdownDescription;
    if (intro) out.push(`${intro.trim()}\n`);
    const forms = node.oneOf ?? node.anyOf ?? [node];
    out.push("| form | constraint |");
    out.push("|---|---|");
    for (const form of forms) out.push(`| ${cell(baseType(form))} | ${cell(constraintOf(form))} |`);
    out.push("");
    const b = bounds(node);
    if (b) out.push(`Every ${name} is bounded: ${b.slice(1, -1)}, unless a key below says otherwise ([bounds.md](bounds.md)).\n`);
    if (node.examples?.length) out.push(`Examples: ${node.examples.map((e) => code(e)).join(", ")}.\n`);
    if (VALUE_NOTES[name]) out.push(`${VALUE_NOTES[name]}\n`);
  }
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

/** Where each $def is used, as dotted key paths from the top level (`<name>` for a map key, `[]` for a list item). */
function referencePaths(schema) {
  const found = new Map();
  const add = (def, path) => {
    const list = found.get(def) ?? [];
    if (!list.includes(path)) list.push(path);
    found.set(def, list);
  };
  const walk = (node, path, stack) => {
    if (!node || typeof node !== "object") return;
    if (typeof node.$ref === "string") {
      const m = /^#\/\$defs\/([^/]+)$/.exec(node.$ref);
      if (m) {
        const def = m[1];
        add(def, path);
        if (!stack.includes(def)) walk(schema.$defs[def], path, [...stack, def]);
      }
    }
    for (const [key, value] of Object.entries(node.properties ?? {})) walk(value, path ? `${path}.${key}` : key, stack);
    if (node.additionalProperties && typeof node.additionalProperties === "object") walk(node.additionalProperties, `${path}.<name>`, stack);
    if (node.items) walk(node.items, `${path}[]`, stack);
    for (const branch of [...(node.oneOf ?? []), ...(node.anyOf ?? [])]) walk(branch, path, stack);
  };
  walk(schema, "", []);
  for (const [def, list] of found) {
    // Value types are used everywhere: listing their uses would be noise.
    if (!schema.$defs[def]?.properties) found.delete(def);
    // The spec's own places first, then the same places inside environments.
    else list.sort((a, b) => Number(a.startsWith("environments.")) - Number(b.startsWith("environments.")) || (a < b ? -1 : a > b ? 1 : 0));
  }
  return found;
}

/** The table of an object's keys, nested inline objects flattened to dotted keys, then its enum values. */
function objectTable(node, ctx) {
  const rows = [];
  const enums = [];
  const addRows = (obj, prefix) => {
    const required = new Set(obj.required ?? []);
    const conditions = conditionalRequirements(obj);
    for (const [key, raw] of Object.entries(obj.properties ?? {})) {
      const name = `${prefix}${key}`;
      // A deep $ref (an overlay's `#/$defs/source/properties/port`) stands for the key it names.
      const own = raw.$ref && defName(raw.$ref) === undefined ? { ...resolveOnce(raw.$ref, ctx.schema), ...withoutRef(raw) } : raw;
      const prop = resolveDeep(own, ctx.schema);
      const req = required.has(key) ? "yes" : (conditions.get(key) ?? []).join("; ");
      const description = own.description ?? prop.description ?? prop.title ?? "";
      const dflt = own.default !== undefined ? own.default : prop.default;
      rows.push(`| \`${name}\` | ${cell(typeOf(own, ctx))} | ${cell(req)} | ${dflt === undefined ? "" : cell(code(dflt))} | ${cell(description)} |`);
      if (!raw.$ref) {
        const enumNode = prop.enum ? prop : prop.items?.enum ? prop.items : undefined;
        const texts = enumNode?.markdownEnumDescriptions ?? enumNode?.enumDescriptions;
        if (enumNode && texts) enums.push({ name, values: enumNode.enum, texts });
      }
      if (isInlineObject(raw)) addRows(raw, `${name}.`);
    }
  };
  addRows(node, "");
  const out = [];
  if (rows.length === 0) return out;
  out.push("| key | type | required | default | description |");
  out.push("|---|---|---|---|---|");
  out.push(...rows, "");
  if (enums.length) {
    out.push("Values:\n");
    for (const e of enums) {
      out.push(`- \`${e.name}\``);
      e.values.forEach((v, i) => {
        out.push(`  - ${code(v)}${e.texts[i] ? `: ${oneLine(e.texts[i])}` : ""}`);
      });
    }
    out.push("");
  }
  const xKeys = Object.keys(node.patternProperties ?? {}).includes("^x-");
  if (node.additionalProperties === false && !xKeys) out.push("Keys starting with `x-` are not allowed here.\n");
  return out;
}

function isInlineObject(node) {
  return !node.$ref && node.type === "object" && node.properties !== undefined;
}

/** `key` → the conditions under which it is required (if/then, also inside allOf). */
function conditionalRequirements(obj) {
  const out = new Map();
  const clauses = [...(obj.if ? [obj] : []), ...(obj.allOf ?? []).filter((c) => c.if)];
  for (const clause of clauses) {
    const cond = describeCondition(clause.if);
    for (const key of clause.then?.required ?? []) out.set(key, [...(out.get(key) ?? []), cond]);
  }
  return out;
}

function describeCondition(cond) {
  const negated = cond.not?.required;
  if (negated) return `unless ${negated.map((k) => `\`${k}\``).join(", ")} is set`;
  const parts = Object.entries(cond.properties ?? {}).map(([k, v]) => (v.const !== undefined ? `\`${k}: ${v.const}\`` : `\`${k}\` matches`));
  return `if ${parts.join(" and ")}`;
}

function defName(ref) {
  return /^#\/\$defs\/([^/]+)$/.exec(ref)?.[1];
}

function withoutRef(node) {
  const { $ref: _, ...rest } = node;
  return rest;
}

/** The schema a local `$ref` names. */
function resolveOnce(ref, schema) {
  if (!ref.startsWith("#")) throw new Error(`external $ref ${ref} is not supported`);
  let target = schema;
  for (const seg of ref
    .slice(1)
    .split("/")
    .filter(Boolean)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))) {
    target = target?.[seg];
  }
  if (target === undefined) throw new Error(`unresolved $ref ${ref}`);
  return target;
}

/** Follows `$ref`s to the schema that finally describes the value; the referring node's own keywords win. */
function resolveDeep(node, schema) {
  let n = node;
  for (let i = 0; n?.$ref && i < 20; i++) n = { ...resolveOnce(n.$ref, schema), ...withoutRef(n) };
  return n;
}

/** The type column: links for $defs, enums as alternatives, constraints spelled out. */
function typeOf(node, ctx) {
  if (node.$ref) {
    const def = defName(node.$ref);
    if (def !== undefined && ctx.anchors.has(def)) {
      const a = ctx.anchors.get(def);
      const b = bounds(node);
      return `[${a.heading}](#${a.anchor})${b ? ` ${b}` : ""}`;
    }
    return typeOf({ ...resolveOnce(node.$ref, ctx.schema), ...withoutRef(node) }, ctx);
  }
  if (node.const !== undefined) return `const ${code(node.const)}`;
  if (node.enum) return node.enum.map((v) => code(v)).join(" | ");
  const branches = node.oneOf ?? node.anyOf;
  if (branches) return branches.map((b) => typeOf(b, ctx)).join(", or ");
  // A pattern alone (as in `propertyNames`) constrains strings.
  const types = [].concat(node.type ?? (node.pattern !== undefined ? "string" : []));
  if (types.length > 1) return words(types);
  switch (types[0]) {
    case "string":
      return [
        node.minLength >= 1 && !node.pattern ? "non-empty string" : "string",
        node.pattern ? `matching ${code(node.pattern)}` : "",
        node.maxLength !== undefined ? `(≤ ${node.maxLength} characters)` : "",
      ]
        .filter(Boolean)
        .join(" ");
    case "integer":
    case "number":
      return [types[0], range(node)].filter(Boolean).join(" ");
    case "array": {
      const extra = [node.uniqueItems ? "unique" : "", node.minItems ? `≥ ${node.minItems}` : "", node.maxItems !== undefined ? `≤ ${node.maxItems}` : ""]
        .filter(Boolean)
        .join(", ");
      return `list of ${node.items ? typeOf(node.items, ctx) : "anything"}${extra ? ` (${extra})` : ""}`;
    }
    case "object": {
      const counts = [
        node.minProperties ? `≥ ${node.minProperties} ${node.minProperties === 1 ? "entry" : "entries"}` : "",
        node.maxProperties !== undefined ? `≤ ${node.maxProperties} entries` : "",
      ].filter(Boolean);
      const entries = counts.length ? ` (${counts.join(", ")})` : "";
      if (node.additionalProperties && typeof node.additionalProperties === "object") {
        const key = node.propertyNames ? typeOf(node.propertyNames, ctx) : "string";
        return `map of ${key} → ${typeOf(node.additionalProperties, ctx)}${entries}`;
      }
      return node.properties ? "object (keys below)" : "object";
    }
    case "boolean":
      return "boolean";
    default:
      return types[0] ?? "any";
  }
}

/** The bounds of a duration, size or rate (scripts/schema-keywords.mjs): `(≥ 1ms, ≤ 24h)`. */
function bounds(node) {
  const parts = [];
  for (const kind of ["Duration", "Size", "Rate"]) {
    if (node[`min${kind}`] !== undefined) parts.push(`≥ ${node[`min${kind}`]}`);
    if (node[`max${kind}`] !== undefined) parts.push(`≤ ${node[`max${kind}`]}`);
  }
  return parts.length ? `(${parts.join(", ")})` : "";
}

function range(node) {
  const lo = node.minimum;
  const hi = node.maximum;
  if (lo !== undefined && hi !== undefined) return `${lo}–${hi}`;
  const parts = [];
  if (lo !== undefined) parts.push(`≥ ${lo}`);
  if (node.exclusiveMinimum !== undefined) parts.push(`> ${node.exclusiveMinimum}`);
  if (hi !== undefined) parts.push(`≤ ${hi}`);
  if (node.exclusiveMaximum !== undefined) parts.push(`< ${node.exclusiveMaximum}`);
  return parts.join(", ");
}

function baseType(node) {
  return [].concat(node.type ?? "any").join(" or ");
}

function constraintOf(node) {
  const parts = [];
  if (node.pattern) parts.push(`matches ${code(node.pattern)}`);
  const r = range(node);
  if (r) parts.push(r);
  if (node.minLength) parts.push(`at least ${node.minLength} character${node.minLength === 1 ? "" : "s"}`);
  return parts.join("; ");
}

function words(list) {
  return list.length <= 1 ? (list[0] ?? "") : `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`;
}

/** A value as inline code: strings bare, the rest as compact YAML-like flow. */
function code(value) {
  const show = (v) => {
    if (typeof v === "string") return v;
    if (Array.isArray(v)) return `[${v.map(show).join(", ")}]`;
    if (v && typeof v === "object") {
      const e = Object.entries(v);
      return e.length === 0 ? "{}" : `{ ${e.map(([k, x]) => `${k}: ${show(x)}`).join(", ")} }`;
    }
    return String(v);
  };
  const s = show(value);
  return s.includes("`") ? `\`\` ${s} \`\`` : `\`${s}\``;
}

function oneLine(text) {
  return String(text)
    .replace(/\s*\n\s*/g, " ")
    .trim();
}

/** Text for a GFM table cell: one line, pipes escaped (also inside code spans, as GFM requires). */
function cell(text) {
  return oneLine(text).replace(/\|/g, "\\|");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
