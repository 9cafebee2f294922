// Build-time code generation from schema/mbc.schema.json, the one source of truth:
//  - src/generated/schema-validator.js: the ajv validator as standalone code, so that the
//    CLI never compiles a schema when it starts;
//  - src/generated/spec-types.ts: the TypeScript types of the raw spec;
//  - src/generated/spec-fields.ts and spec-defaults.ts: the spec's fields, defaults and enums.
// And from schema/system.schema.json, the contract between `mbc build` and the runtime:
//  - src/generated/system-validator.js: the runtime's check of system.json, standalone too;
//  - src/generated/system-types.ts: the normalised model's TypeScript types.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import standaloneCode from "ajv/dist/standalone/index.js";
import { transform } from "esbuild";
import { compile } from "json-schema-to-typescript";
import { boundKeywords } from "./schema-keywords.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const schema = JSON.parse(readFileSync(join(root, "schema/mbc.schema.json"), "utf8"));
const out = join(root, "src/generated");
mkdirSync(out, { recursive: true });

// Annotation keywords that editors (the YAML language server) understand; ajv must accept them.
export const editorKeywords = ["markdownDescription", "markdownEnumDescriptions", "enumDescriptions", "defaultSnippets", "deprecationMessage", "doNotSuggest"];

const ajv = new Ajv2020({
  allErrors: true,
  verbose: true,
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
  inlineRefs: false,
  code: { source: true, esm: true, lines: false, optimize: true },
});
for (const keyword of editorKeywords) ajv.addKeyword({ keyword, schemaType: ["string", "array", "object", "boolean"] });
// The bounds of durations, sizes and rates (scripts/schema-keywords.mjs).
for (const definition of boundKeywords) ajv.addKeyword(definition);
// The validator needs no editor annotations: compiling it from a schema without them keeps
// the CLI bundle smaller (the error mapping reads titles, descriptions and examples only).
const editorOnly = new Set(["markdownDescription", "markdownEnumDescriptions", "enumDescriptions", "defaultSnippets", "deprecationMessage", "doNotSuggest"]);
const stripEditorOnly = (node) =>
  Array.isArray(node)
    ? node.map(stripEditorOnly)
    : node && typeof node === "object"
      ? Object.fromEntries(
          Object.entries(node)
            .filter(([k]) => !editorOnly.has(k))
            .map(([k, v]) => [k, k === "examples" || k === "default" || k === "const" || k === "enum" ? v : stripEditorOnly(v)]),
        )
      : node;
const validate = ajv.compile(stripEditorOnly(schema));
// ajv's ESM output still calls require() for its runtime helpers: turn those into imports.
const imports = [];
const code = standaloneCode(ajv, validate).replace(/const (\w+) = require\("(ajv\/dist\/runtime\/[\w]+)"\)\.default;/g, (_, name, mod) => {
  imports.push(`import ${name}$module from "${mod}.js";\nconst ${name} = ${name}$module.default ?? ${name}$module;`);
  return "";
});
if (code.includes("require(")) throw new Error("unexpected require() left in the standalone validator");
writeSame(
  join(out, "schema-validator.js"),
  `// generated from schema/mbc.schema.json by scripts/gen-schema-code.mjs — do not edit\n${imports.join("\n")}\n${code}`,
);
writeSame(
  join(out, "schema-validator.d.ts"),
  `import type { ErrorObject } from "ajv";\ndeclare const validate: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };\nexport default validate;\n`,
);

const types = await compile(schema, "Spec", {
  bannerComment: "// generated from schema/mbc.schema.json by scripts/gen-schema-code.mjs — do not edit",
  additionalProperties: false,
  unreachableDefinitions: true,
  style: { singleQuote: false },
  strictIndexSignatures: true,
});
writeSame(join(out, "spec-types.ts"), types);

// Every field of the spec as a dotted path (`services.*.retry.budget.ratio`): the rows of each
// target's fidelity table, so that a field added to the schema cannot go unclassified.
const fields = [];
const resolveRef = (node) =>
  node && typeof node.$ref === "string"
    ? {
        ...node.$ref
          .slice(2)
          .split("/")
          .reduce((n, k) => n[k], schema),
        ...node,
        $ref: undefined,
      }
    : node;
const walkFields = (node, prefix, depth) => {
  node = resolveRef(node);
  if (!node || depth > 8) return;
  const props = node.properties;
  const isLeaf = !props && !(node.additionalProperties && typeof node.additionalProperties === "object");
  if (isLeaf || node.type !== "object") {
    if (prefix) fields.push(prefix);
    return;
  }
  if (props) for (const [k, v] of Object.entries(props)) walkFields(v, prefix ? `${prefix}.${k}` : k, depth + 1);
  else if (node.additionalProperties && typeof node.additionalProperties === "object") {
    const inner = resolveRef(node.additionalProperties);
    if (inner?.properties) walkFields(inner, `${prefix}.*`, depth + 1);
    else fields.push(prefix);
  }
};
for (const [k, v] of Object.entries(schema.properties)) if (k !== "environments") walkFields(v, k, 1);
writeSame(
  join(out, "spec-fields.ts"),
  `// generated from schema/mbc.schema.json by scripts/gen-schema-code.mjs — do not edit\nexport const SPEC_FIELDS = ${JSON.stringify(fields, null, 2)} as const;\nexport type SpecField = (typeof SPEC_FIELDS)[number];\n`,
);

function writeSame(file, text) {
  let old;
  try {
    old = readFileSync(file, "utf8");
  } catch {}
  if (old !== text) writeFileSync(file, text);
}

// The schema's defaults and enums as constants the code uses, so that neither is written twice.
// SPEC_DEFAULTS follows $defs: each object's property defaults (nested objects within), and the
// defaults of an `if: {type: {const: T}} then:` branch under the key T (the http source's path).
// Each enum is a tuple named after where it is: RETRY_BACKOFF, SOURCE_TYPE, SERVICE_LOAD_BALANCING…
const defaultsOf = (node) => {
  node = resolveRef(node);
  const out = {};
  for (const [k, v] of Object.entries(node?.properties ?? {})) {
    const prop = resolveRef(v);
    if (prop && "default" in prop) out[k] = prop.default;
    else if (prop?.type === "object" && prop.properties && !(prop.$ref ?? v.$ref)) {
      const inner = defaultsOf(prop);
      if (Object.keys(inner).length > 0) out[k] = inner;
    }
  }
  for (const branch of node?.allOf ?? []) {
    const kind = branch.if?.properties?.type?.const;
    const inner = branch.then ? defaultsOf(branch.then) : {};
    if (typeof kind === "string" && Object.keys(inner).length > 0) out[kind] = inner;
  }
  return out;
};
// Overlay patches (sourcePatch, servicePatch) restate their originals: not again.
const originals = Object.entries(schema.$defs).filter(([name]) => !name.endsWith("Patch"));
const specDefaults = {};
for (const [name, def] of originals) {
  const d = defaultsOf(def);
  if (Object.keys(d).length > 0) specDefaults[name] = d;
}
const snake = (s) =>
  s
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toUpperCase();
const enums = [];
const enumsOf = (node, name) => {
  node = resolveRef(node);
  for (const [k, v] of Object.entries(node?.properties ?? {})) {
    const prop = resolveRef(v);
    const values = prop?.enum ?? resolveRef(prop?.items)?.enum;
    if (Array.isArray(values)) enums.push([`${snake(name)}_${snake(k)}`, values]);
    else if (prop?.type === "object" && prop.properties && !v.$ref) enumsOf(prop, `${name}_${k}`);
  }
};
for (const [name, def] of originals) enumsOf(def, name);
// The builtin handlers are the `builtin:NAME` values the service's config schemas are chosen by.
const builtins = [];
const findBuiltins = (node) => {
  if (Array.isArray(node)) node.forEach(findBuiltins);
  else if (node && typeof node === "object") {
    if (typeof node.const === "string" && node.const.startsWith("builtin:")) builtins.push(node.const.slice("builtin:".length));
    for (const v of Object.values(node)) findBuiltins(v);
  }
};
findBuiltins(schema.$defs.service);
enums.push(["BUILTIN_HANDLERS", [...new Set(builtins)]]);
writeSame(
  join(out, "spec-defaults.ts"),
  [
    "// generated from schema/mbc.schema.json by scripts/gen-schema-code.mjs — do not edit",
    `export const SPEC_DEFAULTS = ${JSON.stringify(specDefaults, null, 2)} as const;`,
    ...enums.map(([n, values]) => `export const ${n} = ${JSON.stringify(values)} as const;`),
    "",
  ].join("\n"),
);

// system.json (schema/system.schema.json). Its `$ref`s to `urn:mbc:spec:v1#…` take an enum from
// the spec's schema: they are replaced by what validates (type, enum, items), without the spec's
// titles and editor texts, so that the model's types inline the enum's values.
const SPEC_ID = "urn:mbc:spec:v1#";
const validating = new Set(["type", "enum", "const", "items", "uniqueItems"]);
const specNode = (ref) =>
  ref
    .slice(SPEC_ID.length + 1)
    .split("/")
    .reduce((node, key) => {
      if (node?.[key] === undefined) throw new Error(`system.schema.json: no ${ref} in mbc.schema.json`);
      return node[key];
    }, schema);
const onlyValidating = (node) =>
  Object.fromEntries(
    Object.entries(node)
      .filter(([k]) => validating.has(k))
      .map(([k, v]) => [k, k === "items" ? onlyValidating(v) : v]),
  );
const inlineSpecRefs = (node) => {
  if (Array.isArray(node)) return node.map(inlineSpecRefs);
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string" && node.$ref.startsWith(SPEC_ID)) {
    const { $ref, ...rest } = node;
    return { ...onlyValidating(specNode($ref)), ...inlineSpecRefs(rest) };
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inlineSpecRefs(v)]));
};
const systemSchema = inlineSpecRefs(JSON.parse(readFileSync(join(root, "schema/system.schema.json"), "utf8")));

// The validator is a good part of the runtime's bundle, so it is kept small: compiled from the
// schema without its words and without ajv's messages (the runtime words its own from each
// error's keyword and params, src/runtime/config/schema-errors.ts), one loop over `required`,
// each error pushed through one small function and without its schemaPath (nothing reads it),
// and minified (its names stay short in the bundle, which esbuild prints unminified).
const annotations = new Set(["title", "description", "$comment", "deprecated", "tsType"]);
const mapValues = (object, fn) => Object.fromEntries(Object.entries(object).map(([k, v]) => [k, fn(v)]));
const withoutAnnotations = (node) => {
  if (Array.isArray(node)) return node.map(withoutAnnotations);
  if (!node || typeof node !== "object") return node;
  const view = {};
  for (const [k, v] of Object.entries(node)) {
    if (annotations.has(k)) continue;
    // `properties` and `$defs` map names (a field may be called "description") to schemas.
    view[k] = k === "const" || k === "enum" ? v : k === "properties" || k === "$defs" ? mapValues(v, withoutAnnotations) : withoutAnnotations(v);
  }
  return view;
};
const systemAjv = new Ajv2020({
  allErrors: true,
  strict: true,
  strictRequired: false,
  discriminator: true,
  messages: false,
  inlineRefs: false,
  loopRequired: 1,
  code: { source: true, esm: true, lines: false, optimize: true },
});
const validateSystem = systemAjv.compile(withoutAnnotations(systemSchema));
const systemImports = [];
const systemCode = standaloneCode(systemAjv, validateSystem).replace(/const (\w+) = require\("(ajv\/dist\/runtime\/[\w]+)"\)\.default;/g, (_, name, mod) => {
  systemImports.push(`import ${name}$module from "${mod}.js";\nconst ${name} = ${name}$module.default ?? ${name}$module;`);
  return "";
});
if (systemCode.includes("require(")) throw new Error("unexpected require() left in the standalone system validator");
// ajv writes `const errN = {…};if(vErrors === null){vErrors = [errN];}else {vErrors.push(errN);}errors++;`
// for every error; a change in that text fails here, not at run time.
let pushes = 0;
const compact = systemCode
  .replace(/const (err\d+) = (\{[^;]*?\});if\(vErrors === null\)\{vErrors = \[\1\];\}else \{vErrors\.push\(\1\);\}errors\+\+;/g, (_, __, error) => {
    pushes++;
    return `vErrors = pushError(vErrors, ${error});errors++;`;
  })
  .replace(/schemaPath:"[^"]*",/g, "");
if (compact.includes("vErrors.push(")) throw new Error(`gen: an error push of the system validator was left as ajv wrote it (${pushes} rewritten)`);
const minified = await transform(
  `function pushError(errors, error) { if (errors === null) return [error]; errors.push(error); return errors; }\n${systemImports.join("\n")}\n${compact}`,
  { minify: true, format: "esm", target: "node20", legalComments: "none" },
);
writeSame(join(out, "system-validator.js"), `// generated from schema/system.schema.json by scripts/gen-schema-code.mjs — do not edit\n${minified.code}`);
writeSame(
  join(out, "system-validator.d.ts"),
  `import type { ErrorObject } from "ajv";\nimport type { SystemFile } from "./system-types.js";\ndeclare const validate: ((data: unknown) => data is SystemFile) & { errors?: ErrorObject[] | null };\nexport default validate;\n`,
);

// The model's types leave out what is deprecated: the fields system.json v1 still carries on
// every source, null where the source's type has none (see the schema's v1Null). A union with a
// `discriminator` is the union of its branches: its own `properties` are there for the
// validator's messages (the values its tag may take).
const deprecatedRef = (node) =>
  node?.deprecated === true || (typeof node?.$ref === "string" && systemSchema.$defs[node.$ref.split("/").pop()]?.deprecated === true);
const typeView = (node) => {
  if (Array.isArray(node)) return node.map(typeView);
  if (!node || typeof node !== "object") return node;
  const view = {};
  for (const [k, v] of Object.entries(node)) {
    if (node.discriminator && (k === "properties" || k === "required")) continue;
    if (k === "properties" || k === "$defs") view[k] = mapValues(Object.fromEntries(Object.entries(v).filter(([, p]) => !deprecatedRef(p))), typeView);
    else view[k] = typeView(v);
  }
  return view;
};
const systemTypes = await compile(typeView(systemSchema), "SystemFile", {
  bannerComment: "// generated from schema/system.schema.json by scripts/gen-schema-code.mjs — do not edit",
  additionalProperties: false,
  unreachableDefinitions: true,
  ignoreMinAndMaxItems: true,
  style: { singleQuote: false },
});
writeSame(join(out, "system-types.ts"), systemTypes);
