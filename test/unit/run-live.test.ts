/** The live figures of `mbc run`: Prometheus text parsing and the table, pure. */
import { describe, expect, it } from "vitest";
import { liveEndpoints, renderLive, snapshot, sumMetrics } from "../../src/run/live.js";
import { validateText } from "../../src/validate/index.js";

const metrics = (inTotal: number, outTotal: number) => `# HELP mbc_records_in_total x
# TYPE mbc_records_in_total counter
mbc_records_in_total{service="s",instance="0"} ${inTotal}
mbc_records_out_total{service="s",instance="0"} ${outTotal}
mbc_retries_total{service="s",instance="0",to="t"} 2
mbc_retries_total{service="s",instance="0",to="u"} 3
mbc_queue_depth{service="s",instance="0"} 1
mbc_batches_waiting{source="in"} 1.5
mbc_pieces_bisecting{source="in"} 2
`;

describe("mbc run's live figures", () => {
  it("sums every series of a metric and ignores comments and other metrics", () => {
    expect(sumMetrics(metrics(10, 7), ["mbc_records_in_total", "mbc_retries_total", "mbc_dead_letters_total"])).toEqual({
      mbc_records_in_total: 10,
      mbc_retries_total: 5,
      mbc_dead_letters_total: 0,
    });
  });

  it("polls http sources and every service instance, at the bind address", () => {
    const { model } = validateText(
      "s.yaml",
      "mbc: 1\nname: x\nsources:\n  in: {type: http, port: 8080, to: s}\n  gen: {type: generator, rate: 5, to: s}\nservices:\n  s: {handler: builtin:log, instances: 2, port: 9000}\n",
    );
    if (!model) throw new Error("spec");
    expect(liveEndpoints(model).map((e) => `${e.kind} ${e.name} ${e.url}`)).toEqual([
      "source in http://127.0.0.1:8080/metrics",
      "service s http://127.0.0.1:9000/metrics",
      "service s http://127.0.0.1:9001/metrics",
    ]);
  });

  it("adds instances up, and rates come from two snapshots", () => {
    const endpoints = [
      { kind: "service" as const, name: "s", url: "a" },
      { kind: "service" as const, name: "s", url: "b" },
    ];
    const first = snapshot(endpoints, [metrics(100, 100), null], 1000);
    const second = snapshot(endpoints, [metrics(300, 250), metrics(50, 50)], 3000);
    expect(second.rows[0]?.up).toBe(2);
    expect(first.rows[0]?.up).toBe(1);
    const text = renderLive(second, first, "title");
    const row = text.split("\n").find((l) => l.includes(" s ")) ?? "";
    // (300 + 50 - 100) / 2 s = 125 in/s; (250 + 50 - 100) / 2 s = 100 out/s
    // …then retries, queue, batches waiting on an unavailable stage, pieces being bisected, dead letters.
    expect(row.split(/\s+/).filter(Boolean)).toEqual(["·", "s", "2/2", "125", "100", "350", "300", "10", "2", "3", "4", "0"]);
  });
});
