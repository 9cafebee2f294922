/**
 * Hostile specs, what reaches the terminal: comments, keys and values with terminal escapes
 * (window title, clear screen, OSC 52 clipboard writes), C1 controls, bidirectional overrides
 * and line breaks that would forge a diagnostic or a CI workflow command. Stylish output shows
 * them escaped; only mbc's own colours are raw.
 */
import { describe, expect, it } from "vitest";
import { formatters } from "../../src/format/index.js";
import { escapeControls } from "../../src/format/terminal.js";
import { validateText } from "../../src/validate/index.js";

const ESC = "\u001b";
const BEL = "\u0007";
const TITLE = `${ESC}]0;owned${BEL}`;
const CLEAR = `${ESC}[2J`;
const CLIPBOARD = `${ESC}]52;c;ZXZpbA==${BEL}`;

function stylish(file: string, text: string, color = false): string {
  const r = validateText(file, text);
  return formatters.stylish(r.diagnostics, { color, files: [file], lineText: (_, line) => r.parsed.lineText(line), version: "0.0.0-test" });
}

/** Every escape sequence in the text, except colours (SGR: ESC [ digits m). */
function rawControls(text: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return [...text.replace(/\u001b\[[0-9;]*m/g, "").matchAll(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g)].map((m) => m[0]);
}

const base = ["mbc: 1", "name: demo", "sources:", "  in: {type: http, port: 8080, to: work}", "services:"];

describe("a code frame", () => {
  const text = [...base, `  work: {handler: "builtin:log", bogus: 1} # ${TITLE} ${CLEAR} ${CLIPBOARD}`, ""].join("\n");

  it.each([false, true])("shows a comment's escapes as text (colour %s)", (color) => {
    const out = stylish("spec.yaml", text, color);
    expect(rawControls(out)).toEqual([]);
    expect(out).toContain("# \\e]0;owned\\u0007 \\e[2J \\e]52;c;ZXZpbA==\\u0007");
  });

  it("keeps mbc's own colours", () => {
    expect(stylish("spec.yaml", text, true)).toContain(`${ESC}[31merror${ESC}[39m`);
  });

  it("puts the caret under the column after escapes before it", () => {
    const line = `  work: {x-a: "${CLEAR}", handler: "builtin:log", bogus: 1}`;
    const out = stylish("spec.yaml", [...base, line, ""].join("\n")).split("\n");
    const frame = out.findIndex((l) => l.startsWith("  6 | "));
    const shown = (out[frame] as string).slice("  6 | ".length);
    const caret = (out[frame + 1] as string).slice("    | ".length).indexOf("^");
    expect(shown.slice(caret)).toMatch(/^bogus: 1/);
  });

  it("escapes C1 controls (a lone CSI) and bidirectional overrides", () => {
    const out = stylish("spec.yaml", [...base, '  work: {handler: "builtin:log", bogus: 1} # \u009b2J \u202e', ""].join("\n"));
    expect(rawControls(out)).toEqual([]);
    expect(out).toContain("\\u009b2J \\u202e");
  });

  it("escapes a lone carriage return, which would send the cursor back over the line", () => {
    const out = stylish("spec.yaml", [...base, '  work: {handler: "builtin:log", bogus: 1} # \rspec.yaml:1:1 error forged', ""].join("\n"));
    expect(out).not.toContain("\r");
    expect(out).toContain("\\rspec.yaml:1:1 error forged");
  });
});

describe("a key that forges lines", () => {
  const forged = "x\n::error file=evil.yaml, line=1::forged\nevil.yaml:1:1 error schema forged";
  const json = JSON.stringify({
    mbc: 1,
    name: "demo",
    [forged]: 1,
    sources: { in: { type: "http", port: 8080, to: "w" } },
    services: { w: { handler: "builtin:log" } },
  });

  it("is one line of stylish output, with its line breaks escaped", () => {
    const out = stylish("spec.json", json);
    const lines = out.split("\n");
    expect(lines.filter((l) => l.startsWith("::error"))).toEqual([]);
    expect(lines.filter((l) => /^\S+:\d+:\d+ /.test(l))).toHaveLength(1);
    expect(out).toContain('unknown key "x\\n::error file=evil.yaml, line=1::forged\\nevil.yaml:1:1 error schema forged"');
  });

  it("is one workflow command in the github format, with no raw escapes", () => {
    const r = validateText("spec.json", json.replace("forged", `forged${CLEAR}`));
    const out = formatters.github(r.diagnostics, { color: false, files: ["spec.json"], lineText: () => "", version: "0.0.0-test" });
    expect(out.split("\n").filter(Boolean)).toHaveLength(1);
    expect(rawControls(out)).toEqual([]);
  });

  it("in the file's name is escaped too", () => {
    const out = stylish(`evil${CLEAR}\n::error::x.yaml`, [...base, '  work: {handler: "builtin:log", bogus: 1}', ""].join("\n"));
    expect(rawControls(out)).toEqual([]);
    expect(out.split("\n").filter((l) => l.startsWith("::error"))).toEqual([]);
  });
});

describe("escapeControls", () => {
  it("names ESC, LF, CR and tab, and writes the rest as \\u escapes", () => {
    expect(escapeControls(`a${TITLE}\n\r\t\u0000\u007f\u0085`)).toBe("a\\e]0;owned\\u0007\\n\\r\\t\\u0000\\u007f\\u0085");
  });

  it("leaves printable text alone, including non-ASCII letters and emoji", () => {
    const text = "Bestellungen: größer — 注文 ✓ 🚀 \\e stays";
    expect(escapeControls(text)).toBe(text);
  });
});
