/**
 * The HTML report of `mbc simulate --report FILE.html`: one self-contained page (inline CSS,
 * hand-written inline SVG, no scripts, no external requests) with the verdict, headline figures,
 * per-instance load against capacity, utilisation and queue wait over time, the latency
 * distribution and the summary tables.
 *
 * Pure: a SimulationResult (with its `series`) in, a string out, the same bytes for the same
 * input. Every piece of text from the spec or the result is escaped.
 */
import type { ServiceResult, SimulationResult, SimulationSeries } from "../simulate/result.js";
import { assessService, type LoadLevel, type ServiceAssessment, strictFailures, unavailableHere } from "../validate/simulate-findings.js";
import { count, DASH, duration, fixed, ms, pct, rate, round } from "./numbers.js";
import { ALL_WELL, backPressure, resentText, unavailableText } from "./verdict.js";

export interface ReportOptions {
  /** The spec file, as the user named it. */
  file?: string;
  /** mbc's version, for the footer. */
  version?: string;
}

/** Escapes text for HTML content and for attribute values in double or single quotes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const esc = escapeHtml;

/** Coordinates with one decimal: enough on screen, and stable bytes. */
const n = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

const PALETTE = ["#3b6fb6", "#e07b39", "#3f9c6d", "#c8455a", "#7a5cb8", "#2a9fb0", "#b8860b", "#d16ba5", "#6b7b8c", "#8c564b"];
const colourOf = (k: number) => PALETTE[k % PALETTE.length] as string;

const LEVEL_CLASS: Record<LoadLevel, string> = { ok: "ok", "low-headroom": "warn", overloaded: "bad" };
const LEVEL_TEXT: Record<LoadLevel, string> = { ok: "ok", "low-headroom": "low headroom", overloaded: "overloaded" };

/** About `target` round steps (1, 2 or 5 × 10ᵏ) covering [0, max]. */
function niceStep(max: number, target: number): number {
  if (!(max > 0)) return 1;
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function msLabel(v: number): string {
  if (v === 0) return "0";
  return v >= 1000 ? `${round(v / 1000, 2)} s` : `${round(v, 2)} ms`;
}

function instanceName(svc: ServiceResult, k: number): string {
  return svc.instances.length === 1 ? svc.name : `${svc.name} #${svc.instances[k]?.index ?? k}`;
}

interface Line {
  key: string;
  label: string;
  colour: string;
  points: [number, number][];
  width?: number;
  dash?: boolean;
}

const CHART_W = 960;

/** A line chart: x from 0 to xMax, y from 0 to yMax, with gridlines, ticks and optional marks. */
function lineChart(opts: {
  title: string;
  lines: Line[];
  /** Default 0. */
  xMin?: number;
  xMax: number;
  yMax: number;
  xLabel: (v: number) => string;
  yLabel: (v: number) => string;
  xTicks: number;
  yTicks: number;
  xAxisTitle: string;
  yAxisTitle: string;
  references?: { y: number; label: string; cls: string }[];
  marks?: { x: number; y: number; label: string; colour: string; above?: boolean }[];
}): string {
  const H = 300;
  const m = { left: 64, right: 84, top: 16, bottom: 46 };
  const pw = CHART_W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xMin = opts.xMin ?? 0;
  const X = (v: number) => m.left + (opts.xMax > xMin ? ((v - xMin) / (opts.xMax - xMin)) * pw : 0);
  const Y = (v: number) => m.top + ph - (opts.yMax > 0 ? (Math.min(v, opts.yMax) / opts.yMax) * ph : 0);
  const parts: string[] = [];
  parts.push(
    `<svg class="plot" viewBox="0 0 ${CHART_W} ${H}" width="${CHART_W}" height="${H}" role="img" aria-label="${esc(opts.title)}" xmlns="http://www.w3.org/2000/svg">`,
  );
  const yStep = niceStep(opts.yMax, opts.yTicks);
  for (let v = 0; v <= opts.yMax + yStep * 1e-9; v += yStep) {
    parts.push(`<line class="grid" x1="${m.left}" x2="${CHART_W - m.right}" y1="${n(Y(v))}" y2="${n(Y(v))}"/>`);
    parts.push(`<text class="tick" x="${m.left - 8}" y="${n(Y(v) + 4)}" text-anchor="end">${esc(opts.yLabel(v))}</text>`);
  }
  const xStep = niceStep(opts.xMax - xMin, opts.xTicks);
  for (let v = xMin; v <= opts.xMax + xStep * 1e-9; v += xStep) {
    parts.push(`<line class="grid vertical" x1="${n(X(v))}" x2="${n(X(v))}" y1="${m.top}" y2="${m.top + ph}"/>`);
    parts.push(`<text class="tick" x="${n(X(v))}" y="${m.top + ph + 18}" text-anchor="middle">${esc(opts.xLabel(v))}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.left}" x2="${CHART_W - m.right}" y1="${m.top + ph}" y2="${m.top + ph}"/>`);
  parts.push(`<text class="axis-title" x="${m.left + pw / 2}" y="${H - 6}" text-anchor="middle">${esc(opts.xAxisTitle)}</text>`);
  parts.push(
    `<text class="axis-title" x="14" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${m.top + ph / 2})">${esc(opts.yAxisTitle)}</text>`,
  );
  for (const r of opts.references ?? []) {
    if (r.y > opts.yMax) continue;
    parts.push(`<line class="reference ${esc(r.cls)}" x1="${m.left}" x2="${CHART_W - m.right}" y1="${n(Y(r.y))}" y2="${n(Y(r.y))}"/>`);
    parts.push(`<text class="reference-label ${esc(r.cls)}" x="${CHART_W - m.right + 6}" y="${n(Y(r.y) + 4)}">${esc(r.label)}</text>`);
  }
  for (const line of opts.lines) {
    const pts = line.points.map(([x, y]) => `${n(X(x))},${n(Y(y))}`).join(" ");
    parts.push(
      `<polyline class="line" data-series="${esc(line.key)}" points="${pts}" stroke="${line.colour}" stroke-width="${line.width ?? 2}"${line.dash ? ' stroke-dasharray="6 4"' : ""}><title>${esc(line.label)}</title></polyline>`,
    );
  }
  for (const mark of opts.marks ?? []) {
    parts.push(`<circle class="mark" cx="${n(X(mark.x))}" cy="${n(Y(mark.y))}" r="4.5" fill="${mark.colour}"><title>${esc(mark.label)}</title></circle>`);
    // Near the right edge the label goes to the left of its dot; `above` keeps close marks apart.
    const left = X(mark.x) > m.left + pw * 0.8;
    parts.push(
      `<text class="mark-label" x="${n(X(mark.x) + (left ? -9 : 9))}" y="${n(Y(mark.y) + (mark.above ? -7 : 15))}"${left ? ' text-anchor="end"' : ""}>${esc(mark.label)}</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("\n");
}

function legend(lines: Line[]): string {
  return `<ul class="legend">${lines
    .map((l) => `<li><span class="swatch${l.dash ? " dashed" : ""}" style="--c:${l.colour}"></span>${esc(l.label)}</li>`)
    .join("")}</ul>`;
}

/** Per-instance load against capacity: horizontal bars, a capacity line at 100 %, the static prediction marked. */
function loadChart(result: SimulationResult, assessed: ServiceAssessment[]): string {
  const rowH = 30;
  const headH = 28;
  const m = { left: 200, right: 176, top: 30, bottom: 34 };
  const pw = CHART_W - m.left - m.right;
  let top = 0;
  for (const svc of result.services) top += headH + svc.instances.length * rowH;
  const H = m.top + top + m.bottom;
  let maxValue = 1.25;
  for (const a of assessed) {
    for (const i of a.instances) {
      if (i.load !== null) maxValue = Math.max(maxValue, i.load * 1.08);
      if (i.predicted !== null) maxValue = Math.max(maxValue, i.predicted * 1.08);
    }
  }
  maxValue = Math.min(Math.ceil(maxValue * 4) / 4, 3);
  const X = (v: number) => m.left + (Math.min(v, maxValue) / maxValue) * pw;
  const parts: string[] = [];
  parts.push(
    `<svg class="plot" viewBox="0 0 ${CHART_W} ${H}" width="${CHART_W}" height="${H}" role="img" aria-label="Load of each instance against its capacity" xmlns="http://www.w3.org/2000/svg">`,
  );
  const step = maxValue <= 1.5 ? 0.25 : maxValue <= 2 ? 0.5 : 1;
  for (let v = 0; v <= maxValue + 1e-9; v += step) {
    parts.push(`<line class="grid vertical" x1="${n(X(v))}" x2="${n(X(v))}" y1="${m.top - 6}" y2="${H - m.bottom}"/>`);
    parts.push(`<text class="tick" x="${n(X(v))}" y="${H - m.bottom + 18}" text-anchor="middle">${Math.round(v * 100)}%</text>`);
  }
  parts.push(`<line class="reference warn" x1="${n(X(0.8))}" x2="${n(X(0.8))}" y1="${m.top - 6}" y2="${H - m.bottom}"/>`);
  parts.push(`<text class="reference-label warn" x="${n(X(0.8) - 4)}" y="${m.top - 12}" text-anchor="end">80% headroom</text>`);
  let y = m.top;
  result.services.forEach((svc, s) => {
    const a = assessed[s] as ServiceAssessment;
    const weighted = svc.weightedLoad === null ? "" : ` · L(S,W) ${pct(svc.weightedLoad)} (static ${pct(svc.predicted.weightedLoad)})`;
    parts.push(
      `<text class="group" x="8" y="${y + 19}">${esc(svc.name)}<tspan class="group-detail">${esc(`  ${svc.loadBalancing}${weighted}`)}</tspan></text>`,
    );
    y += headH;
    svc.instances.forEach((inst, k) => {
      const ia = a.instances[k];
      const cy = y + rowH / 2;
      const detail = [`#${inst.index}`];
      if (svc.instances.some((x) => x.weight !== 1)) detail.push(`weight ${inst.weight}`);
      detail.push(inst.capacityPerSec === null ? "no capacity" : rate(inst.capacityPerSec));
      parts.push(`<text class="row-label" x="24" y="${n(cy + 4)}">${esc(detail.join(" · "))}</text>`);
      parts.push(`<rect class="track" x="${m.left}" y="${n(cy - 9)}" width="${pw}" height="18" rx="3"/>`);
      if (ia === undefined || ia.load === null) {
        parts.push(`<text class="value muted" x="${m.left + 8}" y="${n(cy + 4)}">not measured: no capacity</text>`);
      } else {
        const w = Math.max(1, X(ia.load) - m.left);
        const title = `${instanceName(svc, k)}: offered ${pct(ia.offered)} of capacity, busy ${pct(ia.utilisation)} of the run, predicted ${pct(ia.predicted)}`;
        parts.push(
          `<rect class="bar ${LEVEL_CLASS[ia.level]}" data-instance="${esc(`${svc.name}#${inst.index}`)}" data-load="${round(ia.load, 4)}" x="${m.left}" y="${n(cy - 9)}" width="${n(w)}" height="18" rx="3"><title>${esc(title)}</title></rect>`,
        );
        if (ia.load > maxValue) parts.push(`<text class="overflow" x="${n(X(maxValue) - 6)}" y="${n(cy + 4)}" text-anchor="end">»</text>`);
        if (ia.predicted !== null) {
          const px = X(ia.predicted);
          parts.push(
            `<path class="predicted" data-predicted="${round(ia.predicted, 4)}" d="M${n(px)} ${n(cy - 11)} l6 11 l-6 11 l-6 -11 z"><title>${esc(`predicted by the static model: ${pct(ia.predicted)}`)}</title></path>`,
          );
        }
        const predicted = ia.predicted === null ? "" : `<tspan class="value-detail" dx="8">static ${esc(pct(ia.predicted))}</tspan>`;
        parts.push(`<text class="value ${LEVEL_CLASS[ia.level]}" x="${CHART_W - m.right + 12}" y="${n(cy + 4)}">${esc(pct(ia.load))}${predicted}</text>`);
      }
      y += rowH;
    });
  });
  // The capacity line last, over the bars.
  parts.push(`<line class="capacity" x1="${n(X(1))}" x2="${n(X(1))}" y1="${m.top - 6}" y2="${H - m.bottom}"/>`);
  parts.push(`<text class="capacity-label" x="${n(X(1) + 4)}" y="${m.top - 12}">capacity 100%</text>`);
  parts.push("</svg>");
  return parts.join("\n");
}

function timeLines(result: SimulationResult, series: SimulationSeries, pick: "utilisation" | "queueWaitMs"): Line[] {
  const lines: Line[] = [];
  let k = 0;
  result.services.forEach((svc, s) => {
    const ss = series.services[s];
    svc.instances.forEach((inst, i) => {
      const values = ss?.instances[i]?.[pick] ?? null;
      if (values === null || inst.capacityPerSec === null) return;
      const points: [number, number][] = [];
      values.forEach((v, b) => {
        if (v !== null) points.push([(b + 0.5) * series.bucketMs, v]);
      });
      lines.push({ key: `${svc.name}#${inst.index}`, label: instanceName(svc, i), colour: colourOf(k), points });
      k++;
    });
  });
  return lines;
}

function utilisationChart(result: SimulationResult, series: SimulationSeries): string {
  const lines = timeLines(result, series, "utilisation");
  if (lines.length === 0) return `<p class="empty">No instance has a capacity: utilisation is not measured.</p>`;
  return (
    lineChart({
      title: "Utilisation of each instance over time",
      lines,
      xMax: result.durationMs,
      yMax: 1,
      xLabel: (v) => (v === 0 ? "0" : duration(v)),
      yLabel: (v) => `${Math.round(v * 100)}%`,
      xTicks: 8,
      yTicks: 4,
      xAxisTitle: `simulated time (buckets of ${duration(series.bucketMs)})`,
      yAxisTitle: "busy",
      references: [{ y: 0.8, label: "80%", cls: "warn" }],
    }) + legend(lines)
  );
}

function waitChart(result: SimulationResult, series: SimulationSeries): string {
  const lines = timeLines(result, series, "queueWaitMs");
  let max = 0;
  for (const l of lines) for (const [, v] of l.points) max = Math.max(max, v);
  if (lines.length === 0 || max === 0) return `<p class="empty">No attempt waited in a queue.</p>`;
  const yMax = niceStep(max * 1.05, 4) * Math.ceil((max * 1.05) / niceStep(max * 1.05, 4));
  return (
    lineChart({
      title: "Mean queue wait of each instance over time",
      lines,
      xMax: result.durationMs,
      yMax,
      xLabel: (v) => (v === 0 ? "0" : duration(v)),
      yLabel: msLabel,
      xTicks: 8,
      yTicks: 4,
      xAxisTitle: `simulated time (buckets of ${duration(series.bucketMs)})`,
      yAxisTitle: "mean wait",
    }) + legend(lines)
  );
}

function latencyChart(result: SimulationResult, series: SimulationSeries): string {
  const q = series.quantiles;
  const lines: Line[] = [];
  result.services.forEach((svc, s) => {
    const values = series.services[s]?.latencyMs ?? null;
    if (values === null) return;
    lines.push({
      key: svc.name,
      label: `at ${svc.name}`,
      colour: colourOf(s),
      points: values.map((v, k) => [v, q[k] as number]),
    });
  });
  const e2e = series.endToEndMs;
  if (e2e !== null)
    lines.push({
      key: "end-to-end",
      label: "end to end (at the sinks)",
      colour: "#1d2430",
      width: 2.5,
      dash: true,
      points: e2e.map((v, k) => [v, q[k] as number]),
    });
  if (lines.length === 0) return `<p class="empty">No batch completed: no latency to show.</p>`;
  let max = 0;
  let min = Number.POSITIVE_INFINITY;
  for (const l of lines) {
    for (const [v] of l.points) {
      max = Math.max(max, v);
      min = Math.min(min, v);
    }
  }
  // Latencies far from 0 get an axis that starts near them, so that the spread is visible.
  const step = niceStep(max - (min > 0.3 * max ? min : 0), 8);
  const xMin = min > 0.3 * max ? Math.floor(min / step) * step : 0;
  const xMax = Math.max(xMin + step, Math.ceil((max * 1.01) / step) * step);
  const e = result.endToEndMs;
  const marks =
    e.count === 0
      ? []
      : (
          [
            ["p50", e.p50, 0.5],
            ["p95", e.p95, 0.95],
            ["p99", e.p99, 0.99],
          ] as const
        ).map(([name, v, level]) => ({ x: v ?? 0, y: level, label: `${name} ${msLabel(v ?? 0)}`, colour: "#1d2430", above: name === "p99" }));
  return (
    lineChart({
      title: "Latency distribution: share of batches done within a time",
      lines,
      xMin,
      xMax,
      yMax: 1,
      xLabel: msLabel,
      yLabel: (v) => `${Math.round(v * 100)}%`,
      xTicks: 8,
      yTicks: 4,
      xAxisTitle: xMin > 0 ? "latency from a batch's first record (the axis starts above 0)" : "latency from a batch's first record",
      yAxisTitle: "batches done",
      marks,
    }) + legend(lines)
  );
}

function pill(level: LoadLevel, growing = false): string {
  return `<span class="pill ${LEVEL_CLASS[level]}">${esc(LEVEL_TEXT[level])}${growing ? " · queue grows" : ""}</span>`;
}

function summaryTables(result: SimulationResult, assessed: ServiceAssessment[]): string {
  const rows: string[] = [];
  result.services.forEach((svc, s) => {
    const a = assessed[s] as ServiceAssessment;
    const w = svc.queueWaitMs;
    rows.push(
      `<tr class="service"><th scope="row">${esc(svc.name)}</th><td></td><td></td><td></td><td></td><td></td><td>${pct(svc.weightedLoad)}</td><td>${pct(svc.predicted.weightedLoad)}</td><td>${ms(w.p50)}</td><td>${ms(w.p95)}</td><td>${ms(w.p99)}</td><td>${svc.infiniteCapacity ? '<span class="pill none">no capacity</span>' : pill(a.level)}</td></tr>`,
    );
    svc.instances.forEach((inst, k) => {
      const ia = a.instances[k];
      const iw = inst.queueWaitMs;
      const label = `#${inst.index}${svc.instances.some((x) => x.weight !== 1) ? ` · w${inst.weight}` : ""} · ${inst.capacityPerSec === null ? "no capacity" : rate(inst.capacityPerSec)}`;
      rows.push(
        `<tr class="instance"><th scope="row">${esc(label)}</th><td>${pct(inst.share)}</td><td>${pct(inst.predicted?.share)}</td><td>${pct(inst.utilisation)}</td><td>${pct(inst.predicted?.utilisation)}</td><td>${pct(ia?.offered)}</td><td></td><td></td><td>${ms(iw.p50)}</td><td>${ms(iw.p95)}</td><td>${ms(iw.p99)}</td><td>${ia === undefined || ia.load === null ? DASH : pill(ia.level, ia.growing)}</td></tr>`,
      );
    });
  });
  const load = `<table class="summary" data-table="load">
<thead><tr><th rowspan="2" scope="col">service / instance</th><th colspan="2" scope="colgroup">share</th><th colspan="2" scope="colgroup">sᵢ utilisation</th><th scope="col">offered</th><th colspan="2" scope="colgroup">L(S,W)</th><th colspan="3" scope="colgroup">queue wait (ms)</th><th rowspan="2" scope="col">status</th></tr>
<tr><th>sim</th><th>static</th><th>sim</th><th>static</th><th>sim</th><th>sim</th><th>static</th><th>p50</th><th>p95</th><th>p99</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>`;

  const retryRows = result.services.map(
    (svc) =>
      `<tr class="service"><th scope="row">${esc(svc.name)}</th><td>${count(svc.requests)}</td><td>${fixed(svc.retriesPerRequest)}</td><td>${fixed(svc.predicted.retriesPerRequest)}</td><td>${fixed(svc.retryFigure)}</td><td>${fixed(svc.predicted.retryFigure)}</td><td class="${svc.retriesRefused > 0 ? "bad-text" : ""}">${count(svc.retriesRefused)}</td><td class="${svc.batchesUnavailable > 0 ? "warn-text" : ""}">${count(svc.batchesUnavailable)}</td><td>${ms(svc.latencyMs.p50)}</td><td>${ms(svc.latencyMs.p95)}</td><td>${ms(svc.latencyMs.p99)}</td></tr>`,
  );
  const e = result.endToEndMs;
  retryRows.push(
    `<tr class="service total"><th scope="row">end to end</th><td>${count(e.count)}</td><td></td><td></td><td></td><td></td><td></td><td></td><td>${ms(e.p50)}</td><td>${ms(e.p95)}</td><td>${ms(e.p99)}</td></tr>`,
  );
  const retries = `<table class="summary" data-table="retries">
<thead><tr><th rowspan="2" scope="col">service</th><th scope="col">batches</th><th colspan="2" scope="colgroup">r (retries/request)</th><th colspan="2" scope="colgroup">R(r,t,m)</th><th scope="col">retries</th><th scope="col">batches</th><th colspan="3" scope="colgroup">latency (ms)</th></tr>
<tr><th>in</th><th>sim</th><th>static</th><th>sim</th><th>static</th><th>refused</th><th>unavailable</th><th>p50</th><th>p95</th><th>p99</th></tr></thead>
<tbody>
${retryRows.join("\n")}
</tbody></table>`;

  const sourceRows = result.sources.map(
    (s) =>
      `<tr><th scope="row">${esc(s.name)}</th><td>${rate(s.ratePerSec)}</td><td>${count(s.records)}</td><td class="${s.recordsRefused > 0 ? "bad-text" : ""}">${count(s.recordsRefused)}</td><td>${count(s.batches)}</td><td>${s.meanBatchRecords === null ? DASH : s.meanBatchRecords.toFixed(1)}</td><td>${count(s.closedBy.maxRecords)}</td><td>${count(s.closedBy.maxBytes)}</td><td>${count(s.closedBy.maxWait)}</td></tr>`,
  );
  const sources = `<table class="summary" data-table="sources">
<thead><tr><th rowspan="2" scope="col">source</th><th colspan="3" scope="colgroup">in</th><th colspan="2" scope="colgroup">batches</th><th colspan="3" scope="colgroup">closed by</th></tr>
<tr><th>rate</th><th>records</th><th>refused</th><th>count</th><th>mean size</th><th>maxRecords</th><th>maxBytes</th><th>maxWait</th></tr></thead>
<tbody>
${sourceRows.join("\n")}
</tbody></table>`;
  // Back-pressure, only when a source felt it (as in the text table).
  const pressed = result.sources.filter(backPressure);
  const pressureRows = pressed.map(
    (s) =>
      `<tr><th scope="row">${esc(s.name)}</th><td class="${s.maxQueueRecords >= s.queueLimitRecords ? "bad-text" : ""}">${count(s.maxQueueRecords)}</td><td>${count(s.queueLimitRecords)}</td><td>${count(s.resends)}</td><td>${count(s.waitedMs.count)}</td><td>${ms(s.waitedMs.p50)}</td><td>${ms(s.waitedMs.p99)}</td><td>${ms(s.waitedMs.max)}</td><td class="${s.batchesDeadLettered > 0 ? "bad-text" : ""}">${count(s.batchesDeadLettered)}</td><td>${count(s.batchesWaitingAtEnd)}</td></tr>`,
  );
  const pressure =
    pressed.length === 0
      ? ""
      : `\n<table class="summary" data-table="back-pressure">
<thead><tr><th rowspan="2" scope="col">source</th><th colspan="2" scope="colgroup">queue (records)</th><th scope="col">sent again</th><th colspan="4" scope="colgroup">batches that waited (ms)</th><th scope="col">dead-</th><th scope="col">waiting</th></tr>
<tr><th>max</th><th>limit</th><th>sends</th><th>count</th><th>p50</th><th>p99</th><th>max</th><th>lettered</th><th>at end</th></tr></thead>
<tbody>
${pressureRows.join("\n")}
</tbody></table>`;
  return `${load}\n${retries}\n${sources}${pressure}`;
}

function verdict(result: SimulationResult, assessed: ServiceAssessment[]): string {
  const bad = strictFailures(result);
  const warn: string[] = [];
  result.services.forEach((svc, s) => {
    const a = assessed[s] as ServiceAssessment;
    if (a.level === "low-headroom" && a.peak)
      warn.push(
        `${svc.instances.length === 1 ? `service "${svc.name}"` : `instance ${a.peak.index} of service "${svc.name}"`} has little headroom (${pct(a.peak.load)} of its capacity)`,
      );
    if (unavailableHere(svc)) warn.push(unavailableText(svc));
  });
  for (const s of result.sources) if (s.resends > 0) warn.push(resentText(s));
  const cls = bad.length > 0 ? "bad" : warn.length > 0 ? "warn" : "ok";
  const headline =
    bad.length > 0
      ? `The simulation found ${bad.length === 1 ? "a problem" : `${bad.length} problems`}`
      : warn.length > 0
        ? "Within capacity, with things to watch"
        : "Every service within capacity";
  const items = [...bad.map((t) => `<li class="bad">${esc(t)}</li>`), ...warn.map((t) => `<li class="warn">${esc(t)}</li>`)];
  if (bad.length === 0) items.push(`<li class="ok">${esc(ALL_WELL)}</li>`);
  return `<section class="verdict ${cls}" data-verdict="${cls}"><h2>${esc(headline)}</h2><ul>${items.join("")}</ul></section>`;
}

function kpis(result: SimulationResult, assessed: ServiceAssessment[]): string {
  const e = result.endToEndMs;
  let p: { name: string; load: number; level: LoadLevel } | null = null;
  for (const [s, svc] of result.services.entries()) {
    const peak = assessed[s]?.peak ?? null;
    if (peak === null || peak.load === null || (p !== null && peak.load <= p.load)) continue;
    const k = svc.instances.findIndex((i) => i.index === peak.index);
    p = { name: instanceName(svc, k), load: peak.load, level: peak.level };
  }
  const records = result.sources.reduce((a, s) => a + s.records, 0);
  const retries = result.services.reduce((a, s) => a + s.retries, 0);
  const refused = result.services.reduce((a, s) => a + s.retriesRefused, 0);
  const resent = result.sources.reduce((a, s) => a + s.resends, 0);
  const turnedAway = result.sources.reduce((a, s) => a + s.recordsRefused, 0);
  const tile = (label: string, value: string, detail: string, cls = "") =>
    `<div class="kpi ${cls}"><div class="kpi-label">${esc(label)}</div><div class="kpi-value">${esc(value)}</div><div class="kpi-detail">${esc(detail)}</div></div>`;
  return `<section class="kpis">
${tile("peak load", p === null ? DASH : pct(p.load), p === null ? "no capacity known" : p.name, p === null ? "" : LEVEL_CLASS[p.level])}
${tile("end-to-end p99", e.p99 === null ? DASH : msLabel(e.p99), e.count === 0 ? "no batch completed" : `p50 ${msLabel(e.p50 ?? 0)} · p95 ${msLabel(e.p95 ?? 0)}`)}
${tile("records in", count(records), turnedAway > 0 ? `${count(turnedAway)} refused: a queue was full` : `${count(e.count)} batches reached a sink`, turnedAway > 0 ? "bad" : "")}
${tile("retries", count(retries), `${count(refused)} refused by a budget · ${count(resent)} batches sent again`, refused > 0 ? "bad" : resent > 0 ? "warn" : "")}
</section>`;
}

const CSS = `
:root { --ok: #2f9e62; --warn: #d99a00; --bad: #d1435b; --ink: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f4f5f7; color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 24px 40px; }
header h1 { margin: 0; font-size: 28px; letter-spacing: -0.01em; }
header .eyebrow { text-transform: uppercase; letter-spacing: 0.08em; font-size: 11px; color: var(--muted); font-weight: 600; }
header .description { margin: 4px 0 0; color: var(--muted); }
.meta { display: flex; flex-wrap: wrap; gap: 6px; margin: 12px 0 0; padding: 0; list-style: none; }
.meta li { background: #fff; border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; font-size: 12px; color: var(--muted); }
.meta b { color: var(--ink); font-weight: 600; }
.verdict { margin: 20px 0 0; border-radius: 10px; padding: 14px 18px; border: 1px solid; }
.verdict h2 { margin: 0 0 6px; font-size: 17px; }
.verdict ul { margin: 0; padding-left: 20px; }
.verdict.ok { background: #eef8f2; border-color: #bfe3cd; }
.verdict.warn { background: #fdf6e3; border-color: #f0d98c; }
.verdict.bad { background: #fcedef; border-color: #f2b8c2; }
.verdict li.bad::marker { color: var(--bad); } .verdict li.warn::marker { color: var(--warn); } .verdict li.ok::marker { color: var(--ok); }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 16px 0 0; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; border-top: 4px solid var(--line); }
.kpi.ok { border-top-color: var(--ok); } .kpi.warn { border-top-color: var(--warn); } .kpi.bad { border-top-color: var(--bad); }
.kpi-label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.05em; }
.kpi-value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi-detail { font-size: 12px; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px 14px; margin: 16px 0 0; }
.card h2 { margin: 0; font-size: 17px; }
.card .lede { margin: 2px 0 10px; color: var(--muted); font-size: 13px; }
figure { margin: 0; }
svg.plot { display: block; width: 100%; height: auto; font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
svg .grid { stroke: #eceef2; stroke-width: 1; }
svg .axis { stroke: #98a2b3; stroke-width: 1; }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .axis-title { fill: var(--muted); font-size: 12px; }
svg .group { fill: var(--ink); font-weight: 650; font-size: 13px; }
svg .group-detail { fill: var(--muted); font-weight: 400; font-size: 12px; }
svg .row-label { fill: var(--ink); font-size: 12px; }
svg .track { fill: #f2f4f7; }
svg .bar.ok { fill: var(--ok); } svg .bar.warn { fill: var(--warn); } svg .bar.bad { fill: var(--bad); }
svg .value { font-size: 12px; font-weight: 600; font-variant-numeric: tabular-nums; }
svg .value-detail { fill: var(--muted); font-weight: 400; }
svg .value.ok { fill: #23784a; } svg .value.warn { fill: #a87400; } svg .value.bad { fill: var(--bad); } svg .value.muted { fill: var(--muted); font-weight: 400; }
svg .predicted { fill: #fff; stroke: var(--ink); stroke-width: 1.6; }
svg .capacity { stroke: var(--ink); stroke-width: 2; }
svg .capacity-label { fill: var(--ink); font-size: 11px; font-weight: 600; }
svg .reference { stroke-width: 1.2; stroke-dasharray: 4 4; }
svg .reference.warn { stroke: var(--warn); }
svg .reference-label { font-size: 11px; }
svg .reference-label.warn { fill: #a87400; }
svg .overflow { fill: #fff; font-weight: 700; }
svg .line { fill: none; stroke-linejoin: round; stroke-linecap: round; }
svg .mark-label { fill: var(--ink); font-size: 11px; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; margin: 6px 0 0; padding: 0 0 0 64px; font-size: 12px; color: var(--muted); }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 18px; height: 0; border-top: 3px solid var(--c); display: inline-block; }
.swatch.dashed { border-top-style: dashed; }
.key { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 0 0; font-size: 12px; color: var(--muted); }
.key span { display: inline-flex; align-items: center; gap: 6px; }
.key i { display: inline-block; width: 14px; height: 10px; border-radius: 2px; }
.key i.ok { background: var(--ok); } .key i.warn { background: var(--warn); } .key i.bad { background: var(--bad); }
.key i.diamond { width: 9px; height: 9px; border: 1.6px solid var(--ink); background: #fff; transform: rotate(45deg); border-radius: 1px; }
.key i.capacity { width: 2px; height: 14px; background: var(--ink); border-radius: 0; }
.empty { color: var(--muted); font-style: italic; }
table.summary { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; margin: 8px 0 18px; }
table.summary th, table.summary td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
table.summary thead th { color: var(--muted); font-weight: 600; font-size: 12px; border-bottom-color: #d0d5dd; }
table.summary thead th { vertical-align: bottom; }
table.summary thead tr:first-child th[colspan] { text-align: center; border-bottom: 1px solid #d0d5dd; padding-bottom: 2px; }
table.summary thead tr:first-child th:not([colspan]):not([rowspan]) { border-bottom: none; }
table.summary thead tr + tr th { padding-top: 3px; }
table.summary th[scope="row"], table.summary thead th:first-child { text-align: left; }
table.summary tr.service th[scope="row"] { font-weight: 650; }
table.summary tr.instance th[scope="row"] { font-weight: 400; padding-left: 22px; color: #344054; }
table.summary tr.total { background: #f9fafb; }
.pill { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 11px; font-weight: 600; line-height: 18px; }
.pill.ok { background: #e3f4ea; color: #23784a; } .pill.warn { background: #fbefcc; color: #8a6100; } .pill.bad { background: #f9dce1; color: #a32139; } .pill.none { background: #f2f4f7; color: var(--muted); }
.bad-text { color: var(--bad); font-weight: 600; } .warn-text { color: #a87400; font-weight: 600; }
.notes { color: var(--muted); font-size: 13px; }
footer { margin: 20px 0 0; color: var(--muted); font-size: 12px; }
@media (max-width: 760px) { .kpis { grid-template-columns: repeat(2, 1fr); } }
@media print { body { background: #fff; } .card, .kpi { break-inside: avoid; } }
`;

/** The report as one HTML document. `result.series` feeds the time and latency charts; without it they say so. */
export function renderReport(result: SimulationResult, options: ReportOptions = {}): string {
  const assessed = result.services.map((s) => assessService(s, result.durationMs));
  const series = result.series;
  const noSeries = `<p class="empty">This result has no series: simulate with the series option to chart it.</p>`;
  const meta: [string, string][] = [];
  if (options.file) meta.push(["spec", options.file]);
  if (result.environment !== null) meta.push(["env", result.environment]);
  meta.push(["seed", String(result.seed)], ["simulated", duration(result.durationMs)], ["arrivals", result.arrival], ["service times", result.serviceTime]);
  if (result.failureRate > 0) meta.push(["failure rate", pct(result.failureRate, 2)]);
  meta.push(["events", count(result.events)]);
  const title = `${result.system}${result.environment === null ? "" : ` (${result.environment})`} · simulation report`;
  const notes =
    result.warnings.length === 0
      ? ""
      : `<section class="card notes"><h2>What the simulation assumed</h2><ul>${result.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul></section>`;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mbc${options.version ? ` ${esc(options.version)}` : ""}">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<div class="eyebrow">mbc simulate · report</div>
<h1>${esc(result.system)}</h1>
<ul class="meta">${meta.map(([k, v]) => `<li>${esc(k)} <b>${esc(v)}</b></li>`).join("")}</ul>
</header>
${verdict(result, assessed)}
${kpis(result, assessed)}
<section class="card">
<h2>Load against capacity</h2>
<p class="lede">Work offered to each instance over what it can do while up (its busy share of the run, until the queue grows). The line is capacity; the diamond is the static model's sᵢ.</p>
<figure class="chart" data-chart="load">
${loadChart(result, assessed)}
<figcaption class="key"><span><i class="ok"></i>below 80%</span><span><i class="warn"></i>80–100%: little headroom</span><span><i class="bad"></i>100% or more: overloaded</span><span><i class="diamond"></i>predicted (static model)</span><span><i class="capacity"></i>capacity</span></figcaption>
</figure>
</section>
<section class="card">
<h2>Utilisation over time</h2>
<p class="lede">Busy share of each instance per time bucket.</p>
<figure class="chart" data-chart="utilisation">
${series ? utilisationChart(result, series) : noSeries}
</figure>
</section>
<section class="card">
<h2>Queue wait over time</h2>
<p class="lede">Mean wait of the attempts that joined each instance's queue in a time bucket: a line that keeps rising is a queue that grows.</p>
<figure class="chart" data-chart="queue-wait">
${series ? waitChart(result, series) : noSeries}
</figure>
</section>
<section class="card">
<h2>Latency distribution</h2>
<p class="lede">Share of batches that succeeded at a service within a time of their first record entering a source (cumulative); dots mark the end-to-end percentiles.</p>
<figure class="chart" data-chart="latency">
${series ? latencyChart(result, series) : noSeries}
</figure>
</section>
<section class="card">
<h2>Summary</h2>
${summaryTables(result, assessed)}
</section>
${notes}
<footer>Made by mbc${options.version ? ` ${esc(options.version)}` : ""} from the simulation's JSON result: the same spec, options and seed give the same report, byte for byte.</footer>
</main>
</body>
</html>
`;
}
