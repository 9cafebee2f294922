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
  "target-constraint": {
    severity: "error",
    description: "a value that a target cannot carry (a warning for the targets neither the spec nor --target names)",
  },
  "sim-overloaded": { severity: "error", description: "the simulation sent an instance more work than it can do, or kept it busy all the time" },
  "sim-low-headroom": { severity: "warning", description: "the simulation kept an instance at 80% of its capacity or more" },
  "sim-retries-refused": { severity: "warning", description: "in the simulation, a service's retry budget refused retries" },
  "sim-unavailable": {
    severity: "warning",
    description: "in the simulation, a service's own failures made it unavailable to batches after their quick retries (they were sent again: back-pressure)",
  },
  "sim-records-refused": { severity: "warning", description: "in the simulation, a source's queue was full and it refused records (clients get 503)" },
  "sim-dead-lettered": { severity: "warning", description: "in the simulation, a source dead-lettered batches that waited longer than retry.deadLetterAfter" },
  "sim-too-large": { severity: "error", description: "the simulation would take more events than allowed (--max-events)" },
};
