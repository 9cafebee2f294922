/** What the targets' READMEs say of a source. */
import type { SourceModel } from "../../src/model/types.js";

/**
 * Where records come in: an http source's port and URL path, a file source's file; null where
 * the source's kind has none (a generator makes its own).
 */
export function sourceIntake(s: SourceModel): { port: number | null; location: string | null } {
  return { port: "port" in s ? s.port : null, location: "location" in s ? s.location : null };
}
