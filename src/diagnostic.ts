/** One diagnostic type from parsing to generation (see the contract's "Diagnostics"). */
export type Severity = "error" | "warning" | "info";

export type DiagnosticCode =
  | "yaml-syntax"
  | "duplicate-key"
  | "schema"
  | "unknown-key"
  | "unknown-reference"
  | "name-clash"
  | "cycle"
  | "unreachable"
  | "port-conflict"
  | "handler-not-found"
  | "handler-outside"
  | "unknown-builtin"
  | "overloaded"
  | "low-headroom"
  | "weight-capacity-mismatch"
  | "retry-storm"
  | "timeout-inversion"
  | "ttl-heartbeat"
  | "registry-setting-unused"
  | "target-constraint"
  | "sim-overloaded"
  | "sim-low-headroom"
  | "sim-retries-refused"
  | "sim-unavailable"
  | "sim-records-refused"
  | "sim-dead-lettered"
  | "sim-too-large";

/** The codes of the simulation's findings (`mbc validate --simulate`, `mbc simulate`): not rules of the spec. */
export type SimulationCode = Extract<DiagnosticCode, `sim-${string}`>;

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  message: string;
  /** JSON Pointer into the spec file ("" is the whole document). */
  path: string;
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  hint?: string;
}

/** What a check reports before positions are attached: the runner maps `path` to file:line:column. */
export interface Finding {
  code: DiagnosticCode;
  severity: Severity;
  message: string;
  /** JSON Pointer into the effective (merged) spec, or into the file when `sourcePath` is set. */
  path: string;
  /** Point at the key rather than the value (a missing value, a whole object). */
  at?: "key" | "value";
  hint?: string;
}

const severityRank: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  if (a.column !== b.column) return a.column - b.column;
  if (a.code !== b.code) return a.code < b.code ? -1 : 1;
  if (a.severity !== b.severity) return severityRank[a.severity] - severityRank[b.severity];
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

export function sortDiagnostics(list: Diagnostic[]): Diagnostic[] {
  return list.sort(compareDiagnostics);
}

export function hasErrors(list: readonly Diagnostic[]): boolean {
  return list.some((d) => d.severity === "error");
}
