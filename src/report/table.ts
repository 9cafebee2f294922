/**
 * `mbc simulate --format table`: the simulation as aligned text tables. Pure (result → string);
 * the caller decides on colour.
 */
import { createColors } from "picocolors";
import type { ServiceResult, SimulationResult } from "../simulate/result.js";
import { assessService, type LoadLevel, strictFailures, unavailableHere } from "../validate/simulate-findings.js";
import { count, DASH, duration, fixed, ms, pct, rate } from "./numbers.js";
import { ALL_WELL, backPressure, resentText, unavailableText } from "./verdict.js";

type Paint = (s: string) => string;

interface Column {
  /** Spans neighbouring columns with the same group. */
  group: string;
  head: string;
  align: "left" | "right";
}

interface Cell {
  text: string;
  paint?: Paint;
}

type Row = (string | Cell)[];

const GAP = "  ";

/** Lays out columns: widths from headers and cells, group headers spanning their columns. */
function layout(columns: Column[], rows: Row[], c: { bold: Paint; dim: Paint }): string[] {
  const cell = (r: Row, k: number): Cell => {
    const v = r[k] ?? "";
    return typeof v === "string" ? { text: v } : v;
  };
  const widths = columns.map((col, k) => Math.max(col.head.length, ...rows.map((r) => cell(r, k).text.length)));
  // A group header wider than its columns widens its last column.
  for (let k = 0; k < columns.length; ) {
    let end = k;
    while (end + 1 < columns.length && columns[end + 1]?.group === columns[k]?.group) end++;
    const span = widths.slice(k, end + 1).reduce((a, b) => a + b, 0) + GAP.length * (end - k);
    const need = (columns[k] as Column).group.length;
    if (need > span) widths[end] = (widths[end] as number) + need - span;
    k = end + 1;
  }
  // The last column is not padded on the right: lines end where their text ends, colour or not.
  const pad = (text: string, k: number) => {
    const w = widths[k] as number;
    if (columns[k]?.align === "right") return text.padStart(w);
    return k === columns.length - 1 ? text : text.padEnd(w);
  };
  const lines: string[] = [];
  // Group headers, each left-aligned over its span.
  let groupLine = "";
  for (let k = 0; k < columns.length; ) {
    let end = k;
    while (end + 1 < columns.length && columns[end + 1]?.group === columns[k]?.group) end++;
    const span = widths.slice(k, end + 1).reduce((a, b) => a + b, 0) + GAP.length * (end - k);
    const group = (columns[k] as Column).group;
    const last = end === columns.length - 1 || columns.slice(end + 1).every((col) => col.group === "");
    const text = last ? group : group.padEnd(span);
    if (group !== "" || !last) groupLine += (k === 0 ? "" : GAP) + (k === 0 ? c.bold(text) : c.dim(text));
    k = end + 1;
  }
  lines.push(groupLine);
  lines.push(c.dim(columns.map((_, k) => pad(columns[k]?.head ?? "", k)).join(GAP)));
  for (const r of rows) {
    const parts = columns.map((_, k) => {
      const { text, paint } = cell(r, k);
      const padded = pad(text, k);
      return paint ? paint(padded) : padded;
    });
    lines.push(parts.join(GAP));
  }
  return lines;
}

const LEVEL_TEXT: Record<LoadLevel, string> = { ok: "ok", "low-headroom": "low headroom", overloaded: "OVERLOADED" };

function instanceLabel(svc: ServiceResult, k: number): string {
  const i = svc.instances[k];
  if (!i) return "";
  const parts = [`#${i.index}`];
  if (svc.instances.some((x) => x.weight !== 1)) parts.push(`w${i.weight}`);
  parts.push(i.capacityPerSec === null ? "∞" : rate(i.capacityPerSec));
  return `  ${parts.join(" ")}`;
}

export interface TableOptions {
  color: boolean;
  /** The spec file, shown in the title line. */
  file?: string;
}

/** The whole text output of `mbc simulate`: title, sources, load, retries and latency, verdict. */
export function renderTable(result: SimulationResult, options: TableOptions): string {
  const c = createColors(options.color);
  const level: Record<LoadLevel, Paint> = { ok: c.green, "low-headroom": c.yellow, overloaded: (s) => c.bold(c.red(s)) };
  const out: string[] = [];

  const env = result.environment === null ? "" : ` (env ${result.environment})`;
  out.push(
    `${c.bold(`${result.system}${env}`)} ${c.dim("·")} seed ${result.seed} ${c.dim("·")} ${duration(result.durationMs)} simulated ${c.dim("·")} ${result.arrival} arrivals ${c.dim("·")} ${result.serviceTime} service times ${c.dim("·")} ${count(result.events)} events`,
  );
  if (options.file) out.push(c.dim(options.file));
  out.push("");

  // Sources.
  out.push(
    ...layout(
      [
        { group: "SOURCES", head: "", align: "left" },
        { group: "in", head: "rate", align: "right" },
        { group: "in", head: "records", align: "right" },
        { group: "in", head: "refused", align: "right" },
        { group: "batches", head: "count", align: "right" },
        { group: "batches", head: "mean", align: "right" },
        { group: "closed by", head: "records", align: "right" },
        { group: "closed by", head: "bytes", align: "right" },
        { group: "closed by", head: "wait", align: "right" },
      ],
      result.sources.map((s) => [
        s.name,
        rate(s.ratePerSec),
        count(s.records),
        s.recordsRefused > 0 ? { text: count(s.recordsRefused), paint: c.red } : "0",
        count(s.batches),
        s.meanBatchRecords === null ? DASH : s.meanBatchRecords.toFixed(1),
        count(s.closedBy.maxRecords),
        count(s.closedBy.maxBytes),
        count(s.closedBy.maxWait),
      ]),
      c,
    ),
  );
  out.push("");

  // Back-pressure, only when a source felt it: its queue, batches sent again, dead letters.
  const pressed = result.sources.filter(backPressure);
  if (pressed.length > 0) {
    out.push(
      ...layout(
        [
          { group: "BACK-PRESSURE", head: "source", align: "left" },
          { group: "queue (records)", head: "max", align: "right" },
          { group: "queue (records)", head: "limit", align: "right" },
          { group: "sent again", head: "sends", align: "right" },
          { group: "batches that waited (ms)", head: "count", align: "right" },
          { group: "batches that waited (ms)", head: "p50", align: "right" },
          { group: "batches that waited (ms)", head: "p99", align: "right" },
          { group: "batches that waited (ms)", head: "max", align: "right" },
          { group: "dead-", head: "lettered", align: "right" },
          { group: "waiting", head: "at end", align: "right" },
        ],
        pressed.map((s) => [
          s.name,
          s.maxQueueRecords >= s.queueLimitRecords ? { text: count(s.maxQueueRecords), paint: c.red } : count(s.maxQueueRecords),
          count(s.queueLimitRecords),
          count(s.resends),
          count(s.waitedMs.count),
          ms(s.waitedMs.p50),
          ms(s.waitedMs.p99),
          ms(s.waitedMs.max),
          s.batchesDeadLettered > 0 ? { text: count(s.batchesDeadLettered), paint: c.red } : "0",
          count(s.batchesWaitingAtEnd),
        ]),
        c,
      ),
    );
    out.push("");
  }

  // Load, per service and instance.
  const loadRows: Row[] = [];
  for (const svc of result.services) {
    const a = assessService(svc, result.durationMs);
    const w = svc.queueWaitMs;
    loadRows.push([
      { text: svc.name, paint: c.bold },
      "",
      "",
      "",
      "",
      "",
      pct(svc.weightedLoad),
      pct(svc.predicted.weightedLoad),
      ms(w.p50),
      ms(w.p95),
      ms(w.p99),
      svc.infiniteCapacity ? { text: "no capacity", paint: c.dim } : { text: LEVEL_TEXT[a.level], paint: level[a.level] },
    ]);
    svc.instances.forEach((inst, k) => {
      const ia = a.instances[k];
      const iw = inst.queueWaitMs;
      const status =
        ia === undefined || ia.load === null
          ? { text: DASH, paint: c.dim }
          : { text: ia.growing ? `${LEVEL_TEXT[ia.level]}, queue grows` : LEVEL_TEXT[ia.level], paint: level[ia.level] };
      loadRows.push([
        instanceLabel(svc, k),
        pct(inst.share),
        pct(inst.predicted?.share),
        pct(inst.utilisation),
        pct(inst.predicted?.utilisation),
        pct(ia?.offered),
        "",
        "",
        ms(iw.p50),
        ms(iw.p95),
        ms(iw.p99),
        status,
      ]);
    });
  }
  out.push(
    ...layout(
      [
        { group: "LOAD", head: "service / instance", align: "left" },
        { group: "share", head: "sim", align: "right" },
        { group: "share", head: "static", align: "right" },
        { group: "sᵢ utilisation", head: "sim", align: "right" },
        { group: "sᵢ utilisation", head: "static", align: "right" },
        { group: "offered", head: "sim", align: "right" },
        { group: "L(S,W)", head: "sim", align: "right" },
        { group: "L(S,W)", head: "static", align: "right" },
        { group: "queue wait (ms)", head: "p50", align: "right" },
        { group: "queue wait (ms)", head: "p95", align: "right" },
        { group: "queue wait (ms)", head: "p99", align: "right" },
        { group: "", head: "status", align: "left" },
      ],
      loadRows,
      c,
    ),
  );
  out.push("");

  // Retries and latency, per service, then end to end.
  const retryRows: Row[] = result.services.map((svc) => [
    { text: svc.name, paint: c.bold },
    count(svc.requests),
    fixed(svc.retriesPerRequest),
    fixed(svc.predicted.retriesPerRequest),
    fixed(svc.retryFigure),
    fixed(svc.predicted.retryFigure),
    svc.retriesRefused > 0 ? { text: count(svc.retriesRefused), paint: c.red } : "0",
    svc.batchesUnavailable > 0 ? { text: count(svc.batchesUnavailable), paint: c.yellow } : "0",
    ms(svc.latencyMs.p50),
    ms(svc.latencyMs.p95),
    ms(svc.latencyMs.p99),
  ]);
  const e = result.endToEndMs;
  retryRows.push([{ text: "end to end", paint: c.bold }, count(e.count), "", "", "", "", "", "", ms(e.p50), ms(e.p95), ms(e.p99)]);
  out.push(
    ...layout(
      [
        { group: "RETRIES AND LATENCY", head: "service", align: "left" },
        { group: "batches", head: "in", align: "right" },
        { group: "r (retries/request)", head: "sim", align: "right" },
        { group: "r (retries/request)", head: "static", align: "right" },
        { group: "R(r,t,m)", head: "sim", align: "right" },
        { group: "R(r,t,m)", head: "static", align: "right" },
        { group: "retries", head: "refused", align: "right" },
        { group: "batches", head: "unavailable", align: "right" },
        { group: "latency (ms)", head: "p50", align: "right" },
        { group: "latency (ms)", head: "p95", align: "right" },
        { group: "latency (ms)", head: "p99", align: "right" },
      ],
      retryRows,
      c,
    ),
  );
  out.push("");

  // The verdict: what --strict fails on, then what is worth a look.
  const failures = strictFailures(result);
  for (const f of failures) out.push(`${c.red("✖")} ${f}`);
  for (const svc of result.services) {
    const a = assessService(svc, result.durationMs);
    if (a.level === "low-headroom" && a.peak) {
      const who = svc.instances.length === 1 ? `service "${svc.name}"` : `instance ${a.peak.index} of service "${svc.name}"`;
      out.push(`${c.yellow("⚠")} ${who} has little headroom (${pct(a.peak.load)} of its capacity)`);
    }
    if (unavailableHere(svc)) out.push(`${c.yellow("⚠")} ${unavailableText(svc)}`);
  }
  for (const s of result.sources) if (s.resends > 0) out.push(`${c.yellow("⚠")} ${resentText(s)}`);
  if (failures.length === 0) out.push(`${c.green("✔")} ${ALL_WELL}`);
  for (const w of result.warnings) out.push(`${c.dim("note:")} ${w}`);
  return `${out.join("\n")}\n`;
}
