/**
 * The supervisor's start-up wait for a stage of children (src/runtime/supervisor/readiness.ts),
 * on a manual clock: each child's /readyz is served in memory by the same routes a process
 * serves, so every verdict about time is exact.
 */
import { describe, expect, it } from "vitest";
import { commonRoutes, type ReadyScope, type ReadyState } from "../../src/runtime/core/http.js";
import { createMetrics } from "../../src/runtime/core/metrics.js";
import { type Readiness, type StartingChild, waitForChild, waitForStage } from "../../src/runtime/supervisor/readiness.js";
import { ManualClock } from "../helpers/clock.js";
import { inMemoryHttp } from "../helpers/in-memory-http.js";

function child(id: string, url: string | null = `http://${id}.test:1`) {
  const state = { url, exits: 0, lastExit: null as { code: number | null; signal: string | null } | null };
  const view: StartingChild = { id, url: () => state.url, exits: () => state.exits, lastExit: () => state.lastExit };
  return { state, view };
}

function setup(ready: (scope: ReadyScope) => ReadyState) {
  const clock = new ManualClock();
  const http = inMemoryHttp(commonRoutes({ ready, metrics: createMetrics({ role: "registry" }, { defaultMetrics: false }) }));
  let stopping = false;
  const options = { client: http, clock, timeoutMs: 1000, pollMs: 50, stopping: () => stopping };
  return { clock, http, options, stop: () => (stopping = true) };
}

/** Runs the wait to its end on the manual clock, 10 ms at a time. */
async function settleWait<T>(clock: ManualClock, wait: Promise<T>, limitMs = 5000): Promise<T> {
  let done = false;
  const result = wait.finally(() => {
    done = true;
  });
  for (let t = 0; t < limitMs && !done; t += 10) await clock.advance(10);
  return result;
}

describe("the supervisor's readiness wait", () => {
  it("asks /readyz?scope=self and ends at the first 200", async () => {
    let ready: ReadyState = { ready: false, reasons: ["not registered with the registry"] };
    const scopes: ReadyScope[] = [];
    const s = setup((scope) => {
      scopes.push(scope);
      return ready;
    });
    const a = child("a");
    let outcome: Readiness | null = null;
    const wait = waitForChild(a.view, s.options).then((o) => {
      outcome = o;
    });
    await s.clock.advance(200);
    expect(outcome).toBeNull();
    ready = { ready: true };
    await s.clock.advance(50);
    await wait;
    expect(outcome).toEqual({ id: "a", ready: true, waitedMs: 250 });
    expect(new Set(scopes)).toEqual(new Set(["self"]));
  });

  it("gives up at the timeout with what /readyz said last, or that the child never listened", async () => {
    const s = setup(() => ({ ready: false, reasons: ["not registered with the registry", "draining"] }));
    const [a, b] = [child("a"), child("b", null)];
    const outcomes = await settleWait(s.clock, waitForStage([a.view, b.view], s.options));
    expect(outcomes).toEqual([
      {
        id: "a",
        ready: false,
        reason: expect.stringMatching(/within 1000 ms: its \/readyz\?scope=self answered 503: not registered with the registry; draining$/),
      },
      { id: "b", ready: false, reason: expect.stringMatching(/within 1000 ms: it has not started listening$/) },
    ]);
    // Not a moment before the timeout.
    expect(s.clock.now() - 1_700_000_000_000).toBeGreaterThanOrEqual(1000);
  });

  it("gives up on a crash loop without waiting for the timeout, and on a stop at once", async () => {
    const s = setup(() => ({ ready: false, reasons: ["starting"] }));
    const a = child("a");
    const waiting = waitForChild(a.view, { ...s.options, timeoutMs: 60_000 });
    await s.clock.advance(100);
    a.state.exits = 2;
    await s.clock.advance(100);
    a.state.exits = 3;
    a.state.lastExit = { code: 1, signal: null };
    const outcome = await settleWait(s.clock, waiting, 200);
    expect(outcome).toEqual({ id: "a", ready: false, reason: expect.stringMatching(/exited 3 times before it was ready \(last exit code 1\)/) });

    const b = child("b");
    const stopped = waitForChild(b.view, { ...s.options, timeoutMs: 60_000 });
    await s.clock.advance(100);
    s.stop();
    expect(await settleWait(s.clock, stopped, 200)).toEqual({ id: "b", ready: false, reason: "the supervisor is stopping" });
  });

  it("keeps asking while the child does not answer (not listening yet, or restarted on its port)", async () => {
    let up = false;
    const s = setup(() => ({ ready: true }));
    s.http.down();
    const a = child("a");
    const waiting = waitForChild(a.view, s.options);
    await s.clock.advance(300);
    up = true;
    s.http.up();
    const outcome = await settleWait(s.clock, waiting);
    expect(up).toBe(true);
    expect(outcome).toMatchObject({ id: "a", ready: true });
    expect(s.http.requests.filter((r) => r === "GET /readyz").length).toBeGreaterThan(3);
  });
});
