import type { DiagnosticCode } from "../../src/diagnostic.js";

/**
 * Every diagnostic code of the contract (spec-v1.md, "Diagnostics"), written out here rather
 * than taken from the code, so that a code the contract names but mbc lacks fails the tests.
 */
export const CONTRACT_CODES: readonly DiagnosticCode[] = [
  "yaml-syntax",
  "duplicate-key",
  "schema",
  "unknown-key",
  "unknown-reference",
  "name-clash",
  "cycle",
  "unreachable",
  "port-conflict",
  "handler-not-found",
  "handler-outside",
  "unknown-builtin",
  "overloaded",
  "low-headroom",
  "weight-capacity-mismatch",
  "retry-storm",
  "timeout-inversion",
  "ttl-heartbeat",
];
