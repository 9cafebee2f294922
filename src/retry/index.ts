/**
 * Retry policy arithmetic, one copy for the simulator (src/simulate/engine.ts) and the
 * runtime's dispatcher, so that what `mbc simulate` predicts is what the runtime does:
 *
 * - Backoff before the k-th retry (k ≥ 1): `interval` (constant) or interval × multiplierᵏ⁻¹
 *   (exponential), capped at `maxInterval`, then jittered AWS-style: `none` the wait itself,
 *   `full` uniform in [0, wait), `equal` wait/2 + uniform in [0, wait/2).
 * - Retry budget (Finagle's RetryBudget, Linkerd's retryBudget): over a sliding window of
 *   10 s, every first attempt deposits, every retry withdraws, and a retry is allowed only if
 *   retries + 1 ≤ ratio × first attempts + minPerSecond × 10. The reserve (`minPerSecond`)
 *   keeps a quiet service retrying; the ratio bounds the extra load retries add to a busy one,
 *   so a failing downstream cannot be buried under a retry storm.
 *
 * The window counts exact timestamps, not buckets, and a window holds at most (1 + ratio) ×
 * 10 s of attempts, which is small at batch rates. The runtime reads its clock; the simulator
 * passes its virtual time to each call.
 */
import type { RetryModel } from "../model/types.js";
import type { Random } from "../shared/random.js";
import { TimeRing } from "../shared/time-ring.js";

export type { Random };

/** The retry budget's sliding window (Finagle's and Linkerd's default TTL). */
export const RETRY_BUDGET_WINDOW_MS = 10_000;

/** The wait in ms before the k-th retry (k ≥ 1) under `retry`, drawing jitter from `random`. */
export function retryDelay(retry: Pick<RetryModel, "backoff" | "intervalMs" | "multiplier" | "maxIntervalMs" | "jitter">, k: number, random: Random): number {
  const n = Math.max(1, Math.floor(k));
  let wait = retry.backoff === "exponential" ? retry.intervalMs * retry.multiplier ** (n - 1) : retry.intervalMs;
  // multiplier ** n overflows to Infinity for large n; the cap keeps the wait finite.
  if (!(wait <= retry.maxIntervalMs)) wait = retry.maxIntervalMs;
  if (wait < 0) wait = 0;
  if (retry.jitter === "full") return random() * wait;
  if (retry.jitter === "equal") return wait / 2 + random() * (wait / 2);
  return wait;
}

/** A retry budget for one target service, as seen by one caller. */
export class RetryBudget {
  private readonly deposits = new TimeRing();
  private readonly withdrawals = new TimeRing();
  private readonly reserve: number;

  constructor(
    private readonly budget: RetryModel["budget"],
    // Monotonic: a wall clock stepping back would keep stale entries in the window.
    private readonly clock: () => number = () => performance.now(),
    private readonly windowMs: number = RETRY_BUDGET_WINDOW_MS,
  ) {
    this.reserve = (budget.minPerSecond * windowMs) / 1000;
  }

  /** A first attempt was made (`now`: the time in ms, by default the clock's). */
  deposit(now = this.clock()): void {
    this.deposits.dropUpTo(now - this.windowMs);
    this.deposits.push(now);
  }

  /** Asks for one retry: true (and counted) when the budget allows it, false when it refuses. */
  tryWithdraw(now = this.clock()): boolean {
    const since = now - this.windowMs;
    this.deposits.dropUpTo(since);
    this.withdrawals.dropUpTo(since);
    if (this.withdrawals.size + 1 > this.budget.ratio * this.deposits.size + this.reserve) return false;
    this.withdrawals.push(now);
    return true;
  }

  /** Retries the budget would still allow now (for logs and tests). */
  available(now = this.clock()): number {
    const since = now - this.windowMs;
    this.deposits.dropUpTo(since);
    this.withdrawals.dropUpTo(since);
    return Math.max(0, Math.floor(this.budget.ratio * this.deposits.size + this.reserve - this.withdrawals.size));
  }
}
