/**
 * Parsing: bytes → YAML document with source ranges. Problems are collected, never thrown;
 * positions come from the document's ranges through a LineCounter, only when asked for.
 */
import { Composer, type Document, isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, type Node, type Pair, Parser, visit } from "yaml";
import type { Diagnostic, DiagnosticCode, Severity } from "../diagnostic.js";
import { fromPointer } from "../pointer.js";
import { MAX_DEPTH, measureTokens, tooDeepWithAliases } from "./depth.js";
import { yamlErrorHints } from "./hints.js";
import { decodeSpec, MAX_SPEC_BYTES } from "./text.js";

export { MAX_DEPTH } from "./depth.js";
export { MAX_SPEC_BYTES } from "./text.js";

/** At most this many aliases are expanded; more indicates a "billion laughs" document. */
export const MAX_ALIAS_COUNT = 1000;

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
    // Duplicate keys are found by duplicateKeys below: yaml's own check (uniqueKeys: true) compares
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
      for (const e of withDuplicateKeys(d.errors, duplicateKeys(d))) {
        const line = lineCounter.linePos(e.pos[0]).line;
        if (e.code !== "DUPLICATE_KEY" && errorLines.has(line)) continue;
        errorLines.add(line);
        if (e.code === "DUPLICATE_KEY") {
          report("duplicate-key", "error", e.pos[0], cleanYamlMessage(e.message), "remove one of the two entries, or rename it");
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
    // Aliases can nest the value far deeper than the text, or make it contain itself.
    const aliasProblem = doc && depth.aliases && !diagnostics.some((d) => d.severity === "error") ? tooDeepWithAliases(doc) : undefined;
    if (aliasProblem) {
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
      if (isAlias(node)) node = node.resolve(doc);
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
}

/**
 * The offsets of repeated keys, in one pass with a set per map. The same as yaml's uniqueKeys
 * check: scalar keys are equal when their values are (===), other keys never are.
 */
function duplicateKeys(doc: Document): number[] {
  const offsets: number[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const value = pair.key.value;
        if (Number.isNaN(value)) continue; // NaN !== NaN
        if (seen.has(value)) offsets.push(pair.key.range?.[0] ?? 0);
        else seen.add(value);
      }
    },
  });
  return offsets.sort((a, b) => a - b);
}

/** yaml's errors with the duplicate keys merged in by position, keeping yaml's own order. */
function withDuplicateKeys(errors: readonly YamlProblem[], duplicates: number[]): YamlProblem[] {
  const out: YamlProblem[] = [];
  let k = 0;
  const flushBefore = (offset: number) => {
    for (; k < duplicates.length && (duplicates[k] as number) < offset; k++) {
      const at = duplicates[k] as number;
      out.push({ code: "DUPLICATE_KEY", pos: [at, at + 1], message: "Map keys must be unique" });
    }
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
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) !== undefined) return undefined;
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
