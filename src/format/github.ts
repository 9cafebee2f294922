import { escapeControlsExceptLineBreaks } from "./terminal.js";
import type { Formatter } from "./types.js";

// Workflow commands: data escapes %, CR and LF; property values also escape ':' and ','.
const escapeData = (s: string) => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
const escapeProperty = (s: string) => escapeData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");
const command = { error: "error", warning: "warning", info: "notice" } as const;

/** GitHub Actions annotations, one line a diagnostic. */
export const github: Formatter = (diagnostics) =>
  diagnostics
    .map((d) => {
      const props = `file=${escapeProperty(d.file)},line=${d.line},col=${d.column},title=${escapeProperty(`mbc ${d.code}`)}`;
      // Line breaks are the annotation's own (encoded below); other controls would reach the log raw.
      const text = escapeControlsExceptLineBreaks(d.hint ? `${d.message}\n${d.hint}` : d.message);
      return `::${command[d.severity]} ${props}::${escapeData(text)}\n`;
    })
    .join("");
