import type { Log, ReportingDescriptor, Result } from "sarif";
import type { DiagnosticCode } from "../diagnostic.js";
import { CODES } from "../validate/codes.js";
import type { Formatter } from "./types.js";

const level = { error: "error", warning: "warning", info: "note" } as const;

/** SARIF 2.1.0, for code-scanning uploads. */
export const sarif: Formatter = (diagnostics, ctx) => {
  const codes = Object.keys(CODES) as DiagnosticCode[];
  const rules: ReportingDescriptor[] = codes.map((id) => ({
    id,
    shortDescription: { text: CODES[id].description },
    defaultConfiguration: { level: level[CODES[id].severity] },
  }));
  const results: Result[] = diagnostics.map((d) => ({
    ruleId: d.code,
    ruleIndex: codes.indexOf(d.code),
    level: level[d.severity],
    message: { text: d.hint ? `${d.message}\n${d.hint}` : d.message },
    locations: [
      {
        physicalLocation: {
          artifactLocation: { uri: d.file.split("\\").join("/").split("/").map(encodeURIComponent).join("/") },
          region: { startLine: d.line, startColumn: d.column },
        },
        logicalLocations: d.path === "" ? [] : [{ fullyQualifiedName: d.path, kind: "object" }],
      },
    ],
  }));
  const log: Log = {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: { driver: { name: "mbc", version: ctx.version, rules } },
        results,
      },
    ],
  };
  return `${JSON.stringify(log, null, 2)}\n`;
};
