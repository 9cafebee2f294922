/**
 * The live figures of `mbc run` on a terminal: per service, records/s in and out, retries and
 * queue depth, read from every process's /metrics. Parsing and rendering are pure.
 */
import type { Model } from "../model/types.js";

/** Sums of the samples of each metric name in a Prometheus text exposition. */
export function sumMetrics(text: string, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || !((m[1] as string) in out)) continue;
    const v = Number(m[2]);
    if (Number.isFinite(v)) out[m[1] as string] = (out[m[1] as string] ?? 0) + v;
  }
  return out;
}

export const LIVE_METRICS = [
  "mbc_records_in_total",
  "mbc_records_out_total",
  "mbc_retries_total",
  "mbc_queue_depth",
  "mbc_batches_waiting",
  "mbc_pieces_bisecting",
  "mbc_dead_letters_total",
] as const;

export interface Endpoint {
  /** "source" or "service" row it counts towards. */
  kind: "source" | "service";
  name: string;
  url: string;
}

/** The /metrics URLs `mbc run` polls: http sources and every service instance. */
export function liveEndpoints(model: Model): Endpoint[] {
  const host = model.targets.node.bind === "0.0.0.0" || model.targets.node.bind === "::" ? "127.0.0.1" : model.targets.node.bind;
  const h = host.includes(":") ? `[${host}]` : host;
  const out: Endpoint[] = [];
  for (const s of model.sources) if (s.type === "http") out.push({ kind: "source", name: s.name, url: `http://${h}:${s.port}/metrics` });
  for (const s of model.services) {
    // A service with only an image runs in a container, not under mbc run.
    if (s.handler === null) continue;
    for (const i of s.instances) out.push({ kind: "service", name: s.name, url: `http://${h}:${i.port}/metrics` });
  }
  return out;
}

export interface Row {
  kind: "source" | "service";
  name: string;
  up: number;
  of: number;
  totals: Record<string, number>;
}

export interface Snapshot {
  atMs: number;
  rows: Row[];
}

/** Sums the scraped figures of each source and service; `texts[k]` is endpoint k's answer, or null. */
export function snapshot(endpoints: readonly Endpoint[], texts: readonly (string | null)[], atMs: number): Snapshot {
  const rows = new Map<string, Row>();
  endpoints.forEach((e, k) => {
    const key = `${e.kind}:${e.name}`;
    let row = rows.get(key);
    if (!row) {
      row = { kind: e.kind, name: e.name, up: 0, of: 0, totals: Object.fromEntries(LIVE_METRICS.map((n) => [n, 0])) };
      rows.set(key, row);
    }
    row.of++;
    const text = texts[k];
    if (text === null || text === undefined) return;
    row.up++;
    const sums = sumMetrics(text, LIVE_METRICS);
    for (const n of LIVE_METRICS) row.totals[n] = (row.totals[n] ?? 0) + (sums[n] ?? 0);
  });
  return { atMs, rows: [...rows.values()] };
}

const pad = (s: string, n: number, right = false) => (right ? s.padStart(n) : s.padEnd(n));

/** The table: rates from the difference of two snapshots. */
export function renderLive(now: Snapshot, before: Snapshot | null, title: string): string {
  const dt = before ? (now.atMs - before.atMs) / 1000 : 0;
  const rate = (row: Row, name: string) => {
    const prev = before?.rows.find((r) => r.kind === row.kind && r.name === row.name)?.totals[name];
    if (!before || prev === undefined || dt <= 0) return "–";
    return Math.max(0, ((row.totals[name] ?? 0) - prev) / dt).toFixed(0);
  };
  const header = `${pad("", 2)}${pad("stage", 24)}${pad("up", 7, true)}${pad("in/s", 10, true)}${pad("out/s", 10, true)}${pad("in", 12, true)}${pad("out", 12, true)}${pad("retries", 9, true)}${pad("queue", 8, true)}${pad("waiting", 9, true)}${pad("bisect", 8, true)}${pad("dead", 6, true)}`;
  const lines = [title, "", header];
  for (const row of now.rows) {
    lines.push(
      `${pad(row.kind === "source" ? "→" : "·", 2)}${pad(row.name, 24)}${pad(`${row.up}/${row.of}`, 7, true)}${pad(rate(row, "mbc_records_in_total"), 10, true)}${pad(rate(row, "mbc_records_out_total"), 10, true)}${pad(String(row.totals.mbc_records_in_total ?? 0), 12, true)}${pad(String(row.totals.mbc_records_out_total ?? 0), 12, true)}${pad(String(row.totals.mbc_retries_total ?? 0), 9, true)}${pad(String(row.totals.mbc_queue_depth ?? 0), 8, true)}${pad(String(row.totals.mbc_batches_waiting ?? 0), 9, true)}${pad(String(row.totals.mbc_pieces_bisecting ?? 0), 8, true)}${pad(String(row.totals.mbc_dead_letters_total ?? 0), 6, true)}`,
    );
  }
  lines.push("", "Ctrl-C drains in-flight batches and stops.");
  return `${lines.join("\n")}\n`;
}
