/**
 * Parsing: bytes → YAML document with source ranges. Problems are collected, never thrown;
 * positions come from the document's ranges through a LineCounter, only when asked for.
 */
import { type Alias, Composer, type Document, isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, type Node, type Pair, Parser, visit } from "yaml";
import type { Diagnostic, DiagnosticCode, Severity } from "../diagnostic.js";
import { fromPointer } from "../pointer.js";
import { MAX_DEPTH, measureTokens, tooDeepWithAliases } from "./depth.js";
import { anchorResolver, measureExpansion } from "./expansion.js";
import { yamlErrorHints } from "./hints.js";
import { decodeSpec, MAX_SPEC_BYTES } from "./text.js";

export { MAX_DEPTH } from "./limits.js";
export { MAX_SPEC_BYTES } from "./text.js";

/** At most this many aliases are expanded; more indicates a "billion laughs" document. */
export const MAX_ALIAS_COUNT = 1000;

/**
 * The largest a spec may grow when its aliases are expanded, in bytes of its source text (each
 * alias counts the text of the node it repeats): twice the largest file. A few aliases of a large
 * map would otherwise pass the alias count and make a model, and artefacts, of hundreds of MB.
 */
export const MAX_EXPANDED_SIZE = 2 * MAX_SPEC_BYTES;

export interface Position {
  line: number;
  column: number;
}

export interface ParsedSpec {
  file: string;
  text: string;
  /** The plain value (undefined when the file could not be parsed). */
  value: unknown;
  diagnostics: Diagnostic[];
  /** Position of a JSON Pointer in this file, falling back to the closest existing ancestor. */
  locate(pointer: string, at?: "key" | "value"): Position & { exact: boolean };
  /** The source line (for code frames). */
  lineText(line: number): string;
}

export interface ParseOptions {
  maxBytes?: number;
  maxAliasCount?: number;
  /** Bytes the spec may reach with its aliases expanded (default MAX_EXPANDED_SIZE). */
  maxExpandedSize?: number;
  /** The file's real size, when the caller read only part of an oversized file. */
  size?: number;
}

export function parseSpec(file: string, input: Uint8Array | string, options: ParseOptions = {}): ParsedSpec {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const decoded = decodeSpec(bytes, options.maxBytes ?? MAX_SPEC_BYTES, options.size ?? bytes.length);
  const lineCounter = new LineCounter();
  const text = decoded.text;
  const diagnostics: Diagnostic[] = [];
  let doc: Document.Parsed | undefined;
  let value: unknown;

  const pos = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const report = (code: DiagnosticCode, severity: Severity, offset: number, message: string, hint?: string, path = "") => {
    diagnostics.push({ code, severity, message, path, file, ...pos(offset), ...(hint ? { hint } : {}) });
  };

  // Lines are counted from the text, not by the parser: after some syntax errors yaml's parser
  // skips newlines, and every later position would be off. A line ends at "\n", as for yaml.
  lineCounter.addNewLine(0);
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lineCounter.addNewLine(i + 1);

  if (!decoded.ok) {
    report("yaml-syntax", "error", decoded.problem.offset, decoded.problem.message, decoded.problem.hint);
  } else {
    // Duplicate keys are found by keyProblems below: yaml's own check (uniqueKeys: true) compares
    // each key with every earlier key of its map, which is quadratic in the size of `services`.
    // parseAllDocuments, in its two steps: the nesting is measured between them, because composing
    // recurses and a document nested thousands deep would exhaust the stack.
    const tokens = Array.from(new Parser().parse(text));
    const depth = measureTokens(tokens);
    if (depth.tooDeepAt !== undefined) {
      report(
        "yaml-syntax",
        "error",
        depth.tooDeepAt,
        `mappings and lists nest more than ${MAX_DEPTH} levels deep here`,
        "a spec nests a few levels deep; check that this is the right file",
      );
    }
    // An empty file gives an empty stream: no document, no value; the schema check says what is missing.
    const list: Document.Parsed[] =
      depth.tooDeepAt === undefined ? Array.from(new Composer({ uniqueKeys: false, merge: true, strict: true }).compose(tokens)) : [];
    // One syntax error a line: the parser often reports a single slip several times over.
    const errorLines = new Set<number>();
    const explain = yamlErrorHints(text);
    for (const d of list) {
      for (const e of withKeyProblems(d.errors, keyProblems(d))) {
        const line = lineCounter.linePos(e.pos[0]).line;
        const ours = e.code === "DUPLICATE_KEY" || e.code === "COLLECTION_KEY";
        if (!ours && errorLines.has(line)) continue;
        errorLines.add(line);
        if (e.code === "DUPLICATE_KEY" || e.code === "COLLECTION_KEY") {
          const code: DiagnosticCode = e.code === "DUPLICATE_KEY" ? "duplicate-key" : "yaml-syntax";
          const hint = e.hint ?? (code === "duplicate-key" ? "remove one of the two entries, or rename it" : undefined);
          report(code, "error", e.pos[0], cleanYamlMessage(e.message), hint);
          continue;
        }
        // A slip recognised from the text gets words that say how to fix it; its knock-on errors go.
        const better = explain(e);
        if (better === null) continue;
        if (better) report("yaml-syntax", "error", better.offset, better.message, better.hint);
        else report("yaml-syntax", "error", e.pos[0], cleanYamlMessage(e.message));
      }
      for (const w of d.warnings) report("yaml-syntax", "warning", w.pos[0], cleanYamlMessage(w.message));
    }
    if (list.length > 1) {
      const second = list[1] as Document.Parsed;
      report(
        "yaml-syntax",
        "error",
        second.range[0],
        `the file holds ${list.length} YAML documents; a spec is one document`,
        "remove the `---` separator and the documents after the first, or split them into files",
      );
    }
    doc = list[0];
    // An alias needs a `*`: without one there is nothing to expand (the usual case, and a fast one).
    const expansion = doc && !diagnostics.some((d) => d.severity === "error") && text.includes("*") ? measureExpansion(doc) : null;
    const maxExpanded = options.maxExpandedSize ?? MAX_EXPANDED_SIZE;
    // Aliases can also nest the value far deeper than the text (reported before the size: the
    // nesting is what to fix then).
    const aliasProblem = doc && !expansion?.cycle && depth.aliases && !diagnostics.some((d) => d.severity === "error") ? tooDeepWithAliases(doc) : undefined;
    if (expansion?.cycle) {
      report(
        "yaml-syntax",
        "error",
        expansion.cycle.offset,
        `alias "*${expansion.cycle.name}" is inside the node "&${expansion.cycle.name}" it refers to: the spec would never end`,
        "an alias can only repeat a node that is complete before it; copy the values instead",
      );
    } else if (aliasProblem) {
      report(
        "yaml-syntax",
        "error",
        aliasProblem.offset,
        aliasProblem.kind === "circular"
          ? "this alias is inside the node its anchor names: the value would contain itself"
          : `with its aliases expanded, the document nests more than ${MAX_DEPTH} levels deep`,
        aliasProblem.kind === "circular"
          ? "a spec is plain data, like JSON: use an alias only for a node that does not contain it"
          : "a spec nests a few levels deep; here aliases of aliases nest inside each other",
      );
    } else if (expansion && expansion.size > maxExpanded) {
      report(
        "yaml-syntax",
        "error",
        firstAliasOffset(doc as Document),
        `aliases expand the spec to about ${Math.round(expansion.size / 1024 / 1024)} MiB, more than the ${Math.round(maxExpanded / 1024 / 1024)} MiB allowed`,
        expansion.largest
          ? `"*${expansion.largest.name}" repeats ${expansion.largest.size} bytes each time it is used: a spec needs few, small aliases`
          : "a spec needs few, small aliases",
      );
    } else if (doc && !diagnostics.some((d) => d.severity === "error")) {
      try {
        value = doc.toJS({ maxAliasCount: options.maxAliasCount ?? MAX_ALIAS_COUNT });
      } catch (err) {
        value = undefined;
        const unresolved = firstUnresolvedAlias(doc);
        if (unresolved) {
          // yaml throws the same error type for this: it is not an expansion problem.
          report(
            "yaml-syntax",
            "error",
            unresolved.offset,
            `alias "*${unresolved.name}" has no anchor "&${unresolved.name}" before it`,
            "define the anchor before the alias, or fix the alias's name",
          );
        } else {
          report(
            "yaml-syntax",
            "error",
            firstAliasOffset(doc),
            `aliases expand too much (${err instanceof Error ? err.message : String(err)})`,
            `a spec needs few aliases; at most ${options.maxAliasCount ?? MAX_ALIAS_COUNT} expansions are allowed`,
          );
        }
      }
    }
  }

  const lines = text.split(/\r?\n/);
  const keyIndex = new WeakMap<object, Map<string, Pair>>();
  const pairsOf = (map: { items: Pair[] }): Map<string, Pair> => {
    let index = keyIndex.get(map);
    if (!index) {
      index = new Map();
      for (const pair of map.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (!index.has(k)) index.set(k, pair);
      }
      keyIndex.set(map, index);
    }
    return index;
  };

  let resolveAlias: ((alias: Alias) => Node | undefined) | undefined;
  const locate = (pointer: string, at: "key" | "value" = "value"): Position & { exact: boolean } => {
    if (!doc) return { line: 1, column: 1, exact: false };
    const start = (n: unknown): number | undefined => {
      const r = (n as Node | null | undefined)?.range;
      return r ? r[0] : undefined;
    };
    let node: unknown = doc.contents;
    let keyNode: unknown;
    let best = start(node) ?? 0;
    const segments = fromPointer(pointer);
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i] as string;
      if (isAlias(node)) {
        resolveAlias ??= anchorResolver(doc);
        node = resolveAlias(node);
      }
      let next: unknown;
      let nextKey: unknown;
      if (isMap(node)) {
        const pair = pairsOf(node).get(seg);
        if (pair) {
          nextKey = pair.key;
          next = pair.value;
        }
      } else if (isSeq(node) && /^(0|[1-9][0-9]*)$/.test(seg)) {
        next = node.items[Number(seg)];
      }
      if (next === undefined && nextKey === undefined) {
        // The closest existing ancestor: its key, where it has one.
        return { ...pos(start(keyNode) ?? best), exact: false };
      }
      node = next;
      keyNode = nextKey;
      best = start(next) ?? start(nextKey) ?? best;
    }
    // `key:` with nothing after it gives an empty scalar, not null: that value is missing too.
    const missing = node === null || node === undefined || (isScalar(node) && node.range?.[0] === node.range?.[1]);
    const useKey = keyNode !== undefined && (at === "key" || missing || isCollection(node));
    const offset = useKey ? (start(keyNode) ?? best) : (start(node) ?? start(keyNode) ?? best);
    return { ...pos(offset), exact: true };
  };

  return { file, text, value, diagnostics, locate, lineText: (line) => lines[line - 1] ?? "" };
}

interface YamlProblem {
  code: string;
  pos: [number, number];
  message: string;
  hint?: string;
}

/**
 * Keys that would not survive the step to JSON, in one pass with a set per map:
 * - keys equal once the spec is JSON (an object key is a string: `1`, `"1"` and `1.0` are all
 *   "1", `null`, `~` and `""` are all ""), which yaml's toJS would fold into one, dropping a value;
 * - a second merge key `<<` in one mapping;
 * - a key that is a list or a mapping, which JSON cannot hold (toJS would stringify it).
 */
function keyProblems(doc: Document): YamlProblem[] {
  const problems: YamlProblem[] = [];
  let resolve: ((alias: Alias) => Node | undefined) | undefined;
  visit(doc, {
    Map(_, map) {
      const seen = new Map<string, Node | null>();
      let merge = false;
      for (const pair of map.items) {
        const written = pair.key as Node | null;
        if (isAlias(written)) resolve ??= anchorResolver(doc);
        const key = isAlias(written) ? ((resolve as (alias: Alias) => Node | undefined)(written) ?? null) : written;
        const at = written?.range?.[0] ?? (pair.value as Node | null)?.range?.[0] ?? map.range?.[0] ?? 0;
        if (key !== null && !isScalar(key)) {
          problems.push({
            code: "COLLECTION_KEY",
            pos: [at, at + 1],
            message: `a key must be a string, number, boolean or null, not a ${isSeq(key) ? "list" : "mapping"}: JSON has only text keys`,
          });
          continue;
        }
        const value = key === null ? null : key.value;
        if (typeof value === "symbol") {
          if (merge)
            problems.push({
              code: "DUPLICATE_KEY",
              pos: [at, at + 1],
              message: "a second merge key `<<` in this mapping",
              hint: "merge several mappings with one key: `<<: [*first, *second]`",
            });
          merge = true;
          continue;
        }
        // As yaml's toJS names the property: null is "", everything else String(value).
        const json = value === null || value === undefined ? "" : String(value);
        const earlier = seen.get(json);
        if (earlier === undefined) {
          seen.set(json, written);
          continue;
        }
        const shown = (n: Node | null): string => {
          if (isAlias(n)) return `*${n.source}`;
          if (!isScalar(n)) return "(empty)";
          if (typeof n.value === "string") return JSON.stringify(n.value);
          return n.source ? n.source : n.value === null ? "(empty)" : String(n.value);
        };
        const same = shown(earlier) === shown(written);
        problems.push({
          code: "DUPLICATE_KEY",
          pos: [at, at + 1],
          message: same
            ? `the key ${JSON.stringify(json)} is already in this mapping`
            : `the key ${shown(written)} is the same JSON key as ${shown(earlier)} earlier in this mapping: both are ${JSON.stringify(json)}`,
        });
      }
    },
  });
  return problems.sort((a, b) => a.pos[0] - b.pos[0]);
}

/** yaml's errors with the key problems merged in by position, keeping yaml's own order. */
function withKeyProblems(errors: readonly YamlProblem[], extra: readonly YamlProblem[]): YamlProblem[] {
  const out: YamlProblem[] = [];
  let k = 0;
  const flushBefore = (offset: number) => {
    for (; k < extra.length && (extra[k] as YamlProblem).pos[0] < offset; k++) out.push(extra[k] as YamlProblem);
  };
  for (const e of errors) {
    flushBefore(e.pos[0]);
    out.push(e);
  }
  flushBefore(Number.POSITIVE_INFINITY);
  return out;
}

function firstUnresolvedAlias(doc: Document): { offset: number; name: string } | undefined {
  let found: { offset: number; name: string } | undefined;
  const resolve = anchorResolver(doc);
  visit(doc, {
    Alias(_, node) {
      if (resolve(node) !== undefined) return undefined;
      found = { offset: node.range?.[0] ?? 0, name: node.source };
      return visit.BREAK;
    },
  });
  return found;
}

function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

/** yaml's messages end with " at line L, column C" and a code frame; we print our own. */
function cleanYamlMessage(message: string): string {
  return message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? message;
}
