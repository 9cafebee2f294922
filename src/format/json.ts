import type { Formatter } from "./types.js";

/** `{"diagnostics": [ … ]}` with the contract's fields, in the contract's order. */
export const json: Formatter = (diagnostics) =>
  `${JSON.stringify({
    diagnostics: diagnostics.map((d) => ({
      code: d.code,
      severity: d.severity,
      message: d.message,
      path: d.path,
      file: d.file,
      line: d.line,
      column: d.column,
      ...(d.hint === undefined ? {} : { hint: d.hint }),
    })),
  })}\n`;
