import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Model } from "../../src/model/types.js";
import type { Discovery, InstanceEndpoint, WireBatch } from "../../src/runtime/core/contracts.js";
import { silentLogger } from "../../src/runtime/core/log.js";
import { createDispatcher, type DispatchError, type DispatchMetrics } from "../../src/runtime/dispatch/index.js";
import { validateText } from "../../src/validate/index.js";

// ---------------------------------------------------------------------------------------------
// Helpers

function modelOf(services: Record<string, Record<string, unknown>>): Model {
  const first = Object.keys(services)[0] as string;
  const spec = { mbc: 1, name: "t", sources: { in: { type: "generator", rate: 10, to: first } }, services };
  const { diagnostics, model } = validateText("spec.json", JSON.stringify(spec));
  expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  if (model === null) throw new Error("no model");
  return model;
}

/** A fast retry policy: no waiting to speak of, so tests do not sleep. */
const fastRetry = { interval: "1ms", maxInterval: "5ms", jitter: "none" };

type Behaviour = (batch: WireBatch) => { status: number; body?: unknown; headers?: Record<string, string> } | "hang";

interface FakeInstance {
  url: string;
  port: number;
  received: WireBatch[];
  /** The mbc-time-left header of each request, as sent. */
  timeLeft: (string | undefined)[];
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

async function startInstance(behave: Behaviour = () => ({ status: 200, body: { ok: true } })): Promise<FakeInstance> {
  const held: ServerResponse[] = [];
  const fake: FakeInstance = {
    url: "",
    port: 0,
    received: [],
    timeLeft: [],
    connections: 0,
    behave,
    release() {
      for (const res of held.splice(0)) if (!res.destroyed) res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    },
    close: async () => {},
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const batch = JSON.parse(Buffer.concat(chunks).toString("utf8")) as WireBatch;
      fake.received.push(batch);
      fake.timeLeft.push(req.headers["mbc-time-left"] as string | undefined);
      const answer = fake.behave(batch);
      if (answer === "hang") {
        held.push(res);
        return;
      }
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(JSON.stringify(answer.body ?? {}));
    });
  });
  server.on("connection", () => fake.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `http://127.0.0.1:${fake.port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      for (const res of held.splice(0)) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  servers.push(fake);
  return fake;
}

/** A port nothing listens on (a server was there a moment ago). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function endpoint(service: string, instance: number, url: string, weight = 1): InstanceEndpoint {
  return { service, instance, url, weight, capacityPerSec: null };
}

class FakeDiscovery implements Discovery {
  readonly live = new Map<string, InstanceEndpoint[]>();
  instances(service: string): readonly InstanceEndpoint[] {
    return this.live.get(service) ?? [];
  }
  async waitFor(): Promise<void> {}
  close(): void {}
}

function recordingMetrics() {
  const attempts: { service: string; instance: number; outcome: string }[] = [];
  let retries = 0;
  let refusals = 0;
  const metrics: DispatchMetrics = {
    attempt: (service, instance, outcome) => attempts.push({ service, instance, outcome }),
    retry: () => retries++,
    budgetRefusal: () => refusals++,
  };
  return {
    metrics,
    attempts,
    retries: () => retries,
    refusals: () => refusals,
  };
}

const batch = (id: string): WireBatch => ({ id, via: ["in"], records: [{ n: 1 }, { n: 2 }] });

async function rejection(p: Promise<unknown>): Promise<DispatchError> {
  try {
    await p;
  } catch (err) {
    return err as DispatchError;
  }
  throw new Error("expected a rejection");
}

/** Waits for `condition` with a deadline (no sleeping as an assertion). */
async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---------------------------------------------------------------------------------------------
// retryDelay and the budget

// ---------------------------------------------------------------------------------------------
// Dispatch over real HTTP

describe("dispatch", () => {
  it("spreads batches round-robin over the live instances, over kept-alive connections", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 3, retry: fastRetry } });
    const fakes = await Promise.all([startInstance(), startInstance(), startInstance()]);
    const discovery = new FakeDiscovery();
    discovery.live.set(
      "work",
      fakes.map((f, k) => endpoint("work", k, f.url)),
    );
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      for (let i = 0; i < 9; i++) await d.send(["work"], batch(`in-${i}`));
    } finally {
      d.close();
    }
    expect(fakes.map((f) => f.received.map((b) => b.id))).toEqual([
      ["in-0", "in-3", "in-6"],
      ["in-1", "in-4", "in-7"],
      ["in-2", "in-5", "in-8"],
    ]);
    expect(fakes[0]?.received[0]).toEqual(batch("in-0"));
    // Sequential sends reuse one connection per instance.
    expect(fakes.map((f) => f.connections)).toEqual([1, 1, 1]);
  });

  it("follows smooth weighted round-robin with the registered weights (5, 1, 1 → a a b a c a a)", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: [{ weight: 5 }, { weight: 1 }, { weight: 1 }], retry: fastRetry } });
    expect(model.services[0]?.loadBalancing).toBe("weighted-round-robin");
    const fakes = await Promise.all([startInstance(), startInstance(), startInstance()]);
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [
      endpoint("work", 0, fakes[0]?.url ?? "", 5),
      endpoint("work", 1, fakes[1]?.url ?? "", 1),
      endpoint("work", 2, fakes[2]?.url ?? "", 1),
    ]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    const order: string[] = [];
    for (const f of fakes) {
      const k = fakes.indexOf(f);
      f.behave = () => {
        order.push("abc"[k] as string);
        return { status: 200 };
      };
    }
    try {
      for (let i = 0; i < 7; i++) await d.send(["work"], batch(`in-${i}`));
    } finally {
      d.close();
    }
    expect(order.join(" ")).toBe("a a b a c a a");
  });

  it("least-connections sends to the instance with fewer batches in flight", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 2, loadBalancing: "least-connections", retry: fastRetry } });
    const slow = await startInstance(() => "hang");
    const fast = await startInstance();
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, slow.url), endpoint("work", 1, fast.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      const first = d.send(["work"], batch("in-0"));
      await until(() => slow.received.length === 1);
      // Instance 0 holds one batch: the next ones all go to instance 1 while it does.
      for (let i = 1; i <= 4; i++) await d.send(["work"], batch(`in-${i}`));
      expect(fast.received.map((b) => b.id)).toEqual(["in-1", "in-2", "in-3", "in-4"]);
      slow.release();
      await first;
    } finally {
      d.close();
    }
  });

  it("retries a timed-out attempt on another instance", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 2, timeout: "150ms", retry: fastRetry } });
    const stuck = await startInstance(() => "hang");
    const good = await startInstance();
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, stuck.url), endpoint("work", 1, good.url)]);
    const m = recordingMetrics();
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger, metrics: m.metrics });
    try {
      await d.send(["work"], batch("in-0"));
    } finally {
      d.close();
    }
    expect(stuck.received.map((b) => b.id)).toEqual(["in-0"]);
    expect(good.received.map((b) => b.id)).toEqual(["in-0"]);
    expect(m.attempts).toEqual([
      { service: "work", instance: 0, outcome: "timeout" },
      { service: "work", instance: 1, outcome: "ok" },
    ]);
    expect(m.retries()).toBe(1);
  });

  it("retries a 5xx on another instance, but never a 4xx", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 2, retry: fastRetry } });
    const failing = await startInstance(() => ({ status: 500, body: { error: "boom" } }));
    const good = await startInstance();
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, failing.url), endpoint("work", 1, good.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["work"], batch("in-0"));
      expect(good.received.map((b) => b.id)).toEqual(["in-0"]);

      failing.behave = () => ({ status: 400, body: { error: "`records` must be an array" } });
      good.behave = failing.behave;
      const err = await rejection(d.send(["work"], batch("in-1")));
      expect(err.name).toBe("DispatchFailure");
      expect(err.service).toBe("work");
      expect(err.attempts).toHaveLength(1);
      expect(err.attempts[0]?.kind).toBe("4xx");
      expect(err.attempts[0]?.error).toContain("HTTP 400: `records` must be an array");
    } finally {
      d.close();
    }
  });

  it("does not retry kinds missing from retry.on, and gives up after maxRetries with every attempt listed", async () => {
    const model = modelOf({
      only: { handler: "builtin:passthrough", instances: 1, retry: { ...fastRetry, on: ["timeout"] }, to: "many" },
      many: { handler: "builtin:passthrough", instances: 2, retry: { ...fastRetry, maxRetries: 3 } },
    });
    const a = await startInstance(() => ({ status: 503, body: { error: "busy" } }));
    const b = await startInstance(() => ({ status: 502 }));
    const discovery = new FakeDiscovery();
    discovery.live.set("only", [endpoint("only", 0, a.url)]);
    discovery.live.set("many", [endpoint("many", 0, a.url), endpoint("many", 1, b.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      const once = await rejection(d.send(["only"], batch("in-0")));
      // A 503 is the stage saying it is unavailable, retried as 5xx: not in this retry.on.
      expect(once.attempts.map((x) => x.kind)).toEqual(["unavailable"]);
      expect(once.failure).toBe("unavailable");

      const all = await rejection(d.send(["many"], batch("in-1")));
      expect(all.attempts.map((x) => `${x.kind}@${x.instance}`)).toEqual(["unavailable@0", "5xx@1", "unavailable@0", "5xx@1"]);
      expect(all.message).toContain("unavailable after 4 attempts");
      expect(all.failure).toBe("unavailable");
    } finally {
      d.close();
    }
  });

  it("stops retrying when the retry budget refuses", async () => {
    const model = modelOf({
      work: { handler: "builtin:passthrough", instances: 2, retry: { ...fastRetry, maxRetries: 5, budget: { ratio: 0.5, minPerSecond: 0 } } },
    });
    const failing = await startInstance(() => ({ status: 500 }));
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, failing.url)]);
    const m = recordingMetrics();
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger, metrics: m.metrics });
    try {
      // One first attempt deposits 0.5 retries: less than one, so the first retry is refused.
      const err = await rejection(d.send(["work"], batch("in-0")));
      expect(err.attempts.map((x) => x.kind)).toEqual(["5xx", "budget"]);
      expect(err.message).toContain("retry budget refused");
      expect(m.refusals()).toBe(1);
      // The second first attempt makes it 1.0: one retry is allowed, then refused again.
      const again = await rejection(d.send(["work"], batch("in-1")));
      expect(again.attempts.map((x) => x.kind)).toEqual(["5xx", "5xx", "budget"]);
      expect(m.retries()).toBe(1);
      expect(m.refusals()).toBe(2);
    } finally {
      d.close();
    }
  });

  it("opens the circuit of an unreachable instance and skips it while another is available", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 2, retry: fastRetry } });
    const good = await startInstance();
    const dead = await deadPort();
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, `http://127.0.0.1:${dead}`), endpoint("work", 1, good.url)]);
    const m = recordingMetrics();
    let now = 0;
    const d = createDispatcher({
      services: model.services,
      discovery,
      log: silentLogger,
      metrics: m.metrics,
      now: () => now,
      breaker: { failureThreshold: 2, halfOpenAfterMs: 1000 },
    });
    const connectFailures = () => m.attempts.filter((a) => a.outcome === "connect").length;
    try {
      for (let i = 0; i < 10; i++) await d.send(["work"], batch(`in-${i}`));
      expect(good.received).toHaveLength(10);
      // Two connect failures open the breaker; after that instance 0 is not tried.
      expect(connectFailures()).toBe(2);
      expect(m.attempts.filter((a) => a.instance === 0).length).toBe(2);
      // Past the pause, one probe goes to instance 0 (it fails again and re-opens the breaker).
      now = 1500;
      for (let i = 10; i < 14; i++) await d.send(["work"], batch(`in-${i}`));
      expect(connectFailures()).toBe(3);
    } finally {
      d.close();
    }
  });

  it("fails as no-instance when the service has no live instance (retried like connect)", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", retry: fastRetry } });
    const discovery = new FakeDiscovery();
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      const err = await rejection(d.send(["work"], batch("in-0")));
      expect(err.attempts.map((x) => x.kind)).toEqual(["no-instance", "no-instance", "no-instance"]);
      const unknown = await rejection(d.send(["nope"], batch("in-1")));
      expect(unknown.service).toBe("nope");
      expect(unknown.message).toContain("unknown service");
    } finally {
      d.close();
    }
  });

  it("follows discovery: a new instance joins the rotation, a gone one leaves it", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", instances: 3, retry: fastRetry } });
    const fakes = await Promise.all([startInstance(), startInstance(), startInstance()]);
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, fakes[0]?.url ?? "")]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["work"], batch("in-0"));
      await d.send(["work"], batch("in-1"));
      discovery.live.set(
        "work",
        fakes.map((f, k) => endpoint("work", k, f.url)),
      );
      for (let i = 2; i < 8; i++) await d.send(["work"], batch(`in-${i}`));
      discovery.live.set("work", [endpoint("work", 2, fakes[2]?.url ?? "")]);
      await d.send(["work"], batch("in-8"));
    } finally {
      d.close();
    }
    expect(fakes[0]?.received.length).toBeGreaterThanOrEqual(3);
    expect(fakes[1]?.received.length).toBeGreaterThanOrEqual(2);
    expect(fakes[2]?.received.map((b) => b.id)).toContain("in-8");
  });

  it("fans out a copy to every target and reports which one failed", async () => {
    const model = modelOf({
      a: { handler: "builtin:passthrough", retry: fastRetry },
      b: { handler: "builtin:passthrough", retry: fastRetry },
      c: { handler: "builtin:passthrough", retry: fastRetry },
    });
    const a = await startInstance();
    const b = await startInstance();
    const c = await startInstance(() => ({ status: 500, body: { error: "disk full" } }));
    const discovery = new FakeDiscovery();
    discovery.live.set("a", [endpoint("a", 0, a.url)]);
    discovery.live.set("b", [endpoint("b", 0, b.url)]);
    discovery.live.set("c", [endpoint("c", 0, c.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["a", "b"], batch("in-0"));
      expect(a.received).toEqual([batch("in-0")]);
      expect(b.received).toEqual([batch("in-0")]);

      const one = await rejection(d.send(["a", "c"], batch("in-1")));
      expect(one.service).toBe("c");
      expect(one.message).toContain("disk full");
      expect(a.received.map((x) => x.id)).toEqual(["in-0", "in-1"]);

      b.behave = () => ({ status: 400, body: { error: "bad" } });
      const two = await rejection(d.send(["a", "b", "c"], batch("in-2")));
      expect(two.message).toContain("2 of 3 targets failed (b, c)");
      expect(two.failures.map((f) => f.service)).toEqual(["b", "c"]);
    } finally {
      d.close();
    }
  });

  it("rejects a send still waiting when the dispatcher is closed", async () => {
    const model = modelOf({ work: { handler: "builtin:passthrough", timeout: "30s", retry: fastRetry } });
    const stuck = await startInstance(() => "hang");
    const discovery = new FakeDiscovery();
    discovery.live.set("work", [endpoint("work", 0, stuck.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    const pending = rejection(d.send(["work"], batch("in-0")));
    await until(() => stuck.received.length === 1);
    d.close();
    const err = await pending;
    expect(err.message).toContain("closed");
    const after = await rejection(d.send(["work"], batch("in-1")));
    expect(after.message).toContain("closed");
  });
});

describe("delivery classes", () => {
  const poison = { status: 500, body: { error: "record 1 is not valid" }, headers: { "mbc-failure": "poison" } };
  const ok = { status: 200, body: { ok: true } };

  it("proves poison when the batch fails so on two instances while other batches get through, and stops retrying then", async () => {
    const model = modelOf({ two: { handler: "builtin:passthrough", instances: 2, retry: { ...fastRetry, maxRetries: 5 } } });
    const behave: Behaviour = (b) => (b.id === "in-bad" ? poison : ok);
    const [a, b] = [await startInstance(behave), await startInstance(behave)];
    const discovery = new FakeDiscovery();
    discovery.live.set("two", [endpoint("two", 0, a.url), endpoint("two", 1, b.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["two"], batch("in-good"));
      const failed = await rejection(d.send(["two"], batch("in-bad")));
      expect(failed.failure).toBe("poison");
      // Round-robin: whichever instance comes first, the retry goes to the other one, and then it is proven.
      expect(failed.attempts.map((x) => x.kind)).toEqual(["poison", "poison"]);
      expect(new Set(failed.attempts.map((x) => x.instance))).toEqual(new Set([0, 1]));
    } finally {
      d.close();
    }
  });

  it("calls it unavailable, not poison, when no batch gets through the service", async () => {
    const model = modelOf({ two: { handler: "builtin:passthrough", instances: 2, retry: { ...fastRetry, maxRetries: 3 } } });
    const [a, b] = [await startInstance(() => poison), await startInstance(() => poison)];
    const discovery = new FakeDiscovery();
    discovery.live.set("two", [endpoint("two", 0, a.url), endpoint("two", 1, b.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      const failed = await rejection(d.send(["two"], batch("in-1")));
      expect(failed.failure).toBe("unavailable");
      expect(failed.attempts).toHaveLength(4);
    } finally {
      d.close();
    }
  });

  it("remembers a batch's failures across sends: with no quick retries, the second send to another instance proves it", async () => {
    const model = modelOf({ two: { handler: "builtin:passthrough", instances: 2, retry: { ...fastRetry, maxRetries: 0 } } });
    const behave: Behaviour = (b) => (b.id === "in-bad" ? poison : ok);
    const [a, b] = [await startInstance(behave), await startInstance(behave)];
    const discovery = new FakeDiscovery();
    discovery.live.set("two", [endpoint("two", 0, a.url), endpoint("two", 1, b.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["two"], batch("in-good"));
      const classes: string[] = [];
      for (let k = 0; k < 3 && !classes.includes("poison"); k++) classes.push((await rejection(d.send(["two"], batch("in-bad")))).failure);
      expect(classes[0]).toBe("unavailable");
      expect(classes).toContain("poison");
    } finally {
      d.close();
    }
  });

  it("takes a 4xx as poison at once: the stage refuses the batch as it is", async () => {
    const model = modelOf({ two: { handler: "builtin:passthrough", instances: 2, retry: fastRetry } });
    const a = await startInstance(() => ({ status: 413, body: { error: "too large" } }));
    const discovery = new FakeDiscovery();
    discovery.live.set("two", [endpoint("two", 0, a.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      const failed = await rejection(d.send(["two"], batch("in-1")));
      expect(failed.failure).toBe("poison");
      expect(failed.attempts.map((x) => x.kind)).toEqual(["4xx"]);
    } finally {
      d.close();
    }
  });

  it("tells each attempt its time left, bounded by the target's timeout and the send's own, and gives up as timeout with none left", async () => {
    const model = modelOf({ one: { handler: "builtin:passthrough", timeout: "3s", retry: fastRetry } });
    const a = await startInstance(() => ok);
    const discovery = new FakeDiscovery();
    discovery.live.set("one", [endpoint("one", 0, a.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["one"], batch("in-1"));
      expect(Number(a.timeLeft[0])).toBe(3000);
      await d.send(["one"], batch("in-2"), { timeLeftMs: 60_000 });
      expect(Number(a.timeLeft[1])).toBe(3000);
      await d.send(["one"], batch("in-3"), { timeLeftMs: 1500 });
      expect(Number(a.timeLeft[2])).toBeLessThanOrEqual(1500);
      expect(Number(a.timeLeft[2])).toBeGreaterThan(0);
      const late = await rejection(d.send(["one"], batch("in-4"), { timeLeftMs: 0 }));
      expect(late.failure).toBe("timeout");
      expect(late.attempts.map((x) => x.kind)).toEqual(["deadline"]);
      expect(a.received).toHaveLength(3);
    } finally {
      d.close();
    }
  });

  it("a fan-out is poison when one branch refuses the batch, though the other stored it", async () => {
    const model = modelOf({
      a: { handler: "builtin:passthrough", retry: { ...fastRetry, maxRetries: 1 } },
      b: { handler: "builtin:passthrough", retry: { ...fastRetry, maxRetries: 1 } },
    });
    const sa = await startInstance(() => ok);
    const sb = await startInstance((x) => (x.id === "in-bad" ? poison : ok));
    const discovery = new FakeDiscovery();
    discovery.live.set("a", [endpoint("a", 0, sa.url)]);
    discovery.live.set("b", [endpoint("b", 0, sb.url)]);
    const d = createDispatcher({ services: model.services, discovery, log: silentLogger });
    try {
      await d.send(["a", "b"], batch("in-good"));
      const failed = await rejection(d.send(["a", "b"], batch("in-bad")));
      expect(failed.failure).toBe("poison");
      expect(failed.service).toBe("b");
      expect(sa.received.map((x) => x.id)).toEqual(["in-good", "in-bad"]);
    } finally {
      d.close();
    }
  });
});
