/**
 * Smoke tests of the benchmark's helper pieces (bench/*.mjs), so that `npm run bench` does not
 * find out it is broken after minutes of work: the bare forwarder answers and stores what it
 * acknowledged, the load's sink check notices a missing or doubled record, the sink-index
 * follower counts, and a simulation runs in its child process.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startForwarderChain } from "../../bench/forwarder.mjs";
import { alive, canSampleRss, httpRequest, keepAliveAgent, killChildren, rssBytes, table } from "../../bench/lib.mjs";
import { closedLoop, Ledger, recordsBody, SinkIndex, verifySink } from "../../bench/load.mjs";
import { loadSpec } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "mbc-bench-test-"));
afterAll(async () => {
  await killChildren();
  rmSync(dir, { recursive: true, force: true });
});

describe("bench: the bare forwarder and the load", () => {
  it("forwards batches through three hops, stores what it acknowledged, and stops", async () => {
    const handlerFile = join(dir, "process.mjs");
    writeFileSync(handlerFile, "export default async (records) => records.map((r) => ({ ...r, processed: true }));\n");
    const outFile = join(dir, "forwarder.jsonl");
    const chain = await startForwarderChain({ handlerFile, outFile });
    const agent = keepAliveAgent(4);
    try {
      const answer = await httpRequest(agent, "POST", chain.url, recordsBody(0, 0, 500));
      expect(answer.status).toBe(202);
      expect(JSON.parse(answer.body)).toMatchObject({ accepted: 500 });
      const lines = readFileSync(outFile, "utf8").trimEnd().split("\n");
      expect(lines).toHaveLength(500);
      expect(JSON.parse(lines[0] ?? "null")).toMatchObject({ id: "c0-0-0", processed: true });

      const run = await closedLoop({ agent, url: chain.url, clients: 3, perRequest: 20, durationMs: 300, clientBase: 10 });
      expect(run.errors).toBe(0);
      expect(run.ledger.records).toBeGreaterThan(0);
      const check = await verifySink(outFile, Buffer.byteLength(lines.join("\n")) + 1, run.ledger);
      expect(check).toMatchObject({ acknowledged: run.ledger.records, stored: run.ledger.records, missing: 0, duplicates: 0, lost: false });
    } finally {
      agent.destroy();
      await chain.stop();
    }
    for (const pid of chain.pids) expect(alive(pid)).toBe(false);
  });

  it("verifySink reports records missing, stored twice, or not acknowledged", async () => {
    const file = join(dir, "check.jsonl");
    const body = JSON.parse(recordsBody(1, 0, 3)) as unknown[];
    const line = (r: unknown) => `${JSON.stringify(r)}\n`;
    // Record 0 twice, record 1 missing, record 2 once, and one from a request never acknowledged.
    writeFileSync(file, [body[0], body[0], body[2]].map(line).join(""));
    appendFileSync(file, line({ id: "c9-9-0" }));
    const ledger = new Ledger();
    ledger.add(1, 0, 3);
    expect(await verifySink(file, 0, ledger)).toEqual({
      acknowledged: 3,
      stored: 4,
      missing: 1,
      duplicates: 1,
      unacknowledged: 1,
      unreadable: 0,
      lost: true,
    });
  });

  it("SinkIndex follows a jsonl-sink index as it grows, torn last line included", async () => {
    const file = join(dir, "index.batches");
    const index = new SinkIndex(file);
    expect(await index.count()).toBe(0);
    writeFileSync(file, '{"key":"a#1","end":10,"records":5}\n{"key":"a#2","end":20,');
    expect(await index.count()).toBe(5);
    appendFileSync(file, '"records":7}\n');
    expect(await index.count()).toBe(12);
  });

  it("reads a process's RSS, and aligns numeric columns right", () => {
    if (canSampleRss()) expect(rssBytes(process.pid)).toBeGreaterThan(1024 * 1024);
    expect(rssBytes(2 ** 22 + 12345)).toBeNull();
    const text = table([
      ["measure", "value"],
      ["a", "1,234/s"],
      ["bb", "5/s"],
    ]);
    // Widths 7 and 7 ("measure", "1,234/s"); the numbers are padded on the left.
    expect(text.split("\n")[3]).toBe(`${"bb".padEnd(7)}  ${"5/s".padStart(7)}`);
  });
});

describe("bench: the simulator's part", () => {
  it("the heavy spec validates without a diagnostic and has what it is meant to exercise", async () => {
    const result = await loadSpec("bench/specs/heavy.yaml");
    expect(result.diagnostics).toEqual([]);
    const model = result.model;
    if (!model) throw new Error("no model");
    expect(model.services.some((s) => s.to.length > 1)).toBe(true);
    expect(model.services.some((s) => s.loadBalancing === "power-of-two-choices")).toBe(true);
    expect(model.simulation.failureRate).toBeGreaterThan(0);
    expect(model.simulation.faults.length).toBeGreaterThan(0);
  });

  it("simulates the example and prints its events", () => {
    const r = spawnSync(process.execPath, ["bench/sim-child.mjs", "examples/01-design-document/microbatch.yaml", "2000", "500"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { events: number; simulateMs: number; services: number; maxRssBytes: number };
    expect(out.events).toBeGreaterThan(1000);
    expect(out.services).toBe(2);
    expect(out.simulateMs).toBeGreaterThan(0);
  });
});
