/** Units of the contract's value types. Inputs are schema-valid; anything else gives NaN. */

const DURATION = /^(?=[0-9])(?:([0-9]+(?:\.[0-9]+)?)h)?(?:([0-9]+(?:\.[0-9]+)?)m(?!s))?(?:([0-9]+(?:\.[0-9]+)?)s)?(?:([0-9]+(?:\.[0-9]+)?)ms)?$/;

/** Milliseconds of a duration such as `250ms`, `1.5m` or `1m30s`. */
export function parseDuration(value: string): number {
  const m = DURATION.exec(value);
  if (!m) return Number.NaN;
  const [, h, min, s, ms] = m;
  return Math.round((Number(h ?? 0) * 3600 + Number(min ?? 0) * 60 + Number(s ?? 0)) * 1000 + Number(ms ?? 0));
}

const SIZE_UNITS: Record<string, number> = { "": 1, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** Bytes of a size such as `1048576`, `512Mi` or `1G`. */
export function parseSize(value: number | string): number {
  if (typeof value === "number") return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)(k|M|G|Ki|Mi|Gi)?$/.exec(value);
  if (!m) return Number.NaN;
  return Math.round(Number(m[1]) * (SIZE_UNITS[m[2] ?? ""] as number));
}

const RATE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/** Records per second of a rate such as `4000`, `4000/s` or `90000/m`. */
export function parseRate(value: number | string): number {
  if (typeof value === "number") return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)\/(s|m|h)$/.exec(value);
  if (!m) return Number.NaN;
  return Number(m[1]) / (RATE_UNITS[m[2] as string] as number);
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
