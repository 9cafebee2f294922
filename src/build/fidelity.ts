/**
 * How faithfully each target carries each field of the spec. Every generator classifies every
 * field (the type is exhaustive over the schema's fields), `mbc build --explain` and FIDELITY.md
 * show the table, and a field the user set that a target approximates or ignores gives a
 * warning, never silence.
 */
import { SPEC_FIELDS, type SpecField } from "../generated/spec-fields.js";
import type { Json } from "../model/merge.js";

/** `maps`: carried exactly; `approximates`: carried, with a difference the note explains; `ignores`: dropped; `n/a`: not a deployment setting (simulation, another target's settings). */
export type Fidelity = "maps" | "approximates" | "ignores" | "n/a";

export interface FieldFidelity {
  how: Fidelity;
  /** One line: where it goes, or why not. */
  note: string;
}

export type FidelityTable = Readonly<Record<SpecField, FieldFidelity>>;

export { SPEC_FIELDS, type SpecField };

/** The concrete paths (with names in place of `*`) at which the spec sets a field. */
export function setPaths(spec: Json, field: string): string[] {
  const out: string[] = [];
  const walk = (node: Json | undefined, parts: string[], at: string[]) => {
    if (parts.length === 0) {
      if (node !== undefined) out.push(at.join("."));
      return;
    }
    if (typeof node !== "object" || node === null || Array.isArray(node)) return;
    const [head, ...rest] = parts as [string, ...string[]];
    if (head === "*") for (const [k, v] of Object.entries(node)) walk(v, rest, [...at, k]);
    else walk(node[head], rest, [...at, head]);
  };
  walk(spec, field.split("."), []);
  return out;
}

export interface FidelityWarning {
  target: string;
  field: string;
  /** Where the spec sets it, e.g. `services.enrich.resources.cpus`. */
  at: string;
  how: "approximates" | "ignores";
  note: string;
}

/** Warnings for the fields the spec sets that a target approximates or ignores. */
export function fidelityWarnings(spec: Json, target: string, table: FidelityTable): FidelityWarning[] {
  const out: FidelityWarning[] = [];
  for (const field of SPEC_FIELDS) {
    const f = table[field];
    if (f.how !== "approximates" && f.how !== "ignores") continue;
    for (const at of setPaths(spec, field)) out.push({ target, field, at, how: f.how, note: f.note });
  }
  return out;
}

const words: Record<Fidelity, string> = { maps: "maps", approximates: "approximates", ignores: "ignores", "n/a": "—" };

/** The fidelity table as Markdown: one row a field, one column a target. */
export function renderFidelity(tables: Readonly<Record<string, FidelityTable>>, header?: string): string {
  const targets = Object.keys(tables);
  const lines = [
    ...(header ? [`<!-- ${header} -->`] : []),
    "# Fidelity",
    "",
    "How each target carries each field of the spec: **maps** (exactly), **approximates** (see the note), **ignores**, or — (not a deployment setting). `mbc build` warns about every field you set that a target approximates or ignores.",
    "",
    `| field | ${targets.join(" | ")} |`,
    `|---|${targets.map(() => "---").join("|")}|`,
  ];
  for (const field of SPEC_FIELDS) {
    const cells = targets.map((t) => {
      const f = (tables[t] as FidelityTable)[field];
      return f.how === "n/a" ? "—" : `${words[f.how]}: ${f.note.replace(/\|/g, "\\|")}`;
    });
    lines.push(`| \`${field}\` | ${cells.join(" | ")} |`);
  }
  return `${lines.join("\n")}\n`;
}
