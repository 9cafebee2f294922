import { createColors } from "picocolors";
import type { Diagnostic } from "../diagnostic.js";
import { escapeControls } from "./terminal.js";
import type { Formatter } from "./types.js";

/**
 * file:line:col, severity, code, message, a code frame with a caret, and the hint. Everything
 * that comes from the spec or its name is shown with control characters escaped: only the
 * colours added here reach the terminal raw.
 */
export const stylish: Formatter = (diagnostics, ctx) => {
  const c = createColors(ctx.color);
  const paint = { error: c.red, warning: c.yellow, info: c.blue } as const;
  const out: string[] = [];
  for (const d of diagnostics) {
    out.push(`${c.bold(`${escapeControls(d.file)}:${d.line}:${d.column}`)} ${paint[d.severity](d.severity)} ${c.dim(d.code)} ${escapeControls(d.message)}`);
    out.push(...frame(d, ctx.lineText(d.file, d.line), c.dim, paint[d.severity]));
    if (d.hint) out.push(`  ${c.cyan("hint:")} ${escapeControls(d.hint)}`);
    out.push("");
  }
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.filter((d) => d.severity === "warning").length;
  const infos = diagnostics.length - errors - warnings;
  if (diagnostics.length === 0) {
    out.push(c.green(`✔ ${ctx.files.length === 1 ? escapeControls(ctx.files[0] ?? "") : `${ctx.files.length} files`}: no problems`));
  } else {
    const parts = [`${errors} error${errors === 1 ? "" : "s"}`, `${warnings} warning${warnings === 1 ? "" : "s"}`];
    if (infos) parts.push(`${infos} info`);
    const summary = `${errors ? "✖" : "⚠"} ${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"} (${parts.join(", ")})`;
    out.push((errors ? c.red : c.yellow)(c.bold(summary)));
  }
  return `${out.join("\n")}\n`;
};

function frame(d: Diagnostic, text: string, dim: (s: string) => string, paint: (s: string) => string): string[] {
  if (text === "" && d.line === 1 && d.column === 1) return [];
  const gutter = String(d.line);
  // Tabs would shift the caret; the line is shown with them expanded to one space, as the column
  // counts them. Other control characters are escaped, and the caret moves by what they became.
  const show = (s: string) => escapeControls(s.replace(/\t/g, " "));
  const shown = show(text);
  const clipped = shown.length > 160 ? `${shown.slice(0, 157)}...` : shown;
  const caretAt = Math.min(show(text.slice(0, Math.max(d.column - 1, 0))).length, clipped.length);
  return [`  ${dim(`${gutter} |`)} ${clipped}`, `  ${" ".repeat(gutter.length)} ${dim("|")} ${" ".repeat(caretAt)}${paint("^")}`];
}
