/** A semantic rule: one file per rule under rules/, named after its code. */
import type { DiagnosticCode, Finding, Severity } from "../diagnostic.js";
import type { StageGraph } from "../model/graph.js";
import type { Json } from "../model/merge.js";
import type { ServiceLoad } from "../model/static-load.js";
import type { Model } from "../model/types.js";
import { fromPointer } from "../pointer.js";

export interface RuleContext {
  model: Model;
  graph: StageGraph;
  /** The static load model of every service, in the model's order. */
  loads: ServiceLoad[];
  /** The effective spec (after the overlay), as plain data. */
  spec: Json;
  /** The spec as written in the file, before any overlay. */
  file: Json;
  /**
   * Whether a handler module exists, by its path relative to the spec's folder; absent when
   * the caller has no file system (the handler-not-found rule is then skipped).
   */
  fileExists?: (relativePath: string) => boolean;
  /**
   * Whether a handler path, with symbolic links followed, leads out of the spec's folder;
   * absent when the caller has no file system (then only the path's own `..` parts count).
   */
  leavesFolder?: (relativePath: string) => boolean;
}

export type RuleFinding = Omit<Finding, "code" | "severity"> & { severity?: Severity };

export interface Rule {
  code: DiagnosticCode;
  severity: Severity;
  /** One line for docs and SARIF. */
  description: string;
  check(ctx: RuleContext): RuleFinding[];
}

/** Whether a pointer exists in plain data. */
export function has(data: Json, pointer: string): boolean {
  let node: unknown = data;
  for (const seg of fromPointer(pointer)) {
    if (typeof node !== "object" || node === null) return false;
    if (!Object.hasOwn(node, seg)) return false;
    node = (node as Record<string, unknown>)[seg];
  }
  return true;
}

/** The first pointer that the spec sets, else the last one given (usually the owner's key). */
export function definedAt(data: Json, ...candidates: string[]): string {
  for (const c of candidates) if (has(data, c)) return c;
  return candidates[candidates.length - 1] ?? "";
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

export function round(x: number, digits = 2): string {
  return Number(x.toFixed(digits)).toString();
}
