import type { DiagnosticCode, Severity } from "../diagnostic.js";
import { rules } from "./rules/index.js";

/** Every diagnostic code with its default severity and one line of description (SARIF, docs). */
export const CODES: Record<DiagnosticCode, { severity: Severity; description: string }> = {
  "yaml-syntax": { severity: "error", description: "the file is not well-formed YAML/JSON" },
  "duplicate-key": { severity: "error", description: "a mapping repeats a key" },
  schema: { severity: "error", description: "the JSON Schema rejects a value" },
  "unknown-key": { severity: "error", description: "a key that is not in the schema" },
  ...(Object.fromEntries(Object.values(rules).map((r) => [r.code, { severity: r.severity, description: r.description }])) as Record<
    keyof typeof rules,
    { severity: Severity; description: string }
  >),
};
