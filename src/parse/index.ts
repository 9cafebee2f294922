/**
 * Parsing: bytes → YAML document with source ranges. Problems are collected, never thrown;
 * positions come from the document's ranges through a LineCounter, only when asked for.
 */
import { type Document, isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, type Node, type Pair, parseAllDocuments, visit } from "yaml";
import type { Diagnostic, DiagnosticCode, Severity } from "../diagnostic.js";
import { fromPointer } from "../pointer.js";
import { decodeSpec, MAX_SPEC_BYTES } from "./text.js";

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

  if (!decoded.ok) {
    // Count lines of the text before the problem so that the position is right (line 1 starts at 0).
    lineCounter.addNewLine(0);
    for (let i = text.indexOf("\n"); i !== -1 && i < decoded.problem.offset; i = text.indexOf("\n", i + 1)) lineCounter.addNewLine(i + 1);
    report("yaml-syntax", "error", decoded.problem.offset, decoded.problem.message, decoded.problem.hint);
  } else {
    const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true, strict: true });
    // An empty file gives an empty stream: no document, no value; the schema check says what is missing.
    const list: Document.Parsed[] = Array.from(docs);
    // One syntax error a line: the parser often reports a single slip several times over.
    const errorLines = new Set<number>();
    for (const d of list) {
      for (const e of d.errors) {
        const line = lineCounter.linePos(e.pos[0]).line;
        if (e.code !== "DUPLICATE_KEY" && errorLines.has(line)) continue;
        errorLines.add(line);
        const code: DiagnosticCode = e.code === "DUPLICATE_KEY" ? "duplicate-key" : "yaml-syntax";
        const hint = code === "duplicate-key" ? "remove one of the two entries, or rename it" : undefined;
        report(code, "error", e.pos[0], cleanYamlMessage(e.message), hint);
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
    if (doc && !diagnostics.some((d) => d.severity === "error")) {
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

  const lines = text.split(/\r?\n|\r/);
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
