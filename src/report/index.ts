/** Outputs of `mbc simulate`: the text table, the HTML report and the progress bar. All pure. */
export { escapeHtml, type ReportOptions, renderReport } from "./html.js";
export { createProgress, noProgress, type Progress, renderProgress } from "./progress.js";
export { renderTable, type TableOptions } from "./table.js";

/** Time buckets of the report's charts: about one a second, from 20 to 120. */
export function seriesBuckets(durationMs: number): number {
  return Math.min(120, Math.max(20, Math.round(durationMs / 1000)));
}
