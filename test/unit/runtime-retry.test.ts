import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type { RetryModel } from "../../src/model/types.js";
import { RETRY_BUDGET_WINDOW_MS, RetryBudget, retryDelay } from "../../src/retry/index.js";
import type { WireBatch } from "../../src/runtime/core/contracts.js";
import { CircuitBreaker, isRetryable } from "../../src/runtime/dispatch/index.js";

// ---------------------------------------------------------------------------------------------
// Helpers

type Behaviour = (batch: WireBatch) => { status: number; body?: unknown } | "hang";

interface FakeInstance {
  url: string;
  port: number;
  received: WireBatch[];
  connections: number;
  behave: Behaviour;
  /** Answers held by "hang", released with 200 by release(). */
  release(): void;
  close(): Promise<void>;
}

const servers: FakeInstance[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

// ---------------------------------------------------------------------------------------------
// retryDelay and the budget

describe("retryDelay", () => {
  const base: RetryModel = {
    maxRetries: 5,
    intervalMs: 100,
    backoff: "exponential",
    multiplier: 2,
    maxIntervalMs: 1000,
    jitter: "none",
    on: ["timeout", "5xx", "connect"],
    deadLetterAfterMs: null,
    budget: { ratio: 0.2, minPerSecond: 10 },
  };

  it("grows exponentially by the multiplier and stops at maxInterval", () => {
    expect([1, 2, 3, 4, 5, 6].map((k) => retryDelay(base, k, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(retryDelay({ ...base, multiplier: 3 }, 3, () => 0.5)).toBe(900);
    // A huge exponent overflows to Infinity; the cap still holds.
    expect(retryDelay(base, 5000, () => 0.5)).toBe(1000);
  });

  it("is constant with backoff constant, still capped", () => {
    expect([1, 2, 5].map((k) => retryDelay({ ...base, backoff: "constant" }, k, () => 0.5))).toEqual([100, 100, 100]);
    expect(retryDelay({ ...base, backoff: "constant", intervalMs: 5000 }, 1, () => 0.5)).toBe(1000);
  });

  it("full jitter is uniform in [0, wait), equal jitter in [wait/2, wait)", () => {
    const full = { ...base, jitter: "full" as const };
    const equal = { ...base, jitter: "equal" as const };
    expect(retryDelay(full, 2, () => 0)).toBe(0);
    expect(retryDelay(full, 2, () => 0.5)).toBe(100);
    expect(retryDelay(equal, 2, () => 0)).toBe(100);
    expect(retryDelay(equal, 2, () => 0.5)).toBe(150);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.constantFrom("exponential" as const, "constant" as const),
        fc.double({ min: 1, max: 10, noNaN: true }),
        (k, u, backoff, multiplier) => {
          const policy = { ...base, backoff, multiplier };
          const wait = retryDelay(policy, k, () => 0.5);
          expect(wait).toBeGreaterThanOrEqual(0);
          expect(wait).toBeLessThanOrEqual(policy.maxIntervalMs);
          const f = retryDelay({ ...policy, jitter: "full" }, k, () => u);
          expect(f).toBeGreaterThanOrEqual(0);
          // [0, wait) in exact arithmetic; u × wait may round up to wait itself.
          expect(f).toBeLessThanOrEqual(wait);
          const e = retryDelay({ ...policy, jitter: "equal" }, k, () => u);
          expect(e).toBeGreaterThanOrEqual(wait / 2);
          expect(e).toBeLessThanOrEqual(wait);
        },
      ),
    );
  });
});

describe("RetryBudget", () => {
  it("allows ratio × first attempts on top of the reserve, over a sliding window", () => {
    let now = 0;
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0 }, () => now);
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    // Ten more first attempts: two more retries.
    now = 5000;
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.available()).toBe(2);
    // The first ten deposits and the two withdrawals leave the window together.
    now = RETRY_BUDGET_WINDOW_MS + 1;
    expect(budget.available()).toBe(2);
    now = 5000 + RETRY_BUDGET_WINDOW_MS + 1;
    expect(budget.tryWithdraw()).toBe(false);
  });

  it("keeps minPerSecond × 10 s of retries for a quiet service", () => {
    let now = 0;
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1 }, () => now);
    let granted = 0;
    for (let i = 0; i < 50; i++) if (budget.tryWithdraw()) granted++;
    expect(granted).toBe(10);
    now = RETRY_BUDGET_WINDOW_MS + 1;
    expect(budget.tryWithdraw()).toBe(true);
  });

  it("caps retries under a retry storm at ratio × attempts + reserve", () => {
    let now = 0;
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10 }, () => now);
    let retries = 0;
    // 100 first attempts a second for 30 s, each failing and asking for up to 3 retries.
    for (let ms = 0; ms < 30_000; ms += 10) {
      now = ms;
      budget.deposit();
      for (let r = 0; r < 3; r++) if (budget.tryWithdraw()) retries++;
    }
    // Per 10 s window: 0.2 × 1000 + 100 = 300; three windows.
    expect(retries).toBeLessThanOrEqual(900);
    expect(retries).toBeGreaterThan(800);
  });
});

describe("isRetryable and the circuit breaker", () => {
  it("retries only kinds in retry.on, never 4xx or a budget refusal; no-instance follows connect", () => {
    expect(isRetryable("5xx", ["5xx"])).toBe(true);
    expect(isRetryable("timeout", ["5xx"])).toBe(false);
    expect(isRetryable("4xx", ["timeout", "5xx", "connect"])).toBe(false);
    expect(isRetryable("budget", ["timeout", "5xx", "connect"])).toBe(false);
    expect(isRetryable("no-instance", ["connect"])).toBe(true);
    expect(isRetryable("no-instance", ["5xx"])).toBe(false);
  });

  it("opens after consecutive connect failures, lets one probe through after the pause, closes on an answer", () => {
    const b = new CircuitBreaker({ failureThreshold: 2, halfOpenAfterMs: 100 });
    b.onConnectFailure(0);
    expect(b.allows(0)).toBe(true);
    b.onAnswer();
    b.onConnectFailure(1);
    expect(b.state).toBe("closed");
    b.onConnectFailure(2);
    expect(b.state).toBe("open");
    expect(b.allows(50)).toBe(false);
    expect(b.allows(102)).toBe(true);
    expect(b.state).toBe("half-open");
    b.onStart();
    expect(b.allows(103)).toBe(false);
    b.onConnectFailure(110);
    expect(b.state).toBe("open");
    expect(b.allows(150)).toBe(false);
    expect(b.allows(211)).toBe(true);
    b.onStart();
    b.onAnswer();
    expect(b.state).toBe("closed");
    expect(b.allows(212)).toBe(true);
  });
});
