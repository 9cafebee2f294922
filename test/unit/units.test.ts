import { describe, expect, it } from "vitest";
import { formatMs, parseDuration, parseRate, parseSize } from "../../src/model/units.js";

describe("parseDuration", () => {
  it.each([
    ["250ms", 250],
    ["0ms", 0],
    ["2s", 2000],
    ["0.5s", 500],
    ["1.5m", 90_000],
    ["1m30s", 90_000],
    ["2h", 7_200_000],
    ["1h2m3s4ms", 3_723_004],
    ["1h30m", 5_400_000],
    ["1m500ms", 60_500],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    "",
    "2",
    "s",
    "ms",
    "-1s",
    "2 s",
    " 2s",
    "2S",
    "2sec",
    "1.s",
    ".5s",
    "1s1m", // units must be chained largest first
    "1ms1s",
    "1m1m",
    "2d",
    "1e3ms",
  ])("%j is NaN", (text) => {
    expect(parseDuration(text)).toBeNaN();
  });
});

describe("parseSize", () => {
  it.each([
    [1_048_576, 1_048_576],
    [0, 0],
    ["1048576", 1_048_576],
    ["1k", 1000],
    ["2M", 2_000_000],
    ["1G", 1_000_000_000],
    ["1Ki", 1024],
    ["1Mi", 1_048_576],
    ["512Mi", 512 * 1024 * 1024],
    ["2Gi", 2 * 1024 ** 3],
    ["1.5Ki", 1536],
  ] as const)("%j is %d bytes", (value, bytes) => {
    expect(parseSize(value)).toBe(bytes);
  });

  it("always gives whole bytes", () => {
    expect(Number.isInteger(parseSize("0.3k"))).toBe(true);
    expect(Number.isInteger(parseSize("1.1Mi"))).toBe(true);
  });

  it.each(["", "1K", "1Gb", "1 Mi", "Mi", "-1k", "1mi", "1T"])("%j is NaN", (text) => {
    expect(parseSize(text)).toBeNaN();
  });
});

describe("parseRate", () => {
  it.each([
    [4000, 4000],
    [0.5, 0.5],
    ["4000/s", 4000],
    ["90000/m", 1500],
    ["3600/h", 1],
    ["7200/h", 2],
    ["1.5/s", 1.5],
    ["30/m", 0.5],
  ] as const)("%j is %d records/s", (value, perSecond) => {
    expect(parseRate(value)).toBe(perSecond);
  });

  it.each(["", "4000", "12/x", "/s", "4000 /s", "4000/S", "4000/sec", "-1/s"])("%j is NaN", (text) => {
    expect(parseRate(text)).toBeNaN();
  });
});

describe("formatMs", () => {
  it.each([
    [0, "0ms"],
    [1, "1ms"],
    [250, "250ms"],
    [1000, "1s"],
    [1500, "1500ms"],
    [2000, "2s"],
    [60_000, "1m"],
    [90_000, "90s"],
    [3_600_000, "1h"],
    [5_400_000, "90m"],
    [7_200_000, "2h"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatMs(ms)).toBe(text);
  });

  it("round-trips through parseDuration", () => {
    for (const ms of [0, 1, 99, 250, 1000, 1001, 59_999, 60_000, 61_000, 3_600_000, 3_600_001, 86_400_000]) {
      expect(parseDuration(formatMs(ms))).toBe(ms);
    }
  });
});
