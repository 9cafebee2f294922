/** The verdict's words, the same in the table and the HTML report. */
import type { ServiceResult, SourceResult } from "../simulate/result.js";
import { count, duration } from "./numbers.js";

/** What the verdict says when --strict has nothing to fail on. */
export const ALL_WELL = "no service overloaded, no retry refused by a budget, no record refused or dead-lettered";

/** Whether a source felt back-pressure: its queue filled, or batches went back to it. */
export function backPressure(s: SourceResult): boolean {
  return s.recordsRefused > 0 || s.resends > 0 || s.batchesDeadLettered > 0 || s.batchesWaitingAtEnd > 0;
}

/** The verdict's line about a service unavailable to batches because of its own failures. */
export function unavailableText(svc: ServiceResult): string {
  return `service "${svc.name}" was unavailable to ${count(svc.batchesUnavailable)} ${svc.batchesUnavailable === 1 ? "batch" : "batches"} after its quick retries (sent again from above)`;
}

/** The verdict's line about a source that sent batches again. */
export function resentText(s: SourceResult): string {
  const longest = s.waitedMs.max === null ? "" : `; a batch waited up to ${duration(s.waitedMs.max)}`;
  return `source "${s.name}" sent batches again ${count(s.resends)} ${s.resends === 1 ? "time" : "times"} after a stage was unavailable${longest}`;
}
