import { describe, expect, it } from "vitest";
import { parseChunk } from "../../src/runtime/source/kinds/file.js";
import { expandTemplate, recordsDue } from "../../src/runtime/source/kinds/generator.js";
import { parseRecords } from "../../src/runtime/source/kinds/http.js";
import { queueLimits } from "../../src/runtime/source/pipeline.js";

// ---------------------------------------------------------------------------------------------
// Pure parts

describe("http source: parsing a body", () => {
  it("takes a JSON array, keeping each record's text as sent", () => {
    expect(parseRecords(' [ {"a": 1}, 2, "x" ] ')).toEqual({ ok: true, lines: ['{"a": 1}', "2", '"x"'], bytes: [8, 1, 3] });
    expect(parseRecords("\uFEFF[1]")).toMatchObject({ ok: true, lines: ["1"] });
    expect(parseRecords("[]")).toEqual({ ok: true, lines: [], bytes: [] });
    // Strings with escaped quotes, brackets and commas inside; nested values; a multi-byte character.
    const tricky = ['"a\\"b,]"', '{"k":["[",{"x":"}"}],"e":"\\\\"}', "[]", "{}", "-1.5e3", "null", '"é"'];
    expect(parseRecords(`[${tricky.join(" , ")}]`)).toEqual({ ok: true, lines: tricky, bytes: tricky.map((t) => Buffer.byteLength(t)) });
    // A record written over several lines becomes one compact line; the sizes are counted when not ASCII.
    expect(parseRecords('[\n  {\n    "a": [1,\n 2]\n  },\r\n  "ü"\n]')).toEqual({ ok: true, lines: ['{"a":[1,2]}', '"ü"'], bytes: [11, 4] });
    expect(parseRecords("[1,2]", true)).toEqual({ ok: true, lines: ["1", "2"], bytes: [1, 1] });
  });

  it("cuts the same texts as JSON.parse sees, for any JSON array", () => {
    const values: unknown[] = [0, -0.5, 1e21, true, false, null, "", "\\", '"', "\u2028", 'a"],[{', [], {}, [[[]]], { a: { b: [1, "]"] } }, ['\\"']];
    for (const spaced of [false, true]) {
      const texts = values.map((v) => JSON.stringify(v, null, spaced ? 1 : undefined));
      const parsed = parseRecords(`[${texts.join(spaced ? " ,\t" : ",")}]`);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      expect(parsed.lines.map((l) => JSON.parse(l) as unknown)).toEqual(values);
      for (const line of parsed.lines) expect(line).not.toMatch(/[\r\n]/);
    }
  });

  it("takes NDJSON, with blank lines and CRLF, keeping each line as sent", () => {
    expect(parseRecords('{"a": 1}\r\n\n  {"b":"é"}\n')).toEqual({
      ok: true,
      lines: ['{"a": 1}', '{"b":"é"}'],
      bytes: [8, 10],
    });
    expect(parseRecords('{"a":1}')).toMatchObject({ ok: true, lines: ['{"a":1}'] });
    // Lines that are arrays: NDJSON, not one array.
    expect(parseRecords("[1]\n[2,3]")).toMatchObject({ ok: true, lines: ["[1]", "[2,3]"] });
    // A lone CR inside a line is white space, and is not kept.
    expect(parseRecords('{"a":\r1}\n')).toMatchObject({ ok: true, lines: ['{"a":1}'] });
  });

  it("gives a reason for a bad body, with the NDJSON line number", () => {
    expect(parseRecords("")).toMatchObject({ ok: false, error: expect.stringContaining("empty") });
    expect(parseRecords(" \n \n")).toMatchObject({ ok: false, error: expect.stringContaining("empty") });
    expect(parseRecords("[1, 2")).toMatchObject({ ok: false, error: expect.stringMatching(/^not a JSON array: /) });
    expect(parseRecords('{"a":1}\n\n{"b":\n{"c":3}')).toMatchObject({ ok: false, error: expect.stringMatching(/^line 3: /) });
    expect(parseRecords("hello")).toMatchObject({ ok: false, error: expect.stringMatching(/^line 1: /) });
  });

  it("sizes the queue from the batch window", () => {
    expect(queueLimits({ maxRecords: 500, maxWaitMs: 200, maxBytes: 1024 * 1024 })).toEqual({ records: 32_000, bytes: 64 * 1024 * 1024 });
    expect(queueLimits({ maxRecords: 1, maxWaitMs: 200, maxBytes: 100 })).toEqual({ records: 1024, bytes: 16 * 1024 * 1024 });
    expect(queueLimits({ maxRecords: 10, maxWaitMs: 200, maxBytes: 1024 ** 3 }).bytes).toBe(256 * 1024 * 1024);
  });
});

describe("file source: parsing a chunk", () => {
  it("splits complete lines into records and bad lines, with cursors and line numbers", () => {
    const chunk = Buffer.from('{"a":1}\n\nnope\n{"b":2}\r\n{"c":');
    const { records, bad, cursor } = parseChunk(chunk, { offset: 100, line: 10 }, 100);
    expect(records.lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(records.lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(records.cursors).toEqual([
      { offset: 108, line: 11 },
      { offset: 123, line: 14 },
    ]);
    expect(bad).toEqual([{ line: 12, error: expect.any(String) }]);
    // The torn last line is left for the next read.
    expect(cursor).toEqual({ offset: 123, line: 14 });
  });

  it("stops after maxRecords records", () => {
    const { records, cursor } = parseChunk(Buffer.from("1\n2\n3\n"), { offset: 0, line: 1 }, 2);
    expect(records.lines).toEqual(["1", "2"]);
    expect(cursor).toEqual({ offset: 4, line: 3 });
  });
});

describe("generator: templates and pacing", () => {
  it("expands {{seq}} and {{now}} in every string, deeply", () => {
    const template = { id: "{{seq}}", at: "{{now}}", tags: ["t-{{seq}}", 3], nested: { n: "{{seq}}/{{seq}}", keep: true, none: null } };
    expect(expandTemplate(template, 42, "2024-01-01T00:00:00.000Z")).toEqual({
      id: "42",
      at: "2024-01-01T00:00:00.000Z",
      tags: ["t-42", 3],
      nested: { n: "42/42", keep: true, none: null },
    });
  });

  it("counts the records due at a rate", () => {
    expect(recordsDue(1000, 100, 0)).toBe(100);
    expect(recordsDue(1005, 100, 100)).toBe(0);
    expect(recordsDue(1010, 100, 100)).toBe(1);
    expect(recordsDue(500, 1, 0)).toBe(0);
  });
});
