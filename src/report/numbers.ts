/** How the table and the HTML report write numbers: the same figure reads the same in both. */

export const DASH = "–";

/** 0.8 → "80.0%"; null → "–". */
export function pct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined) return DASH;
  if (x >= 1e6) return "≫100%";
  return `${(x * 100).toFixed(digits)}%`;
}

/** A count in words past a million: 8.6 billion, 200 million, 15000. */
export function countText(n: number): string {
  if (!Number.isFinite(n)) return "more than 10³⁰⁸";
  const round1 = (x: number) => Number(x.toFixed(1)).toString();
  if (n >= 1e12) return `${round1(n / 1e12)} trillion`;
  if (n >= 1e9) return `${round1(n / 1e9)} billion`;
  if (n >= 1e6) return `${round1(n / 1e6)} million`;
  return String(Math.round(n));
}

/** Milliseconds with as many digits as matter: 0, 0.25, 22.7, 186. */
export function ms(x: number | null | undefined): string {
  if (x === null || x === undefined) return DASH;
  if (x === 0) return "0";
  if (x < 1) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return Math.round(x).toString();
}

/** A duration in words of the largest unit that fits: 250ms, 1.5s, 2m, 1h30m. */
export function duration(msValue: number): string {
  if (msValue < 1000) return `${round(msValue, 1)}ms`;
  if (msValue < 60_000) return `${round(msValue / 1000, 2)}s`;
  if (msValue < 3_600_000) {
    const m = Math.floor(msValue / 60_000);
    const s = round((msValue - m * 60_000) / 1000, 1);
    return s === 0 ? `${m}m` : `${m}m${s}s`;
  }
  const h = Math.floor(msValue / 3_600_000);
  const m = Math.round((msValue - h * 3_600_000) / 60_000);
  return m === 0 ? `${h}h` : `${h}h${m}m`;
}

/** A count with thousands separators that do not depend on the locale: 146350 → "146,350". */
export function count(n: number): string {
  const [int, frac] = String(n).split(".") as [string, string | undefined];
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/** A number with at most `digits` decimals, no trailing zeros. */
export function round(x: number, digits = 2): number {
  return Number(x.toFixed(digits));
}

/** A rate in records/s: 2400 → "2,400/s". */
export function rate(x: number | null): string {
  return x === null ? DASH : `${count(round(x, 1))}/s`;
}

/** A ratio such as retries per request: three decimals. */
export function fixed(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined ? DASH : x.toFixed(digits);
}
